"""Background work: rerunning probes on a model version (django-q2).

Tasks are plain functions taking primary keys. A rerun's ProbeRun rows are created when
it is queued (see Rerun.queue), so the task only fills them in: a retried or duplicated
delivery finds the same rows and skips the finished ones; it never adds a run.
"""

import logging
import time
import traceback

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from .choices import FINISHED_RUN_STATUSES, RunStatus, Trigger

log = logging.getLogger(__name__)


def enqueue_rerun(rerun_id):
    """Hand a rerun to a worker (inline when TASKS_SYNC is on)."""
    async_task(
        "probes.tasks.run_rerun",
        rerun_id,
        task_name=f"rerun-{rerun_id}",
        group="probe-reruns",
        sync=settings.TASKS_SYNC,
    )


def _lineage_base(version):
    from .models import capture_environment

    env = capture_environment()
    return {
        "artifact_sha256": version.artifact_sha256,
        "python": env["python"],
        "scikit-learn": env["scikit-learn"],
        "numpy": env["numpy"],
        "pandas": env["pandas"],
    }


def _fail_runs(runs, message, tb=""):
    now = timezone.now()
    for run in runs:
        run.status = RunStatus.ERROR
        run.error = message[:2000]
        run.traceback = tb
        run.passed = None
        run.finished_at = now
        run.save(update_fields=["status", "error", "traceback", "passed", "finished_at"])


def _baseline_values(probes):
    """The value of each probe on its finding's discovery version (for the
    no-worse-than-baseline comparator), from the newest finished run there."""
    from .models import ProbeRun

    wanted = {p.pk: p.finding.model_version_id for p in probes if p.finding.model_version_id}
    values = {}
    if not wanted:
        return values
    runs = ProbeRun.objects.filter(
        probe_id__in=wanted, status__in=FINISHED_RUN_STATUSES, value__isnull=False
    ).order_by("-finished_at", "-pk")
    for run in runs.values("probe_id", "model_version_id", "value"):
        if wanted.get(run["probe_id"]) == run["model_version_id"]:
            values.setdefault(run["probe_id"], run["value"])
    return values


def run_rerun(rerun_id, progress=None):
    """Evaluate every unfinished run of a rerun.

    1. Load the artifact once (hash checked, skops allow-list); a load failure is an
       error on each run, with the reason.
    2. Group the runs by dataset; read each dataset once (hash checked) and predict once
       per (version, dataset) inside the engine; store each result as it arrives.
    3. Mark the rerun finished and hand over to remediation (evaluations, regressions).
    """
    from remediation.followup import after_rerun

    from . import engine
    from .artifacts import ArtifactError, check_feature_columns, load_model
    from .models import ProbeRun, Rerun

    rerun = Rerun.objects.select_related("model_version__ml_model").get(pk=rerun_id)
    version = rerun.model_version
    pending = list(
        ProbeRun.objects.filter(rerun=rerun)
        .exclude(status__in=FINISHED_RUN_STATUSES)
        .select_related("probe__dataset", "probe__finding")
    )
    if pending:
        lineage = dict(
            _lineage_base(version),
            trigger=rerun.trigger,
            started_by=rerun.requested_by_label or "system",
            rerun=rerun.pk,
        )
        try:
            model = load_model(
                version.artifact.path,
                expected_sha256=version.artifact_sha256,
                trusted_types=trusted_types(),
                allow_pickle=settings.ALLOW_PICKLE_ARTIFACTS,
            )
        except (ArtifactError, OSError) as exc:
            _fail_runs(pending, f"artifact could not be loaded: {exc}")
            pending = []
        by_dataset = {}
        for run in pending:
            by_dataset.setdefault(run.probe.dataset_id, []).append(run)
        tick = _progress_counter(len(pending), progress)
        for runs in by_dataset.values():
            _run_on_dataset(model, version, runs, lineage, engine, check_feature_columns, tick)
    Rerun.objects.filter(pk=rerun.pk, finished_at=None).update(finished_at=timezone.now())
    after_rerun(rerun.pk)
    return rerun.progress()


def _progress_counter(total, progress):
    done = [0]

    def tick(n=1):
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    return tick


def _run_on_dataset(model, version, runs, lineage, engine, check_feature_columns, tick):
    dataset = runs[0].probe.dataset
    try:
        frame = dataset.read()
        check_feature_columns(model, dataset.feature_columns)
    except Exception as exc:  # missing file, hash mismatch, columns the model lacks
        _fail_runs(runs, str(exc), traceback.format_exc())
        tick(len(runs))
        return
    started = timezone.now()
    ProbeRun = type(runs[0])
    ProbeRun.objects.filter(pk__in=[r.pk for r in runs]).update(
        status=RunStatus.RUNNING, started_at=started
    )
    baselines = _baseline_values([r.probe for r in runs])
    by_key = {r.pk: r for r in runs}
    specs = [
        engine.ProbeSpec(
            key=run.pk,
            kind=run.probe.kind,
            slice=run.probe.slice,
            params=run.probe.params,
            comparator=run.probe.comparator,
            threshold=run.probe.threshold,
            min_support=run.probe.min_support,
            baseline_value=baselines.get(run.probe_id),
            tolerance=run.probe.tolerance,
        )
        for run in runs
    ]
    base = dict(lineage, dataset_sha256=dataset.sha256)

    def store(result):
        run = by_key[result.key]
        run.status = result.status
        run.value, run.ci_low, run.ci_high = result.value, result.ci_low, result.ci_high
        run.support = result.support
        run.passed = {"passed": True, "failed": False}.get(result.status)
        run.error = result.error or ""
        run.details = result.details or {}
        run.duration_s = result.duration_s
        run.lineage = dict(
            base,
            probe=run.probe.definition(),
            seed=result.seed,
            baseline_value=baselines.get(run.probe_id),
        )
        run.started_at = started
        run.finished_at = timezone.now()
        run.save()
        tick()

    t0 = time.perf_counter()
    try:
        engine.evaluate_probes(
            model,
            frame,
            dataset.target_column,
            specs,
            ignored_columns=dataset.ignored_columns,
            on_result=store,
        )
    except Exception as exc:  # a failure of the whole batch (e.g. predict_proba raised)
        unfinished = [r for r in runs if r.status not in FINISHED_RUN_STATUSES]
        _fail_runs(unfinished, f"evaluation failed: {exc}", traceback.format_exc())
    log.info(
        "rerun on %s: %d probes on %s in %.2fs",
        version,
        len(runs),
        dataset,
        time.perf_counter() - t0,
    )


def trusted_types():
    from .artifacts import DEFAULT_TRUSTED_TYPES

    return list(DEFAULT_TRUSTED_TYPES) + list(settings.SKOPS_EXTRA_TRUSTED_TYPES)


def nightly_rerun():
    """Rerun every active probe on the latest version of each ML model."""
    from .models import MLModel, Rerun

    queued = []
    for ml_model in MLModel.objects.all():
        latest = ml_model.latest_version
        if latest is not None:
            with transaction.atomic():
                queued.append(Rerun.queue(latest, trigger=Trigger.SCHEDULE, label="schedule").pk)
    return queued
