"""Bad input, one row each: uploads, slices, probe parameters, transitions, imports and API
bodies. Every row must get a clear error (the status and a message naming what is wrong)
and leave everything as it was: no row in any table, no status changed, no file stored.
"""

import io
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from .factories import api_for, client_for, fitted_model, skops_upload, toy_frame

pytestmark = pytest.mark.django_db


@dataclass
class Bad:
    """`send(w)` makes the request (w: the world below); the answer must have `status`
    and contain `message`."""

    id: str
    send: object
    status: int
    message: str
    settings: dict = field(default_factory=dict)


# --- how requests are sent ---------------------------------------------------------------


def api(who, method, url, body=None, fmt="json"):
    def send(w):
        client = api_for(w["people"][who])
        data = body(w) if callable(body) else body
        url_ = url(w) if callable(url) else url
        if fmt == "raw":
            return client.generic(method, url_, data, content_type="application/json")
        return getattr(client, method.lower())(url_, data, format=fmt)

    return send


def web(who, url, body, follow=False):
    def send(w):
        data = body(w) if callable(body) else body
        return client_for(w["people"][who]).post(
            url(w) if callable(url) else url, data, follow=follow
        )

    return send


def dataset_post(file_bytes, name="t.csv", **fields):
    return api(
        "contributor",
        "POST",
        "/api/v1/datasets/",
        lambda w: {
            "name": "bad",
            "target_column": "y",
            "file": ContentFile(file_bytes, name=name),
            **fields,
        },
        fmt="multipart",
    )


def version_post(artifact, version="2", ml_model=None):
    def body(w):
        blob = artifact() if callable(artifact) else artifact
        return {
            "ml_model": ml_model if ml_model is not None else w["ml_model"].pk,
            "version": version,
            "artifact": ContentFile(blob, name="m.skops"),
        }

    return api("maintainer", "POST", "/api/v1/model-versions/", body, fmt="multipart")


def finding_post(**fields):
    return api(
        "contributor",
        "POST",
        "/api/v1/findings/",
        lambda w: {
            "title": "t",
            "ml_model": w["ml_model"].pk,
            "dataset": w["dataset"].pk,
            **{k: (v(w) if callable(v) else v) for k, v in fields.items()},
        },
    )


def finding_form(**fields):
    return web(
        "contributor",
        "/catalog/findings/new/",
        lambda w: {
            "title": "t",
            "ml_model": w["ml_model"].pk,
            "dataset": w["dataset"].pk,
            "severity": "low",
            "risk_category": "other",
            **fields,
        },
    )


def probe_post(**fields):
    def body(w):
        data = {
            "finding": w["finding"].pk,
            "dataset": w["dataset"].pk,
            "kind": "slice_error_rate",
            "threshold": 0.2,
            "comparator": "<=",
            **fields,
        }
        return {k: v for k, v in data.items() if v is not None}

    return api("contributor", "POST", "/api/v1/probes/", body)


def finding_transition(who, to, note=""):
    return api(
        who,
        "POST",
        lambda w: f"/api/v1/findings/{w['finding'].pk}/transition/",
        {"to": to, "note": note},
    )


def action_transition(who, to, **extra):
    return api(
        who,
        "POST",
        lambda w: f"/api/v1/actions/{w['action'].pk}/transition/",
        lambda w: {"to": to, **{k: (v(w) if callable(v) else v) for k, v in extra.items()}},
    )


def import_csv(text, encoding="utf-8"):
    """The catalog's CSV import (Import, not Check): all rows or none."""

    def body(w):
        data = text(w) if callable(text) else text
        return {"commit": "1", "file": ContentFile(data.encode(encoding), name="findings.csv")}

    return web("contributor", "/catalog/import/", body)


def parquet_bytes():
    buffer = io.BytesIO()
    toy_frame().to_parquet(buffer)
    return buffer.getvalue()


TOY = toy_frame().to_csv(index=False).encode()

# --- the table ---------------------------------------------------------------------------

CASES = [
    # Uploads: datasets.
    Bad("dataset-empty", dataset_post(b""), 400, "file is empty"),
    Bad(
        "dataset-binary-named-csv",
        dataset_post(b"\x89PNG\r\n\x1a\n" + bytes(40)),
        400,
        "neither CSV nor Parquet",
    ),
    Bad(
        "dataset-latin1-text",
        dataset_post("caf\xe9,y\n1,2\n".encode("latin-1")),
        400,
        "neither CSV nor Parquet",
    ),
    Bad(
        "dataset-no-target",
        dataset_post(b"a,b\n1,2\n"),
        400,
        "target column 'y' is not in the file",
    ),
    Bad(
        "dataset-parquet-no-target",
        dataset_post(parquet_bytes(), "t.csv", target_column="label"),
        400,
        "target column 'label' is not in the file",
    ),
    Bad("dataset-header-only", dataset_post(b"x,y\n"), 400, "no rows"),
    Bad(
        "dataset-duplicate-columns",
        dataset_post(b"x,x,y\n1,2,3\n"),
        400,
        "duplicate column names: x.",
    ),
    Bad(
        "dataset-unknown-sensitive",
        dataset_post(TOY, sensitive_columns=["ssn"]),
        400,
        "sensitive column(s) ssn are not in the file",
    ),
    Bad(
        "dataset-target-ignored",
        dataset_post(TOY, ignored_columns=["y"]),
        400,
        "target column cannot be ignored",
    ),
    Bad(
        "dataset-broken-parquet",
        dataset_post(b"PAR1" + bytes(100) + b"PAR1", "t.parquet"),
        400,
        "could not be read as PARQUET",
    ),
    Bad(
        "dataset-over-limit",
        dataset_post(TOY),
        400,
        "the limit is 500 bytes",
        {"UPLOAD_MAX_BYTES": 500},
    ),
    Bad(
        "dataset-duplicate-version",
        api(
            "contributor",
            "POST",
            "/api/v1/datasets/",
            lambda w: {
                "name": w["dataset"].name,
                "version": w["dataset"].version,
                "target_column": "y",
                "file": ContentFile(TOY, name="t.csv"),
            },
            fmt="multipart",
        ),
        400,
        "already has a version '1'.",
    ),
    Bad(
        "dataset-no-file",
        api(
            "contributor",
            "POST",
            "/api/v1/datasets/",
            {"name": "x", "target_column": "y"},
            fmt="multipart",
        ),
        400,
        "No file was submitted",
    ),
    Bad(
        "dataset-web-form-no-target",
        web(
            "contributor",
            "/datasets/new/",
            {
                "name": "bad",
                "version": "1",
                "target_column": "label",
                "file": ContentFile(b"a,b\n1,2\n", name="t.csv"),
            },
        ),
        200,
        "target column &#x27;label&#x27; is not in the file",
    ),
    # Uploads: model artifacts.
    Bad("artifact-empty", version_post(b""), 400, "empty"),
    Bad("artifact-text", version_post(b"just some text"), 400, "not a skops file"),
    Bad("artifact-broken-zip", version_post(b"PK\x03\x04broken"), 400, "not a skops file"),
    Bad(
        "artifact-zip-without-schema",
        version_post(lambda: _zip({"model.bin": b"x"})),
        400,
        "not a skops file",
    ),
    Bad(
        "artifact-pickle",
        version_post(lambda: pickle.dumps(fitted_model())),
        400,
        "Pickle/joblib artifacts are refused",
    ),
    Bad(
        "artifact-duplicate-version",
        version_post(lambda: skops_upload(fitted_model()).read(), version="1"),
        400,
        "already has a version '1'",
    ),
    Bad(
        "artifact-over-limit",
        version_post(lambda: skops_upload(fitted_model()).read()),
        400,
        "the limit is 1000 bytes",
        {"UPLOAD_MAX_BYTES": 1000},
    ),
    Bad(
        "artifact-unknown-model",
        version_post(b"x", ml_model=987654),
        400,
        'Invalid pk \\"987654\\"',
    ),
    Bad(
        "artifact-web-form-text",
        web(
            "maintainer",
            lambda w: f"/models/{w['ml_model'].slug}/versions/new/",
            {"version": "9", "artifact": ContentFile(b"hello", name="m.skops")},
        ),
        200,
        "not a skops file",
    ),
    # Slices.
    Bad(
        "slice-unknown-column",
        finding_post(slice=[{"feature": "agee", "op": "<", "value": 3}]),
        400,
        "agee",
    ),
    Bad(
        "slice-op-wrong-for-type",
        finding_post(slice=[{"feature": "color", "op": ">", "value": "red"}]),
        400,
        "color",
    ),
    Bad(
        "slice-between-one-bound",
        finding_post(slice=[{"feature": "x1", "op": "between", "value": [1]}]),
        400,
        "x1",
    ),
    Bad(
        "slice-empty-in-list",
        finding_post(slice=[{"feature": "x1", "op": "in", "value": []}]),
        400,
        "x1",
    ),
    Bad(
        "slice-unknown-op", finding_post(slice=[{"feature": "x1", "op": "~", "value": 1}]), 400, "~"
    ),
    Bad(
        "slice-not-a-list",
        finding_post(slice={"feature": "x1"}),
        400,
        "A slice is a list of predicates",
    ),
    Bad(
        "slice-predicate-without-feature",
        finding_post(slice=[{"op": "<", "value": 1}]),
        400,
        "feature",
    ),
    Bad(
        "slice-number-for-numeric-column",
        finding_post(slice=[{"feature": "x1", "op": "<", "value": "abc"}]),
        400,
        "x1",
    ),
    Bad(
        "slice-without-dataset",
        api(
            "contributor",
            "POST",
            "/api/v1/findings/",
            lambda w: {
                "title": "t",
                "ml_model": w["ml_model"].pk,
                "slice": [{"feature": "x1", "op": "<", "value": 1}],
            },
        ),
        400,
        "A slice needs the dataset",
    ),
    Bad("slice-web-form-not-json", finding_form(slice="[{nope"), 200, "not valid JSON"),
    Bad(
        "slice-web-form-unknown-column",
        finding_form(slice='[{"feature": "income", "op": "<", "value": 3}]'),
        200,
        "income",
    ),
    Bad(
        "probe-slice-unknown-column",
        probe_post(slice=[{"feature": "zz", "op": "==", "value": 1}]),
        400,
        "zz",
    ),
    # Probe parameters.
    Bad("probe-unknown-kind", probe_post(kind="vibes"), 400, "vibes"),
    Bad("probe-threshold-missing", probe_post(threshold=None), 400, "threshold"),
    Bad("probe-params-not-object", probe_post(params=[1, 2]), 400, "params"),
    Bad(
        "probe-margin-out-of-range",
        probe_post(kind="margin_density", params={"margin": 2}),
        400,
        "margin must be in (0, 1]",
    ),
    Bad(
        "probe-unknown-metric",
        probe_post(kind="slice_metric", params={"metric": "vibes"}),
        400,
        "vibes",
    ),
    Bad(
        "probe-group-feature-missing",
        probe_post(kind="group_disparity", params={"group_feature": "nation"}),
        400,
        "nation",
    ),
    Bad(
        "probe-perturb-categorical",
        probe_post(kind="perturbation_flip_rate", params={"features": ["color"]}),
        400,
        "color",
    ),
    Bad(
        "probe-counterfactual-unknown-column",
        probe_post(kind="counterfactual_flip_rate", params={"changes": {"zz": {"set": 1}}}),
        400,
        "zz",
    ),
    Bad("probe-ece-zero-bins", probe_post(kind="slice_ece", params={"bins": 0}), 400, "bins"),
    Bad("probe-unknown-comparator", probe_post(comparator="~="), 400, "~="),
    Bad(
        "probe-run-other-models-version",
        api(
            "contributor",
            "POST",
            lambda w: f"/api/v1/probes/{w['probe'].pk}/run/",
            lambda w: {"model_version": w["other_version"].pk},
        ),
        400,
        "is not a version of",
    ),
    Bad(
        "probe-run-unknown-version",
        api(
            "contributor",
            "POST",
            lambda w: f"/api/v1/probes/{w['probe'].pk}/run/",
            {"model_version": 987654},
        ),
        400,
        "Invalid pk",
    ),
    # Transitions.
    Bad(
        "finding-to-unknown-status",
        finding_transition("reviewer", "fixed"),
        400,
        "'fixed' is not a finding status",
    ),
    Bad(
        "finding-open-to-resolved",
        finding_transition("reviewer", "resolved"),
        400,
        "cannot move from 'open' to 'resolved'",
    ),
    Bad(
        "finding-accept-risk-without-reason",
        finding_transition("reviewer", "accepted_risk"),
        400,
        "needs a justification",
    ),
    Bad(
        "finding-resolve-by-viewer",
        finding_transition("viewer", "remediating"),
        403,
        "You may not move this finding",
    ),
    Bad(
        "finding-regress-by-a-person",
        finding_transition("admin", "regressed"),
        400,
        "cannot move from 'open' to 'regressed'",
    ),
    Bad(
        "action-approve-by-contributor",
        action_transition("contributor", "approved"),
        403,
        "You may not move this remediation action",
    ),
    Bad(
        "action-skip-to-verified",
        action_transition("reviewer", "verified"),
        400,
        "cannot move from 'proposed' to 'verified'",
    ),
    Bad(
        "action-transition-unknown-version",
        action_transition("reviewer", "approved", fixed_in_version=987654),
        400,
        "No such model version",
    ),
    Bad(
        "action-web-illegal",
        web(
            "reviewer",
            lambda w: f"/actions/{w['action'].pk}/transition/",
            {"to": "verified"},
            follow=True,
        ),
        200,
        "cannot move from &#x27;proposed&#x27; to &#x27;verified&#x27;",
    ),
    # Imports: the catalog's CSV import saves every row or none.
    Bad(
        "import-not-utf8",
        import_csv("title,ml_model\nCaf\xe9,toy-risk\n", "latin-1"),
        200,
        "the file is not UTF-8 text",
    ),
    Bad(
        "import-unknown-column",
        import_csv("title,ml_model,colour\nt,toy-risk,red\n"),
        200,
        "unknown column",
    ),
    Bad(
        "import-required-column-missing",
        import_csv("summary\nsome text\n"),
        200,
        "required column is missing",
    ),
    Bad("import-header-only", import_csv("title,ml_model\n"), 200, "no data rows"),
    Bad(
        "import-unknown-model-on-row-3",
        import_csv("title,ml_model\nGood row,toy-risk\nBad row,no-such-model\n"),
        200,
        "no ML model named &#x27;no-such-model&#x27;",
    ),
    Bad(
        "import-bad-severity",
        import_csv("title,ml_model,severity\nt,toy-risk,apocalyptic\n"),
        200,
        "&#x27;apocalyptic&#x27; is not one of",
    ),
    Bad(
        "import-slice-unknown-column",
        import_csv(
            "title,ml_model,dataset,slice\nt,toy-risk,toy-eval,"
            '"[{""feature"": ""wage"", ""op"": ""<"", ""value"": 1}]"\n'
        ),
        200,
        "wage",
    ),
    Bad(
        "import-unknown-owner",
        import_csv("title,ml_model,owner\nt,toy-risk,ghost\n"),
        200,
        "no active user &#x27;ghost&#x27;",
    ),
    Bad(
        "import-row-longer-than-header",
        import_csv("title,ml_model\nt,toy-risk,extra\n"),
        200,
        "more cells than header columns",
    ),
    Bad(
        "import-not-a-csv",
        web(
            "contributor",
            "/catalog/import/",
            {
                "commit": "1",
                "file": ContentFile(b"\x89PNG\r\n\x1a\n" + bytes(64), name="findings.csv"),
            },
        ),
        200,
        "not UTF-8",
    ),
    # API bodies.
    Bad("body-nul-byte", finding_post(title="a\x00b"), 400, "NUL character"),
    Bad(
        "body-huge-integer",
        api("contributor", "POST", "/api/v1/findings/", {"title": "t", "ml_model": 10**30}),
        400,
        "ml_model",
    ),
    Bad(
        "body-wrong-type",
        api("contributor", "POST", "/api/v1/findings/", {"title": "t", "ml_model": "x"}),
        400,
        "Incorrect type",
    ),
    Bad("body-evidence-list", finding_post(evidence=[1, 2]), 400, "Evidence must be a JSON"),
    Bad("body-title-too-long", finding_post(title="t" * 201), 400, "no more than 200 characters"),
    Bad(
        "body-bad-choice",
        finding_post(severity="apocalyptic"),
        400,
        '\\"apocalyptic\\" is not a valid choice',
    ),
    Bad(
        "body-malformed-json",
        api("contributor", "POST", "/api/v1/findings/", '{"title": ', fmt="raw"),
        400,
        "JSON parse error",
    ),
    Bad(
        "body-top-level-array",
        api("contributor", "POST", "/api/v1/findings/", "[1, 2]", fmt="raw"),
        400,
        "Invalid data",
    ),
    Bad("body-tags-not-list", finding_post(tags="a,b"), 400, "tags"),
    Bad("body-unknown-owner", finding_post(owner=987654), 400, "Invalid pk"),
    Bad(
        "body-version-of-other-model",
        finding_post(model_version=lambda w: w["other_version"].pk),
        400,
        "is not a version of",
    ),
    Bad(
        "body-oversized",
        api(
            "contributor",
            "POST",
            "/api/v1/findings/",
            json.dumps({"title": "t", "description": "d" * 20_000}),
            fmt="raw",
        ),
        413,
        "the limit is 10000 bytes",
        {"DATA_UPLOAD_MAX_MEMORY_SIZE": 10_000},
    ),
    Bad(
        "body-evaluation-other-models-version",
        api(
            "reviewer",
            "POST",
            "/api/v1/evaluations/",
            lambda w: {
                "action": w["action"].pk,
                "model_version": w["other_version"].pk,
                "outcome": "held",
            },
        ),
        400,
        "is not a version of",
    ),
    Bad(
        "body-action-unknown-finding",
        api(
            "contributor",
            "POST",
            "/api/v1/actions/",
            {"finding": 987654, "kind": "retrain", "title": "r"},
        ),
        400,
        "Invalid pk",
    ),
    Bad(
        "body-action-unknown-kind",
        api(
            "contributor",
            "POST",
            "/api/v1/actions/",
            lambda w: {"finding": w["finding"].pk, "kind": "prayer", "title": "r"},
        ),
        400,
        "not a valid choice",
    ),
    Bad(
        "body-ml-model-slug-taken",
        api(
            "maintainer",
            "POST",
            "/api/v1/ml-models/",
            lambda w: {"name": w["ml_model"].name.upper().replace("-", " ")},
        ),
        400,
        "already has the address 'toy-risk'",
    ),
    Bad(
        "body-ml-model-name-without-letters",
        api("maintainer", "POST", "/api/v1/ml-models/", {"name": "!!!"}),
        400,
        "needs a letter or a digit",
    ),
    Bad(
        "ml-model-web-form-slug-taken",
        web("maintainer", "/models/new/", {"name": "TOY risk", "task": "binary"}),
        200,
        "already has the address &#x27;toy-risk&#x27;",
    ),
    Bad(
        "body-ml-model-duplicate-name",
        api(
            "maintainer",
            "POST",
            "/api/v1/ml-models/",
            lambda w: {"name": w["ml_model"].name, "task": "binary"},
        ),
        400,
        "already exists",
    ),
]


def _zip(files):
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# --- the world and what "nothing saved" means --------------------------------------------


@pytest.fixture
def world(people, ml_model, version, dataset, finding, probe):
    from registry.models import MLModel, ModelVersion
    from remediation.models import RemediationAction

    other = MLModel.objects.create(name="other-model")
    other_version = ModelVersion.register(
        ml_model=other,
        version="1",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )
    action = RemediationAction.objects.create(
        finding=finding, kind="retrain", title="Retrain", owner=people["contributor"]
    )
    return {
        "people": people,
        "ml_model": ml_model,
        "version": version,
        "dataset": dataset,
        "finding": finding,
        "probe": probe,
        "action": action,
        "other": other,
        "other_version": other_version,
    }


# Kept counts that a page computes when it is shown (a finding page's slice share per
# dataset): a redirect to that page after a refusal may add one; no input is saved in it.
DERIVED = {"registry.SliceShare"}


def snapshot(settings):
    """Row counts of every table of the project's apps, the statuses, and stored files."""
    from django.apps import apps

    counts = {
        m._meta.label: m.objects.count()
        for app in ("core", "registry", "catalog", "probes", "remediation", "introspection")
        for m in apps.get_app_config(app).get_models()
        if m._meta.label not in DERIVED
    }
    from catalog.models import Finding
    from remediation.models import RemediationAction

    statuses = (
        sorted(Finding.objects.values_list("pk", "status")),
        sorted(RemediationAction.objects.values_list("pk", "status")),
    )
    media = Path(settings.MEDIA_ROOT)
    files = sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())
    return counts, statuses, files


def test_the_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_clearly_and_saves_nothing(case, world, settings):
    for name, value in case.settings.items():
        setattr(settings, name, value)
    before = snapshot(settings)
    response = case.send(world)
    body = response.content.decode(errors="replace")
    assert response.status_code == case.status, (response.status_code, body[:500])
    assert case.message in body, body[:1000]
    assert snapshot(settings) == before
