"""What happens after probes rerun on a model version: evaluations and regressions.

Called by the rerun task when it finishes, and when an action is marked implemented
(its fix version may have been evaluated already: the stored runs are used, and only the
missing probes are rerun).
"""

import logging

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from catalog.choices import FindingStatus
from catalog.models import Finding
from core.workflow import SYSTEM, TransitionError
from probes.choices import RunStatus, Trigger
from probes.models import Probe, ProbeRun, Rerun
from registry.models import ModelVersion

from .choices import ActionStatus, Outcome
from .models import Evaluation, RemediationAction
from .notify import notify_regression
from .release import category, previous_version
from .signals import evaluation_recorded

log = logging.getLogger(__name__)


def standing_on(finding, version):
    """{probe_id: latest run} of the finding's active probes on `version`, on each probe's
    own dataset (ProbeRun.objects.latest_runs: the one definition of a probe's latest run)."""

    runs = ProbeRun.objects.filter(probe__finding=finding, probe__active=True).latest_runs(
        versions=[version]
    )
    return {run.probe_id: run for run in runs.select_related("probe")}


def standing_elsewhere(finding, version):
    """The latest runs of the finding's active probes on `version` on their `also_on`
    datasets (latest_runs everywhere, minus each probe's own dataset), by probe and
    dataset id."""

    runs = (
        ProbeRun.objects.filter(probe__finding=finding, probe__active=True)
        .latest_runs(versions=[version], everywhere=True)
        .exclude(dataset=F("probe__dataset"))
        .select_related("probe", "dataset")
    )
    return sorted(runs, key=lambda r: (r.probe_id, r.dataset_id))


def split_runs(runs):
    """Runs of one version as ({probe_id: run on the probe's own dataset}, [the others])."""
    own, elsewhere = {}, []
    for run in runs:
        if run.dataset_id == run.probe.dataset_id:
            own[run.probe_id] = run
        else:
            elsewhere.append(run)
    return own, sorted(elsewhere, key=lambda r: (r.probe_id, r.dataset_id))


# Moved-problem verdicts that keep a fix from counting as held although its probes pass:
# the errors moved next to the slice, spread, or the slice still errs more than the rest.
UNSETTLED_CHECKS = {
    "moved": "the problem moved next to the slice",
    "spread": "the problem is spreading beyond the slice",
    "persists": "the slice still errs more than the rest",
}


def after_fix(version, fix):
    """Is `version` the fix version or one registered after it?"""
    return (version.registered_at, version.pk) >= (fix.registered_at, fix.pk)


def verdict(finding, runs, check=None, *, check_pending=False, elsewhere=()):
    """(outcome, reason) of a fix on one version, from the finding's active probes' latest
    runs there — `runs` ({probe_id: run}) on each probe's own dataset, `elsewhere` (a list)
    on its `also_on` datasets — and the moved-problem check (DESIGN.md):

    - regressed: a probe failed on its own dataset;
    - inconclusive: a probe has no passing run on its own dataset;
    - narrow: every probe passes on its own dataset but one fails on an `also_on` dataset
      (the fix holds only where it was designed);
    - inconclusive: a probe has no passing run on one of its `also_on` datasets, the
      moved-problem check is still to come or could not run, or it says moved, spread or
      persists — with the reason;
    - held: every probe passes everywhere and the check, if one applies, says nothing of
      the sort.
    (None, "") when the finding has no active probe.
    """
    probes = list(finding.probes.filter(active=True).order_by("pk"))
    if not probes:
        return None, ""
    active = [p.pk for p in probes]
    failed = [runs[p] for p in active if p in runs and runs[p].status == RunStatus.FAILED]
    if failed:
        run = failed[0]
        return Outcome.REGRESSED, (
            f"probe #{run.probe_id} failed on {run.model_version} "
            f"(run #{run.pk}, value {_number(run.value)})"
        )
    unsettled = [p for p in active if p not in runs or runs[p].status != RunStatus.PASSED]
    if unsettled:
        p = unsettled[0]
        status = runs[p].get_status_display().lower() if p in runs else "no run"
        return Outcome.INCONCLUSIVE, f"probe #{p} did not pass here ({status})"
    found = {(r.probe_id, r.dataset_id): r for r in elsewhere}
    wanted = [
        (probe_id, dataset_id)
        for probe_id, dataset_id in Probe.also_on.through.objects.filter(
            probe_id__in=active
        ).values_list("probe_id", "dataset_id")
    ]
    failed = [found[k] for k in sorted(wanted) if k in found]
    narrow = [run for run in failed if run.status == RunStatus.FAILED]
    if narrow:
        run = narrow[0]
        return Outcome.NARROW, (
            f"every probe passes on its own dataset, but probe #{run.probe_id} failed on "
            f"{run.dataset} (run #{run.pk}, value {_number(run.value)}): the fix holds only "
            "on the data it was designed on"
        )
    missing = [k for k in sorted(wanted) if k not in found or found[k].status != RunStatus.PASSED]
    if missing:
        probe_id, dataset_id = missing[0]
        run = found.get(missing[0])
        status = run.get_status_display().lower() if run else "no run"
        where = run.dataset if run else f"dataset #{dataset_id}"
        return Outcome.INCONCLUSIVE, f"probe #{probe_id} did not pass on {where} ({status})"
    if check_pending:
        return Outcome.INCONCLUSIVE, "every probe passes; the moved-problem check is running"
    what = (check or {}).get("verdict")
    if what in UNSETTLED_CHECKS:
        return Outcome.INCONCLUSIVE, (
            f"every probe passes, but {UNSETTLED_CHECKS[what]}: {(check or {}).get('text', '')}"
        ).strip()
    if what == "error":
        return Outcome.INCONCLUSIVE, "every probe passes; the moved-problem check could not run"
    everywhere = " on every dataset" if wanted else ""
    return Outcome.HELD, (
        f"every probe passes{everywhere}" + (" and the problem did not move" if what else "")
    )


def _number(value):
    return "—" if value is None else f"{value:.4g}"


def record_evaluation(action, version, runs, outcome, reason="", elsewhere=()):
    """Store (or refresh) the automatic evaluation of `action` on `version` with the runs it
    judged (`runs` on the probes' own datasets, `elsewhere` on their `also_on`); a refresh
    starts the moved-problem check afresh (the runs it judged may have changed)."""

    counts = {}
    for run in [*runs.values(), *elsewhere]:
        counts[run.status] = counts.get(run.status, 0) + 1
    details = {"run_counts": counts, "reason": reason}
    before = Evaluation.objects.filter(
        action=action, model_version=version, is_manual=False
    ).first()
    if before is not None and before.outcome == outcome and "notified_at" in before.details:
        details["notified_at"] = before.details["notified_at"]  # told once per version
    try:
        with transaction.atomic():
            evaluation, _ = Evaluation.objects.update_or_create(
                action=action,
                model_version=version,
                is_manual=False,
                defaults={"outcome": outcome, "details": details},
            )
    except IntegrityError:  # a concurrent worker stored it first: refresh that one
        evaluation = Evaluation.objects.get(action=action, model_version=version, is_manual=False)
        evaluation.outcome, evaluation.details = outcome, details
        evaluation.save(update_fields=["outcome", "details"])
    evaluation.probe_runs.set([*runs.values(), *elsewhere])
    return evaluation


def evaluate_action(action, version):
    """Evaluate one implemented/verified action on one version from the stored runs.

    1. Only on its fix version or a later one; never on an earlier version.
    2. The verdict without the moved-problem check; when every probe passes and
       introspection says it checks (a receiver of evaluation_recorded answered True),
       the evaluation waits for it as inconclusive, and after_moved_problem_check settles.
    3. conclude(): implemented -> verified only on held on the fix version, -> ineffective
       on regressed there; anything else leaves it implemented ("needs review"); a
       verified fix that regresses on a later version records broke_on_version.
    """
    fix = action.fixed_in_version
    if fix is None or not after_fix(version, fix):
        return None
    runs = standing_on(action.finding, version)
    elsewhere = standing_elsewhere(action.finding, version)
    outcome, reason = verdict(action.finding, runs, elsewhere=elsewhere)
    if outcome is None:
        return None
    evaluation = record_evaluation(action, version, runs, outcome, reason, elsewhere)
    responses = evaluation_recorded.send(sender=type(evaluation), evaluation=evaluation)
    if outcome == Outcome.HELD and any(answer for _, answer in responses):
        # Outside a transaction the check has run already (it stored its summary).
        evaluation.refresh_from_db(fields=["details", "outcome"])
        check = (evaluation.details or {}).get("moved_problem")
        outcome, reason = verdict(
            action.finding, runs, check, check_pending=check is None, elsewhere=elsewhere
        )
        _store_outcome(evaluation, outcome, reason)
    conclude(evaluation)
    return evaluation


def after_moved_problem_check(evaluation_id):
    """The moved-problem check of an evaluation is in: decide again with it (the runs are
    the ones the evaluation judged) and settle the action."""
    evaluation = (
        Evaluation.objects.select_related(
            "action__finding", "action__fixed_in_version", "model_version"
        )
        .filter(pk=evaluation_id, is_manual=False)
        .first()
    )
    if evaluation is None:
        return None
    runs, elsewhere = split_runs(evaluation.probe_runs.select_related("probe", "dataset"))
    check = (evaluation.details or {}).get("moved_problem")
    outcome, reason = verdict(evaluation.action.finding, runs, check, elsewhere=elsewhere)
    if outcome is not None:
        _store_outcome(evaluation, outcome, reason)
        conclude(evaluation)
    return evaluation


def _store_outcome(evaluation, outcome, reason):
    """The outcome and its reason, kept beside what else the details hold (the check's
    summary may have arrived meanwhile)."""
    with transaction.atomic():
        stored = Evaluation.objects.select_for_update().filter(pk=evaluation.pk).first()
        if stored is None:
            return
        evaluation.outcome = outcome
        evaluation.details = dict(stored.details or {}, reason=reason)
        Evaluation.objects.filter(pk=evaluation.pk).update(
            outcome=outcome, details=evaluation.details
        )


def conclude(evaluation):
    """What an evaluation's outcome does to its action: settle() it on its fix version, and
    keep a verified fix's broke_on_version (RemediationAction.record_break)."""
    settle(evaluation)
    action = RemediationAction.objects.select_related("fixed_in_version").get(
        pk=evaluation.action_id
    )
    action.record_break()


def settle(evaluation):
    """Move an implemented action by its evaluation on its fix version (see above)."""
    action = RemediationAction.objects.get(pk=evaluation.action_id)
    if (
        action.status != ActionStatus.IMPLEMENTED
        or action.fixed_in_version_id != evaluation.model_version_id
    ):
        return None
    target = {Outcome.HELD: ActionStatus.VERIFIED, Outcome.REGRESSED: ActionStatus.INEFFECTIVE}.get(
        evaluation.outcome
    )
    if target is None:
        return None
    reason = (evaluation.details or {}).get("reason", "")
    try:
        return action.transition_to(
            target,
            by=SYSTEM,
            note=f"Evaluation on {evaluation.model_version}: "
            f"{evaluation.get_outcome_display().lower()} ({reason}).",
        )
    except TransitionError as exc:  # someone moved it meanwhile; theirs stands
        log.info("evaluation did not move action %s: %s", action.pk, exc)
        return None


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
        ProbeRun.objects.filter(model_version=version, probe__in=active).values_list(
            "probe_id", flat=True
        )
    )
    missing = [p for p in active if p.pk not in have]
    if missing:
        with transaction.atomic():
            Rerun.queue(
                version,
                trigger=Trigger.MANUAL,
                probes=missing,
                label=f"follow-up of action {action.pk}",
            )
        return None
    return evaluate_action(action, version)


def on_rerun_finished(sender, rerun_id, **kwargs):
    """Receiver of probes.signals.rerun_finished."""
    after_rerun(rerun_id)


def after_rerun(rerun_id):
    """1. Evaluate every implemented/verified action of the version's ML model.
    2. Reopen each resolved finding whose probe failed on this (newer) version.
    3. An accepted risk that gets worse (a probe newly failing against the previous
       version) keeps its status and is told (check_accepted_risk).
    4. Tell people of every regression (DESIGN.md: whatever the finding's status), once
       per finding and version: a fix's evaluation that says regressed, a resolved
       finding that reopened, or an accepted risk that got worse."""
    rerun = Rerun.objects.select_related("model_version").get(pk=rerun_id)
    version = rerun.model_version
    actions = (
        RemediationAction.objects.filter(
            finding__ml_model_id=version.ml_model_id,
            status__in=[ActionStatus.IMPLEMENTED, ActionStatus.VERIFIED],
            finding__probes__isnull=False,
        )
        .distinct()
        .select_related("finding", "fixed_in_version")
    )
    regressions = {}
    for action in actions:
        evaluation = evaluate_action(action, version)
        if evaluation is not None and evaluation.outcome == Outcome.REGRESSED:
            regressions.setdefault(action.finding_id, []).append(evaluation)
    resolved = Finding.objects.filter(
        ml_model_id=version.ml_model_id, status=FindingStatus.RESOLVED
    )
    for finding in resolved:
        run = check_regression(finding, version)
        if run is not None:
            _mark_notified(regressions.pop(finding.pk, []))
    for finding in Finding.objects.filter(
        ml_model_id=version.ml_model_id, status=FindingStatus.ACCEPTED_RISK
    ):
        run = check_accepted_risk(finding, version)
        if run is not None:
            _mark_notified(regressions.pop(finding.pk, []))
    for evaluations in regressions.values():
        fresh = [e for e in evaluations if not (e.details or {}).get("notified_at")]
        if not fresh:
            continue
        finding = fresh[0].action.finding
        failing = [
            r for r in standing_on(finding, version).values() if r.status == RunStatus.FAILED
        ]
        if failing:
            _mark_notified(evaluations)
            transaction.on_commit(lambda f=finding.pk, r=failing[0].pk: notify_regression(f, r))


def _mark_notified(evaluations):
    """Regression notices go out once per finding and version, however often it reruns."""
    now = timezone.now().isoformat()
    for evaluation in evaluations:
        details = dict(evaluation.details or {}, notified_at=now)
        Evaluation.objects.filter(pk=evaluation.pk).update(details=details)


def check_regression(finding, version):
    """A resolved finding whose probe fails on a version newer than its fix regresses.

    The note names the failing run, the last version where every probe held and the
    version where it broke; the owner and reviewers are notified.
    """

    fix_versions = [
        a.fixed_in_version
        for a in finding.actions.filter(fixed_in_version__isnull=False).select_related(
            "fixed_in_version"
        )
    ]
    reference = max(
        [v for v in fix_versions if v] + ([finding.model_version] if finding.model_version else []),
        key=lambda v: (v.registered_at, v.pk),
        default=None,
    )
    if reference is not None and (version.registered_at, version.pk) <= (
        reference.registered_at,
        reference.pk,
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


def check_accepted_risk(finding, version):
    """An accepted risk gets worse on `version` when one of its probes fails there and did
    not fail on the previous version (release.category: "newly failing"). The finding keeps
    its status (only a resolved finding changes, DESIGN.md); the people who hear of a
    regression are told, once per version (kept in the finding's evidence). Returns the
    failing run that was told, or None."""
    if (finding.evidence or {}).get("risk_worse", {}).get("version") == version.pk:
        return None
    older = previous_version(version)
    if older is None:
        return None
    now = standing_on(finding, version)
    before = standing_on(finding, older)
    worse = [
        run
        for probe_id, run in sorted(now.items())
        if category(before.get(probe_id), run) == "newly_failing"
    ]
    if not worse:
        return None
    run = worse[0]
    finding.evidence = dict(
        finding.evidence or {},
        risk_worse={"version": version.pk, "failing_run": run.pk, "was_passing_on": older.pk},
    )
    type(finding).objects.filter(pk=finding.pk).update(evidence=finding.evidence)
    transaction.on_commit(lambda: notify_regression(finding.pk, run.pk))
    return run


def last_held_version(finding, *, before):
    """The newest version before `before` on which every active probe passed."""

    versions = (
        ModelVersion.objects.filter(
            ml_model_id=finding.ml_model_id, registered_at__lte=before.registered_at
        )
        .exclude(pk=before.pk)
        .order_by("-registered_at", "-pk")
    )
    for version in versions:
        held = verdict(
            finding, standing_on(finding, version), elsewhere=standing_elsewhere(finding, version)
        )
        if held[0] == Outcome.HELD:
            return version
    return None
