"""A database from before the apps were layered migrates forward in place: every row, its
id, its file, its permissions and its audit history survive the move of ML models,
datasets and versions to registry/, scans, maps and sweeps to introspection/ and the
audit trail to core/.

The test migrates the test database back to the last migrations before the move, writes a
small catalog there through the historical models (as the old code laid it out: tables
probes_*, remediation_auditevent, content types labelled probes/remediation), then
migrates forward and reads everything back through today's models.
"""

import hashlib

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE_THE_MOVE = [
    ("probes", "0005_nightly_at_night"),
    ("catalog", "0005_overview_indexes"),
    ("remediation", "0002_roles"),
    ("core", None),
    ("registry", None),
    ("introspection", None),
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([t for t in targets if t[1]]).apps


def _latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def _tables():
    return set(connection.introspection.table_names())


@pytest.fixture
def old_catalog(transactional_db):
    """A catalog written by the code from before the move, on its own tables."""
    from core.roles import sync_role_groups

    sync_role_groups()  # the groups the migrations made, flushed by an earlier test
    old = _migrate(BEFORE_THE_MOVE)
    assert "probes_mlmodel" in _tables() and "registry_mlmodel" not in _tables()
    assert "remediation_auditevent" in _tables()
    User = old.get_model("auth", "User")
    OldContentType = old.get_model("contenttypes", "ContentType")
    mona = User.objects.create(username="mona")
    MLModel = old.get_model("probes", "MLModel")
    Dataset = old.get_model("probes", "Dataset")
    ModelVersion = old.get_model("probes", "ModelVersion")
    data = b"x1,y\n0.5,1\n-0.5,0\n"
    data_name = default_storage.save("datasets/old.csv", ContentFile(data))
    artifact = b"not really a model: files are kept, not loaded, by a migration"
    artifact_name = default_storage.save("artifacts/old.skops", ContentFile(artifact))
    ml_model = MLModel.objects.create(name="credit-risk", slug="credit-risk", task="binary")
    dataset = Dataset.objects.create(
        name="credit-eval",
        version="1",
        file=data_name,
        file_format="csv",
        target_column="y",
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        row_count=2,
        columns=[{"name": "x1", "kind": "numeric"}, {"name": "y", "kind": "numeric"}],
        uploaded_by=mona,
    )
    version = ModelVersion.objects.create(
        ml_model=ml_model,
        version="1",
        artifact=artifact_name,
        artifact_format="skops",
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        training_dataset=dataset,
        registered_by=mona,
    )
    finding = old.get_model("catalog", "Finding").objects.create(
        title="Young applicants",
        ml_model=ml_model,
        model_version=version,
        dataset=dataset,
        slice=[{"feature": "x1", "op": "<", "value": 0}],
        reporter=mona,
    )
    probe = old.get_model("probes", "Probe").objects.create(
        finding=finding,
        dataset=dataset,
        kind="slice_error_rate",
        threshold=0.2,
        slice=finding.slice,
    )
    rerun = old.get_model("probes", "Rerun").objects.create(
        model_version=version, trigger="registration"
    )
    run = old.get_model("probes", "ProbeRun").objects.create(
        probe=probe,
        model_version=version,
        rerun=rerun,
        trigger="registration",
        status="failed",
        value=0.5,
        support=1,
        passed=False,
    )
    action = old.get_model("remediation", "RemediationAction").objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain",
        fixed_in_version=version,
        owner=mona,
        created_by=mona,
        status="implemented",
    )
    evaluation = old.get_model("remediation", "Evaluation").objects.create(
        action=action, model_version=version, outcome="regressed"
    )
    evaluation.probe_runs.add(run)
    scan = old.get_model("probes", "SliceScan").objects.create(
        model_version=version, dataset=dataset, status="done"
    )
    version_type = OldContentType.objects.get_or_create(app_label="probes", model="modelversion")[0]
    event = old.get_model("remediation", "AuditEvent").objects.create(
        content_type=version_type,
        object_id=str(version.pk),
        object_repr="credit-risk v1",
        verb="create",
        actor=mona,
        actor_label="mona",
        after={"version": "1"},
    )
    return {
        "ml_model": ml_model.pk,
        "dataset": dataset.pk,
        "version": version.pk,
        "finding": finding.pk,
        "probe": probe.pk,
        "run": run.pk,
        "action": action.pk,
        "evaluation": evaluation.pk,
        "scan": scan.pk,
        "event": event.pk,
        "data": data,
        "data_name": data_name,
        "version_type": version_type.pk,
    }


def test_an_old_database_migrates_forward_with_all_its_rows_and_files(old_catalog):
    _migrate(_latest())
    from catalog.models import Finding
    from core.models import AuditEvent
    from introspection.models import SliceScan
    from probes.models import Probe, ProbeRun
    from registry.models import Dataset, MLModel, ModelVersion
    from remediation.models import Evaluation, RemediationAction

    tables = _tables()
    assert {
        "registry_mlmodel",
        "registry_dataset",
        "registry_modelversion",
        "introspection_slicescan",
        "core_auditevent",
    } <= tables
    assert not {"probes_mlmodel", "probes_modelversion", "remediation_auditevent"} & tables

    version = ModelVersion.objects.get(pk=old_catalog["version"])
    assert version.ml_model == MLModel.objects.get(pk=old_catalog["ml_model"])
    assert version.training_dataset_id == old_catalog["dataset"]
    dataset = Dataset.objects.get(pk=old_catalog["dataset"])
    assert dataset.file.name == old_catalog["data_name"]
    assert dataset.read().shape == (2, 2)  # the file is found and its sha256 still matches
    finding = Finding.objects.get(pk=old_catalog["finding"])
    assert (finding.ml_model_id, finding.model_version_id, finding.dataset_id) == (
        old_catalog["ml_model"],
        old_catalog["version"],
        old_catalog["dataset"],
    )
    probe = Probe.objects.get(pk=old_catalog["probe"])
    assert probe.dataset == dataset and probe.finding == finding
    run = ProbeRun.objects.get(pk=old_catalog["run"])
    assert (run.model_version, run.value, run.status) == (version, 0.5, "failed")
    action = RemediationAction.objects.get(pk=old_catalog["action"])
    assert action.fixed_in_version == version
    evaluation = Evaluation.objects.get(pk=old_catalog["evaluation"])
    assert list(evaluation.probe_runs.all()) == [run]
    assert SliceScan.objects.get(pk=old_catalog["scan"]).model_version == version

    # The audit trail still points at the version, now under its new app label.
    event = AuditEvent.objects.get(pk=old_catalog["event"])
    assert event.content_type_id == old_catalog["version_type"]
    assert event.content_type.app_label == "registry"
    assert list(AuditEvent.objects.for_object(version)) == [event]
    assert not ContentType.objects.filter(app_label="probes", model="modelversion").exists()

    # The events written before the chain existed were chained by the migration.
    from core.models import verify_chain

    assert verify_chain() is None
    assert len(event.hash) == 64

    # Roles keep their permissions under the new labels.
    maintainers = Group.objects.get(name="maintainer")
    assert maintainers.permissions.filter(
        content_type__app_label="registry", codename="add_modelversion"
    ).exists()
    assert (
        Permission.objects.filter(
            content_type__app_label="core", codename="view_auditevent"
        ).count()
        == 1
    )

    # New rows get fresh ids after the old ones (sequences moved with their tables).
    newer = MLModel.objects.create(name="wine-cultivar")
    assert newer.pk > old_catalog["ml_model"]


def test_the_move_can_be_migrated_back(old_catalog):
    _migrate(_latest())
    _migrate(BEFORE_THE_MOVE)
    assert "probes_mlmodel" in _tables() and "registry_mlmodel" not in _tables()
    assert ContentType.objects.filter(app_label="probes", model="modelversion").exists()
    _migrate(_latest())
    assert "registry_mlmodel" in _tables()
