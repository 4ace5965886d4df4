"""Two worker clusters (separate qcluster processes with their own environment, standing
in for two machines) share a Redis broker and PostgreSQL: a rerun split into chunks is
shared between them, and no probe runs twice. benchmarks/scale_out.py measures the
speed-up; this is its short, asserting form."""

import time
from collections import Counter

import pytest

from probes.models import ProbeRun, Rerun
from registry.models import ModelVersion

from . import processes
from . import test_faults as faults
from .factories import fitted_model, skops_upload
from .test_faults import make_workload, needs_postgres, reference_values, wait_for

# The fault tests' fixtures: worker environment, started processes, their logs.
cluster_env, started, log_dir = faults.cluster_env, faults.started, faults.log_dir

pytestmark = [pytest.mark.django_db(transaction=True), needs_postgres]


@pytest.fixture
def redis_broker(monkeypatch):
    yield from faults.redis_queue(monkeypatch)


@pytest.mark.slow
def test_two_clusters_share_a_rerun_and_no_probe_runs_twice(
    people, ml_model, cluster_env, started, log_dir, redis_broker, settings
):
    dataset, finding, probes, v1 = make_workload(
        people, ml_model, rows=10_000, cheap=100, perturbation=20, repeats=20
    )
    reference = reference_values(ml_model, people)
    settings.RERUN_CHUNK_SIZE = 10
    clusters = []
    for name in ("machine-a", "machine-b"):
        env = cluster_env(Q_WORKERS=1, RERUN_CHUNK_SIZE=10, **redis_broker)
        clusters.append(processes.qcluster(name, env, log_dir))
    started.extend(clusters)
    t0 = time.monotonic()
    version = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        by=people["maintainer"],
        artifact=skops_upload(fitted_model()),
    )
    rerun = Rerun.objects.get(model_version=version)
    wait_for(lambda: Rerun.objects.get(pk=rerun.pk).finished_at, 120, "the rerun to finish")
    elapsed = time.monotonic() - t0
    runs = list(ProbeRun.objects.filter(model_version=version))
    # One run per probe, each claimed and evaluated once, with the clean run's outcome.
    assert Counter(r.probe_id for r in runs) == Counter(p.pk for p in probes)
    assert all(r.attempts == 1 for r in runs)
    for run in runs:
        assert (run.status, run.value) == pytest.approx(reference[run.probe_id])
    # Both "machines" evaluated a share of the chunks.
    pids = Counter(int(r.lineage["worker"].rsplit(":", 2)[1]) for r in runs)
    shares = {c.name: sum(n for pid, n in pids.items() if c.owns(pid)) for c in clusters}
    assert sum(shares.values()) == len(probes)
    assert all(n >= 10 for n in shares.values()), shares
    print(f"{len(probes)} probes in {elapsed:.1f}s, runs per cluster: {shares}")
