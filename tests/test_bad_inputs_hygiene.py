"""Input hygiene, one row each: JSON that Python would parse but the database cannot store
or the parser cannot survive (NaN, Infinity, deep nesting, NUL, 30-digit integers), in API
bodies, query parameters, form fields and paths. Each gets a 4xx that names the problem
and saves nothing (the world and "nothing saved" are those of test_bad_inputs_table)."""

import json

import pytest
from django.core.files.base import ContentFile

from .test_bad_inputs_table import Bad, api, finding_form, snapshot, web, world  # noqa: F401

pytestmark = pytest.mark.django_db

HUGE = "9" * 30
GIANT = "9" * 5000  # past the digits Python's int() converts: must not reach it
DEEP = "[" * 5000 + "]" * 5000


def raw(who, method, url, text):
    """An API request with a body written by hand (json.dumps would refuse some of these)."""
    return api(who, method, url, text, fmt="raw")


def finding_body(extra):
    return lambda w: (
        '{"title": "t", "ml_model": %d, "dataset": %d, %s}'
        % (w["ml_model"].pk, w["dataset"].pk, extra)
    )


def probe_body(extra):
    return lambda w: (
        '{"finding": %d, "dataset": %d, "kind": "slice_error_rate", '
        '"comparator": "<=", %s}' % (w["finding"].pk, w["dataset"].pk, extra)
    )


def nested(depth):
    return "[" * depth + "]" * depth


def get(who, url):
    def send(w):
        from .factories import api_for, client_for

        target = url(w) if callable(url) else url
        client = (
            api_for(w["people"][who])
            if target.startswith("/api/")
            else client_for(w["people"][who])
        )
        return client.get(target)

    return send


def finding_edit(**fields):
    """The finding's edit page, its required fields filled in and `fields` over them."""
    required = {"title": "t", "severity": "low", "risk_category": "other"}
    return web(
        "contributor",
        lambda w: f"/catalog/findings/{w['finding'].pk}/edit/",
        lambda w: {**required, "ml_model": w["ml_model"].pk, **fields},
    )


def probe_form(path="new", **fields):
    def url(w):
        if path == "revise":
            return f"/probes/{w['probe'].pk}/revise/"
        return f"/findings/{w['finding'].pk}/probes/new/"

    return web(
        "contributor",
        url,
        lambda w: {
            "kind": "slice_error_rate",
            "dataset": w["dataset"].pk,
            "slice": "[]",
            "params": "{}",
            "comparator": "<=",
            "threshold": "0.2",
            "decide": "point",
            "tolerance": "0",
            "min_support": "1",
            "note": "revised",
            **fields,
        },
    )


def action_move(**fields):
    return web(
        "reviewer",
        lambda w: f"/actions/{w['action'].pk}/transition/",
        {"to": "approved", **fields},
        follow=True,
    )


def on_finding(who, tail, body, follow=True):
    return web(who, lambda w: f"/findings/{w['finding'].pk}/{tail}", body, follow=follow)


def import_file(data, action="commit"):
    """The catalog's CSV import, Import (`commit`) or Check, with the file's bytes."""
    return web(
        "contributor",
        "/catalog/import/",
        lambda w: {action: "1", "file": ContentFile(data, name="findings.csv")},
    )


def typed(who, url, body, content_type):
    """A POST whose body is sent as is under `content_type`."""

    def send(w):
        from .factories import api_for, client_for

        target = url(w) if callable(url) else url
        user = w["people"][who]
        client = api_for(user) if target.startswith("/api/") else client_for(user)
        return client.generic("POST", target, body, content_type=content_type)

    return send


CASES = [
    # JSON bodies of the API.
    Bad(
        "json-nan-threshold",
        raw("contributor", "POST", "/api/v1/probes/", probe_body('"threshold": NaN')),
        400,
        "NaN",
    ),
    Bad(
        "json-infinity-threshold",
        raw("contributor", "POST", "/api/v1/probes/", probe_body('"threshold": Infinity')),
        400,
        "Infinity",
    ),
    Bad(
        "json-minus-infinity-in-params",
        raw(
            "contributor",
            "POST",
            "/api/v1/probes/",
            probe_body('"threshold": 0.2, "params": {"margin": -Infinity}'),
        ),
        400,
        "-Infinity",
    ),
    Bad(
        "json-nan-in-evidence",
        raw("contributor", "POST", "/api/v1/findings/", finding_body('"evidence": {"rate": NaN}')),
        400,
        "NaN",
    ),
    Bad(
        "json-nested-10000",
        raw(
            "contributor",
            "POST",
            "/api/v1/findings/",
            finding_body('"evidence": {"x": %s}' % nested(10000)),
        ),
        400,
        "nested deeper than",
    ),
    Bad(
        "json-nested-200-in-slice",
        raw("contributor", "POST", "/api/v1/findings/", finding_body('"slice": %s' % nested(200))),
        400,
        "nested deeper than",
    ),
    Bad(
        "json-nested-whole-body",
        raw("contributor", "POST", "/api/v1/findings/", nested(100000)),
        400,
        "nested deeper than",
    ),
    Bad(
        "json-nul-in-title",
        raw(
            "contributor",
            "POST",
            "/api/v1/findings/",
            lambda w: json.dumps({"title": "a\u0000b", "ml_model": w["ml_model"].pk}),
        ),
        400,
        "NUL",
    ),
    Bad(
        "json-nul-in-evidence-key",
        raw(
            "contributor", "POST", "/api/v1/findings/", finding_body('"evidence": {"a\\u0000": 1}')
        ),
        400,
        "NUL",
    ),
    Bad(
        "json-nul-in-transition-note",
        raw(
            "reviewer",
            "POST",
            lambda w: f"/api/v1/findings/{w['finding'].pk}/transition/",
            '{"to": "remediating", "note": "x\\u0000y"}',
        ),
        400,
        "NUL",
    ),
    Bad(
        "json-huge-integer-id",
        raw("contributor", "POST", "/api/v1/findings/", '{"title": "t", "ml_model": %s}' % HUGE),
        400,
        "too large",
    ),
    Bad(
        "json-huge-integer-in-params",
        raw(
            "contributor",
            "POST",
            "/api/v1/probes/",
            probe_body('"threshold": 0.2, "params": {"seed": %s}' % HUGE),
        ),
        400,
        "too large",
    ),
    Bad(
        "json-not-utf8",
        api("contributor", "POST", "/api/v1/findings/", b'{"title": "caf\xe9"}', fmt="raw"),
        400,
        "not UTF-8",
    ),
    Bad(
        "json-truncated",
        raw("contributor", "POST", "/api/v1/findings/", '{"title": "t"'),
        400,
        "not valid JSON",
    ),
    # Query parameters.
    Bad("query-nul-tag-api", get("viewer", "/api/v1/findings/?tag=%00"), 400, "NUL"),
    Bad("query-nul-tag-page", get("viewer", "/catalog/?tag=a%00b"), 400, "NUL"),
    Bad("query-nul-search", get("viewer", "/catalog/?q=%00"), 400, "NUL"),
    Bad(
        "query-huge-ml-model-api",
        get("viewer", f"/api/v1/findings/?ml_model={HUGE}"),
        400,
        "too large",
    ),
    Bad("query-huge-ml-model-page", get("viewer", f"/catalog/?ml_model={HUGE}"), 400, "too large"),
    Bad(
        "query-huge-probe-runs",
        get("viewer", f"/api/v1/probe-runs/?probe={HUGE}"),
        400,
        "too large",
    ),
    Bad("query-huge-page", get("viewer", f"/api/v1/findings/?page={HUGE}"), 400, "too large"),
    Bad("query-huge-audit-object", get("viewer", f"/audit/?object_id={HUGE}"), 400, "too large"),
    Bad("query-nul-parameter-name", get("viewer", "/catalog/?a%00=1"), 400, "NUL"),
    # Paths.
    Bad("path-huge-finding-page", get("viewer", f"/catalog/findings/{HUGE}/"), 404, ""),
    Bad("path-huge-finding-api", get("viewer", f"/api/v1/findings/{HUGE}/"), 404, ""),
    Bad("path-huge-version-page", get("viewer", f"/versions/{HUGE}/"), 404, ""),
    # Web forms.
    Bad(
        "form-nul-finding-title",
        web(
            "contributor",
            "/catalog/findings/new/",
            lambda w: {
                "title": "a\x00b",
                "ml_model": w["ml_model"].pk,
                "severity": "low",
                "risk_category": "other",
            },
        ),
        400,
        "NUL",
    ),
    Bad(
        "form-nul-transition-note",
        web(
            "reviewer",
            lambda w: f"/catalog/findings/{w['finding'].pk}/transition/",
            {"to": "remediating", "note": "x\x00"},
        ),
        400,
        "NUL",
    ),
    Bad(
        "form-huge-ml-model",
        web(
            "contributor",
            "/catalog/findings/new/",
            {"title": "t", "ml_model": HUGE, "severity": "low", "risk_category": "other"},
        ),
        400,
        "too large",
    ),
    # Ids read from web forms: a view reads them through hygiene.parse_id, a form through
    # its choice field; either way a 4xx or the form's error, never a server error.
    Bad("form-id-letters-fixed-in-version", action_move(fixed_in_version="abc"), 400, "not an id"),
    Bad("form-id-decimal-fixed-in-version", action_move(fixed_in_version="1.5"), 400, "not an id"),
    Bad("form-id-exponent-fixed-in-version", action_move(fixed_in_version="1e3"), 400, "not an id"),
    Bad("form-id-negative-fixed-in-version", action_move(fixed_in_version="-1"), 400, "not an id"),
    Bad("form-id-huge-fixed-in-version", action_move(fixed_in_version=HUGE), 400, "too large"),
    Bad(
        "form-id-5000-digits-fixed-in-version",
        action_move(fixed_in_version=GIANT),
        400,
        "too large",
    ),
    Bad("form-id-nul-fixed-in-version", action_move(fixed_in_version="1\x00"), 400, "NUL"),
    Bad(
        "form-unknown-from-status-of-action",
        action_move(**{"from": "abc"}),
        200,
        "cannot move from &#x27;abc&#x27;",
    ),
    Bad(
        "form-unknown-from-status-of-finding",
        web(
            "reviewer",
            lambda w: f"/catalog/findings/{w['finding'].pk}/transition/",
            {"to": "remediating", "from": "abc"},
            follow=True,
        ),
        200,
        "cannot move from &#x27;abc&#x27;",
    ),
    Bad("form-id-letters-model-version", finding_form(model_version="abc"), 200, "valid choice"),
    Bad("form-id-negative-model-version", finding_form(model_version="-1"), 200, "valid choice"),
    Bad("form-id-letters-owner", finding_form(owner="abc"), 200, "valid choice"),
    Bad("form-id-negative-dataset", finding_form(dataset="-1"), 200, "valid choice"),
    Bad("form-id-5000-digits-ml-model", finding_form(ml_model=GIANT), 400, "too large"),
    Bad("form-id-huge-owner-on-edit", finding_edit(owner=HUGE), 400, "too large"),
    Bad(
        "form-id-letters-run-version",
        on_finding("contributor", "probes/run/", {"model_version": "abc"}),
        200,
        "Nothing queued",
    ),
    Bad(
        "form-id-huge-run-probe",
        on_finding("contributor", "probes/run/", {"model_version": "1", "probe": HUGE}),
        400,
        "too large",
    ),
    Bad("form-id-letters-probe-dataset", probe_form(dataset="abc"), 200, "valid choice"),
    Bad("form-id-huge-probe-also-on", probe_form(also_on=HUGE), 400, "too large"),
    Bad(
        "form-id-negative-action-owner",
        on_finding("contributor", "actions/new/", {"kind": "retrain", "title": "t", "owner": "-1"}),
        200,
        "The action was not saved",
    ),
    Bad(
        "form-id-decimal-evaluation-version",
        web(
            "reviewer",
            lambda w: f"/actions/{w['action'].pk}/evaluations/new/",
            {"model_version": "1.5", "outcome": "held"},
            follow=True,
        ),
        200,
        "The evaluation was not saved",
    ),
    Bad(
        "form-id-letters-deployment-version",
        web(
            "maintainer",
            lambda w: f"/models/{w['ml_model'].slug}/deployments/new/",
            {"model_version": "abc", "environment": "prod"},
            follow=True,
        ),
        200,
        "Nothing recorded",
    ),
    Bad(
        "form-id-letters-training-dataset",
        web(
            "maintainer",
            lambda w: f"/models/{w['ml_model'].slug}/versions/new/",
            {"version": "9", "training_dataset": "abc", "artifact": ContentFile(b"x", name="m")},
        ),
        200,
        "valid choice",
    ),
    Bad(
        "form-id-letters-scan-dataset",
        web(
            "contributor",
            lambda w: f"/versions/{w['version'].pk}/scan/",
            {"dataset": "abc", "top_k": "5", "max_predicates": "2", "min_support": "20"},
        ),
        200,
        "valid choice",
    ),
    Bad(
        "form-huge-scan-top-k",
        web(
            "contributor",
            lambda w: f"/versions/{w['version'].pk}/scan/",
            lambda w: {
                "dataset": w["dataset"].pk,
                "top_k": HUGE,
                "max_predicates": "2",
                "min_support": "20",
            },
        ),
        400,
        "too large",
    ),
    Bad(
        "form-id-letters-sweep-version",
        on_finding("contributor", "sweeps/", {"kind": "noise", "model_version": "abc"}),
        200,
        "Nothing queued",
    ),
    Bad(
        "form-unknown-map-feature",
        on_finding("contributor", "maps/", {"feature_x": "abc", "feature_y": "x2"}),
        200,
        "Choose two numeric features",
    ),
    Bad(
        "form-unknown-sensitive-column",
        web(
            "contributor",
            lambda w: f"/datasets/{w['dataset'].pk}/sensitive/",
            {"sensitive_columns": "abc"},
            follow=True,
        ),
        200,
        "Nothing changed",
    ),
    Bad(
        "path-5000-digit-finding-transition",
        web("reviewer", f"/catalog/findings/{GIANT}/transition/", {"to": "remediating"}),
        404,
        "",
    ),
    # JSON carried in web form fields: the rules of the API's JSON bodies.
    Bad("form-json-nan-evidence", finding_form(evidence='{"rate": NaN}'), 400, "NaN"),
    Bad(
        "form-json-infinity-evidence", finding_form(evidence='{"rate": Infinity}'), 400, "Infinity"
    ),
    Bad(
        "form-json-minus-infinity-in-slice",
        finding_form(slice='[{"feature": "x1", "op": "<", "value": -Infinity}]'),
        400,
        "-Infinity",
    ),
    Bad("form-json-deep-evidence", finding_form(evidence='{"x": %s}' % DEEP), 400, "nested deeper"),
    Bad("form-json-deep-slice", finding_form(slice=DEEP), 400, "nested deeper"),
    Bad(
        "form-json-5000-digits-on-edit",
        finding_edit(evidence='{"n": %s}' % GIANT),
        400,
        "too large",
    ),
    Bad("form-json-nul-escape-evidence", finding_form(evidence='{"a": "\\u0000"}'), 400, "NUL"),
    Bad(
        "form-json-nan-probe-params",
        probe_form(kind="margin_density", params='{"margin": NaN}'),
        400,
        "NaN",
    ),
    Bad("form-json-infinity-probe-params", probe_form(params='{"x": Infinity}'), 400, "Infinity"),
    Bad("form-json-deep-probe-slice", probe_form(slice=DEEP), 400, "nested deeper"),
    Bad("form-json-huge-probe-params", probe_form(params='{"seed": %s}' % HUGE), 400, "too large"),
    Bad(
        "form-json-nan-probe-revision",
        probe_form("revise", kind="margin_density", params='{"margin": NaN}'),
        400,
        "NaN",
    ),
    Bad("form-infinity-probe-threshold", probe_form(threshold="Infinity"), 200, "Enter a number"),
    # NUL in free-text fields of web forms.
    Bad("form-nul-finding-lesson", finding_form(lesson="x\x00"), 400, "NUL"),
    Bad("form-nul-finding-tags", finding_form(tag_names="a\x00b"), 400, "NUL"),
    Bad("form-nul-action-note", action_move(note="n\x00"), 400, "NUL"),
    Bad(
        "form-nul-action-title",
        on_finding("contributor", "actions/new/", {"kind": "retrain", "title": "\x00"}),
        400,
        "NUL",
    ),
    Bad(
        "form-nul-retire-note",
        web("contributor", lambda w: f"/probes/{w['probe'].pk}/retire/", {"note": "\x00"}),
        400,
        "NUL",
    ),
    Bad(
        "form-nul-ml-model-name",
        web("maintainer", "/models/new/", {"name": "a\x00", "task": "binary"}),
        400,
        "NUL",
    ),
    Bad(
        "form-nul-dataset-description",
        web(
            "contributor",
            "/datasets/new/",
            {
                "name": "n",
                "version": "1",
                "target_column": "y",
                "description": "\x00",
                "file": ContentFile(b"x,y\n1,0\n", name="t.csv"),
            },
        ),
        400,
        "NUL",
    ),
    # Over-long strings: the field's limit, said on the form.
    Bad("form-title-100k", finding_form(title="t" * 100_000), 200, "at most 200 characters"),
    Bad(
        "form-ml-model-name-100k",
        web("maintainer", "/models/new/", {"name": "m" * 100_000, "task": "binary"}),
        200,
        "at most 120 characters",
    ),
    # The catalog's CSV import: the file is read as CSV under the rules before any row.
    Bad("import-nul-in-cell", import_file(b"title,ml_model\na\x00b,toy-risk\n"), 400, "NUL"),
    Bad("import-nul-in-header", import_file(b"title\x00,ml_model\nt,toy-risk\n"), 400, "NUL"),
    Bad(
        "import-nul-in-owner-on-check",
        import_file(b"title,ml_model,owner\nt,toy-risk,bo\x00b\n", "check"),
        400,
        "NUL",
    ),
    Bad(
        "import-nan-in-evidence",
        import_file(b'title,ml_model,evidence\nt,toy-risk,"{""a"": NaN}"\n'),
        400,
        "NaN",
    ),
    Bad(
        "import-infinity-in-slice",
        import_file(
            b"title,ml_model,dataset,slice\nt,toy-risk,toy-eval,"
            b'"[{""feature"": ""x1"", ""op"": ""<"", ""value"": Infinity}]"\n'
        ),
        400,
        "Infinity",
    ),
    Bad(
        "import-deep-slice",
        import_file(("title,ml_model,slice\nt,toy-risk,%s\n" % DEEP).encode()),
        400,
        "nested deeper",
    ),
    Bad(
        "import-5000-digits-in-evidence",
        import_file(('title,ml_model,evidence\nt,toy-risk,"{""a"": %s}"\n' % GIANT).encode()),
        400,
        "too large",
    ),
    Bad(
        "import-duplicate-header",
        import_file(b"title,title,ml_model\nt,u,toy-risk\n"),
        400,
        "names the column 'title' twice",
    ),
    Bad(
        "import-bare-carriage-returns",
        import_file(b"title,ml_model\rt,toy-risk\r"),
        400,
        "not a CSV file",
    ),
    Bad(
        "import-cell-over-the-field-limit",
        import_file(b"title,ml_model\n" + b"a" * 200_000 + b",toy-risk\n"),
        400,
        "field larger than field limit",
    ),
    Bad(
        "import-bom-then-a-bad-row",
        import_file(b"\xef\xbb\xbftitle,ml_model,severity\nt,toy-risk,dire\n"),
        200,
        "&#x27;dire&#x27; is not one of",
    ),
    Bad(
        "import-formula-as-ml-model",
        import_file(b'title,ml_model\nt,"=HYPERLINK(""http://x"")"\n'),
        200,
        "no ML model named",
    ),
    Bad("import-empty-file", import_file(b""), 200, "The submitted file is empty"),
    Bad("import-binary-file", import_file(bytes(range(256)) * 4), 200, "not UTF-8"),
    Bad(
        "import-utf16-file",
        import_file("title,ml_model\nt,toy-risk\n".encode("utf-16")),
        200,
        "not UTF-8",
    ),
    Bad("import-no-file", web("contributor", "/catalog/import/", {"commit": "1"}), 200, "required"),
    # 30-digit (and longer) integers in query filters of pages and the API.
    Bad("query-huge-severity-page", get("viewer", f"/catalog/?severity={HUGE}"), 400, "too large"),
    Bad("query-huge-page-number", get("viewer", f"/catalog/?page={HUGE}"), 400, "too large"),
    Bad("query-huge-owner-page", get("viewer", f"/catalog/?owner={HUGE}"), 400, "too large"),
    Bad(
        "query-5000-digits-model-version",
        get("viewer", f"/catalog/?model_version={GIANT}"),
        400,
        "too large",
    ),
    Bad(
        "query-5000-digits-heatmap",
        get("viewer", f"/catalog/heatmap/?ml_model={GIANT}"),
        400,
        "too large",
    ),
    Bad("query-huge-board-owner", get("viewer", f"/review/?owner={HUGE}"), 400, "too large"),
    Bad("query-5000-digits-audit-page", get("viewer", f"/audit/?page={GIANT}"), 400, "too large"),
    Bad("query-huge-compare", get("viewer", f"/versions/compare/?a={HUGE}"), 400, "too large"),
    Bad(
        "query-huge-export-owner",
        get("viewer", f"/catalog/export.csv?owner={HUGE}"),
        400,
        "too large",
    ),
    Bad(
        "query-5000-digits-api-page-size",
        get("viewer", f"/api/v1/findings/?page_size={GIANT}"),
        400,
        "too large",
    ),
    Bad("query-nul-board-severity", get("viewer", "/review/?severity=%00"), 400, "NUL"),
    Bad("query-nul-audit-actor", get("viewer", "/audit/?actor=a%00"), 400, "NUL"),
    # JSON bodies: numbers Python's own limits would turn into server errors.
    Bad(
        "json-5000-digit-integer",
        raw("contributor", "POST", "/api/v1/probes/", probe_body('"threshold": %s' % GIANT)),
        400,
        "too large",
    ),
    Bad(
        "json-exponent-past-float",
        raw("contributor", "POST", "/api/v1/probes/", probe_body('"threshold": 1e999')),
        400,
        "not a finite number",
    ),
    Bad(
        "json-5000-digit-negative-in-evidence",
        raw(
            "contributor",
            "POST",
            "/api/v1/findings/",
            finding_body('"evidence": {"n": -%s}' % GIANT),
        ),
        400,
        "too large",
    ),
    # Wrong content types.
    Bad(
        "body-xml-to-the-api",
        typed("contributor", "/api/v1/findings/", "<finding/>", "application/xml"),
        415,
        "Unsupported media type",
    ),
    Bad(
        "body-form-encoded-nul-to-the-api",
        typed(
            "contributor",
            "/api/v1/findings/",
            "title=a%00b&ml_model=1",
            "application/x-www-form-urlencoded",
        ),
        400,
        "NUL",
    ),
    Bad(
        "body-form-encoded-5000-digits-to-the-api",
        typed(
            "contributor",
            "/api/v1/findings/",
            "title=a&ml_model=" + GIANT,
            "application/x-www-form-urlencoded",
        ),
        400,
        "too large",
    ),
]


def test_the_hygiene_table_has_its_rows():
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_unstorable_input_is_refused_clearly_and_saves_nothing(case, world, settings):  # noqa: F811
    before = snapshot(settings)
    response = case.send(world)
    body = response.content.decode(errors="replace")
    assert response.status_code == case.status, (response.status_code, body[:500])
    assert case.message in body, body[:1000]
    assert snapshot(settings) == before
