"""Data profiles and drift of a table, free of Django (DESIGN.md "Data profiles and drift").

`profile(frame, kinds)` describes each column once, at upload, so that pages never re-read
a dataset's file; `drift(reference, current, kinds)` compares two tables of one schema
column by column. Both answer plain JSON (dicts, lists, strings, ints, finite floats or
None), the same for the same input.

Kinds are those of `boundary.slices.schema_of`: numeric, categorical, boolean, datetime.
Boolean columns are profiled and compared as categories ("True", "False"); datetime
columns show their first and last moment and drift as numbers (nanoseconds).
"""

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, ks_2samp

DISTINCT_CAP = 10_000
TOP_VALUES = 20
HISTOGRAM_BINS = 20
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# The reference's deciles cut the PSI bins: (-inf, q1], (q1, q2], ..., (q9, inf).
DECILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SHARE_FLOOR = 1e-4
PSI_MAJOR = 0.2
PSI_MODERATE = 0.1
LEVELS = ("none", "moderate", "major")


def _num(value):
    """A finite float, or None (JSON has no NaN or infinity)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _quantile_key(q):
    return f"p{round(q * 100):g}"


def _as_numbers(series: pd.Series, kind: str) -> np.ndarray:
    """The non-null values of a numeric (or datetime, in nanoseconds) column as floats."""
    values = series.dropna()
    if kind == "datetime":
        values = pd.to_datetime(values, errors="coerce", utc=True).dropna()
        return values.astype("int64").to_numpy(dtype=float)
    return pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)


def _as_categories(series: pd.Series) -> pd.Series:
    return series.dropna().astype(str)


def _ranked(counts: pd.Series) -> list[tuple[str, int]]:
    """(value, count), most frequent first, ties by value: the same order every time."""
    return sorted(((str(v), int(n)) for v, n in counts.items()), key=lambda vn: (-vn[1], vn[0]))


def _numeric_profile(series: pd.Series) -> dict:
    every = _as_numbers(series, "numeric")
    finite = every[np.isfinite(every)]
    out: dict[str, Any] = {
        "infinite": int(every.size - finite.size),
        "min": None,
        "max": None,
        "mean": None,
        "std": None,
        "quantiles": None,
        "histogram": None,
    }
    if finite.size == 0:
        return out
    out.update(
        min=_num(finite.min()),
        max=_num(finite.max()),
        mean=_num(np.mean(finite)),
        std=_num(np.std(finite)),
        quantiles={
            _quantile_key(q): _num(v)
            for q, v in zip(QUANTILES, np.quantile(finite, QUANTILES), strict=True)
        },
    )
    try:
        counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    except ValueError:  # a range too wide for floats: no bins to draw
        return out
    if all(math.isfinite(e) for e in edges):
        out["histogram"] = {
            "edges": [float(e) for e in edges],
            "counts": [int(c) for c in counts],
        }
    return out


def _categorical_profile(series: pd.Series, *, sensitive: bool, min_rows: int) -> dict:
    ranked = _ranked(_as_categories(series).value_counts(sort=False))
    return _top_and_other(ranked, sensitive=sensitive, min_rows=min_rows)


def _top_and_other(ranked, *, sensitive, min_rows, other=None):
    """The TOP_VALUES most frequent values; the rest as one "other" ({count, values}). A
    sensitive column's values held by fewer than `min_rows` rows are never listed."""
    other = dict(other or {"count": 0, "values": 0})
    top: list[dict[str, Any]] = []
    for value, count in ranked:
        if len(top) < TOP_VALUES and not (sensitive and count < min_rows):
            top.append({"value": value, "count": count})
        else:
            other["count"] += count
            other["values"] += 1
    return {"top": top, "other": other}


def _datetime_profile(series: pd.Series) -> dict:
    values = pd.to_datetime(series.dropna(), errors="coerce", utc=True).dropna()
    if values.empty:
        return {"min": None, "max": None}
    return {"min": values.min().isoformat(), "max": values.max().isoformat()}


def profile(
    frame: pd.DataFrame,
    kinds: Mapping[str, str],
    *,
    sensitive: Iterable[str] = (),
    min_rows: int = 10,
) -> dict:
    """Profile of each column of `kinds` (in that order) in `frame`.

    Every column: name, kind, count (non-null values), nulls, distinct (at most
    DISTINCT_CAP, with distinct_capped when there are more). Numeric: infinite, min, max,
    mean, std (ddof 0), quantiles p1 p5 p25 p50 p75 p95 p99 (numpy's linear rule) and a
    20-bin equal-width histogram {edges, counts} of the finite values. Categorical and
    boolean: the 20 most frequent values {value, count} and the rest as "other"
    {count, values}; a `sensitive` column never lists a value held by fewer than
    `min_rows` rows (it counts in "other"), and never shows a number that describes fewer
    than `min_rows` rows (_withhold_extremes). Datetime: min and max (ISO 8601, UTC).
    """
    sensitive = set(sensitive)
    columns = []
    for name, kind in kinds.items():
        series = frame[name]
        nulls = int(series.isna().sum())
        distinct = int(series.nunique(dropna=True))
        column = {
            "name": str(name),
            "kind": kind,
            "count": int(series.size - nulls),
            "nulls": nulls,
            "distinct": min(distinct, DISTINCT_CAP),
            "distinct_capped": distinct > DISTINCT_CAP,
        }
        if kind == "numeric":
            column.update(_numeric_profile(series))
        elif kind == "datetime":
            column.update(_datetime_profile(series))
        else:
            column.update(
                _categorical_profile(series, sensitive=name in sensitive, min_rows=min_rows)
            )
        if name in sensitive and kind in ("numeric", "datetime"):
            column = _withhold_extremes(column, min_rows)
        columns.append(column)
    return {"rows": int(len(frame)), "columns": columns}


def fold_sensitive(stored: dict, sensitive: Iterable[str], min_rows: int) -> dict:
    """A stored profile as `profile` gives it when the `sensitive` columns are marked (for
    a column marked sensitive after profiling): top values held by fewer than `min_rows`
    rows folded into "other", and the numbers that single out a few rows withheld
    (_withhold_extremes)."""
    sensitive = set(sensitive)
    columns = []
    for column in stored.get("columns", []):
        if column["name"] in sensitive and "top" in column:
            ranked = [(t["value"], t["count"]) for t in column["top"]]
            kept = _top_and_other(ranked, sensitive=True, min_rows=min_rows, other=column["other"])
            column = {**column, **kept}
        elif column["name"] in sensitive:
            column = _withhold_extremes(column, min_rows)
        columns.append(column)
    return {**stored, "columns": columns}


def _withhold_extremes(column: dict, min_rows: int) -> dict:
    """A sensitive numeric or datetime column's profile without what describes fewer than
    `min_rows` rows: its minimum and maximum (one row each), the histogram (its outer edges
    are those extremes and a bin may hold a single row), and each quantile with fewer than
    `min_rows` values beyond it; with fewer than `min_rows` values, every statistic.
    `withheld` names what was left out."""
    column = dict(column)
    n = column.get("count", 0) - column.get("infinite", 0)
    statistics = ("min", "max", "mean", "std", "quantiles", "histogram")
    names = statistics if n < min_rows else ("min", "max", "histogram")
    withheld = [name for name in names if column.get(name) is not None]
    for name in names:
        if name in column:
            column[name] = None
    quantiles = column.get("quantiles")
    if quantiles:
        kept = {}
        for q in QUANTILES:
            key = _quantile_key(q)
            if key in quantiles:
                few = min(q, 1 - q) * n < min_rows
                kept[key] = None if few else quantiles[key]
                if few and quantiles[key] is not None:
                    withheld.append(key)
        column["quantiles"] = kept
    if withheld:
        column["withheld"] = withheld
    return column


def psi(reference_shares, current_shares) -> float:
    """Population stability index of two share vectors, each share floored at SHARE_FLOOR:
    sum of (current - reference) * ln(current / reference)."""
    ref = np.maximum(np.asarray(reference_shares, dtype=float), SHARE_FLOOR)
    cur = np.maximum(np.asarray(current_shares, dtype=float), SHARE_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def level(value) -> str:
    """ "major" from PSI_MAJOR, "moderate" from PSI_MODERATE, else "none" (also no PSI)."""
    if value is None:
        return "none"
    if value >= PSI_MAJOR:
        return "major"
    if value >= PSI_MODERATE:
        return "moderate"
    return "none"


def decile_bins(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts of `values` in the 10 bins cut at the reference's deciles:
    (-inf, q1], (q1, q2], ..., (q9, inf)."""
    edges = np.quantile(reference, DECILES)
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(DECILES) + 1)


def _numeric_drift(ref: np.ndarray, cur: np.ndarray) -> dict:
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        return {"test": "ks", "note": "No values to compare."}
    value = psi(decile_bins(ref, ref) / ref.size, decile_bins(ref, cur) / cur.size)
    ks = ks_2samp(ref, cur)
    return {
        "test": "ks",
        "psi": value,
        "ks_statistic": _num(ks.statistic),
        "p_value": _num(ks.pvalue),
    }


def _categorical_drift(ref: pd.Series, cur: pd.Series) -> dict:
    if ref.empty or cur.empty:
        return {"test": "chi2", "note": "No values to compare."}
    ref_counts, cur_counts = ref.value_counts(), cur.value_counts()
    categories = sorted(set(ref_counts.index) | set(cur_counts.index))
    table = np.array(
        [
            [int(ref_counts.get(c, 0)) for c in categories],
            [int(cur_counts.get(c, 0)) for c in categories],
        ]
    )
    value = psi(table[0] / ref.size, table[1] / cur.size)
    return {
        "test": "chi2",
        "psi": value,
        "ks_statistic": None,
        "p_value": _num(chi2_contingency(table).pvalue),
    }


def drift(reference: pd.DataFrame, current: pd.DataFrame, kinds: Mapping[str, str]) -> dict:
    """Drift of `current` against `reference`, per column of `kinds`, worst first.

    Numeric (and datetime) columns: PSI over 10 bins cut at the reference's deciles, and
    scipy's two-sample Kolmogorov-Smirnov statistic and p-value. Categorical and boolean
    columns: PSI over the union of their categories, and the p-value of scipy's chi-squared
    test of the 2 x categories table of counts. Shares are floored at SHARE_FLOOR. Nulls
    are left out of both (their counts are reported). Each column: name, kind, test,
    psi, level (none, moderate, major), ks_statistic, p_value, reference_count,
    current_count, reference_nulls, current_nulls, and a note ("" unless there was nothing
    to compare). Sorted by PSI, highest first (columns without one last), then by name.
    """
    columns = []
    for name, kind in kinds.items():
        ref, cur = reference[name], current[name]
        row: dict[str, Any] = {
            "name": str(name),
            "kind": kind,
            "test": None,
            "psi": None,
            "level": "none",
            "ks_statistic": None,
            "p_value": None,
            "reference_count": int(ref.notna().sum()),
            "current_count": int(cur.notna().sum()),
            "reference_nulls": int(ref.isna().sum()),
            "current_nulls": int(cur.isna().sum()),
            "note": "",
        }
        if kind in ("numeric", "datetime"):
            row.update(_numeric_drift(_as_numbers(ref, kind), _as_numbers(cur, kind)))
        else:
            row.update(_categorical_drift(_as_categories(ref), _as_categories(cur)))
        row["psi"] = None if row["psi"] is None else _num(row["psi"])
        row["level"] = level(row["psi"])
        columns.append(row)
    columns.sort(key=lambda c: (c["psi"] is None, -(c["psi"] or 0.0), c["name"]))
    return {"columns": columns}
