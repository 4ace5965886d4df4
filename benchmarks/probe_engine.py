"""Probe engine overhead against the unavoidable model work.

A 100,000-row table (numeric and categorical columns), a scikit-learn Pipeline
(ColumnTransformer + OneHotEncoder -> HistGradientBoostingClassifier) stored and loaded as
a skops artifact, 100 prediction-only probes of mixed kinds and slices and 10
perturbation / counterfactual probes.

floor   = one predict_proba over the dataset + one predict_proba per perturbation /
          counterfactual probe on exactly the rows it needs (frames built beforehand,
          outside the timing)
engine  = evaluate_probes over all 110 probes
chunked = the same with chunk_rows (opt-in, PREDICT_CHUNK_ROWS): every predict_proba call
          split into calls on at most that many consecutive rows; its results must equal
          the engine's

Each figure is the median of several interleaved runs in this one process. Peak memory is
the tracemalloc peak of new allocations during one evaluate_probes call (separate runs:
tracing slows Python down), compared with the size of the dataset plus the probabilities;
the model's own peak in one predict_proba over the dataset is printed too (tracemalloc
does not see pyarrow's buffers: the taken string columns of a probe's frame are left out
of the engine's figures, but counted in the floor's "+ its input frame").
The last line printed is the ratio engine / floor.

Run: .venv/bin/python benchmarks/probe_engine.py [--threads N] [--chunk-rows N]
(default 1 thread for OpenMP/BLAS: on a shared 2-core machine, 2 OpenMP threads slow down
badly as soon as anything else runs, which drowns the comparison in noise; floor and engine
always run with the same setting)
"""

from __future__ import annotations

import argparse
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

ROWS = 100_000
RUNS = 5
CHUNK_ROWS = 20_000
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


def floor_frames(df: pd.DataFrame, features: pd.DataFrame, specs: list[ProbeSpec]) -> list:
    """The exact frames the model-calling probes send to predict_proba, built untimed."""
    from boundary.slices import mask as slice_mask

    frames = []
    for spec in specs:
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
        frames.append(frame)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="OpenMP/BLAS threads")
    parser.add_argument(
        "--chunk-rows", type=int, default=CHUNK_ROWS, help="rows per call of the chunked runs"
    )
    args = parser.parse_args()
    with threadpool_limits(args.threads):
        measure(args.threads, args.chunk_rows)


def _same(results, others) -> bool:
    fields = ("key", "status", "value", "ci_low", "ci_high", "support", "error", "details")
    return [[getattr(r, f) for f in fields] for r in results] == [
        [getattr(r, f) for f in fields] for r in others
    ]


def measure(threads: int, chunk_rows: int) -> None:
    """Build, measure, print.

    1. Generate the dataset, fit the pipeline, store it as skops and load it back.
    2. Build the 110 probes and the floor's frames.
    3. Interleave RUNS floor, engine and chunked-engine measurements; take medians.
    4. Traced runs for peak memory: the engine, the chunked engine, the floor's calls.
    """
    df = make_dataset()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.skops"
        dump_skops(make_model(df), path)
        model = load_model(path, expected_sha256=sha256_of(path))
    features = df.drop(columns="y")
    specs = prediction_probes(df) + model_probes()
    frames = floor_frames(df, features, specs[100:])
    proba_bytes = len(df) * len(model.classes_) * 8
    data_bytes = int(df.memory_usage(deep=True).sum())

    floors, engines, chunkeds, results, chunked_results = [], [], [], None, None
    for _ in range(RUNS):
        started = time.perf_counter()
        model.predict_proba(features)
        for frame in frames:
            model.predict_proba(frame)
        floors.append(time.perf_counter() - started)
        started = time.perf_counter()
        results = evaluate_probes(model, df, "y", specs)
        engines.append(time.perf_counter() - started)
        started = time.perf_counter()
        chunked_results = evaluate_probes(model, df, "y", specs, chunk_rows=chunk_rows)
        chunkeds.append(time.perf_counter() - started)

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    evaluate_probes(model, df, "y", specs)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    evaluate_probes(model, df, "y", specs, chunk_rows=chunk_rows)
    chunked_peak = tracemalloc.get_traced_memory()[1] - base
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
    chunked = statistics.median(chunkeds)

    print(f"rows: {len(df):,}; probes: {len(specs)} (100 prediction-only, 10 model-calling)")
    print(f"threads: {threads}; runs: {RUNS} (interleaved, medians below)")
    print(f"rows sent to predict_proba by the model-calling probes: {stacked_rows:,}")
    print("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    print("engine time by kind (last run, excluding the shared predict_proba):")
    for kind, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:26s} {seconds * 1000:8.1f} ms")
    print(f"floor runs:  {', '.join(f'{t:.3f}' for t in floors)} s")
    print(f"engine runs: {', '.join(f'{t:.3f}' for t in engines)} s")
    print(f"chunked runs: {', '.join(f'{t:.3f}' for t in chunkeds)} s")
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
    same = "identical" if _same(chunked_results, results) else "DIFFERENT"
    print(
        f"chunked, chunk_rows={chunk_rows:,}: median {chunked:.3f} s (ratio to floor "
        f"{chunked / floor:.3f}), peak traced memory {chunked_peak / 1e6:.1f} MB "
        f"({chunked_peak / size:.2f}x), results {same}"
    )
    print(f"ratio engine/floor: {engine / floor:.3f}")


if __name__ == "__main__":
    main()
