"""Claims: which worker process evaluates which probe run, and what happens to the runs of
a worker that stopped.

Every delivery of a chunk first claims its runs (status `running`, the worker's identity,
the time): a run is evaluated only by the process that holds its claim, and a finished run
is never evaluated again. A retried, duplicated or re-enqueued task therefore never
evaluates a run twice at once, and never adds a run (the rows are unique per probe,
version and rerun).

- A claim is dead when its process is gone (checked on the same host, through /proc),
  or when it is older than the task time limit plus LEASE_MARGIN_S (any host: django-q2
  stops a task at its time limit). A worker that dies (kill -9, out of memory) leaves a
  dead claim; the next worker spawned on that host, the next delivery of a task that
  lists the run, or the sweeper (every minute) releases it: the probe that was being
  evaluated goes back to the queue, or becomes an error once it has been tried
  Q_MAX_ATTEMPTS times; the other runs of the claim go back to the queue.
- A result is stored only while its process still holds the claim (finish_claimed).
"""

import logging
import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Max
from django.db.models.functions import Greatest
from django.utils import timezone

from . import tasks  # a cycle by design: tasks imports claims; used at call time only
from .choices import RunStatus
from .models import ProbeRun

log = logging.getLogger(__name__)

# A claim older than the task time limit plus this margin has no live owner: django-q2's
# guard stops a worker 3 s after the limit, and clocks of several machines may differ.
LEASE_MARGIN_S = 15


def time_limit():
    return int(settings.Q_CLUSTER.get("timeout") or 600)


def max_attempts():
    return max(1, int(settings.Q_CLUSTER.get("max_attempts") or 3))


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
    lease = timedelta(seconds=time_limit() + LEASE_MARGIN_S)
    return claimed_at is None or now - claimed_at > lease


def release_claim(token, *, timed_out=False, now=None):
    """Settle the unfinished runs of a claim whose owner stopped; return the run ids that
    went back to the queue.

    The probe in progress (the claim's one run with `started_at`) is blamed: an error when
    the time limit cut it after at least half the limit, or when it has been tried
    Q_MAX_ATTEMPTS times; else it is queued again. The runs it had not reached are queued
    again, their attempt refunded. A claim that stopped before any probe started (while
    loading the model, reading the dataset or predicting) blames all its runs.
    """

    now = now or timezone.now()
    limit = time_limit()
    with transaction.atomic():
        runs = list(
            ProbeRun.objects.select_for_update()
            .filter(claimed_by=token, status=RunStatus.RUNNING)
            .order_by("pk")
        )
        if not runs:
            return []
        claimed_at = max((r.claimed_at for r in runs if r.claimed_at), default=None)
        timed_out = timed_out or bool(claimed_at and (now - claimed_at).total_seconds() >= limit)
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
            elif run.attempts >= max_attempts():
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
                status=RunStatus.ERROR,
                error=message,
                passed=None,
                finished_at=now,
                claimed_by="",
            )
        back = {"status": RunStatus.QUEUED, "claimed_by": "", "started_at": None}
        ProbeRun.objects.filter(pk__in=requeued).update(**back)
        ProbeRun.objects.filter(pk__in=refunded).update(
            attempts=Greatest(F("attempts") - 1, 0), **back
        )
    if errors:
        log.warning("claim %s released: %d run(s) marked error", token, len(errors))
    from .tasks import finish_rerun_if_complete  # the task layer, above this module

    for rerun_id in {r.rerun_id for r in runs if r.pk in errors}:
        finish_rerun_if_complete(rerun_id)
    return requeued + refunded


def claim_runs(run_ids, *, token=None, takeover=False):
    """Claim the runs among `run_ids` that nobody is evaluating; return their ids.

    Dead claims on these runs are released first (see release_claim). With `takeover`,
    this process's own earlier claims on them count as dead too (a chunk that resumes
    after a database outage).
    """

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
            released += release_claim(owner, now=now)
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

    tasks.enqueue_runs(sorted(set(released) - set(run_ids)))
    return claimable


def recover_dead_claims(*, local_only=False):
    """Release every dead claim (only those of this host's processes with `local_only`)
    and queue their runs again. Returns the number of runs queued again."""

    now = timezone.now()
    rows = (
        ProbeRun.objects.filter(status=RunStatus.RUNNING)
        .values("claimed_by")
        .annotate(at=Max("claimed_at"))
    )
    requeued = []
    for row in rows:
        if claim_is_dead(row["claimed_by"], row["at"], now, local_only=local_only):
            requeued += release_claim(row["claimed_by"], now=now)

    tasks.enqueue_runs(requeued)
    return len(requeued)


def finish_claimed(run, token, **fields):
    """Store a finished run if this process still holds its claim."""
    fields.setdefault("finished_at", timezone.now())
    fields["claimed_by"] = ""
    type(run).objects.filter(pk=run.pk, claimed_by=token).update(**fields)


def fail_runs(runs, token, message, tb=""):
    for run in runs:
        finish_claimed(
            run, token, status=RunStatus.ERROR, error=message[:2000], traceback=tb, passed=None
        )


def fail_claimed(token, message, tb=""):
    """Record an unexpected failure on the runs this process still holds."""

    try:
        ProbeRun.objects.filter(claimed_by=token, status=RunStatus.RUNNING).update(
            status=RunStatus.ERROR,
            error=message[:2000],
            traceback=tb,
            passed=None,
            finished_at=timezone.now(),
            claimed_by="",
        )
    except DatabaseError:
        log.exception("could not record a rerun failure")
