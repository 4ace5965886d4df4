"""What a fix's evaluation says (DESIGN.md, Workflows): recorded on the fix version and
later ones, never earlier; regressed when a probe fails; held only when every probe passes
and the moved-problem check does not say moved or spread (nor that the slice still errs);
otherwise inconclusive with the reason; implemented -> verified only on held on the fix
version, -> ineffective on regressed there."""

import datetime

import pytest
from django.utils import timezone

from probes.models import ProbeRun, Rerun
from remediation.followup import after_rerun, verdict
from remediation.models import Evaluation, RemediationAction

from .factories import fitted_model, skops_upload


def run_on(probe, version, status, minutes=0):
    rerun = Rerun.queue(version, trigger="manual", probes=[probe], dispatch=False)
    run = ProbeRun.objects.get(rerun=rerun, probe=probe)
    ProbeRun.objects.filter(pk=run.pk).update(
        status=status,
        value=0.1 if status != "error" else None,
        finished_at=timezone.now() + datetime.timedelta(minutes=minutes),
    )
    return ProbeRun.objects.get(pk=run.pk)


@pytest.mark.parametrize(
    ("status", "check", "outcome", "reason"),
    [
        ("failed", None, "regressed", "failed on"),
        ("failed", {"verdict": "clear"}, "regressed", "failed on"),
        ("passed", None, "held", "every probe passes"),
        ("passed", {"verdict": "clear", "text": "-"}, "held", "did not move"),
        ("passed", {"verdict": "nearby", "text": "-"}, "held", "did not move"),
        ("passed", {"verdict": "moved", "text": "x"}, "inconclusive", "moved next to"),
        ("passed", {"verdict": "spread", "text": "x"}, "inconclusive", "spreading"),
        ("passed", {"verdict": "persists", "text": "x"}, "inconclusive", "still errs"),
        ("passed", {"verdict": "error", "text": "x"}, "inconclusive", "could not run"),
        ("passed", "pending", "inconclusive", "check is running"),
        ("inconclusive", None, "inconclusive", "did not pass"),
        ("error", None, "inconclusive", "did not pass"),
        (None, None, "inconclusive", "no run"),
    ],
    ids=[
        "failed",
        "failed-clear",
        "passed",
        "passed-clear",
        "passed-nearby",
        "passed-moved",
        "passed-spread",
        "passed-persists",
        "passed-check-error",
        "passed-check-pending",
        "inconclusive-run",
        "error-run",
        "no-run",
    ],
)
def test_the_verdict_of_a_fix(finding, probe, version, status, check, outcome, reason):
    runs = {probe.pk: run_on(probe, version, status)} if status else {}
    pending = check == "pending"
    got, why = verdict(finding, runs, None if pending else check, check_pending=pending)
    assert got == outcome and reason in why


def test_no_active_probe_no_verdict(finding):
    assert verdict(finding, {}) == (None, "")


@pytest.fixture
def versions(people, ml_model, version):
    from registry.models import ModelVersion

    v2 = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )
    return version, v2


def test_a_fix_is_never_evaluated_on_a_version_before_it(people, finding, probe, versions):
    """The demo's defect: a fix shipped in v2 got a "regressed" evaluation on v1."""
    v1, v2 = versions
    action = RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain",
        owner=people["contributor"],
        fixed_in_version=v2,
    )
    RemediationAction.objects.filter(pk=action.pk).update(status="implemented")
    failing = run_on(probe, v1, "failed")
    after_rerun(failing.rerun_id)
    assert not Evaluation.objects.filter(action=action, model_version=v1).exists()
    passing = run_on(probe, v2, "failed", minutes=1)
    after_rerun(passing.rerun_id)
    assert Evaluation.objects.get(action=action, model_version=v2).outcome == "regressed"
    action.refresh_from_db()
    assert action.status == "ineffective"


def test_a_pass_on_the_fix_version_alone_does_not_verify_when_the_slice_still_errs(
    people, finding, probe, versions
):
    """The demo's contradiction: "Verified" beside "Problem persists"."""
    _v1, v2 = versions
    action = RemediationAction.objects.create(
        finding=finding,
        kind="recalibration",
        title="Recalibrate",
        owner=people["contributor"],
        fixed_in_version=v2,
    )
    RemediationAction.objects.filter(pk=action.pk).update(status="implemented")
    run = run_on(probe, v2, "passed")
    evaluation = Evaluation.objects.create(
        action=action,
        model_version=v2,
        outcome="inconclusive",
        details={"moved_problem": {"verdict": "persists", "text": "7% vs 4%"}},
    )
    evaluation.probe_runs.add(run)
    from remediation.followup import after_moved_problem_check

    after_moved_problem_check(evaluation.pk)
    evaluation.refresh_from_db()
    action.refresh_from_db()
    assert evaluation.outcome == "inconclusive" and "still errs" in evaluation.details["reason"]
    assert action.status == "implemented"  # a reviewer decides: "needs review"
    Evaluation.objects.filter(pk=evaluation.pk).update(
        details={"moved_problem": {"verdict": "clear", "text": "-"}}
    )
    after_moved_problem_check(evaluation.pk)
    action.refresh_from_db()
    assert action.status == "verified"


def test_every_regression_is_told_once_whatever_the_findings_status(
    people, finding, probe, versions, django_capture_on_commit_callbacks
):
    """A verified fix on a finding that is still remediating breaks on a later version:
    the finding keeps its status, and the action's owner and reviewer, the reviewer group
    and the maintainer who registered the breaking version hear of it, once."""
    from django.core import mail

    from remediation.models import Notification

    v1, v2 = versions
    type(finding).objects.filter(pk=finding.pk).update(status="remediating")
    action = RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain",
        owner=people["contributor"],
        reviewer=people["reviewer"],
        fixed_in_version=v1,
    )
    RemediationAction.objects.filter(pk=action.pk).update(status="verified")
    broken = run_on(probe, v2, "failed")
    with django_capture_on_commit_callbacks(execute=True):
        after_rerun(broken.rerun_id)
    finding.refresh_from_db()
    assert finding.status == "remediating"
    told = set(Notification.objects.values_list("recipient__username", flat=True))
    assert {"bob", "rita", "mona"} <= told  # owner, reviewer, who registered v2
    sent = len(mail.outbox)
    assert sent >= 3
    again = run_on(probe, v2, "failed", minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        after_rerun(again.rerun_id)
    assert len(mail.outbox) == sent  # the same regression is not told twice
    assert Notification.objects.count() == len(told)
