"""Nothing with history is deleted in the admin (DESIGN.md, Workflows): a superuser gets
no delete page and no bulk delete for versions, datasets, ML models, findings, probes,
reruns, runs, actions, evaluations, audit events and the audit chain; the rows stay."""

import pytest
from django.urls import reverse

from core.models import AuditChain, AuditEvent
from probes.models import ProbeRun, Rerun
from remediation.models import Evaluation, RemediationAction

from .factories import client_for

HISTORY = [
    "registry.mlmodel",
    "registry.dataset",
    "registry.modelversion",
    "catalog.finding",
    "probes.probe",
    "probes.rerun",
    "probes.proberun",
    "remediation.remediationaction",
    "remediation.evaluation",
    "core.auditevent",
    "core.auditchain",
]


@pytest.fixture
def records(people, ml_model, dataset, version, finding, probe):
    rerun = Rerun.queue(version, trigger="manual", probes=[probe], dispatch=False)
    action = RemediationAction.objects.create(
        finding=finding, kind="retrain", title="Retrain", created_by=people["contributor"]
    )
    evaluation = Evaluation.objects.create(
        action=action, model_version=version, outcome="held", is_manual=True, notes="checked"
    )
    return {
        "registry.mlmodel": ml_model,
        "registry.dataset": dataset,
        "registry.modelversion": version,
        "catalog.finding": finding,
        "probes.probe": probe,
        "probes.rerun": rerun,
        "probes.proberun": ProbeRun.objects.filter(rerun=rerun).first(),
        "remediation.remediationaction": action,
        "remediation.evaluation": evaluation,
        "core.auditevent": AuditEvent.objects.first(),
        "core.auditchain": AuditChain.objects.get(pk=1),
    }


@pytest.mark.parametrize("label", HISTORY)
def test_the_admin_refuses_to_delete_a_record_with_history(people, records, label):
    obj = records[label]
    app, model = label.split(".")
    admin = client_for(people["admin"])
    page = reverse(f"admin:{app}_{model}_delete", args=[obj.pk])
    assert admin.get(page).status_code == 403
    assert admin.post(page, {"post": "yes"}).status_code == 403
    changelist = reverse(f"admin:{app}_{model}_changelist")
    listing = admin.get(changelist)
    assert listing.status_code == 200
    assert b"delete_selected" not in listing.content
    admin.post(
        changelist, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
    )
    assert type(obj).objects.filter(pk=obj.pk).exists()
