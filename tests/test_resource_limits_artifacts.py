"""Model artifacts checked at registration (DESIGN.md, "Model artifacts are code"): an
archive that would unpack to more than ARTIFACT_MAX_UNPACKED_BYTES, or with an absurdly
compressed member, is refused before anything unpacks it; a type outside the allow-list is
refused then, by name, not at run time; scikit-learn's own containers are trusted, so that
Voting and Stacking ensembles register and run."""

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile

from probes.models import Probe, ProbeRun, Rerun
from registry.models import Dataset, ModelVersion

from .factories import api_for, fitted_model, skops_upload

pytestmark = pytest.mark.django_db


def with_member(model, name, size, *, level=9):
    """A real skops file of `model` with one more member of `size` zero bytes, deflated."""
    buffer = io.BytesIO(sio.dumps(model))
    zero = bytes(1 << 20)
    with (
        zipfile.ZipFile(
            buffer, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=level
        ) as archive,
        archive.open(name, "w", force_zip64=True) as member,
    ):
        for _ in range(size >> 20):
            member.write(zero)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def one_gigabyte_inside():
    return with_member(fitted_model(), "bomb.npy", 1 << 30)


@pytest.fixture
def nothing_unpacked(monkeypatch):
    """Fails the test if a member of a zip archive is read (it may still be written)."""
    real_open = zipfile.ZipFile.open

    def guarded(self, name, mode="r", *args, **kwargs):
        if mode == "r":
            raise AssertionError(f"the member {name} of the archive was unpacked")
        return real_open(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", guarded)


def register(people, ml_model, data, *, version="2"):
    return ModelVersion.register(
        ml_model=ml_model,
        version=version,
        by=people["maintainer"],
        artifact=ContentFile(data, name="model.skops"),
    )


def refusal(people, ml_model, data):
    versions, reruns = ModelVersion.objects.count(), Rerun.objects.count()
    with pytest.raises(ValidationError) as caught:
        register(people, ml_model, data)
    assert (ModelVersion.objects.count(), Rerun.objects.count()) == (versions, reruns)
    return " ".join(caught.value.message_dict["artifact"])


def stored_artifacts(settings):
    folder = Path(settings.MEDIA_ROOT) / "artifacts"
    return sorted(folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------- unpacked size


def test_it_refuses_a_small_skops_that_unpacks_to_a_gigabyte_before_unpacking_it(
    people, ml_model, settings, one_gigabyte_inside, nothing_unpacked
):
    assert len(one_gigabyte_inside) < 2 * 1024 * 1024
    message = refusal(people, ml_model, one_gigabyte_inside)
    assert message.startswith("Artifact unpacks to 1,073,"), message
    assert message.endswith("bytes; the limit is 838,860,800 bytes (ARTIFACT_MAX_UNPACKED_BYTES).")
    assert stored_artifacts(settings) == []


def test_it_refuses_a_member_compressed_a_thousand_to_one(people, ml_model, nothing_unpacked):
    message = refusal(people, ml_model, with_member(fitted_model(), "zeros.npy", 20 << 20))
    assert message.startswith("Artifact member zeros.npy unpacks to 20,971,520 bytes from ")
    assert message.endswith("to 1); more than 200 to 1 is refused.")


def test_it_checks_the_unpacked_size_against_the_setting(people, ml_model, settings):
    data = sio.dumps(fitted_model())
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(member.file_size for member in archive.infolist())
    settings.ARTIFACT_MAX_UNPACKED_BYTES = unpacked - 1
    assert refusal(people, ml_model, data) == (
        f"Artifact unpacks to {unpacked:,} bytes; the limit is {unpacked - 1:,} bytes "
        "(ARTIFACT_MAX_UNPACKED_BYTES)."
    )
    settings.ARTIFACT_MAX_UNPACKED_BYTES = unpacked
    assert register(people, ml_model, data).artifact_format == "skops"


def test_the_unpacked_limit_is_four_uploads_by_default_and_read_from_the_environment():
    script = "import config.settings as s; print(s.ARTIFACT_MAX_UNPACKED_BYTES)"
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ARTIFACT_MAX_UNPACKED_BYTES", "UPLOAD_MAX_BYTES")
    }
    for env, expected in [
        ({}, 4 * 200 * 1024 * 1024),
        ({"UPLOAD_MAX_BYTES": "1000"}, 4000),
        ({"ARTIFACT_MAX_UNPACKED_BYTES": "12345"}, 12345),
    ]:
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=dict(clean, **env),
            capture_output=True,
            text=True,
            check=True,
        )
        assert int(out.stdout) == expected


# ----------------------------------------------------------------- types


def evil_pipeline():
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    return Pipeline(
        [
            ("sys", FunctionTransformer(func=os.system, kw_args={"command": "true"})),
            ("eval", FunctionTransformer(func=eval)),
            ("model", fitted_model()),
        ]
    )


def test_it_refuses_untrusted_types_at_registration_by_name(people, ml_model, probe, settings):
    message = refusal(people, ml_model, sio.dumps(evil_pipeline()))
    assert message == "Artifact contains untrusted types: builtins.eval, posix.system."
    assert stored_artifacts(settings) == [Path(probe.finding.model_version.artifact.path)]
    assert ProbeRun.objects.count() == 0  # nothing queued, nothing run


def test_the_api_answers_400_naming_the_untrusted_types(people, ml_model, probe):
    response = api_for(people["maintainer"]).post(
        "/api/v1/model-versions/",
        {
            "ml_model": ml_model.pk,
            "version": "evil",
            "artifact": ContentFile(sio.dumps(evil_pipeline()), name="m.skops"),
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["artifact"] == [
        "Artifact contains untrusted types: builtins.eval, posix.system."
    ]
    assert ModelVersion.objects.count() == 1  # the probe's own version only


def test_types_a_deployment_trusts_by_name_register(people, ml_model, settings):
    from .factories import toy_frame
    from .hanging_model import hanging_model

    data = sio.dumps(hanging_model(toy_frame()))
    assert refusal(people, ml_model, data) == (
        "Artifact contains untrusted types: tests.hanging_model.HangingPipeline."
    )
    settings.SKOPS_EXTRA_TRUSTED_TYPES = ["tests.hanging_model.HangingPipeline"]
    assert register(people, ml_model, data).artifact_format == "skops"


# ----------------------------------------------------------------- ensembles


def ensemble(kind):
    from sklearn.ensemble import StackingClassifier, VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    members = [
        ("lr", make_pipeline(StandardScaler(), LogisticRegression())),
        ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
    ]
    if kind == "voting":
        return VotingClassifier(members, voting="soft")
    return StackingClassifier(members, final_estimator=LogisticRegression())


@pytest.fixture
def cancer(people, ml_model):
    """sklearn's breast cancer table as a dataset, with a probe of the ML model on it."""
    from sklearn.datasets import load_breast_cancer

    from catalog.models import Finding

    frame = load_breast_cancer(as_frame=True).frame
    dataset = Dataset.create_from_upload(
        ContentFile(frame.to_csv(index=False).encode(), name="cancer.csv"),
        name="cancer",
        target_column="target",
        by=people["contributor"],
    )
    finding = Finding.objects.create(
        title="Large tumours",
        summary="Errors on large radii.",
        ml_model=ml_model,
        dataset=dataset,
        slice=[{"feature": "mean radius", "op": ">", "value": 15}],
        severity="high",
        risk_category="safety",
        owner=people["contributor"],
        reporter=people["contributor"],
    )
    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind="slice_error_rate",
        slice=finding.slice,
        threshold=0.2,
        created_by=people["contributor"],
    )
    probe.full_clean()
    probe.save()
    return frame, probe


@pytest.mark.django_db(transaction=True)  # the rerun is handed over after the commit
@pytest.mark.parametrize("kind", ["voting", "stacking"])
def test_voting_and_stacking_ensembles_register_and_run(people, ml_model, cancer, kind):
    frame, probe = cancer
    model = ensemble(kind).fit(frame.drop(columns="target"), frame["target"])
    assert "sklearn.utils._bunch.Bunch" in sio.get_untrusted_types(data=sio.dumps(model))
    version = ModelVersion.register(
        ml_model=ml_model, version=kind, by=people["maintainer"], artifact=skops_upload(model)
    )
    run = ProbeRun.objects.get(model_version=version, probe=probe)
    assert run.status in ("passed", "failed"), run.error
    rows = frame[frame["mean radius"] > 15]
    wrong = (model.predict(rows.drop(columns="target")) != rows["target"]).mean()
    assert run.value == pytest.approx(wrong)
    assert run.attempts == 1


def test_the_fitted_ensembles_hold_only_trusted_types():
    from boundary.artifacts import untrusted_types

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 5, "b": [1.0, 0.0, 1.0, 0.0] * 5})
    target = [0, 1, 0, 1] * 5
    for kind in ("voting", "stacking"):
        model = ensemble(kind).fit(frame, target)
        assert untrusted_types(sio.dumps(model)) == [], kind
