"""Probe engine overhead against the unavoidable model work, and how both grow.

A 100,000-row table (numeric and categorical columns), a scikit-learn Pipeline
(ColumnTransformer + OneHotEncoder -> HistGradientBoostingClassifier) stored and loaded as
a skops artifact, 100 prediction-only probes of mixed kinds and slices and 10
perturbation / counterfactual probes.

floor    = one predict_proba over the dataset + one predict_proba per perturbation /
           counterfactual probe on exactly the rows it needs (frames built beforehand,
           outside the timing)
engine   = evaluate_probes over all 110 probes, predicting in calls of at most --chunk-rows
           rows (default boundary.predict.CHUNK_ROWS, the default of PREDICT_CHUNK_ROWS:
           the engine as the app runs it)
one call = the same with chunk_rows=0 (one predict_proba call per frame); its results must
           equal the engine's

Each figure is the median of several interleaved runs in this one process, in CPU seconds
(see the growth curves below for why). Peak memory is the tracemalloc peak of new
allocations during one evaluate_probes call (separate runs:
tracing slows Python down), compared with the size of the dataset plus the probabilities;
the model's own peak in one predict_proba over the dataset is printed too (tracemalloc
does not see pyarrow's buffers: the taken string columns of a probe's frame are left out
of the engine's figures, but counted in the floor's "+ its input frame").
The line "ratio engine/floor" closes this part.

Growth curves follow, with the same model and the same kinds of probes (each table's
predicates drawn from its own quantiles), each curve point in a process of its own that
loads the stored artifact, as a worker would (what one size leaves in the allocators is
not counted against the next):
* per table size (--sizes, default 100k, 1m and 10m rows; 5, 3 and 1 interleaved runs):
  the floor (the same rows predicted in calls of --chunk-rows rows, each frame built just
  before its call and dropped after, outside the timing), the engine, engine / floor
  (target <= 1.3), and the peak resident memory added during evaluate_probes (the
  process's high-water mark, reset before each run: it sees every allocation, pyarrow's
  and the model's included) over the dataset plus its probabilities (target <= 2.5x).
  Times are CPU seconds of this process (with one thread, the wall time of an idle
  machine, and much steadier on a busy one); the wall-clock ratio is printed beside.
* per probe count (--counts, default 100, 1,000 and 5,000 prediction-only probes per rerun
  on the 100,000-row table, each set the first probes of the next): evaluate_probes CPU
  time per probe, the shared predictions given as a worker gives them (target: flat within
  1.5x from the cheapest count to the dearest), and the peak memory added.
The last line says which target is missed, or which would break first.

Run: .venv/bin/python benchmarks/probe_engine.py [--threads N] [--chunk-rows N]
     [--sizes 100k,1m,10m] [--counts 100,1000,5000]
(default 1 thread for OpenMP/BLAS: on a shared 2-core machine, 2 OpenMP threads slow down
badly as soon as anything else runs, which drowns the comparison in noise; floor and engine
always run with the same setting). Everything takes about 13 minutes of one core (twice as
long on a busy machine), the 10m table two thirds of it, with at most about 3.5 GB of
memory; --sizes 100k,1m about 4 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import multiprocessing
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boundary.artifacts import dump_skops, load_model, sha256_of  # noqa: E402
from boundary.kinds import ProbeSpec, evaluate_probes  # noqa: E402
from boundary.predict import CHUNK_ROWS, model_features, predict, probabilities  # noqa: E402
from boundary.slices import mask as slice_mask  # noqa: E402

ROWS = 100_000
RUNS = 5
SIZES = "100k,1m,10m"
COUNTS = "100,1000,5000"
COUNT_RUNS = 3
# The growth curves' targets.
RATIO_TARGET = 1.3
PEAK_TARGET = 2.5
FLAT_TARGET = 1.5
NUMERIC = ["x0", "x1", "x2", "x3", "age", "income", "tenure", "balance"]
CATEGORICAL = ["region", "channel", "plan"]


def make_dataset(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(4)})
    df["age"] = rng.integers(18, 90, rows)
    df["income"] = rng.lognormal(10, 0.8, rows)
    df["tenure"] = rng.exponential(4.0, rows)
    df.loc[rng.random(rows) < 0.03, "tenure"] = np.nan
    df["balance"] = rng.normal(1000, 400, rows)
    df["region"] = rng.choice(["north", "south", "east", "west", "central"], rows)
    df["channel"] = rng.choice(["web", "store", "phone"], rows, p=[0.5, 0.3, 0.2])
    df["plan"] = rng.choice([f"p{i:02d}" for i in range(12)], rows)
    logit = (
        df.x0
        + 0.6 * df.x1 * df.x2
        - 0.03 * (df.age - 50)
        + 0.8 * (df.region == "north")
        - 0.6 * (df.channel == "phone")
        + 0.3 * np.log(df.income / 20000)
    )
    df["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def make_model(df: pd.DataFrame) -> Pipeline:
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL)],
        remainder="passthrough",
    )
    model = Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier(random_state=0))])
    sample = df.sample(20_000, random_state=1)
    return model.fit(sample.drop(columns="y"), sample.y)


def predicate_pool(df: pd.DataFrame) -> list[dict]:
    q = {c: df[c].quantile([0.1, 0.25, 0.5, 0.75, 0.9]).round(3).tolist() for c in NUMERIC}
    pool = []
    for c in NUMERIC:
        pool += [
            {"feature": c, "op": "<", "value": q[c][0]},
            {"feature": c, "op": ">=", "value": q[c][2]},
            {"feature": c, "op": ">", "value": q[c][4]},
            {"feature": c, "op": "between", "value": [q[c][1], q[c][3]]},
        ]
    pool += [
        {"feature": "tenure", "op": "is_null"},
        {"feature": "region", "op": "==", "value": "north"},
        {"feature": "region", "op": "!=", "value": "south"},
        {"feature": "region", "op": "in", "value": ["east", "west"]},
        {"feature": "channel", "op": "==", "value": "phone"},
        {"feature": "channel", "op": "not_in", "value": ["store"]},
        {"feature": "plan", "op": "in", "value": ["p01", "p02", "p03"]},
        {"feature": "plan", "op": "==", "value": "p07"},
    ]
    return pool


def prediction_probes(df: pd.DataFrame, count: int = 100, seed: int = 0) -> list[ProbeSpec]:
    """Mixed kinds on slices of 0-3 predicates drawn from a shared pool (so that the
    predicate cache sees realistic reuse)."""
    rng = np.random.default_rng(seed)
    pool = predicate_pool(df)
    metrics = ["accuracy", "precision", "recall", "f1", "roc_auc"]
    disparity = ["selection_rate", "tpr", "fpr", "error_rate"]
    kinds = [
        ("slice_error_rate", lambda i: {}, "<=", 0.3),
        ("slice_error_gap", lambda i: {"seed": i}, "<=", 0.05),
        ("margin_density", lambda i: {"margin": [0.1, 0.2][i % 2]}, "<=", 0.2),
        ("slice_metric", lambda i: {"metric": metrics[i % 5]}, ">=", 0.7),
        ("slice_ece", lambda i: {"bins": [10, 15][i % 2]}, "<=", 0.05),
        (
            "group_disparity",
            lambda i: {"group_feature": CATEGORICAL[i % 3], "metric": disparity[i % 4]},
            "<=",
            0.1,
        ),
    ]
    specs = []
    for i in range(count):
        kind, params, comparator, threshold = kinds[i % len(kinds)]
        size = int(rng.choice([0, 1, 1, 2, 2, 3]))
        slice_, used = [], set()
        for j in rng.permutation(len(pool)):
            # One predicate per column, so that no slice contradicts itself.
            if len(slice_) < size and pool[j]["feature"] not in used:
                slice_.append(pool[j])
                used.add(pool[j]["feature"])
        specs.append(ProbeSpec(i, kind, slice_, params(i // len(kinds)), comparator, threshold))
    return specs


def model_probes() -> list[ProbeSpec]:
    slices = [
        [{"feature": "age", "op": "<", "value": 25}],
        [
            {"feature": "region", "op": "==", "value": "north"},
            {"feature": "x0", "op": ">", "value": 0},
        ],
        [{"feature": "plan", "op": "in", "value": ["p01", "p02"]}],
        [
            {"feature": "channel", "op": "==", "value": "phone"},
            {"feature": "x1", "op": "<", "value": 0},
        ],
        [{"feature": "income", "op": ">", "value": 45000}],
    ]
    specs = []
    for i, slice_ in enumerate(slices):
        params = {"scale": [0.05, 0.1][i % 2], "seed": i}
        specs.append(
            ProbeSpec(f"perturb-{i}", "perturbation_flip_rate", slice_, params, "<=", 0.05)
        )
    changes = [
        {"region": {"set": "south"}},
        {"income": {"add": 10000}},
        {"channel": {"set": "web"}, "age": {"add": 5}},
        {"plan": {"set": "p00"}},
        {"x0": {"add": 0.5}},
    ]
    for i, (slice_, change) in enumerate(zip(slices, changes, strict=True)):
        specs.append(
            ProbeSpec(f"cf-{i}", "counterfactual_flip_rate", slice_, {"changes": change}, "<=", 0.1)
        )
    return specs


def floor_frame(df: pd.DataFrame, features: pd.DataFrame, spec: ProbeSpec) -> pd.DataFrame:
    """The exact frame a model-calling probe sends to predict_proba (built untimed)."""
    rows = np.flatnonzero(slice_mask(df, spec.slice))
    if spec.kind == "perturbation_flip_rate":
        repeats, names = 5, list(NUMERIC)
        stacked = np.tile(rows, repeats)
        frame = features.take(stacked)
        noise = np.random.default_rng(spec.params["seed"]).standard_normal(
            (stacked.size, len(names))
        )
        for j, name in enumerate(names):
            sd = spec.params["scale"] * features[name].std()
            frame[name] = features[name].to_numpy(dtype=float)[stacked] + noise[:, j] * sd
    else:
        frame = features.take(rows)
        for name, change in spec.params["changes"].items():
            if "add" in change:
                frame[name] = frame[name] + change["add"]
            else:
                frame[name] = change["set"]
    return frame


def floor_frames(df: pd.DataFrame, features: pd.DataFrame, specs: list[ProbeSpec]) -> list:
    """The exact frames the model-calling probes send to predict_proba, built untimed."""
    return [floor_frame(df, features, spec) for spec in specs]


def parse_rows(text: str) -> int:
    """'100k', '1m', '10m' or a plain number of rows."""
    text = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def rows_label(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    return f"{rows // 1_000}k" if rows % 1_000 == 0 else f"{rows:,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="OpenMP/BLAS threads")
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=CHUNK_ROWS,
        help=f"rows per predict_proba call of the engine and of the curves' floor "
        f"(default {CHUNK_ROWS:,}, as PREDICT_CHUNK_ROWS)",
    )
    parser.add_argument(
        "--sizes", default=SIZES, help=f"table sizes of the growth curve ({SIZES}; '': none)"
    )
    parser.add_argument(
        "--counts", default=COUNTS, help=f"probes per rerun of the per-probe curve ({COUNTS})"
    )
    args = parser.parse_args()
    sizes = [parse_rows(size) for size in args.sizes.split(",") if size.strip()]
    counts = [int(count) for count in args.counts.split(",") if count.strip()]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.skops"
        with threadpool_limits(args.threads):
            measure(args.threads, args.chunk_rows, path)
        # Each curve in a process of its own that loads the same artifact: what one table
        # size leaves behind in the allocators is not measured against the next.
        spawn = multiprocessing.get_context("spawn")
        points = []
        for rows in sizes:
            with spawn.Pool(1) as pool:
                points.append(
                    pool.apply(in_process, (size_point, path, args.threads, rows, args.chunk_rows))
                )
        per_probe = []
        if counts:
            with spawn.Pool(1) as pool:
                per_probe = pool.apply(
                    in_process, (probe_counts, path, args.threads, counts, args.chunk_rows)
                )
    report(points, per_probe, args.chunk_rows)
    print(f"benchmark time: {(time.perf_counter() - started) / 60:.1f} min")


def in_process(function, path: Path, threads: int, *args):
    """``function(model, *args)`` with the model loaded from ``path`` (in a spawned process)."""
    model = load_model(path, expected_sha256=sha256_of(path))
    with threadpool_limits(threads):
        return function(model, *args)


def _same(results, others) -> bool:
    fields = ("key", "status", "value", "ci_low", "ci_high", "support", "error", "details")
    return [[getattr(r, f) for f in fields] for r in results] == [
        [getattr(r, f) for f in fields] for r in others
    ]


def measure(threads: int, chunk_rows: int, path: Path) -> None:
    """Build, measure, print.

    1. Generate the dataset, fit the pipeline, store it as skops at ``path`` (the growth
       curves load it from there too) and load it back.
    2. Build the 110 probes and the floor's frames.
    3. Interleave RUNS floor, engine and one-call engine measurements; take medians.
    4. Traced runs for peak memory: the engine, the one-call engine, the floor's calls.
    """
    df = make_dataset()
    dump_skops(make_model(df), path)
    model = load_model(path, expected_sha256=sha256_of(path))
    features = df.drop(columns="y")
    specs = prediction_probes(df) + model_probes()
    frames = floor_frames(df, features, specs[100:])
    proba_bytes = len(df) * len(model.classes_) * 8
    data_bytes = int(df.memory_usage(deep=True).sum())

    floors, engines, whole_runs, results, whole_results = [], [], [], None, None
    for _ in range(RUNS):
        started = time.process_time()
        model.predict_proba(features)
        for frame in frames:
            model.predict_proba(frame)
        floors.append(time.process_time() - started)
        started = time.process_time()
        results = evaluate_probes(model, df, "y", specs, chunk_rows=chunk_rows)
        engines.append(time.process_time() - started)
        started = time.process_time()
        whole_results = evaluate_probes(model, df, "y", specs, chunk_rows=0)
        whole_runs.append(time.process_time() - started)

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    evaluate_probes(model, df, "y", specs, chunk_rows=chunk_rows)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    evaluate_probes(model, df, "y", specs, chunk_rows=0)
    whole_peak = tracemalloc.get_traced_memory()[1] - base
    # The model's own need: the largest peak of the floor's predict_proba calls, each with
    # the size of its input frame where that frame is not the dataset itself.
    floor_peak = dataset_peak = 0
    for frame in [features, *frames]:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        model.predict_proba(frame)
        extra = 0 if frame is features else int(frame.memory_usage(deep=True).sum())
        floor_peak = max(floor_peak, tracemalloc.get_traced_memory()[1] - base + extra)
        if frame is features:
            dataset_peak = floor_peak
    tracemalloc.stop()

    statuses = defaultdict(int)
    by_kind = defaultdict(float)
    for result in results:
        statuses[result.status] += 1
        by_kind[next(s.kind for s in specs if s.key == result.key)] += result.duration_s
    stacked_rows = sum(len(f) for f in frames)
    floor, engine = statistics.median(floors), statistics.median(engines)
    whole = statistics.median(whole_runs)

    print(f"rows: {len(df):,}; probes: {len(specs)} (100 prediction-only, 10 model-calling)")
    print(f"threads: {threads}; runs: {RUNS} (interleaved, medians below; CPU seconds)")
    print(f"engine: chunk_rows={chunk_rows:,} (rows per predict_proba call)")
    print(f"rows sent to predict_proba by the model-calling probes: {stacked_rows:,}")
    print("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    print("engine time by kind (last run, wall, excluding the shared predict_proba):")
    for kind, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:26s} {seconds * 1000:8.1f} ms")
    print(f"floor runs:  {', '.join(f'{t:.3f}' for t in floors)} s")
    print(f"engine runs: {', '.join(f'{t:.3f}' for t in engines)} s")
    print(f"one-call runs: {', '.join(f'{t:.3f}' for t in whole_runs)} s")
    print(f"floor (median):  {floor:.3f} s")
    print(f"engine (median): {engine:.3f} s")
    size = data_bytes + proba_bytes
    print(
        f"dataset {data_bytes / 1e6:.1f} MB + probabilities {proba_bytes / 1e6:.1f} MB "
        f"= {size / 1e6:.1f} MB"
    )
    print(
        f"peak traced memory, one predict_proba over the dataset: "
        f"{dataset_peak / 1e6:.1f} MB ({dataset_peak / size:.2f}x)"
    )
    print(
        f"peak traced memory, largest predict_proba of the floor (+ its input frame): "
        f"{floor_peak / 1e6:.1f} MB ({floor_peak / size:.2f}x)"
    )
    print(f"peak traced memory, evaluate_probes: {peak / 1e6:.1f} MB ({peak / size:.2f}x)")
    print(f"engine memory beyond the model's own peak: {(peak - floor_peak) / 1e6:.1f} MB")
    same = "identical" if _same(whole_results, results) else "DIFFERENT"
    print(
        f"one call, chunk_rows=0: median {whole:.3f} s (ratio to floor "
        f"{whole / floor:.3f}), peak traced memory {whole_peak / 1e6:.1f} MB "
        f"({whole_peak / size:.2f}x), results {same}"
    )
    print(f"ratio engine/floor: {engine / floor:.3f}")


class PeakRss:
    """The resident memory a block adds at its peak: the process's high-water mark (VmHWM),
    reset on entry (Linux: /proc/self/clear_refs), less the resident size on entry, after
    handing freed memory back (the C heap's and pyarrow's) so that none is reused unseen.
    ``added`` is None where the mark cannot be reset."""

    added: int | None = None

    def __enter__(self) -> PeakRss:
        gc.collect()
        with contextlib.suppress(ImportError):
            import pyarrow

            pyarrow.default_memory_pool().release_unused()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self.base: int | None = _status("VmRSS")
        except OSError:
            self.base = None
        return self

    def __exit__(self, *exc_info) -> None:
        if self.base is not None:
            self.added = _status("VmHWM") - self.base


def _status(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def runs_for(rows: int) -> int:
    """Interleaved runs at a table size: fewer as a run gets longer (10M: one, ~9 min)."""
    return RUNS if rows <= ROWS else 3 if rows <= 1_000_000 else 1


def size_point(model, rows: int, chunk_rows: int) -> dict:
    """Floor, engine and peak memory on a table of ``rows`` rows (in a process of its own).

    1. Generate the table and the 110 probes (predicates from its own quantiles).
    2. Per run: the floor (the dataset, then each model-calling probe's frame, built
       untimed just before its call and dropped after), then the engine under PeakRss.
    3. Medians of the times, the largest peak.
    """
    print(f"\n[{rows_label(rows)} rows: generating the table]", flush=True)
    df = make_dataset(rows)
    features = df.drop(columns="y")
    specs = prediction_probes(df) + model_probes()
    size = int(df.memory_usage(deep=True).sum()) + rows * len(model.classes_) * 8
    floor_cpu, floor_wall, engine_cpu, engine_wall, peaks = [], [], [], [], []
    for run in range(runs_for(rows)):
        cpu = wall = 0.0
        for spec in [None, *specs[100:]]:  # the dataset, then each probe's frame
            frame = features if spec is None else floor_frame(df, features, spec)
            started, clock = time.process_time(), time.perf_counter()
            probabilities(model, frame, chunk_rows=chunk_rows)
            cpu += time.process_time() - started
            wall += time.perf_counter() - clock
            del frame
        floor_cpu.append(cpu)
        floor_wall.append(wall)
        with PeakRss() as peak:
            started, clock = time.process_time(), time.perf_counter()
            evaluate_probes(model, df, "y", specs, chunk_rows=chunk_rows)
            engine_cpu.append(time.process_time() - started)
            engine_wall.append(time.perf_counter() - clock)
        peaks.append(peak.added)
        added = "" if peak.added is None else f"; peak added {peak.added / 1e6:,.0f} MB"
        print(
            f"  run {run + 1}: floor {cpu:.1f} s, engine {engine_cpu[-1]:.1f} s (CPU); "
            f"wall {wall:.1f} s, {engine_wall[-1]:.1f} s{added}",
            flush=True,
        )
    del df, features
    gc.collect()
    known = [p for p in peaks if p is not None]
    return {
        "rows": rows,
        "runs": len(floor_cpu),
        "floor": statistics.median(floor_cpu),
        "engine": statistics.median(engine_cpu),
        "wall": statistics.median(engine_wall) / statistics.median(floor_wall),
        "size": size,
        "peak": max(known) if known else None,
    }


def probe_counts(model, counts: list[int], chunk_rows: int) -> list[dict]:
    """CPU time per probe of evaluate_probes at each probe count on the ROWS-row table,
    its predictions given (a worker predicts once per dataset); interleaved runs."""
    if not counts:
        return []
    print(f"\n[probes per rerun: {', '.join(f'{c:,}' for c in counts)}]", flush=True)
    df = make_dataset(ROWS)
    predictions = predict(model, model_features(model, df, "y"), chunk_rows=chunk_rows)
    probe_sets = {count: prediction_probes(df, count) for count in counts}
    times: dict[int, list[float]] = {count: [] for count in counts}
    peaks: dict[int, int | None] = dict.fromkeys(counts)
    for _ in range(COUNT_RUNS):
        for count in counts:
            with PeakRss() as peak:
                started = time.process_time()
                evaluate_probes(
                    model,
                    df,
                    "y",
                    probe_sets[count],
                    predictions=predictions,
                    chunk_rows=chunk_rows,
                )
                times[count].append(time.process_time() - started)
            if peak.added is not None:
                peaks[count] = max(peaks[count] or 0, peak.added)
    return [
        {"count": count, "per_probe": statistics.median(times[count]) / count, "peak": peaks[count]}
        for count in counts
    ]


def report(points: list[dict], per_probe: list[dict], chunk_rows: int) -> None:
    """The two curves as tables, then the verdict on the three targets."""
    checks = []  # (target, share of its limit used, text)
    if points:
        print(f"\ngrowth with table size (chunk_rows={chunk_rows:,}; CPU seconds, medians)")
        print(
            f"{'rows':>5} {'runs':>4} {'floor s':>8} {'engine s':>8} {'eng/floor':>9} "
            f"{'(wall)':>6} {'data+proba':>10} {'peak added':>10} {'peak/size':>9}"
        )
        for p in points:
            added = "n/a" if p["peak"] is None else f"{p['peak'] / 1e6:,.0f} MB"
            share = "n/a" if p["peak"] is None else f"{p['peak'] / p['size']:.2f}x"
            print(
                f"{rows_label(p['rows']):>5} {p['runs']:>4} {p['floor']:>8.1f} "
                f"{p['engine']:>8.1f} {p['engine'] / p['floor']:>9.3f} {p['wall']:>6.2f} "
                f"{p['size'] / 1e6:>7,.0f} MB {added:>10} {share:>9}"
            )
        worst = max(points, key=lambda p: p["engine"] / p["floor"])
        value = worst["engine"] / worst["floor"]
        checks.append(
            (
                "engine/floor",
                value / RATIO_TARGET,
                f"engine/floor <= {RATIO_TARGET}: worst {value:.3f} ({rows_label(worst['rows'])})",
            )
        )
        measured = [p for p in points if p["peak"] is not None]
        if measured:
            worst = max(measured, key=lambda p: p["peak"] / p["size"])
            value = worst["peak"] / worst["size"]
            checks.append(
                (
                    "peak memory",
                    value / PEAK_TARGET,
                    f"peak <= {PEAK_TARGET}x dataset + probabilities: worst {value:.2f}x "
                    f"({rows_label(worst['rows'])})",
                )
            )
    if per_probe:
        print(f"\ntime per probe ({ROWS:,} rows, prediction-only probes, CPU, medians)")
        print(f"{'probes':>6} {'ms/probe':>8} {'peak added':>10}")
        for p in per_probe:
            added = "n/a" if p["peak"] is None else f"{p['peak'] / 1e6:,.1f} MB"
            print(f"{p['count']:>6,} {p['per_probe'] * 1000:>8.2f} {added:>10}")
        # The cost of each further probe: what the next probes add between two counts
        # (the one-time work per dataset, sorting, factorising, binning, cancels out).
        for a, b in zip(per_probe, per_probe[1:], strict=False):
            added = (b["per_probe"] * b["count"] - a["per_probe"] * a["count"]) / (
                b["count"] - a["count"]
            )
            print(f"  each probe from {a['count']:,} to {b['count']:,}: {added * 1000:.2f} ms")
        if len(per_probe) > 1:
            first = per_probe[0]
            slope = (per_probe[1]["per_probe"] * per_probe[1]["count"]) - (
                first["per_probe"] * first["count"]
            )
            slope /= per_probe[1]["count"] - first["count"]
            once = first["per_probe"] * first["count"] - slope * first["count"]
            print(f"  one-time work per dataset (extrapolated to no probe): {once * 1000:.0f} ms")
        cost = [p["per_probe"] for p in per_probe]
        spread = max(cost) / min(cost)
        # Rising with the count would mean work that grows with the other probes; falling,
        # the per-dataset caches (masks, orders, bins) that the first probes build.
        way = "rises" if cost.index(max(cost)) > cost.index(min(cost)) else "falls"
        checks.append(
            (
                "time per probe",
                spread / FLAT_TARGET,
                f"time per probe flat within {FLAT_TARGET}x: {spread:.2f}x ({way} with the count)",
            )
        )
    if not checks:
        return
    print("\ntargets: " + "; ".join(text for _, _, text in checks))
    missed = [name for name, used, _ in checks if used > 1]
    first = max(checks, key=lambda check: check[1])
    if missed:
        print(f"MISSED: {', '.join(missed)}; furthest past its limit: {first[0]}")
    else:
        print(
            f"every target met; the first to break would be {first[0]} "
            f"(at {first[1]:.0%} of its limit)"
        )


if __name__ == "__main__":
    main()
