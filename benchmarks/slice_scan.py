"""Slice-scan benchmark: recovery of planted weak regions, against SliceLine, on two
suites of tables, in one run.

Standard suite: each table has ~20k rows and 8 columns (5 numeric, 3 categorical). A
gradient boosting model is trained on clean labels; a held-out table then gets its labels
flipped with probability 40-60% inside 1-3 planted regions, each the conjunction of two
predicates at random percentiles (never quintile edges). Scanned with max_predicates=2.

Hard suite: each table has 200,000 rows and 40 columns: 28 numeric (uniform, normal,
lognormal, integer and rounded ones) and 12 categorical, 6 of them with 50-120 levels of
Zipf-like frequencies. Labels follow a rule of a few columns (steps and category effects,
which the model learns from clean training labels almost exactly); 5% of the held-out
labels are flipped everywhere, and they are also flipped with
probability 40-60% inside 1-3 planted regions of two or three predicates each (at least one
region of three predicates per table), each region covering 0.5-3% of the rows and barely
overlapping the others. Scanned with max_predicates=3.

Definitions (both suites). A reported slice matches a planted region when their row sets
have Jaccard similarity |A & B| / |A | B| >= 0.5.
- recall@5: the share of planted regions matched by at least one of the (up to) 5 slices
  reported for their table, pooled over the tables of a suite.
- precision@5: the share of reported slices (up to 5 per table) that match at least one
  planted region of their table, pooled over the tables of a suite.
Targets on the hard suite: recall@5 >= 0.95 and precision@5 >= 0.9, each table's scan
within 5 s.

Times are for the scan alone, on one core (BLAS/OpenMP limited to one thread): wall-clock,
and the process's CPU time, which a busy machine inflates less. SliceLine runs on the same
tables with numeric columns binned into quintiles (it needs categorical inputs),
alpha=0.95 and max_l equal to our max_predicates: the best of bins {5, 10} x alpha
{0.6, 0.8, 0.95} on the first tables. Its slices are conjunctions of single bins, so a
region spanning several bins comes back in pieces that rarely reach Jaccard 0.5. SliceLine
runs in a child process with its memory capped (SLICELINE_MEMORY): on the hard suite its
one-hot encoding (about 900 columns) makes it ask for tens of GiB, and the table says it
failed.

Run:  .venv/bin/python benchmarks/slice_scan.py [--tables 20] [--rows 20000]
          [--hard-tables 10] [--hard-rows 200000] [--suite both|standard|hard]
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


# --------------------------------------------------------------------------------------
# Hard suite: 200,000 rows, 40 columns, high-cardinality categories, regions of 2-3
# predicates covering 0.5-3% of the rows, label noise everywhere.
# --------------------------------------------------------------------------------------

HARD_NUMERIC = [f"n{k:02d}" for k in range(28)]
HARD_LEVELS = {
    "city": 60,
    "merchant": 120,
    "postcode": 90,
    "occupation": 55,
    "device": 75,
    "campaign": 50,
    "segment": 6,
    "plan": 4,
    "colour": 8,
    "weekday": 7,
    "tier": 3,
    "source": 5,
}
HARD_CATEGORICAL = list(HARD_LEVELS)
HARD_NOISE = 0.05


def _levels(column: str) -> list[str]:
    return [f"{column[:3]}{k:03d}" for k in range(HARD_LEVELS[column])]


def _zipf(n_levels: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like shares (exponent ~1), in a random order of the levels."""
    p = 1.0 / np.arange(1, n_levels + 1) ** rng.uniform(0.8, 1.1)
    return rng.permutation(p / p.sum())


def make_hard_features(rng: np.random.Generator, n: int, shares: dict) -> pd.DataFrame:
    data: dict[str, np.ndarray] = {}
    for k, name in enumerate(HARD_NUMERIC):
        kind = k % 4
        if kind == 0:
            data[name] = rng.uniform(0, 100, n).round(2)
        elif kind == 1:
            data[name] = rng.normal(0, 1, n)
        elif kind == 2:
            data[name] = rng.lognormal(3, 0.8, n).round(1)
        else:
            data[name] = rng.integers(0, 60, n)
    for name in HARD_CATEGORICAL:
        data[name] = rng.choice(np.array(_levels(name)), n, p=shares[name])
    return pd.DataFrame(data)


def hard_labels(
    rng: np.random.Generator, df: pd.DataFrame, effects: dict, noise: float
) -> np.ndarray:
    """A rule of a few columns (steps on numeric ones, an effect per category) with a
    share `noise` of the labels flipped anywhere.

    Gradient boosting represents such a rule exactly, so the model's own mistakes stay
    few: its errors are the noise and the planted regions, which makes the planted
    regions the table's only weak slices (a model that merely approximates its rule has
    real weak slices along its boundary, which a scan rightly reports but no planted
    region matches)."""
    z = (
        1.0 * (df["n00"] > 40)
        - 1.0 * (df["n01"] > 0.5)
        + 0.8 * (df["n02"] > 20)
        + 0.6 * ((df["n03"] % 20) < 10)
        - 0.9
        + df["city"].map(effects["city"]).to_numpy()
        + df["segment"].map(effects["segment"]).to_numpy()
    )
    y = (z > 0).astype(int).to_numpy()
    return np.where(rng.random(len(df)) < noise, 1 - y, y)


def hard_predicate(rng: np.random.Generator, df: pd.DataFrame, column: str, shares: dict):
    """A predicate on one column covering roughly 10-45% of rows (a set of levels for a
    categorical column, drawn among those with at least 1% of the rows)."""
    if column in HARD_LEVELS:
        levels = _levels(column)
        share = shares[column]
        frequent = [levels[k] for k in np.flatnonzero(share >= 0.01)]
        target = rng.uniform(0.1, 0.45)
        picked, covered = [], 0.0
        for k in rng.permutation(len(frequent)):
            if covered >= target:
                break
            picked.append(frequent[k])
            covered += share[levels.index(frequent[k])]
        if len(picked) == 1:
            return {"feature": column, "op": "==", "value": picked[0]}
        return {"feature": column, "op": "in", "value": sorted(picked)}
    values = df[column].to_numpy(dtype=float)
    kind = rng.choice(["<", ">=", "between"])
    share = rng.uniform(0.1, 0.45)
    if kind == "<":
        return {"feature": column, "op": "<", "value": float(np.quantile(values, share))}
    if kind == ">=":
        return {"feature": column, "op": ">=", "value": float(np.quantile(values, 1 - share))}
    start = rng.uniform(0.05, 0.95 - share)
    lo, hi = np.quantile(values, [start, start + share])
    return {"feature": column, "op": "between", "value": [float(lo), float(hi)]}


def plant_hard_regions(rng: np.random.Generator, df: pd.DataFrame, shares: dict):
    """1-3 regions of two or three predicates (the first of three), each covering 0.5-3%
    of the rows and overlapping the others by Jaccard < 0.1."""
    regions: list[list[dict]] = []
    masks: list[np.ndarray] = []
    want = int(rng.integers(1, 4))
    columns = HARD_NUMERIC + HARD_CATEGORICAL
    for _ in range(5000):
        if len(regions) == want:
            break
        size = 3 if not regions or rng.random() < 0.5 else 2
        picked = rng.choice(columns, size, replace=False)
        region = [hard_predicate(rng, df, str(c), shares) for c in picked]
        m = apply_slice(df, region)
        if not 0.005 <= m.mean() <= 0.03:
            continue
        if any(jaccard(m, other) > 0.1 for other in masks):
            continue
        regions.append(region)
        masks.append(m)
    return regions


def make_hard_table(seed: int, rows: int, train_rows: int = 50_000):
    """1. Level shares and effects; 2. training and held-out features, noisy labels;
    3. a model on the training rows; 4. planted regions and their flipped held-out labels;
    5. predictions."""
    rng = np.random.default_rng(10_000 + seed)
    shares = {c: _zipf(HARD_LEVELS[c], rng) for c in HARD_CATEGORICAL}
    effects = {
        c: dict(zip(_levels(c), rng.normal(0, 0.5, HARD_LEVELS[c]), strict=True))
        for c in ("city", "segment")
    }
    train = make_hard_features(rng, train_rows, shares)
    test = make_hard_features(rng, rows, shares)
    # The model learns the rule from clean labels, so that its own mistakes stay few and
    # the planted regions are the table's weak slices; the held-out labels are noisy.
    y_train = hard_labels(rng, train, effects, 0.0)
    y_test = hard_labels(rng, test, effects, HARD_NOISE)
    as_cat = dict.fromkeys(HARD_CATEGORICAL, "category")
    model = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.15, categorical_features="from_dtype", random_state=seed
    )
    with threadpool_limits(1):
        model.fit(train.astype(as_cat), y_train)
    regions = plant_hard_regions(rng, test, shares)
    masks = [apply_slice(test, r) for r in regions]
    corrupt = np.zeros(rows, dtype=bool)
    for m in masks:
        corrupt |= m & (rng.random(rows) < rng.uniform(0.4, 0.6))
    y_test = np.where(corrupt, 1 - y_test, y_test)
    # Categories as the model saw them (the training table's levels).
    test_x = test.astype(
        {c: pd.CategoricalDtype(train[c].astype("category").cat.categories) for c in as_cat}
    )
    with threadpool_limits(1):
        y_pred = model.predict(test_x)
    return test, y_test, y_pred, regions, masks


# --------------------------------------------------------------------------------------
# Running and reporting
# --------------------------------------------------------------------------------------


def run_sliceline(
    slicefinder, test: pd.DataFrame, errors: np.ndarray, min_support: int, numeric, max_l: int
):
    """SliceLine on quintiles of numeric columns and raw categories; its top-5 row masks."""
    binned = pd.DataFrame(index=test.index)
    for c in test.columns:
        if c in numeric:
            binned[c] = pd.qcut(test[c], 5, labels=False, duplicates="drop").astype(int)
        else:
            binned[c] = test[c].astype(object)
    finder = slicefinder(alpha=0.95, k=5, max_l=max_l, min_sup=min_support, verbose=False)
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


SLICELINE_MEMORY = 6 * 2**30  # address space allowed to SliceLine's process


def _sliceline_child(conn, slicefinder, test, errors, min_support, numeric, max_l):
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (SLICELINE_MEMORY, SLICELINE_MEMORY))
    try:
        with threadpool_limits(1):
            conn.send(("ok", run_sliceline(slicefinder, test, errors, min_support, numeric, max_l)))
    except MemoryError as exc:
        conn.send(("error", f"out of memory ({exc})"[:120]))
    except Exception as exc:  # noqa: BLE001  (any failure is reported, not fatal)
        conn.send(("error", f"{type(exc).__name__}: {exc}"[:120]))


def run_sliceline_isolated(slicefinder, test, errors, min_support, numeric, max_l):
    """run_sliceline in a child process whose memory is capped (SliceLine materialises
    dense matrices that can exceed any machine on wide tables): its result, or the reason
    it failed."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_sliceline_child,
        args=(child, slicefinder, test, errors, min_support, numeric, max_l),
    )
    proc.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:
        status, payload = "error", "its process died"
    proc.join()
    return (payload, None) if status == "ok" else (None, payload)


def _tally():
    return {
        "planted": 0,
        "found": 0,
        "reported": 0,
        "good": 0,
        "times": [],
        "cpu": [],
        "failed": 0,
    }


def _add(tally, masks, reported, elapsed, cpu):
    f, g = match(masks, reported)
    tally["planted"] += len(masks)
    tally["found"] += f
    tally["reported"] += len(reported)
    tally["good"] += g
    tally["times"].append(elapsed)
    tally["cpu"].append(cpu)
    return f, g


def run_suite(name, tables, make, numeric, max_predicates, slicefinder, verbose):
    """Scan every table of a suite with both methods; the per-method tallies."""
    ours, theirs = _tally(), _tally()
    print(f"--- {name} suite: {len(tables)} tables, max_predicates={max_predicates} ---")
    for seed in tables:
        test, y_test, y_pred, regions, masks = make(seed)
        min_support = max(30, int(np.ceil(0.005 * len(test))))
        with threadpool_limits(1):
            start, cpu = time.perf_counter(), time.process_time()
            found = find_weak_slices(test, y_test, y_pred, top_k=5, max_predicates=max_predicates)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        reported = [apply_slice(test, r["slice"]) for r in found]
        f, g = _add(ours, masks, reported, elapsed, cpu)
        sizes = "/".join(str(len(r)) for r in regions)
        line = (
            f"table {seed:2d}: planted {len(masks)} ({sizes} predicates)  ours found "
            f"{f}/{len(masks)} reported {len(reported)} matching {g}  {elapsed:5.2f}s "
            f"(cpu {cpu:4.2f}s)"
        )
        if slicefinder is not None:
            errors = (np.asarray(y_test) != np.asarray(y_pred)).astype(float)
            result, failure = run_sliceline_isolated(
                slicefinder, test, errors, min_support, numeric, max_predicates
            )
            if result is None:
                theirs["failed"] += 1
                line += f"  | SliceLine failed: {failure}"
            else:
                sl_masks, sl_time, sl_cpu = result
                sf, sg = _add(theirs, masks, sl_masks, sl_time, sl_cpu)
                line += (
                    f"  | SliceLine found {sf}/{len(masks)} reported {len(sl_masks)} "
                    f"matching {sg}  {sl_time:5.2f}s (cpu {sl_cpu:4.2f}s)"
                )
        print(line, flush=True)
        if verbose:
            for r, m in zip(regions, masks, strict=True):
                print(f"    planted : {describe_slice(r)}  (n={int(m.sum())})")
            for r in found:
                print(
                    f"    reported: {r['description']}  (n={r['support']}, "
                    f"err={r['error_rate']:.2f}, G={r['score']:.0f})"
                )
    return ours, theirs


def summarise(tally):
    recall = tally["found"] / tally["planted"] if tally["planted"] else 0.0
    precision = tally["good"] / tally["reported"] if tally["reported"] else 0.0
    times = tally["times"]
    return {
        "recall": recall,
        "precision": precision,
        "recall_of": f"{tally['found']}/{tally['planted']}",
        "precision_of": f"{tally['good']}/{tally['reported']}",
        "median": statistics.median(times) if times else float("nan"),
        "max": max(times) if times else float("nan"),
        "cpu": statistics.median(tally["cpu"]) if tally["cpu"] else float("nan"),
        "within_5s": sum(t <= 5.0 for t in times),
        "tables": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["both", "standard", "hard"], default="both")
    parser.add_argument("--tables", type=int, default=20)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--hard-tables", type=int, default=10)
    parser.add_argument("--hard-rows", type=int, default=200_000)
    parser.add_argument("--first", type=int, default=0, help="seed of the first table")
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

    results = []
    if args.suite in ("both", "standard"):
        ours, theirs = run_suite(
            f"standard ({args.rows} rows x 8 columns)",
            range(args.first, args.first + args.tables),
            lambda seed: make_table(seed, args.rows),
            NUMERIC,
            2,
            Slicefinder,
            args.verbose,
        )
        results.append(("standard", ours, theirs))
    if args.suite in ("both", "hard"):
        ours, theirs = run_suite(
            f"hard ({args.hard_rows} rows x 40 columns)",
            range(args.first, args.first + args.hard_tables),
            lambda seed: make_hard_table(seed, args.hard_rows),
            HARD_NUMERIC,
            3,
            Slicefinder,
            args.verbose,
        )
        results.append(("hard", ours, theirs))

    print()
    print(f"Results (Jaccard >= {JACCARD}; times of the scan alone, one core)")
    header = (
        f"{'suite':9} {'method':17} {'recall@5':>15} {'precision@5':>15} "
        f"{'median s':>9} {'max s':>7} {'cpu s':>7} {'<= 5 s':>8}"
    )
    print(header)
    print("-" * len(header))
    headline = []
    for suite, ours, theirs in results:
        for method, tally in (("find_weak_slices", ours), ("SliceLine", theirs)):
            if tally["failed"]:
                print(
                    f"{suite:9} {method:17} failed on {tally['failed']} table(s) "
                    f"(memory capped at {SLICELINE_MEMORY / 2**30:.0f} GiB)"
                )
                headline.append(f"{suite} {method} failed on {tally['failed']} table(s)")
                if not tally["times"]:
                    continue
            if not tally["times"]:
                print(f"{suite:9} {method:17} skipped (not installed)")
                continue
            r = summarise(tally)
            print(
                f"{suite:9} {method:17} {r['recall']:6.3f} ({r['recall_of']:>6}) "
                f"{r['precision']:6.3f} ({r['precision_of']:>6}) {r['median']:9.2f} "
                f"{r['max']:7.2f} {r['cpu']:7.2f} {r['within_5s']:>3}/{r['tables']:<4}"
            )
            headline.append(
                f"{suite} {method} recall@5={r['recall']:.3f} precision@5={r['precision']:.3f}"
                f" median_s={r['median']:.2f} max_s={r['max']:.2f}"
            )
    for suite, ours, _ in results:
        if suite != "hard":
            continue
        r = summarise(ours)
        missed = []
        if r["recall"] < 0.95:
            missed.append(f"recall@5 {r['recall']:.3f} < 0.95")
        if r["precision"] < 0.9:
            missed.append(f"precision@5 {r['precision']:.3f} < 0.9")
        if r["within_5s"] < r["tables"]:
            missed.append(f"{r['tables'] - r['within_5s']} table(s) over 5 s")
        print(
            "Hard-suite targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed))
        )
    print("HEADLINE " + " | ".join(headline))


if __name__ == "__main__":
    main()
