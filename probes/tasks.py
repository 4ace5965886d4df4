"""Background work: rerunning probes on a model version (django-q2). The task entry points
live here; stored schedules and queued tasks name them by path (`probes.tasks.run_chunk`,
`nightly_rerun`, `sweep_runs`, `run_rerun`, `enqueue_rerun`, `on_worker_spawn`).

A rerun's ProbeRun rows are created when it is queued (see Rerun.queue); the work goes to
the workers in chunks, one task per chunk of runs on one dataset, so that the workers of
several machines share a large rerun. Tasks are plain functions taking primary keys.
Each delivery claims its runs first (probes/claims.py), then evaluates them
(probes/evaluation.py).

Failures.
- A worker that dies leaves a dead claim, released by the next worker spawned on its
  host, the next delivery that lists the run, or the sweeper (see probes/claims.py).
- The task time limit (Q_TIMEOUT) cuts a chunk that runs too long: the probe being
  evaluated is marked error ("timed out") when it had at least half the limit to itself,
  and the rest of the chunk is queued again.
- A database outage makes a chunk wait for the database (up to half the time limit) and
  go on where it stopped; the runs it had finished are kept.
"""

import logging
import threading
import time
import traceback
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from registry.models import Deployment, MLModel

from .choices import FINISHED_RUN_STATUSES, RunStatus, Trigger
from .claims import (
    claim_runs,
    fail_claimed,
    recover_dead_claims,
    release_claim,
    time_limit,
    worker_token,
)
from .evaluation import DATABASE_GONE, evaluate_claimed, forget
from .evaluation import trusted_types as trusted_types  # introspection loads with them too
from .models import ProbeRun, Rerun
from .signals import rerun_finished

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Enqueueing
# --------------------------------------------------------------------------------------


SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def plan_chunks(runs, size=None):
    """Split (run id, dataset id[, severity]) tuples into chunks of at most `size` runs of
    one dataset, in the order the workers should take them.

    1. Runs of critical findings come first, then high, medium, low (the priority of
       DESIGN.md: within a rerun, severity decides).
    2. Within a severity, each dataset's runs are dealt round-robin into ceil(n / size)
       chunks, so that expensive probe kinds (created together) spread evenly.
    """
    size = max(1, int(size or settings.RERUN_CHUNK_SIZE))
    tiers = defaultdict(lambda: defaultdict(list))
    for run_id, dataset_id, *severity in sorted(runs):
        rank = SEVERITY_ORDER.get(severity[0], len(SEVERITY_ORDER)) if severity else 0
        tiers[rank][dataset_id].append(run_id)
    chunks = []
    for rank in sorted(tiers):
        for ids in tiers[rank].values():
            count = -(-len(ids) // size)
            chunks += [ids[i::count] for i in range(count)]
    return chunks


def enqueue_rerun(rerun_id):
    """Hand a rerun's unfinished runs to the workers, one task per chunk (inline when
    TASKS_SYNC is on). A rerun without runs still gets one task, which finishes it."""

    runs = (
        ProbeRun.objects.filter(rerun_id=rerun_id)
        .exclude(status__in=FINISHED_RUN_STATUSES)
        .values_list("pk", "dataset_id", "probe__finding__severity")
    )
    chunks = plan_chunks(runs) or [[]]
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


def enqueue_runs(run_ids):
    """Queue chunk tasks for runs that went back to the queue (any reruns)."""

    if not run_ids:
        return
    by_rerun = defaultdict(list)
    rows = ProbeRun.objects.filter(pk__in=run_ids, status=RunStatus.QUEUED).values_list(
        "rerun_id", "pk", "dataset_id"
    )
    for rerun_id, run_id, dataset_id in rows:
        by_rerun[rerun_id].append((run_id, dataset_id))
    for rerun_id, pairs in by_rerun.items():
        for chunk in plan_chunks(pairs):
            _enqueue_chunk(rerun_id, chunk)


def nightly_versions():
    """The versions the nightly rerun covers, in the order it queues them: every version
    that serves somewhere now (production first, then the other environments by name),
    then each ML model's newest version that serves nowhere."""

    ordered = []
    current = (
        Deployment.objects.current()
        .select_related("model_version")
        .order_by("environment", "since", "pk")
    )
    deployed = sorted(current, key=lambda d: (d.environment != "production", d.environment))
    for deployment in deployed:
        if deployment.model_version not in ordered:
            ordered.append(deployment.model_version)
    for ml_model in MLModel.objects.order_by("name"):
        latest = ml_model.latest_version
        if latest is not None and latest not in ordered:
            ordered.append(latest)
    return ordered


def nightly_rerun():
    """Rerun every active probe on the nightly versions (deployed ones first); returns the
    reruns' ids in the order they were queued."""

    queued = []
    for version in nightly_versions():
        with transaction.atomic():
            queued.append(Rerun.queue(version, trigger=Trigger.SCHEDULE, label="schedule").pk)
    return queued


# --------------------------------------------------------------------------------------
# Dead claims
# --------------------------------------------------------------------------------------


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

    requeued = recover_dead_claims()
    stale = timezone.now() - timedelta(seconds=int(settings.Q_CLUSTER.get("retry") or 720))
    waiting = list(
        ProbeRun.objects.filter(status=RunStatus.QUEUED, created_at__lt=stale)
        .filter(Q(claimed_at=None) | Q(claimed_at__lt=stale))
        .values_list("pk", flat=True)
    )
    lost = 0
    if waiting and _broker_is_empty():
        enqueue_runs(waiting)
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

    token = worker_token()
    try:
        _with_database_retries(
            lambda takeover: evaluate_claimed(
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
        fail_claimed(token, f"the rerun task failed: {exc}", traceback.format_exc())
        raise
    return finish_rerun_if_complete(rerun_id)


def run_rerun(rerun_id, progress=None):
    """Evaluate every unfinished run of a rerun in this process (run_probes --sync),
    with the same claims as the workers; `progress(done, total)` after each probe."""

    token = worker_token()
    rerun = Rerun.objects.select_related("model_version__ml_model").get(pk=rerun_id)
    unfinished = (
        ProbeRun.objects.filter(rerun=rerun)
        .exclude(status__in=FINISHED_RUN_STATUSES)
        .values_list("pk", flat=True)
    )
    claimed = claim_runs(list(unfinished), token=token)
    try:
        evaluate_claimed(rerun, claimed, token, progress=progress)
    except Exception as exc:
        fail_claimed(token, f"the rerun failed: {exc}", traceback.format_exc())
        raise
    finish_rerun_if_complete(rerun_id)
    return rerun.progress()


def _with_database_retries(work):
    """Run work(takeover); when the database goes away, wait for it (up to half the task
    time limit) and run it again, taking over this process's own claims."""
    deadline = time.monotonic() + time_limit() / 2
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
        enqueue_runs(release_claim(token, timed_out=True))
    except Exception:
        log.exception("could not settle the runs of a chunk past its time limit")


def finish_rerun_if_complete(rerun_id):
    """When every run of the rerun is finished: mark the rerun finished (once, whichever
    chunk gets there first), hand over to remediation (evaluations, regressions), and
    run the rerun's probes on the newest version where they have not run yet.
    True when this call finished it."""

    unfinished = ProbeRun.objects.filter(rerun_id=rerun_id).exclude(
        status__in=FINISHED_RUN_STATUSES
    )
    if unfinished.exists():
        return False
    if Rerun.objects.filter(pk=rerun_id, finished_at=None).update(finished_at=timezone.now()):
        forget(rerun_id)
        rerun_finished.send(sender=Rerun, rerun_id=rerun_id)
        Rerun.objects.select_related("model_version__ml_model").get(pk=rerun_id).catch_up()
        return True
    return False
