"""Scale-out: one worker cluster against two, sharing Redis and PostgreSQL.

Two `manage.py qcluster` processes, each with its own environment and one worker (one
core each: OMP/BLAS threads 1), stand in for two worker machines. They share a Redis
broker (a dedicated database number) and a PostgreSQL database created for the run.

The table of benchmarks/probe_engine.py (100,000 rows, numeric and categorical columns),
a scikit-learn Pipeline ending in HistGradientBoostingClassifier, and 500 probes: 460
prediction-only probes of mixed kinds and slices, 40 perturbation / counterfactual probes.
A rerun is split into chunks of RERUN_CHUNK_SIZE probes (one task each); each worker
predicts once per (rerun, dataset) and evaluates the chunks it takes.

Measured: the wall time from queuing a rerun to its last run stored, with one cluster
running and then with both (the clusters are started beforehand; --repeats alternating
measurements, medians). Checked: every probe has exactly one run per rerun, each claimed
once (attempts == 1), and with two clusters both did work. The last line printed is the
speed-up (one cluster's wall time / two clusters').

Run: .venv/bin/python benchmarks/scale_out.py [--probes 500] [--rows 100000] [--repeats 2]
Needs PostgreSQL (--database-url, default the local development server; the database
named there is dropped and created) and Redis (--redis-url, database 14 by default, which
is flushed).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DEFAULT_DATABASE_URL = "postgres://boundary_dev:dev@127.0.0.1:5432/bench_scale_out"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument(
        "--model-calling",
        type=int,
        default=None,
        help="perturbation/counterfactual probes among them (default 8%%)",
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=25, help="RERUN_CHUNK_SIZE")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--log-dir", default=str(ROOT / "var" / "bench-scale-out"))
    return parser.parse_args(argv)


def recreate_database(url: str) -> None:
    """Drop and create the benchmark's database (connecting to the server's `postgres`)."""
    from urllib.parse import unquote, urlparse

    import psycopg2

    parsed = urlparse(url)
    name = unquote(parsed.path.lstrip("/"))
    conn = psycopg2.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=unquote(parsed.username or ""),
        password=unquote(parsed.password or ""),
        dbname="postgres",
    )
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def setup_django(database_url: str, redis_url: str, media_root: str, chunk: int) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        MEDIA_ROOT=media_root,
        TASKS_SYNC="0",
        RERUN_CHUNK_SIZE=str(chunk),
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()


def populate(rows: int, probes: int, model_calling: int):
    """The ML model, its version 1, the dataset and the probes; returns (version, probes)."""
    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from probe_engine import make_dataset, make_model, model_probes, prediction_probes

    from boundary.artifacts import dump_skops
    from catalog.models import Finding
    from probes.models import Probe
    from registry.models import Dataset, MLModel, ModelVersion

    admin = User.objects.create_superuser("bench", "bench@example.com", "bench-password")
    frame = make_dataset(rows)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    dataset = Dataset.create_from_upload(
        ContentFile(buffer.getvalue(), name="bench.parquet"),
        name="bench",
        target_column="y",
        by=admin,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.skops"
        dump_skops(make_model(frame), path)
        ml_model = MLModel.objects.create(name="bench-model")
        version = ModelVersion.register(
            ml_model=ml_model,
            version="1",
            by=admin,
            enqueue=False,
            artifact=ContentFile(path.read_bytes(), name="model.skops"),
        )
    finding = Finding.objects.create(
        title="Benchmark finding",
        summary="Probes for the scale-out benchmark.",
        ml_model=ml_model,
        model_version=version,
        dataset=dataset,
        severity="low",
        risk_category="other",
        owner=admin,
        reporter=admin,
    )
    specs = prediction_probes(frame, count=probes - model_calling)
    calling = []
    while len(calling) < model_calling:
        for spec in model_probes():
            if spec.kind == "perturbation_flip_rate":
                spec.params = dict(spec.params, seed=len(calling))
            calling.append(spec)
    specs += calling[:model_calling]
    rows_ = []
    for spec in specs:
        probe = Probe(
            finding=finding,
            dataset=dataset,
            kind=spec.kind,
            slice=spec.slice,
            params=spec.params,
            comparator=spec.comparator,
            threshold=spec.threshold,
        )
        probe.full_clean()
        rows_.append(probe)
    Probe.objects.bulk_create(rows_)
    return version, len(rows_)


def timed_rerun(version, label: str, timeout: float = 900) -> tuple[float, object]:
    """Queue a rerun of every active probe and wait for it; (seconds, rerun)."""
    from django.db import transaction

    from probes.models import Rerun

    started = time.perf_counter()
    with transaction.atomic():
        rerun = Rerun.queue(version, trigger="manual", label=label)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rerun.refresh_from_db(fields=["finished_at"])
        if rerun.finished_at is not None:
            return time.perf_counter() - started, rerun
        time.sleep(0.05)
    raise TimeoutError(f"{label}: the rerun did not finish within {timeout}s")


def check_rerun(rerun, probe_count: int, clusters) -> dict:
    """Exactly one run per probe, each claimed once; which cluster evaluated how many."""
    from collections import Counter

    from probes.models import ProbeRun

    runs = list(
        ProbeRun.objects.filter(rerun=rerun).values("probe_id", "status", "attempts", "lineage")
    )
    probes = Counter(r["probe_id"] for r in runs)
    assert len(probes) == probe_count, f"{probe_count - len(probes)} probes without a run"
    assert max(probes.values()) == 1, "a probe has two runs in one rerun"
    assert all(r["attempts"] == 1 for r in runs), "a run was claimed more than once"
    errors = [r for r in runs if r["status"] == "error"]
    assert not errors, f"{len(errors)} runs in error"
    by_cluster = Counter()
    for run in runs:
        pid = int(run["lineage"]["worker"].rsplit(":", 2)[1])
        owner = next((c.name for c in clusters if c.owns(pid)), "another process")
        by_cluster[owner] += 1
    return dict(by_cluster)


def main(argv=None) -> None:
    args = parse_args(argv)
    import redis

    from tests import processes

    redis.Redis.from_url(args.redis_url).flushdb()
    recreate_database(args.database_url)
    media = tempfile.mkdtemp(prefix="bench-scale-out-media-")
    setup_django(args.database_url, args.redis_url, media, args.chunk)
    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("migrate", verbosity=0)
    Schedule.objects.all().delete()  # only the benchmark's reruns
    model_calling = args.model_calling if args.model_calling is not None else args.probes * 2 // 25
    t0 = time.perf_counter()
    version, probe_count = populate(args.rows, args.probes, model_calling)
    print(
        f"rows: {args.rows:,}; probes: {probe_count} ({probe_count - model_calling} "
        f"prediction-only, {model_calling} model-calling); chunk size: {args.chunk} "
        f"(set up in {time.perf_counter() - t0:.1f}s)"
    )

    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "REDIS_URL": args.redis_url,
        "Q_WORKERS": 1,
        "RERUN_CHUNK_SIZE": args.chunk,
        "Q_TIMEOUT": 600,
        "Q_RETRY": 720,
        "LOG_LEVEL": "INFO",
    }
    first = processes.qcluster(
        "cluster-a", processes.child_env(args.database_url, media, **env), log_dir
    )
    clusters = [first]
    one, two = [], []
    try:
        # Warm up: the worker's first task pays for lazy imports and the first model load.
        timed_rerun(version, "warm-up")
        for i in range(args.repeats):
            seconds, rerun = timed_rerun(version, f"one cluster #{i + 1}")
            check_rerun(rerun, probe_count, clusters)
            one.append(seconds)
            print(f"one cluster, run {i + 1}: {seconds:.2f} s")
        second = processes.qcluster(
            "cluster-b", processes.child_env(args.database_url, media, **env), log_dir
        )
        clusters.append(second)
        timed_rerun(version, "warm-up b")
        for i in range(args.repeats):
            seconds, rerun = timed_rerun(version, f"two clusters #{i + 1}")
            shares = check_rerun(rerun, probe_count, clusters)
            assert len(shares) == 2, f"only {shares} did work"
            two.append(seconds)
            print(
                f"two clusters, run {i + 1}: {seconds:.2f} s; runs evaluated per cluster: "
                + ", ".join(f"{k} {v}" for k, v in sorted(shares.items()))
            )
    finally:
        processes.stop_all(clusters)
    t1, t2 = statistics.median(one), statistics.median(two)
    print("every probe: exactly one run per rerun, claimed once, no errors")
    print(f"one cluster (median):  {t1:.2f} s")
    print(f"two clusters (median): {t2:.2f} s ({t2 / t1:.0%} of one cluster's)")
    print(f"speed-up: {t1 / t2:.2f}x")


if __name__ == "__main__":
    main()
