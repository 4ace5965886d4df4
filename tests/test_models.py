"""Constraints of the domain model, on the real database."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from catalog.models import Finding, Tag
from core.models import AuditEvent
from probes.models import Probe, ProbeRun, Rerun
from registry.models import Dataset, ModelVersion

from .factories import csv_upload, fitted_model, skops_upload, toy_frame

pytestmark = pytest.mark.django_db


def test_dataset_records_hash_rows_and_schema(dataset):
    assert len(dataset.sha256) == 64
    assert dataset.row_count == 400
    assert dataset.schema == {
        "x1": "numeric",
        "x2": "numeric",
        "color": "categorical",
        "y": "numeric",
    }
    assert dataset.feature_columns == ["x1", "x2", "color"]
    assert dataset.file.name.startswith("datasets/") and "toy" not in dataset.file.name
    assert dataset.read().shape == (400, 4)


def test_parquet_is_accepted_by_content(people, tmp_path):
    import io

    buffer = io.BytesIO()
    toy_frame().to_parquet(buffer)
    from django.core.files.base import ContentFile

    ds = Dataset.create_from_upload(
        ContentFile(buffer.getvalue(), name="t.csv"),
        name="pq",
        target_column="y",
        by=people["contributor"],
    )
    assert ds.file_format == "parquet" and ds.row_count == 400


def test_dataset_version_is_unique(dataset, people):
    with pytest.raises(ValidationError, match="already has a version"):
        Dataset.create_from_upload(
            csv_upload(toy_frame()), name="toy-eval", target_column="y", by=people["contributor"]
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Dataset.objects.create(
            name="toy-eval",
            version="1",
            file="x",
            file_format="csv",
            target_column="y",
            sha256="0" * 64,
            row_count=1,
        )


def test_dataset_file_is_immutable(dataset):
    dataset.sha256 = "f" * 64
    with pytest.raises(ValidationError, match="cannot change"):
        dataset.save()
    dataset.refresh_from_db()
    dataset.description = "descriptions may change"
    dataset.save()


def test_model_version_records_hash_and_environment(version):
    import hashlib
    from pathlib import Path

    data = Path(version.artifact.path).read_bytes()
    assert version.artifact_sha256 == hashlib.sha256(data).hexdigest()
    assert set(version.environment) == {"python", "scikit-learn", "numpy", "pandas"}
    assert version.artifact_format == "skops"


def test_model_version_is_unique_per_ml_model(version, ml_model, people):
    with pytest.raises(ValidationError, match="already has a version '1'"):
        ModelVersion.register(
            ml_model=ml_model,
            version="1",
            artifact=skops_upload(fitted_model()),
            by=people["maintainer"],
        )
    assert ModelVersion.objects.count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(
            ml_model=ml_model,
            version="1",
            artifact="a",
            artifact_format="skops",
            artifact_sha256="0" * 64,
        )


def test_artifact_is_immutable(version):
    version.artifact_sha256 = "0" * 64
    with pytest.raises(ValidationError):
        version.save()


def test_finding_slice_is_checked_against_the_dataset(finding):
    finding.slice = [{"feature": "agee", "op": "<", "value": 3}]
    with pytest.raises(ValidationError) as exc:
        finding.full_clean()
    assert "agee" in str(exc.value)
    finding.slice = [{"feature": "color", "op": "<", "value": "red"}]
    with pytest.raises(ValidationError) as exc:
        finding.full_clean()
    assert "color" in str(exc.value)


def test_finding_version_must_belong_to_its_model(finding, people):
    from registry.models import MLModel

    other = MLModel.objects.create(name="other")
    v = ModelVersion.register(
        ml_model=other, version="9", artifact=skops_upload(fitted_model()), by=people["maintainer"]
    )
    finding.model_version = v
    with pytest.raises(ValidationError, match="not a version of"):
        finding.full_clean()


def test_probe_definition_is_validated(finding, dataset):
    bad = Probe(
        finding=finding,
        dataset=dataset,
        kind="slice_metric",
        params={"metric": "wobble"},
        threshold=0.5,
        comparator=">=",
    )
    with pytest.raises(ValidationError, match="wobble"):
        bad.full_clean()
    missing = Probe(
        finding=finding,
        dataset=dataset,
        kind="group_disparity",
        params={"group_feature": "nope", "metric": "tpr"},
        threshold=0.1,
    )
    with pytest.raises(ValidationError, match="nope"):
        missing.full_clean()


def test_probe_run_is_unique_per_probe_version_and_rerun(probe, version):
    rerun = Rerun.objects.create(model_version=version, trigger="manual")
    ProbeRun.objects.create(probe=probe, model_version=version, rerun=rerun, trigger="manual")
    with pytest.raises(IntegrityError), transaction.atomic():
        ProbeRun.objects.create(probe=probe, model_version=version, rerun=rerun, trigger="manual")


def test_audit_events_are_immutable(finding):
    event = AuditEvent.objects.for_object(finding).first()
    assert event is not None and event.verb == "create"
    event.note = "rewritten"
    with pytest.raises(ValidationError):
        event.save()
    with pytest.raises(ValidationError):
        event.delete()
    with pytest.raises(ValidationError):
        AuditEvent.objects.filter(pk=event.pk).update(note="x")


def test_updates_write_before_and_after(finding, people):
    from core.audit import acting_as

    with acting_as(people["contributor"]):
        finding.severity = "critical"
        finding.save()
    event = AuditEvent.objects.for_object(finding).filter(verb="update").get()
    assert event.before["severity"] == "high" and event.after["severity"] == "critical"
    assert event.actor == people["contributor"]


def test_tags_are_normalised():
    tags = Tag.from_names([" Calibration ", "calibration", ""])
    assert [t.name for t in tags] == ["calibration", "calibration"]
    assert Tag.objects.count() == 1


def test_slice_text():
    assert Finding(slice=[]).slice_text == "whole dataset"
    assert (
        Finding(
            slice=[
                {"feature": "age", "op": "<", "value": 22},
                {"feature": "c", "op": "in", "value": ["a", "b"]},
                {"feature": "z", "op": "is_null"},
            ]
        ).slice_text
        == 'age < 22 AND c in ("a", "b") AND z is null'
    )


def test_finding_defaults(finding):
    assert finding.status == "open"
    assert Finding.objects.search("misjudged").get() == finding
    assert not Finding.objects.search("nonexistentword").exists()
