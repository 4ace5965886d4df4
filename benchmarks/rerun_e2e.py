"""End to end: registering a model version until all its probe runs are stored, with one
real worker, against the probe engine alone.

The data and probes of benchmarks/probe_engine.py: a 100,000-row table (stored as
Parquet), a scikit-learn Pipeline ending in HistGradientBoostingClassifier (stored as
skops), 100 prediction-only probes of mixed kinds and slices plus 10 perturbation /
counterfactual probes, all active on one finding.

engine = evaluate_probes over the 110 probes, from the loaded model and the dataset in
         memory (one thread), median of --repeats runs in this process
end-to-end = from ModelVersion.register() (artifact stored and hashed, rerun queued on
         commit) until the rerun is finished: one `manage.py qcluster` with one worker
         (one thread) takes the chunk tasks from the broker, loads and checks the artifact,
         reads and checks the dataset, predicts once, evaluates, stores 110 runs, hands
         over to remediation. Median of --repeats registrations after one warm-up.

The last line printed is the ratio end-to-end / engine (target <= 1.5).

Run: .venv/bin/python benchmarks/rerun_e2e.py [--broker redis|orm] [--repeats 3]
Needs PostgreSQL (--database-url; that database is dropped and created) and, with the
Redis broker, Redis (--redis-url, database 15 by default, which is flushed).
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

from scale_out import recreate_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://boundary_dev:dev@127.0.0.1:5432/bench_rerun_e2e"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--broker", choices=["redis", "orm"], default="redis")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--log-dir", default=str(ROOT / "var" / "bench-rerun-e2e"))
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    redis_url = args.redis_url if args.broker == "redis" else ""
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    recreate_database(args.database_url)
    media = tempfile.mkdtemp(prefix="bench-rerun-e2e-media-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=args.database_url,
        REDIS_URL=redis_url,
        MEDIA_ROOT=media,
        TASKS_SYNC="0",
        LOG_LEVEL="WARNING",
        OMP_NUM_THREADS="1",
    )
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django_q.models import Schedule
    from probe_engine import make_dataset, make_model, model_probes, prediction_probes
    from threadpoolctl import threadpool_limits

    from boundary.artifacts import dump_skops, load_model
    from boundary.engine import evaluate_probes
    from catalog.models import Finding
    from probes.evaluation import trusted_types
    from probes.models import Probe, Rerun
    from registry.models import Dataset, MLModel, ModelVersion
    from tests import processes

    call_command("migrate", verbosity=0)
    Schedule.objects.all().delete()  # only the benchmark's reruns
    admin = User.objects.create_superuser("bench", "bench@example.com", "bench-password")
    frame = make_dataset(args.rows)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    dataset = Dataset.create_from_upload(
        ContentFile(buffer.getvalue(), name="bench.parquet"),
        name="bench",
        target_column="y",
        by=admin,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-rerun-e2e-"))
    artifact = tmp / "model.skops"
    dump_skops(make_model(frame), artifact)
    ml_model = MLModel.objects.create(name="bench-model")
    first = ModelVersion.register(
        ml_model=ml_model,
        version="1",
        by=admin,
        enqueue=False,
        artifact=ContentFile(artifact.read_bytes(), name="model.skops"),
    )
    finding = Finding.objects.create(
        title="Benchmark finding",
        summary="Probes for the end-to-end benchmark.",
        ml_model=ml_model,
        model_version=first,
        dataset=dataset,
        severity="low",
        risk_category="other",
        owner=admin,
        reporter=admin,
    )
    specs = prediction_probes(frame) + model_probes()
    probes = []
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
        probes.append(probe)
    Probe.objects.bulk_create(probes)

    # engine: the stored model and dataset, loaded as a worker loads them.
    model = load_model(
        first.artifact.path, expected_sha256=first.artifact_sha256, trusted_types=trusted_types()
    )
    table = dataset.read()
    engines = []
    with threadpool_limits(1):
        for _ in range(args.repeats):
            started = time.perf_counter()
            evaluate_probes(model, table, "y", specs)
            engines.append(time.perf_counter() - started)

    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = processes.child_env(
        args.database_url,
        media,
        REDIS_URL=redis_url or None,
        Q_WORKERS=1,
        Q_TIMEOUT=600,
        Q_RETRY=720,
        LOG_LEVEL="INFO",
    )
    worker = processes.qcluster("worker", env, log_dir)

    def register(name):
        started = time.perf_counter()
        version = ModelVersion.register(
            ml_model=ml_model,
            version=name,
            by=admin,
            artifact=ContentFile(artifact.read_bytes(), name="model.skops"),
        )
        rerun = Rerun.objects.get(model_version=version)
        while Rerun.objects.filter(pk=rerun.pk, finished_at=None).exists():
            time.sleep(0.01)
            if time.perf_counter() - started > 600:
                raise TimeoutError(f"version {name}: the rerun did not finish in 600 s")
        elapsed = time.perf_counter() - started
        runs = rerun.progress()
        assert runs["done"] == len(specs) and runs["counts"].get("error", 0) == 0, runs
        return elapsed

    try:
        register("warm-up")
        e2e = [register(f"2.{i}") for i in range(args.repeats)]
    finally:
        worker.stop()
    engine, end_to_end = statistics.median(engines), statistics.median(e2e)
    print(
        f"rows: {args.rows:,}; probes: {len(specs)} (100 prediction-only, 10 model-calling); "
        f"broker: {args.broker}; one worker, one thread"
    )
    print(f"engine runs:      {', '.join(f'{t:.3f}' for t in engines)} s")
    print(f"end-to-end runs:  {', '.join(f'{t:.3f}' for t in e2e)} s")
    print(f"engine (median):     {engine:.3f} s")
    print(f"end-to-end (median): {end_to_end:.3f} s")
    print(f"ratio end-to-end/engine: {end_to_end / engine:.3f}")


if __name__ == "__main__":
    main()
