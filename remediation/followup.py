"""What happens after probes rerun on a model version: evaluations and regressions.

Called by the rerun task when it finishes, and when an action is marked implemented
(its fix version may have been evaluated already: the stored runs are used, and only the
missing probes are rerun).
"""

import logging

from django.db import IntegrityError, transaction

from catalog.choices import FindingStatus
from catalog.models import Finding
from core.workflow import SYSTEM, TransitionError
from probes.choices import RunStatus, Trigger
from probes.models import ProbeRun, Rerun
from registry.models import ModelVersion

from .choices import ActionStatus, Outcome
from .models import Evaluation, RemediationAction
from .notify import notify_regression
from .signals import evaluation_recorded

log = logging.getLogger(__name__)


def standing_on(finding, version):
    """{probe_id: latest run} of the finding's active probes on `version`
    (ProbeRun.objects.latest_runs: the one definition of a probe's latest run)."""

    runs = ProbeRun.objects.filter(probe__finding=finding, probe__active=True).latest_runs(
        versions=[version]
    )
    return {run.probe_id: run for run in runs.select_related("probe")}


def outcome_of(finding, runs):
    """held: every active probe passed; regressed: one failed; else inconclusive."""
    active = set(finding.probes.filter(active=True).values_list("pk", flat=True))
    if not active:
        return None
    statuses = [runs[p].status if p in runs else None for p in active]
    if any(s == RunStatus.FAILED for s in statuses):
        return Outcome.REGRESSED
    if all(s == RunStatus.PASSED for s in statuses):
        return Outcome.HELD
    return Outcome.INCONCLUSIVE


def record_evaluation(action, version, runs, outcome):
    """Store (or refresh) the automatic evaluation of `action` on `version`."""

    counts = {}
    for run in runs.values():
        counts[run.status] = counts.get(run.status, 0) + 1
    try:
        with transaction.atomic():
            evaluation, _ = Evaluation.objects.update_or_create(
                action=action,
                model_version=version,
                is_manual=False,
                defaults={"outcome": outcome, "details": {"run_counts": counts}},
            )
    except IntegrityError:  # a concurrent worker stored it first: refresh that one
        evaluation = Evaluation.objects.get(action=action, model_version=version, is_manual=False)
        evaluation.outcome = outcome
        evaluation.save(update_fields=["outcome"])
    evaluation.probe_runs.set(list(runs.values()))
    return evaluation


def evaluate_action(action, version):
    """Evaluate one implemented/verified action on one version from the stored runs; move
    an implemented action on its fix version to verified or ineffective."""
    runs = standing_on(action.finding, version)
    outcome = outcome_of(action.finding, runs)
    if outcome is None:
        return None
    evaluation = record_evaluation(action, version, runs, outcome)
    # Did the errors go away or move next door? Introspection checks it in a worker.
    evaluation_recorded.send(sender=type(evaluation), evaluation=evaluation)
    if action.status == ActionStatus.IMPLEMENTED and action.fixed_in_version_id == version.pk:
        target = {Outcome.HELD: ActionStatus.VERIFIED,
                  Outcome.REGRESSED: ActionStatus.INEFFECTIVE}.get(outcome)
        if target:
            try:
                action.transition_to(
                    target, by=SYSTEM,
                    note=f"Evaluation on {version}: {evaluation.get_outcome_display().lower()}.",
                )
            except TransitionError as exc:  # someone moved it meanwhile; theirs stands
                log.info("evaluation did not move action %s: %s", action.pk, exc)
    return evaluation


def on_implemented(action_id):
    """An action was marked implemented: evaluate it on its fix version from the runs
    stored there; queue a rerun of only the probes that have no run on that version yet
    (the rerun's completion evaluates it then)."""


    action = RemediationAction.objects.select_related("finding", "fixed_in_version").get(
        pk=action_id
    )
    version = action.fixed_in_version
    if version is None or action.status != ActionStatus.IMPLEMENTED:
        return None
    active = list(action.finding.probes.filter(active=True))
    have = set(
        ProbeRun.objects.filter(model_version=version, probe__in=active)
        .values_list("probe_id", flat=True)
    )
    missing = [p for p in active if p.pk not in have]
    if missing:
        with transaction.atomic():
            Rerun.queue(version, trigger=Trigger.MANUAL, probes=missing,
                        label=f"follow-up of action {action.pk}")
        return None
    return evaluate_action(action, version)


def on_rerun_finished(sender, rerun_id, **kwargs):
    """Receiver of probes.signals.rerun_finished."""
    after_rerun(rerun_id)


def after_rerun(rerun_id):
    """1. Evaluate every implemented/verified action of the version's ML model.
    2. Reopen each resolved finding whose probe failed on this (newer) version."""


    rerun = Rerun.objects.select_related("model_version").get(pk=rerun_id)
    version = rerun.model_version
    actions = RemediationAction.objects.filter(
        finding__ml_model_id=version.ml_model_id,
        status__in=[ActionStatus.IMPLEMENTED, ActionStatus.VERIFIED],
        finding__probes__isnull=False,
    ).distinct().select_related("finding")
    for action in actions:
        evaluate_action(action, version)
    resolved = Finding.objects.filter(
        ml_model_id=version.ml_model_id, status=FindingStatus.RESOLVED
    )
    for finding in resolved:
        check_regression(finding, version)


def check_regression(finding, version):
    """A resolved finding whose probe fails on a version newer than its fix regresses.

    The note names the failing run, the last version where every probe held and the
    version where it broke; the owner and reviewers are notified.
    """

    fix_versions = [
        a.fixed_in_version for a in finding.actions.filter(fixed_in_version__isnull=False)
        .select_related("fixed_in_version")
    ]
    reference = max(
        [v for v in fix_versions if v] + ([finding.model_version] if finding.model_version else []),
        key=lambda v: (v.registered_at, v.pk),
        default=None,
    )
    if reference is not None and (version.registered_at, version.pk) <= (
        reference.registered_at, reference.pk
    ):
        return None
    runs = standing_on(finding, version)
    failing = [r for r in runs.values() if r.status == RunStatus.FAILED]
    if not failing:
        return None
    last_held = last_held_version(finding, before=version)
    run = failing[0]
    note = (
        f"Probe #{run.probe_id} ({run.probe.get_kind_display()}) failed on {version}: "
        f"value {run.value:.4g} against threshold {run.probe.comparator} "
        f"{run.probe.threshold}. Last held on "
        f"{last_held if last_held else 'no earlier version'}; broke on {version}."
    )
    try:
        finding.transition_to(FindingStatus.REGRESSED, by=SYSTEM, note=note)
    except TransitionError:
        return None
    finding.evidence = dict(
        finding.evidence or {},
        regression={
            "failing_run": run.pk,
            "broke_on_version": version.pk,
            "last_held_version": last_held.pk if last_held else None,
        },
    )
    type(finding).objects.filter(pk=finding.pk).update(evidence=finding.evidence)
    transaction.on_commit(lambda: notify_regression(finding.pk, run.pk))
    return run


def last_held_version(finding, *, before):
    """The newest version before `before` on which every active probe passed."""

    versions = ModelVersion.objects.filter(
        ml_model_id=finding.ml_model_id, registered_at__lte=before.registered_at
    ).exclude(pk=before.pk).order_by("-registered_at", "-pk")
    for version in versions:
        if outcome_of(finding, standing_on(finding, version)) == Outcome.HELD:
            return version
    return None
