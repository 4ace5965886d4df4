"""One story per fix, the same on the board, the finding page and the API (DESIGN.md,
Workflows): an implemented fix whose evaluation on its version neither held nor regressed
"needs review"; a verified fix that regresses later keeps its status and records
`broke_on_version`, and the board lists it under "regressed" with the failing run; a
finding whose every live action is verified shows as "ready to resolve".

The cast: bob reports and owns, rita reviews. Versions v1 (discovery), v2 (the fix), v3, v4.
"""

import datetime

import pytest
from django.utils import timezone

from catalog.models import Finding
from core.models import AuditEvent
from probes.models import ProbeRun, Rerun
from registry.models import ModelVersion
from remediation.followup import after_rerun
from remediation.models import Evaluation, RemediationAction, is_ready_to_resolve, ready_to_resolve
from remediation.reports import board

from .factories import api_for, client_for, fitted_model, skops_upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(people, ml_model, version):
    later = [
        ModelVersion.register(
            ml_model=ml_model,
            version=str(n),
            artifact=skops_upload(fitted_model()),
            by=people["maintainer"],
            enqueue=False,
        )
        for n in (2, 3, 4)
    ]
    return [version, *later]


def run_on(probe, version, status, minutes=0):
    """A finished run of `probe` on `version` with this status (the newest of its runs there
    when `minutes` is larger than before's)."""
    rerun = Rerun.queue(version, trigger="manual", probes=[probe], dispatch=False)
    ProbeRun.objects.filter(rerun=rerun).update(
        status=status,
        value=0.4 if status == "failed" else 0.1,
        finished_at=timezone.now() + datetime.timedelta(minutes=minutes),
    )
    return ProbeRun.objects.get(rerun=rerun)


def action_of(finding, people, status, fix=None, title="Retrain"):
    action = RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title=title,
        owner=people["contributor"],
        reviewer=people["reviewer"],
        created_by=people["contributor"],
    )
    RemediationAction.objects.filter(pk=action.pk).update(status=status, fixed_in_version=fix)
    action.refresh_from_db()
    return action


def lanes(user):
    actions = list(
        RemediationAction.objects.select_related(
            "finding", "fixed_in_version", "broke_on_version", "owner", "reviewer"
        )
    )
    return {col["status"]: [a.pk for a in col["actions"]] for col in board(actions, user)}


def lane_of(action, user):
    return next(lane for lane, ids in lanes(user).items() if action.pk in ids)


# --- broke_on_version --------------------------------------------------------------------


def test_a_verified_fix_that_breaks_keeps_its_status_and_records_where(
    people, finding, probe, versions
):
    v1, v2, v3, _v4 = versions
    action = action_of(finding, people, "verified", fix=v2)
    after_rerun(run_on(probe, v1, "failed").rerun_id)  # before the fix: not a break
    action.refresh_from_db()
    assert action.broke_on_version is None
    assert lane_of(action, people["reviewer"]) == "ready_to_resolve"  # its only action

    failing = run_on(probe, v3, "failed", minutes=1)
    after_rerun(failing.rerun_id)
    action.refresh_from_db()
    assert action.status == "verified"
    assert action.broke_on_version == v3
    event = AuditEvent.objects.for_object(action).latest("pk")
    assert event.actor is None and "broke on toy-risk v3" in event.note

    cols = {c["status"]: c["actions"] for c in board([action], people["reviewer"])}
    (ticket,) = cols["regressed"]
    assert ticket.failing_run.pk == failing.pk
    page = client_for(people["reviewer"]).get("/review/").content.decode()
    assert f"#run-{failing.pk}" in page and "Broke on" in page
    api = api_for(people["viewer"]).get(f"/api/v1/actions/{action.pk}/").json()
    assert api["broke_on_version"] == v3.pk and api["status"] == "verified"


def test_the_first_break_is_kept_and_follows_the_evaluations(people, finding, probe, versions):
    _v1, v2, v3, v4 = versions
    action = action_of(finding, people, "verified", fix=v2)
    after_rerun(run_on(probe, v3, "failed", minutes=1).rerun_id)
    after_rerun(run_on(probe, v4, "failed", minutes=2).rerun_id)
    action.refresh_from_db()
    assert action.broke_on_version == v3  # the first version it broke on
    # v3 is rerun and now passes (the moved-problem check aside, not regressed any more):
    # the break is on v4.
    after_rerun(run_on(probe, v3, "passed", minutes=3).rerun_id)
    assert Evaluation.objects.get(action=action, model_version=v3).outcome != "regressed"
    action.refresh_from_db()
    assert action.broke_on_version == v4


def test_an_action_not_verified_records_no_break(people, finding, probe, versions):
    _v1, v2, v3, _v4 = versions
    implemented = action_of(finding, people, "implemented", fix=v2, title="Still implemented")
    after_rerun(run_on(probe, v3, "failed", minutes=1).rerun_id)
    implemented.refresh_from_db()
    assert implemented.broke_on_version is None
    assert Evaluation.objects.get(action=implemented, model_version=v3).outcome == "regressed"


# --- needs review -----------------------------------------------------------------------------


def test_an_implemented_fix_waits_then_needs_review_on_an_inconclusive_evaluation(
    people, finding, probe, versions
):
    _v1, v2, _v3, _v4 = versions
    action = action_of(finding, people, "implemented", fix=v2)
    assert lane_of(action, people["reviewer"]) == "implemented"  # nothing evaluated yet
    after_rerun(run_on(probe, v2, "inconclusive").rerun_id)
    action.refresh_from_db()
    assert action.status == "implemented"
    assert lane_of(action, people["reviewer"]) == "needs_review"
    page = client_for(people["reviewer"]).get("/review/").content.decode()
    assert "Needs review" in page and "did not pass here" in page


def test_an_inconclusive_evaluation_on_a_later_version_is_not_a_review(
    people, finding, probe, versions
):
    _v1, v2, v3, _v4 = versions
    action = action_of(finding, people, "implemented", fix=v2)
    after_rerun(run_on(probe, v3, "inconclusive").rerun_id)
    assert lane_of(action, people["reviewer"]) == "implemented"


# --- ready to resolve ----------------------------------------------------------------------


def test_a_finding_is_ready_when_every_live_action_is_verified(people, finding, versions):
    _v1, v2, _v3, v4 = versions
    verified = action_of(finding, people, "verified", fix=v2)
    action_of(finding, people, "cancelled", title="Dropped")
    action_of(finding, people, "rejected", title="Refused")
    assert is_ready_to_resolve(finding)
    assert lane_of(verified, people["reviewer"]) == "ready_to_resolve"
    page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert "Ready to resolve" in page

    pending = action_of(finding, people, "proposed", title="Also relabel")
    assert not is_ready_to_resolve(finding)
    assert lane_of(verified, people["reviewer"]) == "verified"
    page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert "Ready to resolve" not in page

    RemediationAction.objects.filter(pk=pending.pk).update(status="verified", fixed_in_version=v2)
    assert is_ready_to_resolve(finding)
    # A fix that broke later is history: it keeps nothing ready.
    RemediationAction.objects.filter(pk=pending.pk).update(broke_on_version=v4)
    RemediationAction.objects.filter(pk=verified.pk).update(broke_on_version=v4)
    assert not is_ready_to_resolve(finding)


@pytest.mark.parametrize("status", ["resolved", "accepted_risk"])
def test_a_settled_finding_is_not_ready_again(people, finding, versions, status):
    action_of(finding, people, "verified", fix=versions[1])
    Finding.objects.filter(pk=finding.pk).update(status=status)
    assert not is_ready_to_resolve(finding)


def test_a_finding_without_actions_is_not_ready(finding):
    assert not ready_to_resolve(Finding.objects.all()).exists()


def test_readiness_is_counted_per_finding(people, finding, versions):
    """Two findings, one query: each judged on its own actions."""
    other = Finding.objects.create(
        title="Another", ml_model=finding.ml_model, severity="low", risk_category="reliability"
    )
    action_of(finding, people, "verified", fix=versions[1])
    action_of(other, people, "verified", fix=versions[1])
    action_of(other, people, "in_progress", title="Also")
    assert list(ready_to_resolve(Finding.objects.all()).values_list("pk", flat=True)) == [
        finding.pk
    ]


# --- accepted risks that get worse -----------------------------------------------------------


def test_an_accepted_risk_that_gets_worse_is_told_once_and_keeps_its_status(
    people, finding, probe, versions, django_capture_on_commit_callbacks
):
    from remediation.models import Notification

    v1, v2, v3, _v4 = versions
    Finding.objects.filter(pk=finding.pk).update(
        status="accepted_risk", accepted_until=timezone.localdate() + datetime.timedelta(days=60)
    )
    run_on(probe, v1, "passed")
    with django_capture_on_commit_callbacks(execute=True):
        after_rerun(run_on(probe, v2, "passed", minutes=1).rerun_id)
    assert not Notification.objects.exists()
    failing = run_on(probe, v3, "failed", minutes=2)
    with django_capture_on_commit_callbacks(execute=True):
        after_rerun(failing.rerun_id)
        after_rerun(failing.rerun_id)  # a second delivery tells nobody again
    finding.refresh_from_db()
    assert finding.status == "accepted_risk"
    assert finding.evidence["risk_worse"]["failing_run"] == failing.pk
    told = set(Notification.objects.values_list("recipient__username", flat=True))
    assert {"bob", "rita", "mona"} <= told  # owner, reviewers, who registered v3
    assert Notification.objects.filter(recipient=people["contributor"]).count() == 1
    page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert "This accepted risk got worse" in page and f"#run-{failing.pk}" in page


def test_an_accepted_risk_that_already_failed_is_not_news(
    people, finding, probe, versions, django_capture_on_commit_callbacks
):
    from remediation.models import Notification

    v1, v2, _v3, _v4 = versions
    Finding.objects.filter(pk=finding.pk).update(status="accepted_risk")
    run_on(probe, v1, "failed")
    with django_capture_on_commit_callbacks(execute=True):
        after_rerun(run_on(probe, v2, "failed", minutes=1).rerun_id)
    assert not Notification.objects.exists()
