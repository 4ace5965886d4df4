"""Evaluating claimed probe runs: the model and the datasets' predictions cached per worker
process, each run's lineage and baseline, and the engine's results stored under the claim.

The model is loaded and run in a child process of the worker (boundary.artifacts.
IsolatedModel, limited to ARTIFACT_MEMORY_LIMIT_BYTES of memory), inline tasks included: a
crafted artifact that crashes or exhausts memory while loading or predicting fails its runs
with the reason, once, and the worker goes on (nothing is retried: the same artifact would
do it again). The child predicts a whole dataset in one request and hands the probabilities
back; the probe engine then works on them in the worker.

Predictions are computed once per (rerun, dataset) in each worker process and shared by
the chunks that process evaluates. A failure of one dataset (missing file, hash
mismatch, columns the model lacks) is an error on its runs, with the reason; a database
outage is raised for the task to wait for the database (see tasks.run_chunk).
"""

import logging
import time
import traceback
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from boundary import artifacts, engine
from boundary.artifacts import ArtifactError, Isolation, ModelCrashed, check_feature_columns
from registry.models import capture_environment, trusted_artifact_types

from .choices import ProbeKind, RunStatus
from .claims import fail_runs, finish_claimed
from .models import ProbeRun

log = logging.getLogger(__name__)

# The engine evaluates these first (see engine.evaluate_probes), the others after them,
# each group in the order given; the task follows the same order to know which probe is
# in progress.
MODEL_CALLING_KINDS = {
    ProbeKind.PERTURBATION_FLIP_RATE,
    ProbeKind.COUNTERFACTUAL_FLIP_RATE,
    ProbeKind.FEATURE_INTERACTION,
    ProbeKind.ENSEMBLE_DISAGREEMENT,
    ProbeKind.COMPONENT_ERROR_RATE,
}
# The database went away (restart, network): wait for it rather than record an error.
DATABASE_GONE = (OperationalError, InterfaceError)


# Per worker process: the model (in its child process) and the datasets' predictions of the
# rerun in progress, so that the chunks of one rerun predict once per (rerun, dataset) in
# each process; or the crash that loading the model ended in, not tried again.
_cache = {"key": None, "model": None, "crash": None, "data": {}}
CACHED_DATASETS = 2


def _drop_cache():
    model = _cache["model"]
    _cache.update(key=None, model=None, crash=None, data={})
    close = getattr(model, "close", None)
    if close is not None:
        close()  # ends the model's child process


def forget(rerun_id=None):
    """Drop this process's cached model and predictions (of `rerun_id`, or any)."""
    if rerun_id is None or (_cache["key"] or (None,))[0] == rerun_id:
        _drop_cache()


def trusted_types():
    """The allow-list the artifact was checked against at registration."""
    return trusted_artifact_types()


def load_isolated_model(version):
    """The model of `version`, loaded and run in a child process of this one (an
    IsolatedModel; close() ends it): the hash checked before the load, the unpacked size and
    the skops allow-list applied, at most ARTIFACT_MEMORY_LIMIT_BYTES of memory, each
    request split there by PREDICT_CHUNK_ROWS. A child that dies while loading raises
    ModelCrashed; one that dies later, while predicting, raises it from predict_proba.

    Every worker-side load goes through here (reruns, scans, maps, sweeps and the
    moved-problem check); load_model is looked up at call time.
    """
    return artifacts.load_model(
        version.artifact.path,
        expected_sha256=version.artifact_sha256,
        trusted_types=trusted_types(),
        allow_pickle=settings.ALLOW_PICKLE_ARTIFACTS,
        max_unpacked_bytes=settings.ARTIFACT_MAX_UNPACKED_BYTES,
        isolate=Isolation(
            memory_limit=settings.ARTIFACT_MEMORY_LIMIT_BYTES,
            chunk_rows=settings.PREDICT_CHUNK_ROWS,
        ),
    )


def _cached_model(rerun):
    version = rerun.model_version
    key = (rerun.pk, rerun.created_at, version.artifact_sha256)
    if _cache["key"] != key:
        _drop_cache()
        _cache["key"] = key
    if _cache["crash"] is not None:
        raise _cache["crash"]
    if _cache["model"] is None:
        try:
            _cache["model"] = load_isolated_model(version)
        except ModelCrashed as exc:
            _cache["crash"] = exc
            raise
    return _cache["model"]


def _cached_data(model, dataset):
    """(frame, predictions, or the reason predicting failed) for a dataset of the rerun."""

    if dataset.pk not in _cache["data"]:
        frame = dataset.read()
        check_feature_columns(model, dataset.feature_columns)
        features = engine.model_features(
            model, frame, dataset.target_column, dataset.ignored_columns
        )
        try:
            # One request to the model's process: it splits the rows by PREDICT_CHUNK_ROWS.
            predictions = engine.predict(model, features)
            failure = None
        except ModelCrashed as exc:  # its process died: the reason is the whole story
            predictions, failure = None, str(exc)
        except Exception as exc:  # recorded on every run, as the engine does
            predictions = None
            failure = f"predicting on the dataset failed: {type(exc).__name__}: {exc}"
        while len(_cache["data"]) >= CACHED_DATASETS:
            _cache["data"].pop(next(iter(_cache["data"])))
        _cache["data"][dataset.pk] = (frame, predictions, failure)
    return _cache["data"][dataset.pk]


def _lineage_base(version):
    env = capture_environment()
    return {
        "artifact_sha256": version.artifact_sha256,
        "python": env["python"],
        "scikit-learn": env["scikit-learn"],
        "numpy": env["numpy"],
        "pandas": env["pandas"],
    }


def baseline_values(probes, dataset):
    """The value of each probe on its finding's discovery version and `dataset` (for the
    no-worse-than-baseline comparator): the value of its latest run there
    (ProbeRun.objects.latest_runs); none when that run has no value."""

    wanted = {p.pk: p.finding.model_version_id for p in probes if p.finding.model_version_id}
    if not wanted:
        return {}
    runs = ProbeRun.objects.latest_runs(
        probes=list(wanted), versions=set(wanted.values()), everywhere=True
    ).filter(dataset=dataset)
    return {
        run["probe_id"]: run["value"]
        for run in runs.values("probe_id", "model_version_id", "value")
        if wanted[run["probe_id"]] == run["model_version_id"] and run["value"] is not None
    }


def evaluate_claimed(rerun, run_ids, token, progress=None):
    """Evaluate the claimed runs.

    1. Load the artifact once per (rerun, process), in a child process (hash checked,
       skops allow-list); a load failure, or a crash of the child, is an error on each run,
       with the reason.
    2. Group the runs by dataset; read each dataset (hash checked) and predict once per
       (rerun, dataset, process); store each result as it arrives.
    """

    runs = list(
        ProbeRun.objects.filter(pk__in=run_ids, claimed_by=token, status=RunStatus.RUNNING)
        .select_related("dataset", "probe__finding")
        .prefetch_related("probe__also_on")
        .order_by("pk")
    )
    if not runs:
        return
    version = rerun.model_version
    tick = _progress_counter(len(runs), progress)
    try:
        model = _cached_model(rerun)
    except ModelCrashed as exc:
        fail_runs(runs, token, str(exc))
        tick(len(runs))
        return
    except (ArtifactError, OSError) as exc:
        fail_runs(runs, token, f"artifact could not be loaded: {exc}")
        tick(len(runs))
        return
    lineage = dict(
        _lineage_base(version),
        trigger=rerun.trigger,
        started_by=rerun.requested_by_label or "system",
        rerun=rerun.pk,
        worker=token,
    )
    by_dataset = defaultdict(list)
    for run in runs:
        by_dataset[run.dataset_id].append(run)
    for group in by_dataset.values():
        _run_on_dataset(model, version, group, lineage, token, tick)


def _progress_counter(total, progress):
    done = [0]

    def tick(n=1):
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    return tick


def _run_on_dataset(model, version, runs, lineage, token, tick):
    ProbeRun = type(runs[0])
    dataset = runs[0].dataset
    try:
        frame, predictions, failure = _cached_data(model, dataset)
    except DATABASE_GONE:
        raise
    except Exception as exc:  # missing file, hash mismatch, columns the model lacks
        fail_runs(runs, token, str(exc), traceback.format_exc())
        tick(len(runs))
        return
    if failure:
        fail_runs(runs, token, failure)
        tick(len(runs))
        return
    # The engine's order (model-calling probes first, each group in the given order):
    # the run after the last stored one is the probe in progress.
    runs = sorted(runs, key=lambda r: r.probe.kind not in MODEL_CALLING_KINDS)
    following = {a.pk: b.pk for a, b in zip(runs, runs[1:], strict=False)}
    baselines = baseline_values([r.probe for r in runs], dataset)
    # Runs on their finding's discovery version: the value found there is the baseline.
    at_baseline = {r.pk for r in runs if r.probe.finding.model_version_id == version.pk}
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
            is_baseline=run.pk in at_baseline,
            decide=run.probe.decide,
        )
        for run in runs
    ]
    base = dict(lineage, dataset=dataset.pk, dataset_sha256=dataset.sha256)
    stored = set()

    def mark_started(run_id):
        ProbeRun.objects.filter(pk=run_id, claimed_by=token).update(started_at=timezone.now())

    def store(result):
        run = by_key[result.key]
        now = timezone.now()
        with transaction.atomic():
            finish_claimed(
                run,
                token,
                status=result.status,
                value=result.value,
                ci_low=result.ci_low,
                ci_high=result.ci_high,
                support=result.support,
                passed={"passed": True, "failed": False}.get(result.status),
                error=result.error or "",
                traceback="",
                details=result.details or {},
                duration_s=result.duration_s,
                lineage=dict(
                    base,
                    probe=run.probe.definition(),
                    seed=result.seed,
                    baseline_value=(
                        result.value if run.pk in at_baseline else baselines.get(run.probe_id)
                    ),
                ),
                started_at=now - timedelta(seconds=result.duration_s or 0),
                finished_at=now,
            )
            if result.key in following:
                mark_started(following[result.key])
        stored.add(result.key)
        tick()

    t0 = time.perf_counter()
    mark_started(runs[0].pk)
    try:
        engine.evaluate_probes(
            model,
            frame,
            dataset.target_column,
            specs,
            ignored_columns=dataset.ignored_columns,
            predictions=predictions,
            on_result=store,
            # The model's process splits each request by PREDICT_CHUNK_ROWS itself.
            chunk_rows=0,
            sensitive_columns=dataset.sensitive_columns,
            sensitive_min_rows=settings.SENSITIVE_MIN_ROWS,
        )
    except DATABASE_GONE:
        raise
    except Exception as exc:  # a failure of the whole batch
        unfinished = [r for r in runs if r.pk not in stored]
        fail_runs(unfinished, token, f"evaluation failed: {exc}", traceback.format_exc())
        tick(len(unfinished))
    log.info(
        "rerun on %s: %d probes on %s in %.2fs",
        version,
        len(runs),
        dataset,
        time.perf_counter() - t0,
    )
