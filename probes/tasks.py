"""Background work: rerunning probes on a model version (django-q2).

A rerun's ProbeRun rows are created when it is queued (see Rerun.queue); the work goes to
the workers in chunks, one task per chunk of runs on one dataset, so that the workers of
several machines share a large rerun. Tasks are plain functions taking primary keys.

Claims. Every delivery of a chunk first claims its runs (status `running`, the worker's
identity, the time): a run is evaluated only by the process that holds its claim, and a
finished run is never evaluated again. A retried, duplicated or re-enqueued task therefore
never evaluates a run twice at once, and never adds a run (the rows are unique per probe,
version and rerun).

Failures.
- A claim is dead when its process is gone (checked on the same host, through /proc),
  or when it is older than the task time limit plus LEASE_MARGIN_S (any host: django-q2
  stops a task at its time limit). A worker that dies (kill -9, out of memory) leaves a
  dead claim; the next worker spawned on that host, the next delivery of a task that
  lists the run, or the sweeper (every minute) releases it: the probe that was being
  evaluated goes back to the queue, or becomes an error once it has been tried
  Q_MAX_ATTEMPTS times; the other runs of the claim go back to the queue.
- The task time limit (Q_TIMEOUT) cuts a chunk that runs too long: the probe being
  evaluated is marked error ("timed out") when it had at least half the limit to itself,
  and the rest of the chunk is queued again.
- A database outage makes a chunk wait for the database (up to half the time limit) and
  go on where it stopped; the runs it had finished are kept.

Predictions are computed once per (rerun, dataset) in each worker process and shared by
the chunks that process evaluates.
"""

import logging
import os
import socket
import threading
import time
import traceback
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Greatest
from django.utils import timezone
from django_q.tasks import async_task

from .choices import FINISHED_RUN_STATUSES, ProbeKind, RunStatus, Trigger
from .signals import rerun_finished

log = logging.getLogger(__name__)

# A claim older than the task time limit plus this margin has no live owner: django-q2's
# guard stops a worker 3 s after the limit, and clocks of several machines may differ.
LEASE_MARGIN_S = 15
# The engine evaluates these first (see engine.evaluate_probes), the others after them,
# each group in the order given; the task follows the same order to know which probe is
# in progress.
MODEL_CALLING_KINDS = {ProbeKind.PERTURBATION_FLIP_RATE, ProbeKind.COUNTERFACTUAL_FLIP_RATE}
# The database went away (restart, network): wait for it rather than record an error.
DATABASE_GONE = (OperationalError, InterfaceError)


def _time_limit():
    return int(settings.Q_CLUSTER.get("timeout") or 600)


def _max_attempts():
    return max(1, int(settings.Q_CLUSTER.get("max_attempts") or 3))


# --------------------------------------------------------------------------------------
# Enqueueing
# --------------------------------------------------------------------------------------


def plan_chunks(runs, size=None):
    """Split (run id, dataset id) pairs into chunks of at most `size` runs of one dataset.

    Each dataset's runs are dealt round-robin into ceil(n / size) chunks, so that
    expensive probe kinds (created together) spread evenly over the chunks.
    """
    size = max(1, int(size or settings.RERUN_CHUNK_SIZE))
    by_dataset = defaultdict(list)
    for run_id, dataset_id in sorted(runs):
        by_dataset[dataset_id].append(run_id)
    chunks = []
    for ids in by_dataset.values():
        count = -(-len(ids) // size)
        chunks += [ids[i::count] for i in range(count)]
    return chunks


def enqueue_rerun(rerun_id):
    """Hand a rerun's unfinished runs to the workers, one task per chunk (inline when
    TASKS_SYNC is on). A rerun without runs still gets one task, which finishes it."""
    from .models import ProbeRun

    pairs = (
        ProbeRun.objects.filter(rerun_id=rerun_id)
        .exclude(status__in=FINISHED_RUN_STATUSES)
        .values_list("pk", "probe__dataset_id")
    )
    chunks = plan_chunks(pairs) or [[]]
    for run_ids in chunks:
        _enqueue_chunk(rerun_id, run_ids)
    return len(chunks)


def _enqueue_chunk(rerun_id, run_ids):
    async_task(
        "probes.tasks.run_chunk",
        rerun_id,
        list(run_ids),
        task_name=f"rerun-{rerun_id}-{run_ids[0] if run_ids else 0}",
        group="probe-reruns",
        sync=settings.TASKS_SYNC,
    )


def _enqueue_runs(run_ids):
    """Queue chunk tasks for runs that went back to the queue (any reruns)."""
    from .models import ProbeRun

    if not run_ids:
        return
    by_rerun = defaultdict(list)
    rows = ProbeRun.objects.filter(pk__in=run_ids, status=RunStatus.QUEUED).values_list(
        "rerun_id", "pk", "probe__dataset_id"
    )
    for rerun_id, run_id, dataset_id in rows:
        by_rerun[rerun_id].append((run_id, dataset_id))
    for rerun_id, pairs in by_rerun.items():
        for chunk in plan_chunks(pairs):
            _enqueue_chunk(rerun_id, chunk)


# --------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------


def _proc_start_time(pid):
    """The process's start time in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read().decode(errors="replace")
    except OSError:
        return None
    # Field 2 (the command) may contain spaces and parentheses: split after its end.
    fields = data[data.rfind(")") + 2 :].split()
    return fields[0], fields[19]  # state, starttime


def _host_identity():
    """The host name plus the kernel boot and the PID namespace: two processes with the
    same identity see the same process table."""
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            parts.append(handle.read().strip()[:8])
        parts.append(os.readlink("/proc/self/ns/pid").strip("pid:[]"))
    except OSError:
        pass
    return "/".join(parts)


_token = {}


def worker_token():
    """This process's identity in claims: host identity, pid, process start time."""
    pid = os.getpid()
    if pid not in _token:
        _token.clear()
        stat = _proc_start_time(pid)
        _token[pid] = f"{_host_identity()}:{pid}:{stat[1] if stat else 0}"
    return _token[pid]


def _process_alive(token):
    """True or False for a claim of a process on this host; None when unknown."""
    host, _, rest = token.rpartition(":")
    host, _, pid = host.rpartition(":")
    if host != _host_identity() or not pid.isdigit():
        return None
    stat = _proc_start_time(int(pid))
    if stat is None:
        return False if os.path.isdir("/proc/self") else None
    state, started = stat
    return state not in ("Z", "X") and started == rest


def claim_is_dead(token, claimed_at, now=None, *, local_only=False):
    if not token:
        return True
    alive = _process_alive(token)
    if alive is not None:
        return not alive
    if local_only:
        return False
    now = now or timezone.now()
    lease = timedelta(seconds=_time_limit() + LEASE_MARGIN_S)
    return claimed_at is None or now - claimed_at > lease


def _release_claim(token, *, timed_out=False, now=None):
    """Settle the unfinished runs of a claim whose owner stopped; return the run ids that
    went back to the queue.

    The probe in progress (the claim's one run with `started_at`) is blamed: an error when
    the time limit cut it after at least half the limit, or when it has been tried
    Q_MAX_ATTEMPTS times; else it is queued again. The runs it had not reached are queued
    again, their attempt refunded. A claim that stopped before any probe started (while
    loading the model, reading the dataset or predicting) blames all its runs.
    """
    from .models import ProbeRun

    now = now or timezone.now()
    limit = _time_limit()
    with transaction.atomic():
        runs = list(
            ProbeRun.objects.select_for_update()
            .filter(claimed_by=token, status=RunStatus.RUNNING)
            .order_by("pk")
        )
        if not runs:
            return []
        claimed_at = max((r.claimed_at for r in runs if r.claimed_at), default=None)
        timed_out = timed_out or bool(
            claimed_at and (now - claimed_at).total_seconds() >= limit
        )
        started = [r for r in runs if r.started_at is not None]
        suspects = {r.pk for r in (started or runs)} if token else set()
        errors, requeued, refunded = {}, [], []
        for run in runs:
            if run.pk not in suspects:
                (refunded if token else requeued).append(run.pk)
                continue
            ran = (now - run.started_at).total_seconds() if run.started_at else 0
            if timed_out and started and ran >= limit / 2:
                errors[run.pk] = (
                    f"timed out: still running after {ran:.0f} s; the time limit of a "
                    f"rerun task is {limit} s (Q_TIMEOUT)"
                )
            elif run.attempts >= _max_attempts():
                where = (
                    "while evaluating this probe"
                    if started
                    else "while loading the model, reading the dataset or predicting on it"
                )
                why = f"timed out after {limit} s" if timed_out else "stopped"
                errors[run.pk] = (
                    f"the worker {why} {where}, {run.attempts} times "
                    f"(killed, out of memory, or past the time limit); not retried again"
                )
            else:
                requeued.append(run.pk)
        for pk, message in errors.items():
            ProbeRun.objects.filter(pk=pk).update(
                status=RunStatus.ERROR, error=message, passed=None, finished_at=now,
                claimed_by="",
            )
        back = {"status": RunStatus.QUEUED, "claimed_by": "", "started_at": None}
        ProbeRun.objects.filter(pk__in=requeued).update(**back)
        ProbeRun.objects.filter(pk__in=refunded).update(
            attempts=Greatest(F("attempts") - 1, 0), **back
        )
    if errors:
        log.warning("claim %s released: %d run(s) marked error", token, len(errors))
    for rerun_id in {r.rerun_id for r in runs if r.pk in errors}:
        finish_rerun_if_complete(rerun_id)
    return requeued + refunded


def claim_runs(run_ids, *, token=None, takeover=False):
    """Claim the runs among `run_ids` that nobody is evaluating; return their ids.

    Dead claims on these runs are released first (see _release_claim). With `takeover`,
    this process's own earlier claims on them count as dead too (a chunk that resumes
    after a database outage).
    """
    from .models import ProbeRun

    token = token or worker_token()
    now = timezone.now()
    rows = (
        ProbeRun.objects.filter(pk__in=run_ids, status=RunStatus.RUNNING)
        .values("claimed_by")
        .annotate(at=Max("claimed_at"))
    )
    released = []
    for row in rows:
        owner = row["claimed_by"]
        mine = owner == token
        if (takeover and mine) or (not mine and claim_is_dead(owner, row["at"], now)):
            released += _release_claim(owner, now=now)
    with transaction.atomic():
        claimable = list(
            ProbeRun.objects.select_for_update()
            .filter(pk__in=run_ids, status=RunStatus.QUEUED)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        ProbeRun.objects.filter(pk__in=claimable).update(
            status=RunStatus.RUNNING,
            claimed_by=token,
            claimed_at=now,
            started_at=None,
            attempts=F("attempts") + 1,
        )
    # Runs released here that belong to other chunks go back to the workers.
    _enqueue_runs(sorted(set(released) - set(run_ids)))
    return claimable


def recover_dead_claims(*, local_only=False):
    """Release every dead claim (only those of this host's processes with `local_only`)
    and queue their runs again. Returns the number of runs queued again."""
    from .models import ProbeRun

    now = timezone.now()
    rows = (
        ProbeRun.objects.filter(status=RunStatus.RUNNING)
        .values("claimed_by")
        .annotate(at=Max("claimed_at"))
    )
    requeued = []
    for row in rows:
        if claim_is_dead(row["claimed_by"], row["at"], now, local_only=local_only):
            requeued += _release_claim(row["claimed_by"], now=now)
    _enqueue_runs(requeued)
    return len(requeued)


def on_worker_spawn(proc_name="", **kwargs):
    """django-q2's post_spawn signal: a new worker process releases the claims of this
    host's dead workers (the guard spawns a replacement as soon as one dies). It does so
    from a thread, a second later (a worker stopped for its time limit is terminated just
    after its successor starts), while the worker already takes tasks."""
    if proc_name == "MainProcess" or settings.TASKS_SYNC:
        return  # a task run inline (sync), not a worker of a cluster
    threading.Timer(1.0, _recover_local_claims).start()


def _recover_local_claims():
    try:
        count = recover_dead_claims(local_only=True)
        if count:
            log.warning("queued %d probe run(s) of a stopped worker again", count)
    except Exception:  # the database may be down; the sweeper tries again
        log.exception("could not release the claims of stopped workers")
    finally:
        connection.close()


def sweep_runs():
    """The sweeper (a django-q2 schedule, every minute).

    1. Release dead claims on any host (see claim_is_dead) and queue their runs again.
    2. Queue again runs that have waited longer than Q_RETRY while the broker holds no
       task (their task was lost: a cluster killed with tasks it had fetched, a broker
       restarted without persistence). A duplicate task is harmless: claims.
    3. Finish reruns whose runs are all finished.
    """
    from .models import ProbeRun, Rerun

    requeued = recover_dead_claims()
    stale = timezone.now() - timedelta(seconds=int(settings.Q_CLUSTER.get("retry") or 720))
    waiting = list(
        ProbeRun.objects.filter(status=RunStatus.QUEUED, created_at__lt=stale)
        .filter(Q(claimed_at=None) | Q(claimed_at__lt=stale))
        .values_list("pk", flat=True)
    )
    lost = 0
    if waiting and _broker_is_empty():
        _enqueue_runs(waiting)
        lost = len(waiting)
    finished = 0
    for rerun_id in Rerun.objects.filter(finished_at=None).values_list("pk", flat=True):
        finished += finish_rerun_if_complete(rerun_id)
    return {"released": requeued, "requeued_lost": lost, "finished_reruns": finished}


def _broker_is_empty():
    from django_q.brokers import get_broker

    try:
        return not get_broker().queue_size()
    except Exception:
        log.exception("could not read the broker's queue size")
        return False


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


def run_chunk(rerun_id, run_ids):
    """One delivery of a chunk: claim its runs, evaluate them, finish the rerun when it
    is complete. Safe to deliver any number of times."""
    from django_q.exceptions import TimeoutException

    from .models import Rerun

    token = worker_token()
    try:
        _with_database_retries(
            lambda takeover: _evaluate_claimed(
                Rerun.objects.select_related("model_version__ml_model").get(pk=rerun_id),
                claim_runs(run_ids, token=token, takeover=takeover),
                token,
            )
        )
    except TimeoutException:
        _cut_at_time_limit(token)
        raise
    except DATABASE_GONE:
        raise  # the database stayed away: the claims wait for the sweeper
    except Exception as exc:
        _fail_claimed(token, f"the rerun task failed: {exc}", traceback.format_exc())
        raise
    return finish_rerun_if_complete(rerun_id)


def run_rerun(rerun_id, progress=None):
    """Evaluate every unfinished run of a rerun in this process (run_probes --sync),
    with the same claims as the workers; `progress(done, total)` after each probe."""
    from .models import ProbeRun, Rerun

    token = worker_token()
    rerun = Rerun.objects.select_related("model_version__ml_model").get(pk=rerun_id)
    unfinished = (
        ProbeRun.objects.filter(rerun=rerun)
        .exclude(status__in=FINISHED_RUN_STATUSES)
        .values_list("pk", flat=True)
    )
    claimed = claim_runs(list(unfinished), token=token)
    try:
        _evaluate_claimed(rerun, claimed, token, progress=progress)
    except Exception as exc:
        _fail_claimed(token, f"the rerun failed: {exc}", traceback.format_exc())
        raise
    finish_rerun_if_complete(rerun_id)
    return rerun.progress()


def _with_database_retries(work):
    """Run work(takeover); when the database goes away, wait for it (up to half the task
    time limit) and run it again, taking over this process's own claims."""
    deadline = time.monotonic() + _time_limit() / 2
    takeover = False
    while True:
        try:
            return work(takeover)
        except DATABASE_GONE as exc:
            log.warning("database unavailable during a rerun (%s); waiting for it", exc)
            takeover = True
            _wait_for_database(deadline, exc)


def _wait_for_database(deadline, exc):
    delay = 0.5
    while True:
        connection.close()
        try:
            connection.ensure_connection()
            return
        except DATABASE_GONE:
            if time.monotonic() + delay > deadline:
                raise exc from None
            time.sleep(delay)
            delay = min(delay * 2, 5)


def _cut_at_time_limit(token):
    try:
        connection.close()  # the alarm may have interrupted a query
        _enqueue_runs(_release_claim(token, timed_out=True))
    except Exception:
        log.exception("could not settle the runs of a chunk past its time limit")


def _fail_claimed(token, message, tb=""):
    """Record an unexpected failure on the runs this process still holds."""
    from .models import ProbeRun

    try:
        ProbeRun.objects.filter(claimed_by=token, status=RunStatus.RUNNING).update(
            status=RunStatus.ERROR, error=message[:2000], traceback=tb, passed=None,
            finished_at=timezone.now(), claimed_by="",
        )
    except DatabaseError:
        log.exception("could not record a rerun failure")


def finish_rerun_if_complete(rerun_id):
    """When every run of the rerun is finished: mark the rerun finished (once, whichever
    chunk gets there first), hand over to remediation (evaluations, regressions), and
    run the rerun's probes on the newest version where they have not run yet.
    True when this call finished it."""
    from .models import ProbeRun, Rerun

    unfinished = ProbeRun.objects.filter(rerun_id=rerun_id).exclude(
        status__in=FINISHED_RUN_STATUSES
    )
    if unfinished.exists():
        return False
    if Rerun.objects.filter(pk=rerun_id, finished_at=None).update(finished_at=timezone.now()):
        _forget(rerun_id)
        rerun_finished.send(sender=Rerun, rerun_id=rerun_id)
        Rerun.objects.select_related("model_version__ml_model").get(pk=rerun_id).catch_up()
        return True
    return False


# Per worker process: the model and the datasets' predictions of the rerun in progress,
# so that the chunks of one rerun predict once per (rerun, dataset) in each process.
_cache = {"key": None, "model": None, "data": {}}
CACHED_DATASETS = 2


def _forget(rerun_id=None):
    if rerun_id is None or (_cache["key"] or (None,))[0] == rerun_id:
        _cache.update(key=None, model=None, data={})


def _cached_model(rerun):
    from boundary import artifacts

    version = rerun.model_version
    key = (rerun.pk, rerun.created_at, version.artifact_sha256)
    if _cache["key"] != key:
        _cache.update(key=key, model=None, data={})
    if _cache["model"] is None:
        # Looked up at call time: the hash is checked, the skops allow-list applied.
        _cache["model"] = artifacts.load_model(
            version.artifact.path,
            expected_sha256=version.artifact_sha256,
            trusted_types=trusted_types(),
            allow_pickle=settings.ALLOW_PICKLE_ARTIFACTS,
        )
    return _cache["model"]


def _cached_data(model, dataset):
    """(frame, predictions, or the reason predicting failed) for a dataset of the rerun."""
    from boundary import engine
    from boundary.artifacts import check_feature_columns

    if dataset.pk not in _cache["data"]:
        frame = dataset.read()
        check_feature_columns(model, dataset.feature_columns)
        features = engine.model_features(
            model, frame, dataset.target_column, dataset.ignored_columns
        )
        try:
            predictions = engine.predict(
                model, features, chunk_rows=settings.PREDICT_CHUNK_ROWS
            )
            failure = None
        except Exception as exc:  # recorded on every run, as the engine does
            predictions = None
            failure = f"predicting on the dataset failed: {type(exc).__name__}: {exc}"
        while len(_cache["data"]) >= CACHED_DATASETS:
            _cache["data"].pop(next(iter(_cache["data"])))
        _cache["data"][dataset.pk] = (frame, predictions, failure)
    return _cache["data"][dataset.pk]


def _lineage_base(version):
    from registry.models import capture_environment

    env = capture_environment()
    return {
        "artifact_sha256": version.artifact_sha256,
        "python": env["python"],
        "scikit-learn": env["scikit-learn"],
        "numpy": env["numpy"],
        "pandas": env["pandas"],
    }


def _finish(run, token, **fields):
    """Store a finished run if this process still holds its claim."""
    fields.setdefault("finished_at", timezone.now())
    fields["claimed_by"] = ""
    type(run).objects.filter(pk=run.pk, claimed_by=token).update(**fields)


def _fail_runs(runs, token, message, tb=""):
    for run in runs:
        _finish(run, token, status=RunStatus.ERROR, error=message[:2000], traceback=tb,
                passed=None)


def _baseline_values(probes):
    """The value of each probe on its finding's discovery version (for the
    no-worse-than-baseline comparator), from the newest finished run there."""
    from .models import ProbeRun

    wanted = {p.pk: p.finding.model_version_id for p in probes if p.finding.model_version_id}
    values = {}
    if not wanted:
        return values
    runs = ProbeRun.objects.filter(
        probe_id__in=wanted,
        model_version_id__in=set(wanted.values()),
        status__in=FINISHED_RUN_STATUSES,
        value__isnull=False,
    ).order_by("-finished_at", "-pk")
    for run in runs.values("probe_id", "model_version_id", "value"):
        if wanted.get(run["probe_id"]) == run["model_version_id"]:
            values.setdefault(run["probe_id"], run["value"])
    return values


def _evaluate_claimed(rerun, run_ids, token, progress=None):
    """Evaluate the claimed runs.

    1. Load the artifact once per (rerun, process) (hash checked, skops allow-list); a load
       failure is an error on each run, with the reason.
    2. Group the runs by dataset; read each dataset (hash checked) and predict once per
       (rerun, dataset, process); store each result as it arrives.
    """
    from boundary.artifacts import ArtifactError

    from .models import ProbeRun

    runs = list(
        ProbeRun.objects.filter(pk__in=run_ids, claimed_by=token, status=RunStatus.RUNNING)
        .select_related("probe__dataset", "probe__finding")
        .order_by("pk")
    )
    if not runs:
        return
    version = rerun.model_version
    tick = _progress_counter(len(runs), progress)
    try:
        model = _cached_model(rerun)
    except (ArtifactError, OSError) as exc:
        _fail_runs(runs, token, f"artifact could not be loaded: {exc}")
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
        by_dataset[run.probe.dataset_id].append(run)
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
    from boundary import engine

    ProbeRun = type(runs[0])
    dataset = runs[0].probe.dataset
    try:
        frame, predictions, failure = _cached_data(model, dataset)
    except DATABASE_GONE:
        raise
    except Exception as exc:  # missing file, hash mismatch, columns the model lacks
        _fail_runs(runs, token, str(exc), traceback.format_exc())
        tick(len(runs))
        return
    if failure:
        _fail_runs(runs, token, failure)
        tick(len(runs))
        return
    # The engine's order (model-calling probes first, each group in the given order):
    # the run after the last stored one is the probe in progress.
    runs = sorted(runs, key=lambda r: r.probe.kind not in MODEL_CALLING_KINDS)
    following = {a.pk: b.pk for a, b in zip(runs, runs[1:], strict=False)}
    baselines = _baseline_values([r.probe for r in runs])
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
        )
        for run in runs
    ]
    base = dict(lineage, dataset_sha256=dataset.sha256)
    stored = set()

    def mark_started(run_id):
        ProbeRun.objects.filter(pk=run_id, claimed_by=token).update(started_at=timezone.now())

    def store(result):
        run = by_key[result.key]
        now = timezone.now()
        with transaction.atomic():
            _finish(
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
            chunk_rows=settings.PREDICT_CHUNK_ROWS,
        )
    except DATABASE_GONE:
        raise
    except Exception as exc:  # a failure of the whole batch
        unfinished = [r for r in runs if r.pk not in stored]
        _fail_runs(unfinished, token, f"evaluation failed: {exc}", traceback.format_exc())
        tick(len(unfinished))
    log.info(
        "rerun on %s: %d probes on %s in %.2fs",
        version,
        len(runs),
        dataset,
        time.perf_counter() - t0,
    )


def trusted_types():
    from boundary.artifacts import DEFAULT_TRUSTED_TYPES

    return list(DEFAULT_TRUSTED_TYPES) + list(settings.SKOPS_EXTRA_TRUSTED_TYPES)


def nightly_rerun():
    """Rerun every active probe on the latest version of each ML model."""
    from registry.models import MLModel

    from .models import Rerun

    queued = []
    for ml_model in MLModel.objects.all():
        latest = ml_model.latest_version
        if latest is not None:
            with transaction.atomic():
                queued.append(Rerun.queue(latest, trigger=Trigger.SCHEDULE, label="schedule").pk)
    return queued
