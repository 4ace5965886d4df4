"""Slice-scan benchmark: recovery of planted weak regions, against SliceLine.

Each synthetic table has ~20k rows and 8 columns (5 numeric, 3 categorical). A gradient
boosting model is trained on clean labels; a held-out table then gets its labels flipped
with probability 40-60% inside 1-3 planted regions, each the conjunction of two predicates
at random percentiles (never quintile edges). The scan sees the held-out table, its
corrupted labels and the model's predictions.

A planted region is found when some top-5 slice's rows have Jaccard >= 0.5 with its rows
(recall@5); precision@5 is the share of reported slices (up to 5) that match some planted
region at Jaccard >= 0.5. Times are for the scan alone, on one core (BLAS/OpenMP limited to
one thread): wall-clock, and the process's CPU time, which a busy machine inflates less.
SliceLine runs on the same tables with numeric columns binned into quintiles (it needs
categorical inputs) and alpha=0.95: the best of bins {5, 10} x alpha {0.6, 0.8, 0.95} on
the first tables. Its slices are conjunctions of single bins, so a region spanning several
bins comes back in pieces that rarely reach Jaccard 0.5.

Run:  .venv/bin/python benchmarks/slice_scan.py [--tables 20] [--rows 20000]
Needs `sliceline` (requirements-bench.txt) for the comparison; without it, it is skipped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

# Run as a script from anywhere: make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from boundary.scan import find_weak_slices  # noqa: E402
from boundary.slices import describe as describe_slice  # noqa: E402
from boundary.slices import mask as apply_slice  # noqa: E402

NUMERIC = ["age", "income", "score", "tenure", "utilisation"]
CATEGORICAL = ["region", "channel", "product"]
CATEGORIES = {
    "region": ["north", "south", "east", "west", "centre"],
    "channel": ["web", "branch", "phone"],
    "product": ["basic", "plus", "gold", "student", "senior", "family", "pro", "lite"],
}
JACCARD = 0.5


def make_features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "age": rng.uniform(18, 80, n).round(1),
            "income": rng.lognormal(10.6, 0.55, n).round(0),
            "score": rng.normal(0, 1, n),
            "tenure": rng.integers(0, 40, n),
            "utilisation": rng.beta(2, 5, n),
        }
    )
    df["region"] = rng.choice(CATEGORIES["region"], n, p=[0.25, 0.25, 0.2, 0.2, 0.1])
    df["channel"] = rng.choice(CATEGORIES["channel"], n, p=[0.5, 0.3, 0.2])
    df["product"] = rng.choice(CATEGORIES["product"], n)
    return df


def clean_labels(rng: np.random.Generator, df: pd.DataFrame) -> np.ndarray:
    """A nonlinear rule of the features, with 3% uniformly scattered label noise."""
    z = (
        1.2 * (df["age"] - 45) / 18
        - 0.9 * (np.log(df["income"]) - 10.6) / 0.55
        + 0.8 * df["score"]
        + 0.6 * np.sin(df["tenure"] / 6)
        + 1.5 * (df["utilisation"] - 0.3)
        + df["channel"].map({"web": -0.4, "branch": 0.3, "phone": 0.2}).to_numpy()
        + df["product"].isin(["gold", "pro"]).to_numpy() * 0.7
    )
    y = (z > 0).astype(int).to_numpy()
    noise = rng.random(len(df)) < 0.03
    return np.where(noise, 1 - y, y)


def random_predicate(rng: np.random.Generator, df: pd.DataFrame, column: str) -> dict:
    """A predicate on one column covering roughly 15-55% of rows, at random percentiles."""
    if column in CATEGORICAL:
        cats = CATEGORIES[column]
        if len(cats) > 3 and rng.random() < 0.4:
            pick = [str(c) for c in rng.choice(cats, 2, replace=False)]
            return {"feature": column, "op": "in", "value": sorted(pick)}
        return {"feature": column, "op": "==", "value": str(rng.choice(cats))}
    values = df[column].to_numpy(dtype=float)
    kind = rng.choice(["<", ">=", "between"])
    share = rng.uniform(0.15, 0.55)
    if kind == "<":
        return {"feature": column, "op": "<", "value": float(np.quantile(values, share))}
    if kind == ">=":
        return {"feature": column, "op": ">=", "value": float(np.quantile(values, 1 - share))}
    start = rng.uniform(0.05, 0.95 - share)
    lo, hi = np.quantile(values, [start, start + share])
    return {"feature": column, "op": "between", "value": [float(lo), float(hi)]}


def plant_regions(rng: np.random.Generator, df: pd.DataFrame) -> list[list[dict]]:
    """1-3 two-predicate regions with 1.5%-12% support, barely overlapping each other."""
    regions, masks = [], []
    want = int(rng.integers(1, 4))
    columns = NUMERIC + CATEGORICAL
    for _ in range(500):
        if len(regions) == want:
            break
        a, b = rng.choice(columns, 2, replace=False)
        region = [random_predicate(rng, df, a), random_predicate(rng, df, b)]
        m = apply_slice(df, region)
        share = m.mean()
        if not 0.015 <= share <= 0.12:
            continue
        if any(jaccard(m, other) > 0.1 for other in masks):
            continue
        regions.append(region)
        masks.append(m)
    return regions


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def match(planted: list[np.ndarray], reported: list[np.ndarray]) -> tuple[int, int]:
    """(planted regions found, reported slices that match a planted region)."""
    found = sum(any(jaccard(p, r) >= JACCARD for r in reported) for p in planted)
    good = sum(any(jaccard(p, r) >= JACCARD for p in planted) for r in reported)
    return found, good


def make_table(seed: int, rows: int):
    """1. Features for training and held-out rows; 2. clean labels; 3. model on the
    training rows; 4. planted regions and corrupted held-out labels; 5. predictions."""
    rng = np.random.default_rng(seed)
    train = make_features(rng, rows)
    test = make_features(rng, rows)
    y_train = clean_labels(rng, train)
    y_test = clean_labels(rng, test)
    model_x = train.astype(dict.fromkeys(CATEGORICAL, "category"))
    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.1, categorical_features="from_dtype", random_state=seed
    )
    model.fit(model_x, y_train)
    regions = plant_regions(rng, test)
    masks = [apply_slice(test, r) for r in regions]
    corrupt = np.zeros(rows, dtype=bool)
    for m in masks:
        corrupt |= m & (rng.random(rows) < rng.uniform(0.4, 0.6))
    y_test = np.where(corrupt, 1 - y_test, y_test)
    y_pred = model.predict(test.astype(dict.fromkeys(CATEGORICAL, "category")))
    return test, y_test, y_pred, regions, masks


def run_sliceline(slicefinder, test: pd.DataFrame, errors: np.ndarray, min_support: int):
    """SliceLine on quintiles of numeric columns and raw categories; its top-5 row masks."""
    binned = pd.DataFrame(index=test.index)
    for c in test.columns:
        if c in NUMERIC:
            binned[c] = pd.qcut(test[c], 5, labels=False, duplicates="drop").astype(int)
        else:
            binned[c] = test[c].astype(object)
    finder = slicefinder(alpha=0.95, k=5, max_l=2, min_sup=min_support, verbose=False)
    start, cpu = time.perf_counter(), time.process_time()
    finder.fit(binned, errors.astype(float))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    masks = []
    for top in finder.top_slices_[:5]:
        m = np.ones(len(test), dtype=bool)
        for c, v in zip(binned.columns, top, strict=True):
            if v is not None:
                m &= (binned[c] == v).to_numpy()
        masks.append(m)
    return masks, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=20)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--verbose", action="store_true", help="print planted and found slices")
    args = parser.parse_args()
    try:
        from sliceline.slicefinder import Slicefinder
    except ImportError:
        Slicefinder = None
        print(
            "sliceline is not installed (pip install -r requirements-bench.txt); "
            "skipping the SliceLine comparison"
        )

    ours = {"planted": 0, "found": 0, "reported": 0, "good": 0, "times": [], "cpu": []}
    theirs = {"planted": 0, "found": 0, "reported": 0, "good": 0, "times": [], "cpu": []}
    for seed in range(args.tables):
        test, y_test, y_pred, regions, masks = make_table(seed, args.rows)
        min_support = max(30, int(np.ceil(0.005 * len(test))))
        with threadpool_limits(1):
            start, cpu = time.perf_counter(), time.process_time()
            found = find_weak_slices(test, y_test, y_pred, top_k=5)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        reported = [apply_slice(test, r["slice"]) for r in found]
        f, g = match(masks, reported)
        ours["planted"] += len(masks)
        ours["found"] += f
        ours["reported"] += len(reported)
        ours["good"] += g
        ours["times"].append(elapsed)
        ours["cpu"].append(cpu)
        line = (
            f"table {seed:2d}: planted {len(masks)}  ours found {f}/{len(masks)} "
            f"reported {len(reported)} matching {g}  {elapsed:5.2f}s (cpu {cpu:4.2f}s)"
        )
        if Slicefinder is not None:
            errors = (np.asarray(y_test) != np.asarray(y_pred)).astype(float)
            with threadpool_limits(1):
                sl_masks, sl_time, sl_cpu = run_sliceline(Slicefinder, test, errors, min_support)
            sf, sg = match(masks, sl_masks)
            theirs["planted"] += len(masks)
            theirs["found"] += sf
            theirs["reported"] += len(sl_masks)
            theirs["good"] += sg
            theirs["times"].append(sl_time)
            theirs["cpu"].append(sl_cpu)
            line += (
                f"  | SliceLine found {sf}/{len(masks)} reported {len(sl_masks)} "
                f"matching {sg}  {sl_time:5.2f}s (cpu {sl_cpu:4.2f}s)"
            )
        print(line, flush=True)
        if args.verbose:
            for r in regions:
                print("    planted :", describe_slice(r))
            for r in found:
                print(
                    f"    reported: {r['description']}  (n={r['support']}, "
                    f"err={r['error_rate']:.2f}, G={r['score']:.0f})"
                )

    def summary(name, s):
        recall = s["found"] / s["planted"] if s["planted"] else 0.0
        precision = s["good"] / s["reported"] if s["reported"] else 0.0
        median = statistics.median(s["times"]) if s["times"] else float("nan")
        worst = max(s["times"]) if s["times"] else float("nan")
        cpu = statistics.median(s["cpu"]) if s["cpu"] else float("nan")
        print(
            f"{name}: recall@5 {recall:.3f} ({s['found']}/{s['planted']})  "
            f"precision@5 {precision:.3f} ({s['good']}/{s['reported']})  "
            f"median time {median:.2f}s (max {worst:.2f}s, median CPU {cpu:.2f}s)"
        )
        return recall, precision, median, cpu

    print(f"--- {args.tables} tables x {args.rows} rows, Jaccard >= {JACCARD}, one core ---")
    r, p, t, c = summary("find_weak_slices", ours)
    headline = f"HEADLINE ours recall@5={r:.3f} precision@5={p:.3f} median_s={t:.2f} cpu_s={c:.2f}"
    if Slicefinder is not None:
        sr, sp, st, sc = summary("SliceLine (quintiles, alpha=0.95, max_l=2)", theirs)
        headline += (
            f" | SliceLine recall@5={sr:.3f} precision@5={sp:.3f} median_s={st:.2f} cpu_s={sc:.2f}"
        )
    else:
        headline += " | SliceLine skipped (not installed)"
    print(headline)


if __name__ == "__main__":
    main()
