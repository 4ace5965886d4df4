"""Nothing with history is deleted, whatever path asks (DESIGN.md): a record's own delete(),
a queryset's, and a cascade from a row above it are all refused and remove nothing."""

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError

from catalog.models import Finding
from core.models import AuditChain, AuditEvent
from probes.models import Probe, ProbeRun, Rerun
from registry.models import Dataset, Deployment, MLModel, ModelVersion
from remediation.models import Evaluation, RemediationAction


@pytest.fixture
def records(people, ml_model, dataset, version, finding, probe):
    rerun = Rerun.queue(version, trigger="manual", probes=[probe], dispatch=False)
    action = RemediationAction.objects.create(
        finding=finding, kind="retrain", title="Retrain", created_by=people["contributor"]
    )
    evaluation = Evaluation.objects.create(
        action=action, model_version=version, outcome="held", is_manual=True, notes="checked"
    )
    deployment = Deployment.record(model_version=version, environment="production")
    return [
        ml_model,
        dataset,
        version,
        deployment,
        finding,
        probe,
        rerun,
        ProbeRun.objects.get(rerun=rerun),
        action,
        evaluation,
        AuditEvent.objects.first(),
        AuditChain.objects.get(pk=1),
    ]


def _counts():
    return [
        m.objects.count()
        for m in (
            MLModel,
            Dataset,
            ModelVersion,
            Deployment,
            Finding,
            Probe,
            Rerun,
            ProbeRun,
            RemediationAction,
            Evaluation,
            AuditEvent,
            AuditChain,
        )
    ]


@pytest.mark.parametrize(
    "index",
    range(12),
    ids=[
        "ml-model",
        "dataset",
        "version",
        "deployment",
        "finding",
        "probe",
        "rerun",
        "run",
        "action",
        "evaluation",
        "audit-event",
        "audit-chain",
    ],
)
def test_a_record_with_history_is_never_deleted(records, index):
    record = records[index]
    before = _counts()
    # Refused as history, or earlier because rows with history point at it (PROTECT);
    # audit events refuse in their own words ("immutable").
    # The refusal aborts the delete's transaction, like any database error: a savepoint
    # here lets the test go on.
    with pytest.raises((ProtectedError, ValidationError)), transaction.atomic():
        record.delete()
    with pytest.raises((ProtectedError, ValidationError)), transaction.atomic():
        type(record).objects.filter(pk=record.pk).delete()
    assert _counts() == before


def test_a_record_nothing_points_at_is_refused_as_history(people):
    lone = MLModel.objects.create(name="lone")
    with (
        pytest.raises(ProtectedError, match="has history and is never deleted"),
        transaction.atomic(),
    ):
        lone.delete()
    assert MLModel.objects.filter(pk=lone.pk).exists()


def test_a_cascade_from_above_is_refused_too(records, people):
    """The finding's probes and runs would go with it in a cascade: the delete is refused
    at the first record with history, in one transaction."""
    finding = records[4]
    before = _counts()
    with pytest.raises(ProtectedError), transaction.atomic():
        Finding.objects.filter(pk=finding.pk).delete()
    assert _counts() == before
