"""The neighbourhood check behind "did the problem move?": after a fix, are the errors of a
pinned slice now next door?

Plain functions, no web framework. Every region's rows are ``slices.mask``'s (one cache
per table, so each predicate is evaluated once), its text ``slices.describe``'s and its
intervals ``stats.wilson``'s. The caller predicts (``boundary.predict``) and passes the
true and predicted labels.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from . import slices
from .frames import errors_vector, is_numeric
from .maps import slice_box
from .stats import wilson

__all__ = ["neighbourhood_check"]


def _numeric_bounds(df: pd.DataFrame, slice) -> dict:
    """Per numeric feature, the [lo, hi] the slice's ordering predicates allow."""
    bounds: dict[str, tuple[float, float]] = {}
    for pred in slice:
        f, op = pred.get("feature"), pred.get("op")
        if op not in ("<", "<=", ">", ">=", "between") or f not in df.columns:
            continue
        if not is_numeric(df[f]):
            continue
        box = slice_box([pred], f)
        assert box is not None  # an ordering predicate on f always bounds f
        lo, hi = bounds.get(f, (-math.inf, math.inf))
        bounds[f] = (max(lo, box[0]), min(hi, box[1]))
    return bounds


def _region(slice, feature, lo: float, hi: float) -> list[dict]:
    """The slice with its predicates on ``feature`` replaced by lo <= feature <= hi."""
    preds = [
        p
        for p in slice
        if not (p.get("feature") == feature and p.get("op") in ("<", "<=", ">", ">=", "between"))
    ]
    if math.isfinite(lo) and math.isfinite(hi):
        preds.append({"feature": feature, "op": "between", "value": [lo, hi]})
    elif math.isfinite(lo):
        preds.append({"feature": feature, "op": ">=", "value": lo})
    elif math.isfinite(hi):
        preds.append({"feature": feature, "op": "<=", "value": hi})
    return preds


def neighbourhood_check(
    df: pd.DataFrame,
    y_true,
    y_pred,
    slice,
    *,
    widen=(0.25, 0.5),
    shift=(-1.0, -0.5, 0.5, 1.0),
    min_support: int | None = None,
    alpha: float = 0.05,
    top: int = 5,
) -> dict:
    """Did the errors of a pinned slice move next door?

    1. The slice's own error rate and Wilson interval, and the overall error rate.
    2. Neighbourhoods: each numeric ordering predicate widened by ``widen`` x its width
       (one feature at a time and all at once) and shifted by ``shift`` x its width; each
       other predicate dropped (the same region in other categories). A predicate with
       one open end has, as width, the extent of the slice's rows (2nd-98th percentile).
    3. For each, the ring = neighbourhood minus the slice; it is significant when it has
       ``min_support`` rows and its Wilson lower bound (Bonferroni-adjusted over the rings,
       at level ``alpha``) is above the overall error rate.
    4. ``moved`` = the slice itself is no longer significantly worse than overall (its
       Wilson 95% lower bound is at or below the overall rate) and some ring is
       significant. ``spread`` = both the slice and a ring are significantly worse.
    """
    slice = list(slice or [])
    err = errors_vector(y_true, y_pred)
    if len(df) != len(err):
        raise ValueError(f"df has {len(df)} rows but the labels have {len(err)}")
    n = len(err)
    if min_support is None:
        min_support = max(20, math.ceil(0.0025 * n))
    p0 = float(err.mean()) if n else 0.0
    cache: dict = {}  # slices.mask's encoded columns and predicate masks of df
    sm = slices.mask(df, slice, cache)
    s_n = int(sm.sum())
    if s_n == 0:
        raise ValueError("slice is empty")
    s_e = int(err[sm].sum())
    s_lo, s_hi = wilson(s_e, s_n)
    assert s_lo is not None  # s_n > 0

    # 2. Neighbourhoods.
    variants: list[tuple[str, str, float, list[dict]]] = []
    bounds = _numeric_bounds(df, slice)
    widths = {}
    for f, (lo, hi) in bounds.items():
        vals = df.loc[sm, f].to_numpy(dtype=float, na_value=np.nan)
        vals = vals[~np.isnan(vals)]
        e_lo = lo if math.isfinite(lo) else (float(np.quantile(vals, 0.02)) if len(vals) else lo)
        e_hi = hi if math.isfinite(hi) else (float(np.quantile(vals, 0.98)) if len(vals) else hi)
        w = e_hi - e_lo if math.isfinite(e_hi - e_lo) else 0.0
        if w <= 0:
            w = float(np.nanstd(df[f].to_numpy(dtype=float, na_value=np.nan))) or 1.0
        widths[f] = w
        for fac in widen:
            variants.append(("widen", f, float(fac), _region(slice, f, lo - fac * w, hi + fac * w)))
        for fac in shift:
            variants.append(("shift", f, float(fac), _region(slice, f, lo + fac * w, hi + fac * w)))
    if len(bounds) > 1:
        for fac in widen:
            preds = slice
            for f, (lo, hi) in bounds.items():
                preds = _region(preds, f, lo - fac * widths[f], hi + fac * widths[f])
            variants.append(("widen", "*", float(fac), preds))
    for i, pred in enumerate(slice):
        if pred.get("feature") not in bounds:
            variants.append(("relax", pred.get("feature"), 0.0, slice[:i] + slice[i + 1 :]))

    # 3. Rings.
    z_adj = float(norm.isf(alpha / (2 * max(1, len(variants)))))
    rings, seen = [], set()
    for kind, feature, factor, preds in variants:
        ring = slices.mask(df, preds, cache) & ~sm
        r_n = int(ring.sum())
        key = ring.tobytes()
        if r_n == 0 or key in seen:
            continue
        seen.add(key)
        r_e = int(err[ring].sum())
        lo95, hi95 = wilson(r_e, r_n)
        lo_adj = wilson(r_e, r_n, z_adj)[0]
        assert lo_adj is not None  # r_n > 0
        significant = r_n >= min_support and lo_adj > p0
        rings.append(
            {
                "kind": kind,
                "feature": feature,
                "factor": factor,
                "slice": preds,
                "description": slices.describe(preds) + " minus the slice",
                "support": r_n,
                "errors": r_e,
                "error_rate": r_e / r_n,
                "ci_low": lo95,
                "ci_high": hi95,
                "significant": bool(significant),
            }
        )
    rings.sort(key=lambda r: (r["significant"], r["ci_low"], r["error_rate"]), reverse=True)
    best = rings[0] if rings else None
    any_sig = bool(best and best["significant"])
    slice_bad = s_lo > p0
    return {
        "slice_error_rate": s_e / s_n,
        "slice_support": s_n,
        "slice_ci_low": s_lo,
        "slice_ci_high": s_hi,
        "overall_error_rate": p0,
        "neighbour_error_rate": best["error_rate"] if best else None,
        "neighbour_support": best["support"] if best else 0,
        "neighbour_ci_low": best["ci_low"] if best else None,
        "neighbour_slice": best["slice"] if best else None,
        "neighbour_significant": any_sig,
        "moved": bool(any_sig and not slice_bad),
        "spread": bool(any_sig and slice_bad),
        "neighbours": rings[:top],
    }
