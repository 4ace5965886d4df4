"""Offline introspection of a model's decision boundary.

Plain functions over pandas and numpy, free of any web-framework import, so that notebooks,
workers and benchmarks can call them directly:

- ``find_weak_slices``: a slice scan that returns the regions (conjunctions of predicates in
  the shared slice format) where a model errs significantly more often than overall;
- ``boundary_grid`` / ``render_boundary_map``: a 2-D map of the predicted probability with
  the other features held constant, the uncertain band and the slice outlined;
- ``noise_sweep`` / ``counterfactual_sweep`` / ``render_curve``: stress sweeps on a slice;
- ``neighbourhood_check``: after a fix, did the errors move next door?
- ``apply_slice``: the vectorised evaluation of a slice's predicates.

Slice predicates are dicts ``{"feature", "op", "value"}`` with the ops
``== != < <= > >= in not_in between is_null not_null``; ``between`` takes ``[lo, hi]``,
both ends included. Missing values follow pandas' NumPy semantics, as the probe engine
does: they satisfy no comparison (``== < <= > >= between in``) and do satisfy ``!=`` and
``not_in``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import xlogy
from scipy.stats import chi2, norm

__all__ = [
    "apply_slice",
    "boundary_grid",
    "counterfactual_sweep",
    "describe_slice",
    "find_weak_slices",
    "neighbourhood_check",
    "noise_sweep",
    "render_boundary_map",
    "render_curve",
    "wilson_interval",
]

Z95 = float(norm.isf(0.025))
OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "not_null")
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
# A predict_proba call on more rows than this is split, to bound memory on wide tables.
_MAX_PREDICT_ROWS = 250_000


# --------------------------------------------------------------------------------------
# Slices
# --------------------------------------------------------------------------------------


def _to_bool(values) -> np.ndarray:
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=bool, na_value=False)
    return np.asarray(values, dtype=bool)


def _predicate_mask(df: pd.DataFrame, pred: dict) -> np.ndarray:
    feature, op, value = pred.get("feature"), pred.get("op"), pred.get("value")
    if feature not in df.columns:
        raise ValueError(f"slice predicate names column {feature!r}, which the dataset lacks")
    if op not in OPS:
        raise ValueError(f"unknown slice op {op!r} on column {feature!r}")
    s = df[feature]
    try:
        if op == "is_null":
            return _to_bool(s.isna())
        if op == "not_null":
            return _to_bool(s.notna())
        if op == "==":
            return _to_bool(s == value)
        if op == "!=":
            return ~_to_bool(s == value)
        if op in _COMPARE:
            return _to_bool(_COMPARE[op](s, value))
        if op == "in":
            return _to_bool(s.isin(list(value)))
        if op == "not_in":
            return ~_to_bool(s.isin(list(value)))
        lo, hi = value
        return _to_bool((s >= lo) & (s <= hi))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"op {op!r} with value {value!r} does not fit column {feature!r}") from exc


def apply_slice(df: pd.DataFrame, slice: list[dict] | None) -> np.ndarray:
    """Boolean row mask of ``df`` for a slice (predicates ANDed; empty = every row)."""
    mask = np.ones(len(df), dtype=bool)
    for pred in slice or ():
        mask &= _predicate_mask(df, pred)
    return mask


def _fmt_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def describe_slice(slice: list[dict] | None) -> str:
    """Human-readable form of a slice: ``age < 31.7 AND income >= 52000``."""
    parts = []
    for pred in slice or ():
        feature, op, value = pred["feature"], pred["op"], pred.get("value")
        if op in ("is_null", "not_null"):
            parts.append(f"{feature} {op.replace('_', ' ')}")
        elif op == "between":
            parts.append(f"{_fmt_value(value[0])} <= {feature} <= {_fmt_value(value[1])}")
        elif op in ("in", "not_in"):
            items = ", ".join(_fmt_value(v) for v in value)
            parts.append(f"{feature} {op.replace('_', ' ')} {{{items}}}")
        else:
            parts.append(f"{feature} {op} {_fmt_value(value)}")
    return " AND ".join(parts) if parts else "(all rows)"


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


def wilson_interval(errors: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there are no rows."""
    if n <= 0:
        return 0.0, 1.0
    p = errors / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _ll(n, e):
    # Maximised binomial log-likelihood of e successes in n trials (0 log 0 = 0).
    return xlogy(e, e) + xlogy(n - e, n - e) - xlogy(n, n)


def _g_stat(n, e, total_n: float, total_e: float):
    """Two-sample likelihood-ratio statistic (G = 2 log LR) of a slice against the rest.

    One-sided: zero wherever the slice's error rate is not above the rest's, so that the
    scan only rewards regions where the model is worse. Vectorised over n and e.
    """
    n = np.asarray(n, dtype=float)
    e = np.asarray(e, dtype=float)
    g = 2.0 * (_ll(n, e) + _ll(total_n - n, total_e - e) - _ll(total_n, total_e))
    worse = e * (total_n - n) > (total_e - e) * n
    return np.where(worse, np.maximum(g, 0.0), 0.0)


def _g_vs_rate(n: float, e: float, p0: float) -> float:
    """One-sample G statistic of a region's rate against a fixed rate p0 (one-sided)."""
    if n <= 0 or e / n <= p0:
        return 0.0
    p = e / n
    return float(2.0 * (xlogy(e, p / p0) + xlogy(n - e, (1 - p) / (1 - p0))))


# --------------------------------------------------------------------------------------
# Slice scan: encoding
# --------------------------------------------------------------------------------------


@dataclass
class _Col:
    """One scanned column, encoded once for the whole scan."""

    name: str
    kind: str  # "num" or "cat"
    codes: np.ndarray  # fine bin (numeric) or category code per row
    nbins: int  # including the null bin
    null_code: int  # -1 when the column has no nulls
    x: np.ndarray | None = None  # numeric values, NaN for nulls
    order: np.ndarray | None = None  # row order by value, nulls left out
    cuts: np.ndarray | None = None  # fine bin edges
    pair_cuts: np.ndarray | None = None  # coarser edges for the two-column search
    pair_codes: np.ndarray | None = None
    integer: bool = False
    labels: list | None = None  # category value per code (None for the rare bucket / null)
    addressable: np.ndarray | None = None  # codes that may appear in == / in sets
    all_labels: list | None = None  # every category present, for not_in


def _py(value):
    """A JSON-friendly Python scalar for numpy / pandas scalars."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def _is_categorical(s: pd.Series) -> bool:
    dt = s.dtype
    return (
        pd.api.types.is_bool_dtype(dt)
        or isinstance(dt, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dt)
        or pd.api.types.is_object_dtype(dt)
    )


def _edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Cut points splitting sorted unique values into about ``bins`` equal-count bins."""
    uniq = np.unique(values)
    if len(uniq) <= bins:
        return uniq[1:]
    cuts = np.unique(np.quantile(values, np.arange(1, bins) / bins))
    return cuts[cuts > uniq[0]]


def _encode(df: pd.DataFrame, columns, max_bins: int, pair_bins: int) -> list[_Col]:
    cols: list[_Col] = []
    for name in columns:
        s = df[name]
        if _is_numeric(s):
            x = s.to_numpy(dtype=float, na_value=np.nan)
            ok = ~np.isnan(x)
            if len(np.unique(x[ok])) < 2:
                continue
            cuts = _edges(x[ok], max_bins)
            pair_cuts = _edges(x[ok], pair_bins)
            nb = len(cuts) + 1
            has_null = not ok.all()
            codes = np.where(ok, np.searchsorted(cuts, np.where(ok, x, 0.0), "right"), nb)
            pcodes = np.where(
                ok, np.searchsorted(pair_cuts, np.where(ok, x, 0.0), "right"), len(pair_cuts) + 1
            )
            order = np.argsort(x, kind="stable")
            cols.append(
                _Col(
                    name=name,
                    kind="num",
                    codes=codes.astype(np.int64),
                    nbins=nb + int(has_null),
                    null_code=nb if has_null else -1,
                    x=x,
                    order=order[: int(ok.sum())],
                    cuts=cuts,
                    pair_cuts=pair_cuts,
                    pair_codes=pcodes.astype(np.int64),
                    integer=pd.api.types.is_integer_dtype(s.dtype),
                )
            )
        elif _is_categorical(s):
            raw_codes, uniques = pd.factorize(s, use_na_sentinel=True)
            if len(uniques) < 2 and not (raw_codes < 0).any():
                continue
            if len(uniques) == 0:
                continue
            counts = np.bincount(raw_codes[raw_codes >= 0], minlength=len(uniques))
            # Only the most frequent categories are addressable; the long tail shares one
            # bucket so that a high-cardinality column cannot blow up the search.
            keep = np.argsort(-counts, kind="stable")[: max(1, max_bins - 1)]
            remap = np.full(len(uniques), len(keep), dtype=np.int64)
            remap[keep] = np.arange(len(keep))
            other = len(keep) if len(keep) < len(uniques) else -1
            n_main = len(keep) + (1 if other >= 0 else 0)
            has_null = (raw_codes < 0).any()
            codes = np.where(raw_codes >= 0, remap[np.maximum(raw_codes, 0)], n_main)
            labels = [_py(uniques[k]) for k in keep] + ([None] if other >= 0 else [])
            addressable = np.zeros(n_main + int(has_null), dtype=bool)
            addressable[: len(keep)] = True
            cols.append(
                _Col(
                    name=name,
                    kind="cat",
                    codes=codes.astype(np.int64),
                    nbins=n_main + int(has_null),
                    null_code=n_main if has_null else -1,
                    labels=labels + ([None] if has_null else []),
                    addressable=addressable,
                    all_labels=[_py(u) for u in uniques],
                )
            )
    return cols


# --------------------------------------------------------------------------------------
# Slice scan: coarse candidates
# --------------------------------------------------------------------------------------


def _interval_members(nb: int, nbins: int):
    """Membership matrix of every bin interval [i, j) except the full range."""
    ii, jj = np.triu_indices(nb + 1, 1)
    keep = ~((ii == 0) & (jj == nb))
    ii, jj = ii[keep], jj[keep]
    ar = np.arange(nbins)
    members = (ar[None, :] >= ii[:, None]) & (ar[None, :] < jj[:, None])
    return members, ii, jj


def _num_cond(col: _Col, cuts: np.ndarray, i: int, j: int, nb: int):
    lo = float(cuts[i - 1]) if i > 0 else -math.inf
    hi = float(cuts[j - 1]) if j < nb else math.inf
    return ("num", col.name, lo, hi)


def _candidates_1d(col: _Col, counts, errs, min_support: int, pair: bool):
    """Single-predicate candidate sets of a column as (membership matrix, conditions).

    Numeric: every interval of (fine or pair) bins, which covers ``<``, ``>=`` and
    ``between``. Categorical: each category, plus the prefixes of the categories ordered by
    error rate (the best ``in`` set for a rate-monotone score is such a prefix). Either:
    ``is_null`` when there are enough nulls.
    """
    rows, conds = [], []
    if col.kind == "num":
        cuts = col.pair_cuts if pair else col.cuts
        nb = len(cuts) + 1
        nbins = nb + int(col.null_code >= 0)
        members, ii, jj = _interval_members(nb, nbins)
        support = members @ counts
        ok = np.flatnonzero(support >= min_support)
        rows.append(members[ok])
        conds.extend(_num_cond(col, cuts, int(ii[k]), int(jj[k]), nb) for k in ok)
        nbins_total = nbins
    else:
        nbins_total = col.nbins
        addr = np.flatnonzero(col.addressable & (counts > 0))
        for c in addr:
            if counts[c] >= min_support:
                m = np.zeros(nbins_total, dtype=bool)
                m[c] = True
                rows.append(m[None, :])
                conds.append(("cat", col.name, frozenset([int(c)])))
        if len(addr) >= 3:
            rate = errs[addr] / counts[addr]
            ranked = addr[np.argsort(-rate, kind="stable")]
            for k in range(2, len(ranked)):
                m = np.zeros(nbins_total, dtype=bool)
                m[ranked[:k]] = True
                if counts[m].sum() >= min_support:
                    rows.append(m[None, :])
                    conds.append(("cat", col.name, frozenset(int(c) for c in ranked[:k])))
    if col.null_code >= 0 and counts[-1] >= min_support:
        m = np.zeros(nbins_total, dtype=bool)
        m[-1] = True
        rows.append(m[None, :])
        conds.append(("null", col.name))
    if not rows:
        return np.zeros((0, nbins_total), dtype=bool), []
    return np.vstack(rows), conds


# --------------------------------------------------------------------------------------
# Slice scan: refinement on raw values
# --------------------------------------------------------------------------------------


class _Scan:
    """State shared by the refinement steps of one scan."""

    def __init__(self, cols: list[_Col], err: np.ndarray, min_support: int):
        self.cols = {c.name: c for c in cols}
        self.err = err
        self.errf = err.astype(float)
        self.min_support = min_support
        self._masks: dict[tuple, np.ndarray] = {}
        self._mask_budget = max(64, 100_000_000 // max(1, len(err)))  # about 100 MB
        # k log k for every possible count: G of integer counts by table look-ups, several
        # times faster than xlogy on the long threshold arrays of the refinement.
        ks = np.arange(len(err) + 1, dtype=float)
        self.klogk = xlogy(ks, ks)
        self.set_active(np.ones(len(err), dtype=bool))

    def set_active(self, active: np.ndarray) -> None:
        """Score and refit on these rows only (the rows no chosen slice explains yet)."""
        self.active = active
        self.n = float(np.count_nonzero(active))
        self.e = float(self.errf[active].sum())

    def cond_mask(self, cond) -> np.ndarray:
        """Row mask of one condition (cached: refits evaluate the same ones repeatedly)."""
        cached = self._masks.get(cond)
        if cached is not None:
            return cached
        col = self.cols[cond[1]]
        if cond[0] == "num":
            m = (col.x >= cond[2]) & (col.x < cond[3])
        elif cond[0] == "null":
            m = col.codes == col.null_code
        else:
            member = np.zeros(col.nbins, dtype=bool)
            member[list(cond[2])] = True
            m = member[col.codes]
        if len(self._masks) >= self._mask_budget:
            self._masks.clear()
        m.flags.writeable = False
        self._masks[cond] = m
        return m

    def mask(self, conds, *, active_only: bool = True) -> np.ndarray:
        m = self.active.copy() if active_only else np.ones(len(self.err), dtype=bool)
        for cond in conds:
            m &= self.cond_mask(cond)
        return m

    def g(self, n, e) -> np.ndarray:
        """``_g_stat`` against the active rows, for integer counts n and e."""
        n = np.asarray(n).astype(np.int64)
        e = np.asarray(e).astype(np.int64)
        tn, te = int(self.n), int(self.e)
        t = self.klogk

        def ll(nn, ee):
            return t[ee] + t[nn - ee] - t[nn]

        g = 2.0 * (ll(n, e) + ll(tn - n, te - e) - ll(tn, te))
        worse = e * (tn - n) > (te - e) * n
        return np.where(worse, np.maximum(g, 0.0), 0.0)

    def score_mask(self, m: np.ndarray) -> float:
        n = int(np.count_nonzero(m))
        if n < self.min_support:
            return 0.0
        return float(self.g(n, np.count_nonzero(self.err & m)))

    def score(self, conds) -> float:
        return self.score_mask(self.mask(conds))

    def _best(self, n, e):
        g = self.g(np.rint(n), np.rint(e))
        g[n < self.min_support] = -1.0
        k = int(np.argmax(g))
        return k, float(g[k])

    def _best_position(self, cands: np.ndarray, count):
        """The candidate position with the best G; ``count(positions)`` gives (n, e).

        Coarse to fine: about 512 evenly spread positions first, then every position
        around the best of those. G moves by a few rows per position, so the optimum
        sits near the coarse one; this keeps long sorted columns cheap.
        """
        stride = max(1, len(cands) // 512)
        if stride == 1:
            k, g = self._best(*count(cands))
            return int(cands[k]), g
        k, g = self._best(*count(cands[::stride]))
        window = cands[max(0, (k - 1) * stride) : (k + 1) * stride + 1]
        k2, g2 = self._best(*count(window))
        if g2 >= g:
            return int(window[k2]), g2
        return int(cands[k * stride]), g

    def refine_num(self, cond, ctx: np.ndarray):
        """Best interval of one numeric column inside ``ctx``, by alternating the ends.

        Works on the context's rows sorted by value: every distinct value is a candidate
        threshold, so the boundary lands between two observed values, not on a bin edge.
        """
        col = self.cols[cond[1]]
        idx = col.order[ctx[col.order]]
        m = len(idx)
        if m < self.min_support:
            return cond, 0.0
        xs = col.x[idx]
        cum = np.concatenate(([0.0], np.cumsum(self.errf[idx])))
        bounds = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1], True])
        p = int(np.searchsorted(xs, cond[2], "left"))
        q = int(np.searchsorted(xs, cond[3], "left"))
        best = 0.0
        for _ in range(3):
            moved = False
            starts = bounds[bounds < q]
            if len(starts):
                pos, g = self._best_position(starts, lambda c, q=q: (q - c, cum[q] - cum[c]))
                if g >= 0 and pos != p:
                    p, moved = pos, True
                best = max(best, g)
            ends = bounds[bounds > p]
            if len(ends):
                pos, g = self._best_position(ends, lambda c, p=p: (c - p, cum[c] - cum[p]))
                if g >= 0 and pos != q:
                    q, moved = pos, True
                best = max(best, g)
            if not moved:
                break
        lo = -math.inf if p == 0 else float(xs[p])
        hi = math.inf if q >= m else float(xs[q])
        return ("num", cond[1], lo, hi), best

    def refine_cat(self, cond, ctx: np.ndarray):
        """Best set of categories inside ``ctx``: a prefix of the categories by error rate."""
        col = self.cols[cond[1]]
        codes = col.codes[ctx]
        counts = np.bincount(codes, minlength=col.nbins).astype(float)
        errs = np.bincount(codes, weights=self.errf[ctx], minlength=col.nbins)
        addr = np.flatnonzero(col.addressable & (counts > 0))
        if len(addr) == 0:
            return cond, 0.0
        ranked = addr[np.argsort(-(errs[addr] / counts[addr]), kind="stable")]
        k, g = self._best(np.cumsum(counts[ranked]), np.cumsum(errs[ranked]))
        if g < 0:
            return cond, 0.0
        return ("cat", cond[1], frozenset(int(c) for c in ranked[: k + 1])), g

    def refine(self, conds):
        """Coordinate ascent: re-fit each predicate given the others, until stable."""
        conds = list(conds)
        masks = [self.cond_mask(c) for c in conds]
        for _ in range(4):
            changed = False
            for i, cond in enumerate(conds):
                if cond[0] == "null":
                    continue
                ctx = self.active.copy()
                for j, mj in enumerate(masks):
                    if j != i:
                        ctx &= mj
                if cond[0] == "num":
                    new, _ = self.refine_num(cond, ctx)
                else:
                    new, _ = self.refine_cat(cond, ctx)
                if new != cond and self.score([*conds[:i], new, *conds[i + 1 :]]) > self.score(
                    conds
                ):
                    conds[i], masks[i], changed = new, self.cond_mask(new), True
            if not changed:
                break
        return tuple(conds)

    def simplify(self, conds, crit: float):
        """Drop predicates (or one end of an interval) that add no significant evidence.

        A predicate stays only when removing it lowers G by at least ``crit``, so a slice
        reads as simply as its data allow (no `cat != rare` riders, no inert bounds).
        """
        conds = list(conds)
        while conds:
            full = self.score(conds)
            options = []
            for i, cond in enumerate(conds):
                if len(conds) > 1:
                    options.append(conds[:i] + conds[i + 1 :])
                if cond[0] == "num" and math.isfinite(cond[2]) and math.isfinite(cond[3]):
                    options.append(
                        [*conds[:i], ("num", cond[1], -math.inf, cond[3]), *conds[i + 1 :]]
                    )
                    options.append(
                        [*conds[:i], ("num", cond[1], cond[2], math.inf), *conds[i + 1 :]]
                    )
            if not options:
                break
            scores = [self.score(o) for o in options]
            k = int(np.argmax(scores))
            if full - scores[k] >= crit:
                break
            conds = options[k]
        return tuple(conds)

    def split(self, conds, crit: float, max_children: int = 4):
        """Sub-slices (one more predicate each) that are significantly worse than the rest
        of the slice, found one after the other; returns them and the rows left over.

        Scored against the slice's own rows, so a union of separate problems (e.g.
        "region == X" holding three unrelated problems in region X) shows its parts.
        """
        parent = self.mask(conds, active_only=False)
        remaining = parent.copy()
        used = {c[1] for c in conds}
        saved = self.active
        children = []
        try:
            for _ in range(max_children):
                self.set_active(remaining)
                best, best_g = None, crit
                for col in self.cols.values():
                    if col.name in used:
                        continue
                    if col.kind == "num":
                        new, g = self.refine_num(("num", col.name, -math.inf, math.inf), remaining)
                        if not (math.isfinite(new[2]) or math.isfinite(new[3])):
                            continue
                    else:
                        new, g = self.refine_cat(("cat", col.name, frozenset()), remaining)
                    if g > best_g:
                        best, best_g = new, g
                if best is None:
                    break
                children.append(tuple(sorted((*conds, best), key=lambda c: c[1])))
                remaining = remaining & ~self.cond_mask(best)
        finally:
            self.set_active(saved)
        return children, remaining

    def extend(self, conds, max_predicates: int, crit: float):
        """Greedily add predicates on unused columns while each adds significant evidence."""
        conds = list(conds)
        while len(conds) < max_predicates:
            base = self.mask(conds)
            full = self.score_mask(base)
            used = {c[1] for c in conds}
            best, best_g = None, full + crit
            for col in self.cols.values():
                if col.name in used:
                    continue
                if col.kind == "num":
                    new, g = self.refine_num(("num", col.name, -math.inf, math.inf), base)
                    if not (math.isfinite(new[2]) or math.isfinite(new[3])):
                        continue
                else:
                    new, g = self.refine_cat(("cat", col.name, frozenset()), base)
                if g > best_g:
                    best, best_g = new, g
            if best is None:
                break
            conds = list(self.refine([*conds, best]))
        return tuple(conds)


# --------------------------------------------------------------------------------------
# Slice scan: readable predicates
# --------------------------------------------------------------------------------------


def _nice(a: float, b: float, *, open_low: bool) -> float:
    """A short decimal inside the gap between two observed values, near its middle.

    ``open_low`` selects a < t <= b (for ``<`` and lower bounds); otherwise a <= t < b (for
    the inclusive upper end of ``between``). Any such t gives the same rows, so the
    shortest one is the most readable.
    """
    if not math.isfinite(a):
        return b
    if not math.isfinite(b):
        return a
    width = b - a
    if width <= 0:
        return b if open_low else a
    mid = (a + b) / 2
    exp = math.ceil(math.log10(width))
    for e in range(exp, exp - 18, -1):
        step = 10.0**e
        cands = sorted(
            {math.floor(mid / step) * step, math.ceil(mid / step) * step, round(mid / step) * step},
            key=lambda t: abs(t - mid),
        )
        for t in cands:
            t = round(t, max(0, -e))
            if (a < t <= b) if open_low else (a <= t < b):
                return float(t)
    return b if open_low else a


def _num_predicate(col: _Col, cond, ctx: np.ndarray) -> dict:
    lo, hi = cond[2], cond[3]
    vals = col.x[ctx]
    vals = vals[~np.isnan(vals)]

    def below(v):
        sel = vals[vals < v]
        return float(sel.max()) if len(sel) else -math.inf

    def at_or_above(v):
        sel = vals[vals >= v]
        return float(sel.min()) if len(sel) else math.inf

    def cast(t):
        return int(t) if col.integer and float(t).is_integer() else float(t)

    if math.isfinite(lo) and math.isfinite(hi):
        lo_t = _nice(below(lo), at_or_above(lo), open_low=True)
        hi_t = _nice(below(hi), at_or_above(hi), open_low=False)
        return {"feature": col.name, "op": "between", "value": [cast(lo_t), cast(hi_t)]}
    if math.isfinite(lo):
        return {
            "feature": col.name,
            "op": ">=",
            "value": cast(_nice(below(lo), at_or_above(lo), open_low=True)),
        }
    return {
        "feature": col.name,
        "op": "<",
        "value": cast(_nice(below(hi), at_or_above(hi), open_low=True)),
    }


def _cat_predicate(col: _Col, cond) -> dict:
    chosen = [col.labels[c] for c in sorted(cond[2])]
    if len(chosen) == 1:
        return {"feature": col.name, "op": "==", "value": chosen[0]}
    rest = [v for v in col.all_labels if v not in chosen]
    # not_in is shorter when the set covers most categories; only exact without nulls,
    # since a null satisfies not_in / != and the found set excludes nulls.
    if col.null_code < 0 and len(rest) < len(chosen):
        if len(rest) == 1:
            return {"feature": col.name, "op": "!=", "value": rest[0]}
        return {"feature": col.name, "op": "not_in", "value": sorted(rest, key=str)}
    return {"feature": col.name, "op": "in", "value": sorted(chosen, key=str)}


def _to_predicates(scan: _Scan, df: pd.DataFrame, conds) -> list[dict]:
    """Readable predicates that select exactly the rows of the internal conditions.

    Thresholds are rounded one predicate at a time, each within the rows the already
    rounded and the remaining predicates select, so the conjunction keeps its rows.
    """
    preds: list[dict] = []
    masks = [scan.cond_mask(c) for c in conds]
    for i, cond in enumerate(conds):
        col = scan.cols[cond[1]]
        ctx = np.ones(len(df), dtype=bool)
        for j, mj in enumerate(masks):
            if j != i:
                ctx &= mj
        if cond[0] == "num":
            pred = _num_predicate(col, cond, ctx)
        elif cond[0] == "null":
            pred = {"feature": col.name, "op": "is_null", "value": None}
        else:
            pred = _cat_predicate(col, cond)
        preds.append(pred)
        masks[i] = _predicate_mask(df, pred)
    return preds


# --------------------------------------------------------------------------------------
# Slice scan: the public function
# --------------------------------------------------------------------------------------


def _errors_vector(y_true, y_pred) -> np.ndarray:
    yt = y_true.to_numpy() if isinstance(y_true, (pd.Series, pd.Index)) else np.asarray(y_true)
    yp = y_pred.to_numpy() if isinstance(y_pred, (pd.Series, pd.Index)) else np.asarray(y_pred)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has shape {yt.shape} but y_pred has {yp.shape}")
    return np.asarray(yt != yp, dtype=bool)


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def find_weak_slices(
    df: pd.DataFrame,
    y_true,
    y_pred,
    *,
    top_k: int = 5,
    min_support: int | None = None,
    max_predicates: int = 2,
    alpha: float = 0.05,
    max_bins: int = 32,
    columns=None,
) -> list[dict]:
    """Regions where the model errs significantly more often than overall, best first.

    Each result is JSON-serialisable: ``slice`` (predicates), ``description``, ``support``,
    ``errors``, ``error_rate``, ``overall_error_rate``, ``ci_low``/``ci_high`` (Wilson 95%),
    ``lift``, ``error_share`` (share of all errors inside), ``score`` (G = 2 log LR of the
    slice against the rest), ``p_value`` (Bonferroni-adjusted for the candidates scanned)
    and ``absorbed`` (overlapping candidates merged into it).

    1. Encode the columns: fine quantile bins for numeric ones (nulls apart), frequent
       categories for the others.
    2. Score every single-predicate candidate (bin intervals, categories, error-ranked
       category sets, is_null) and, for every pair of columns, every conjunction of two
       coarser candidates, via 2-D count tables and matrix products.
    3. Keep a diverse shortlist of the best coarse candidates (row-set Jaccard < 0.7).
    4. Refine each: re-fit every predicate given the others on raw sorted values (precise
       thresholds) or error-ranked category sets; drop predicates or interval ends that
       add no significant evidence; optionally extend to ``max_predicates`` predicates.
    5. Select greedily by score: a slice must have ``min_support`` rows, pass the
       Bonferroni-corrected likelihood-ratio test, have its Wilson lower bound above the
       overall error rate, overlap no chosen slice with Jaccard >= 0.5, and its rows
       outside the chosen slices must still be significantly worse than overall (this
       merges parents and children of a chosen slice into it). A slice that is only the
       union of separate worse parts (nothing wrong outside them) gives way to its parts.
       After each choice, candidates that overlapped it are re-fitted on the rows not yet
       explained, so that the next slice explains new errors.
    """
    err = _errors_vector(y_true, y_pred)
    n = len(err)
    if len(df) != n:
        raise ValueError(f"df has {len(df)} rows but the labels have {n}")
    total_e = int(err.sum())
    if n == 0 or total_e in (0, n) or max_predicates < 1:
        return []
    p0 = total_e / n
    if min_support is None:
        min_support = max(30, math.ceil(0.005 * n))
    min_support = max(1, int(min_support))
    columns = list(df.columns) if columns is None else list(columns)
    max_bins = max(4, int(max_bins))
    pair_bins = max(8, max_bins // 2)
    cols = _encode(df, columns, max_bins, pair_bins)
    if not cols:
        return []
    scan = _Scan(cols, err, min_support)
    errf = scan.errf

    # 2. Coarse candidates.
    scored: list[tuple[float, tuple]] = []
    n_tested = 0
    singles = {}
    for col in cols:
        counts = np.bincount(col.codes, minlength=col.nbins).astype(float)
        errs = np.bincount(col.codes, weights=errf, minlength=col.nbins)
        members, conds = _candidates_1d(col, counts, errs, min_support, pair=False)
        if conds:
            g = _g_stat(members @ counts, members @ errs, n, total_e)
            n_tested += len(conds)
            scored.extend((float(g[k]), (conds[k],)) for k in np.flatnonzero(g > 0))
        if max_predicates >= 2:
            codes = col.pair_codes if col.kind == "num" else col.codes
            nbins = (
                (len(col.pair_cuts) + 1 + int(col.null_code >= 0))
                if col.kind == "num"
                else col.nbins
            )
            pc = np.bincount(codes, minlength=nbins).astype(float)
            pe = np.bincount(codes, weights=errf, minlength=nbins)
            pm, pconds = _candidates_1d(col, pc, pe, min_support, pair=True)
            singles[col.name] = (codes, nbins, pm.astype(float), pconds)
    if max_predicates >= 2:
        per_pair = max(8, 2 * top_k)
        names = [c.name for c in cols]
        for a in range(len(names)):
            codes_a, nb_a, m_a, conds_a = singles[names[a]]
            if not conds_a:
                continue
            for b in range(a + 1, len(names)):
                codes_b, nb_b, m_b, conds_b = singles[names[b]]
                if not conds_b:
                    continue
                flat = codes_a * nb_b + codes_b
                t_n = np.bincount(flat, minlength=nb_a * nb_b).reshape(nb_a, nb_b).astype(float)
                t_e = np.bincount(flat, weights=errf, minlength=nb_a * nb_b).reshape(nb_a, nb_b)
                cnt = m_a @ t_n @ m_b.T
                ers = m_a @ t_e @ m_b.T
                g = _g_stat(cnt, ers, n, total_e)
                g[cnt < min_support] = 0.0
                n_tested += g.size
                flat_g = g.ravel()
                k = min(per_pair, flat_g.size)
                top = np.argpartition(-flat_g, k - 1)[:k]
                for t in top:
                    if flat_g[t] > 0:
                        i, j = divmod(int(t), g.shape[1])
                        scored.append((float(flat_g[t]), (conds_a[i], conds_b[j])))
    if not scored:
        return []
    # Refinement searches many thresholds per candidate; count them in the correction.
    n_eff = max(1, n_tested) * max_bins
    crit = float(chi2.isf(min(1.0, alpha / n_eff), 1))
    crit_simplify = float(chi2.isf(min(1.0, alpha / (len(cols) * max_bins)), 1))
    scored.sort(key=lambda t: -t[0])

    # 3. Diverse shortlist.
    shortlist, short_masks = [], []
    limit = max(4 * top_k, 16)
    for g, conds in scored[: 40 * limit]:
        if g < crit_simplify:
            break
        m = scan.mask(conds)
        if any(_jaccard(m, other) >= 0.7 for other in short_masks):
            continue
        shortlist.append(conds)
        short_masks.append(m)
        if len(shortlist) >= limit:
            break

    # 4. Refinement.
    def polish(conds):
        conds = scan.simplify(scan.refine(conds), crit_simplify)
        if max_predicates > 2:
            conds = scan.simplify(scan.extend(conds, max_predicates, crit_simplify), crit_simplify)
        if not conds:
            return None
        # Re-fit after the structure settled, then drop any end the re-fit made inert.
        conds = scan.simplify(scan.refine(conds), crit_simplify)
        return tuple(sorted(conds, key=lambda c: c[1])) if conds else None

    # Each entry keeps its coarse seed, so that it can be re-fitted from scratch later.
    # Entries: [score, conditions, coarse seed, stale]. The seed allows a re-fit from
    # scratch; a stale entry overlapped a chosen slice and awaits its re-fit.
    pool: list[list] = []
    for seed in shortlist:
        key = polish(seed)
        if key:
            pool.append([scan.score(key), key, seed, False])

    # 5. Significant, distinct slices, each explaining errors the previous ones do not.
    results, chosen_masks = [], []
    covered = np.zeros(n, dtype=bool)
    decomposed: set[tuple] = set()
    while pool and len(results) < top_k:
        top = max(pool, key=lambda entry: entry[0])
        if top[3]:
            # Lazy re-fit: a stale entry keeps its score from before the rows it shared were
            # explained, an optimistic bound, and is re-fitted only when it comes out on top.
            key = polish(top[2])
            # A part of a decomposed union must not grow back into the union.
            if key and key not in decomposed:
                top[1] = key
            top[0], top[3] = scan.score(top[1]), False
            continue
        best_g, conds = top[0], top[1]
        if best_g < crit:
            break
        same = sum(entry[1] == conds for entry in pool)
        pool = [entry for entry in pool if entry[1] != conds]
        preds = _to_predicates(scan, df, conds)
        m = apply_slice(df, preds)
        support = int(m.sum())
        errors = int(err[m].sum())
        lo, hi = wilson_interval(errors, support)
        if support < min_support or lo <= p0:
            continue
        overlaps = [k for k, other in enumerate(chosen_masks) if _jaccard(m, other) >= 0.5]
        if overlaps:
            results[overlaps[0]]["absorbed"] += 1
            continue
        resid = m & ~covered
        r_n, r_e = int(resid.sum()), int(err[resid].sum())
        if chosen_masks and (
            r_n < min_support
            or wilson_interval(r_e, r_n)[0] <= p0
            or _g_vs_rate(r_n, r_e, p0) < crit
        ):
            # Significant only through rows already explained by a better slice.
            for k, other in enumerate(chosen_masks):
                if np.count_nonzero(m & other):
                    results[k]["absorbed"] += 1
                    break
            continue
        if len(conds) < max_predicates:
            children, rest = scan.split(conds, crit)
            r_n, r_e = int(rest.sum()), int(err[rest].sum())
            if children and (
                r_n < min_support
                or wilson_interval(r_e, r_n)[0] <= p0
                or _g_vs_rate(r_n, r_e, p0) < crit
            ):
                # Nothing is wrong with the slice beyond its parts: offer the parts instead.
                decomposed.add(conds)
                pool.extend([scan.score(child), child, child, False] for child in children)
                continue
        g_final = float(_g_stat(support, errors, n, total_e))
        results.append(
            {
                "slice": preds,
                "description": describe_slice(preds),
                "support": support,
                "errors": errors,
                "error_rate": errors / support,
                "overall_error_rate": p0,
                "ci_low": lo,
                "ci_high": hi,
                "lift": (errors / support) / p0,
                "error_share": errors / total_e,
                "score": g_final,
                "p_value": float(min(1.0, chi2.sf(g_final, 1) * n_eff)),
                "absorbed": 0,
            }
        )
        chosen_masks.append(m)
        covered |= m
        # Candidates that are the same problem (Jaccard >= 0.5) or a part of it merge into
        # the new slice; the rest stay in competition.
        kept = []
        for entry in pool:
            km = scan.mask(entry[1], active_only=False)
            inter = np.count_nonzero(km & m)
            if _jaccard(km, m) >= 0.5 or inter >= 0.8 * max(1, np.count_nonzero(km)):
                results[-1]["absorbed"] += 1
            else:
                kept.append(entry)
        results[-1]["absorbed"] += same - 1
        pool = kept
        if len(results) >= top_k or n - int(covered.sum()) < min_support:
            break
        # The remaining candidates now compete on the rows not yet explained. One that
        # overlapped the new slice is re-fitted there from its seed: a parent that merely
        # contained it (e.g. "region == X" around two problems in region X) turns into the
        # problem it still holds instead of being reported as a vague union.
        scan.set_active(~covered)
        for entry in pool:
            km = scan.mask(entry[1], active_only=False)
            if np.count_nonzero(km & m) > 0.05 * max(1, np.count_nonzero(km)):
                entry[3] = True
            elif not entry[3]:
                entry[0] = scan.score(entry[1])
    return results


# --------------------------------------------------------------------------------------
# Models: probabilities on DataFrames
# --------------------------------------------------------------------------------------


def _feature_columns(model, df: pd.DataFrame, feature_columns) -> list:
    if feature_columns is not None:
        cols = list(feature_columns)
    else:
        names = getattr(model, "feature_names_in_", None)
        cols = list(names) if names is not None else list(df.columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"feature columns missing from the dataset: {missing}")
    return cols


def _predict_proba(model, X: pd.DataFrame) -> np.ndarray:
    """predict_proba as a 2-D float array, in chunks to bound memory."""
    parts = []
    for start in range(0, max(len(X), 1), _MAX_PREDICT_ROWS):
        p = np.asarray(model.predict_proba(X.iloc[start : start + _MAX_PREDICT_ROWS]), dtype=float)
        if p.ndim == 1:
            p = np.column_stack([1.0 - p, p])
        parts.append(p)
    return np.vstack(parts)


def _classes(model, n_classes: int) -> list:
    classes = getattr(model, "classes_", None)
    if classes is None or len(classes) != n_classes:
        return list(range(n_classes))
    return [_py(c) for c in classes]


def _margin(proba: np.ndarray) -> np.ndarray:
    if proba.shape[1] == 1:
        return np.ones(len(proba))
    top2 = np.sort(proba, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def _numeric_features(df: pd.DataFrame, cols) -> list:
    return [c for c in cols if _is_numeric(df[c])]


def _check_mask(df: pd.DataFrame, mask) -> np.ndarray:
    if mask is None:
        return np.ones(len(df), dtype=bool)
    if isinstance(mask, list) and (not mask or isinstance(mask[0], dict)):
        return apply_slice(df, mask)
    m = _to_bool(mask) if isinstance(mask, pd.Series) else np.asarray(mask, dtype=bool)
    if m.shape != (len(df),):
        raise ValueError(f"mask has shape {m.shape}, expected ({len(df)},)")
    return m


# --------------------------------------------------------------------------------------
# Boundary maps
# --------------------------------------------------------------------------------------


def _base_row(df: pd.DataFrame, cols) -> dict:
    """Median of numeric columns, mode of the others."""
    row = {}
    for c in cols:
        s = df[c]
        if _is_numeric(s):
            med = s.median()
            if pd.api.types.is_integer_dtype(s.dtype) and pd.notna(med):
                med = round(float(med))
            row[c] = _py(med)
        else:
            mode = s.mode(dropna=True)
            row[c] = _py(mode.iloc[0]) if len(mode) else None
    return row


def _constant_column(df: pd.DataFrame, col, value, n: int) -> pd.Series:
    s = pd.Series([value] * n if n else [], dtype=object)
    try:
        return s.astype(df[col].dtype)
    except (TypeError, ValueError):
        return s


def boundary_grid(
    model,
    df: pd.DataFrame,
    feature_x,
    feature_y,
    *,
    base_row=None,
    resolution: int = 100,
    feature_columns=None,
    slice=None,
    margin: float = 0.1,
) -> dict:
    """Predicted probability over a grid of two numeric features, the others held constant.

    1. The held values: ``base_row`` where given, otherwise the median (numeric) or mode
       (others) over the slice's rows when ``slice`` selects any, else over ``df``.
    2. A ``resolution`` x ``resolution`` grid over the observed range of each axis feature.
    3. One predict_proba call over the grid.

    Returns ``xx``, ``yy``, ``proba`` (of the positive class for a binary model, of the top
    class otherwise), ``margin`` (top minus second probability), ``pred`` (class index),
    plus ``classes``, ``positive_class``, ``base_row``, ``uncertain_share`` (share of the
    grid with margin below ``margin``) and ``positive_share``.
    """
    cols = _feature_columns(model, df, feature_columns)
    for f in (feature_x, feature_y):
        if f not in df.columns:
            raise ValueError(f"column {f!r} is not in the dataset")
        if not _is_numeric(df[f]):
            raise ValueError(f"column {f!r} is not numeric; a boundary map needs numeric axes")
        if f not in cols:
            # The model never sees it: the map would be flat along that axis.
            raise ValueError(f"column {f!r} is not one of the model's feature columns")
    source = df
    if slice:
        m = apply_slice(df, slice)
        if m.any():
            source = df[m]
    held = _base_row(source, cols)
    if base_row is not None:
        held.update({k: _py(v) for k, v in dict(base_row).items()})
    resolution = max(2, int(resolution))

    def axis(f):
        v = df[f].to_numpy(dtype=float, na_value=np.nan)
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        return np.linspace(lo, hi, resolution)

    x, y = axis(feature_x), axis(feature_y)
    xx, yy = np.meshgrid(x, y)
    size = xx.size
    data = {}
    for c in cols:
        if c == feature_x:
            data[c] = xx.ravel()
        elif c == feature_y:
            data[c] = yy.ravel()
        else:
            data[c] = _constant_column(df, c, held.get(c), size)
    grid = pd.DataFrame(data, columns=cols)
    proba_all = _predict_proba(model, grid)
    classes = _classes(model, proba_all.shape[1])
    if proba_all.shape[1] == 2:
        proba = proba_all[:, 1]
        positive = classes[1]
    else:
        proba = proba_all.max(axis=1)
        positive = None
    marg = _margin(proba_all)
    pred = proba_all.argmax(axis=1)
    shape = xx.shape
    return {
        "feature_x": feature_x,
        "feature_y": feature_y,
        "x": x,
        "y": y,
        "xx": xx,
        "yy": yy,
        "proba": proba.reshape(shape),
        "margin": marg.reshape(shape),
        "pred": pred.reshape(shape),
        "classes": classes,
        "positive_class": positive,
        "base_row": held,
        "uncertain_share": float(np.mean(marg < margin)),
        "positive_share": float(np.mean(pred == 1)) if proba_all.shape[1] == 2 else None,
    }


def _slice_box(slice, feature) -> tuple[float, float] | None:
    """The interval a slice allows on one feature, or None when it does not constrain it."""
    lo, hi, found = -math.inf, math.inf, False
    for pred in slice or ():
        if pred.get("feature") != feature:
            continue
        op, v = pred.get("op"), pred.get("value")
        if op in ("<", "<="):
            hi, found = min(hi, float(v)), True
        elif op in (">", ">="):
            lo, found = max(lo, float(v)), True
        elif op == "between":
            lo, hi, found = max(lo, float(v[0])), min(hi, float(v[1])), True
        elif op == "==" and isinstance(v, (int, float)) and not isinstance(v, bool):
            lo, hi, found = max(lo, float(v)), min(hi, float(v)), True
    return (lo, hi) if found else None


def _new_figure(width: float, height: float):
    # The object-oriented Figure renders through Agg without touching pyplot's global
    # state, so concurrent workers and notebooks with other backends are unaffected.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def render_boundary_map(
    model,
    df: pd.DataFrame,
    y_true,
    feature_x,
    feature_y,
    *,
    slice=None,
    margin: float = 0.1,
    title: str = "",
    sensitive_columns=(),
    path_or_buffer,
    feature_columns=None,
    resolution: int = 100,
    max_points: int = 2000,
    seed: int = 0,
) -> dict:
    """Draw a decision-boundary map as a PNG and return its summary numbers.

    1. Grid of predicted probability (``boundary_grid``), other features held at the
       slice's medians/modes (the whole dataset's when no slice is given).
    2. Colour = probability; the band where the margin is below ``margin`` is hatched;
       the 0.5 contour (binary) is drawn.
    3. Dataset points (a seeded sample of at most ``max_points``) coloured by true class,
       misclassified ones marked with black x markers; slice rows drawn larger.
    4. The slice's box on the two features outlined; the held values listed, with values
       of ``sensitive_columns`` withheld from the figure.

    ``y_true`` is an array or the name of a column of ``df``. Returns ``uncertain_share``,
    ``positive_share``, ``n_points``, ``n_plotted``, ``n_misclassified``,
    ``error_rate``, ``slice_support`` and ``slice_box`` (x0, x1, y0, y1 or None).
    """
    cols = _feature_columns(model, df, feature_columns)
    if isinstance(y_true, str):
        y_true = df[y_true]
    yt = y_true.to_numpy() if isinstance(y_true, pd.Series) else np.asarray(y_true)
    if len(yt) != len(df):
        raise ValueError(f"y_true has {len(yt)} values but df has {len(df)} rows")
    grid = boundary_grid(
        model,
        df,
        feature_x,
        feature_y,
        resolution=resolution,
        feature_columns=cols,
        slice=slice,
        margin=margin,
    )
    proba_rows = _predict_proba(model, df[cols])
    classes = grid["classes"]
    pred = np.asarray(classes, dtype=object)[proba_rows.argmax(axis=1)]
    wrong = np.asarray(pred != yt.astype(object), dtype=bool)
    in_slice = apply_slice(df, slice) if slice else np.zeros(len(df), dtype=bool)

    fig = _new_figure(7.5, 6.0)
    ax = fig.add_subplot()
    xx, yy, proba = grid["xx"], grid["yy"], grid["proba"]
    filled = ax.contourf(xx, yy, proba, levels=np.linspace(0, 1, 21), cmap="RdBu_r", alpha=0.75)
    label = f"P({grid['positive_class']})" if grid["positive_class"] is not None else "P(top class)"
    fig.colorbar(filled, ax=ax, label=label)
    if grid["positive_class"] is not None:
        ax.contour(xx, yy, proba, levels=[0.5], colors="black", linewidths=1.2)
    if np.any(grid["margin"] < margin):
        ax.contourf(xx, yy, grid["margin"], levels=[0, margin], colors="none", hatches=["////"])
        ax.contour(
            xx,
            yy,
            grid["margin"],
            levels=[margin],
            colors="dimgrey",
            linewidths=0.8,
            linestyles="dashed",
        )
        from matplotlib.patches import Patch

        # contourf hatching has no legend handle of its own; a proxy patch stands in.
        ax.add_artist(
            ax.legend(
                handles=[
                    Patch(
                        facecolor="none",
                        edgecolor="black",
                        hatch="////",
                        label=f"margin < {margin:g}",
                    )
                ],
                loc="lower left",
                fontsize=7,
                framealpha=0.8,
            )
        )

    rng = np.random.default_rng(seed)
    xs = df[feature_x].to_numpy(dtype=float, na_value=np.nan)
    ys = df[feature_y].to_numpy(dtype=float, na_value=np.nan)
    shown = np.flatnonzero(~np.isnan(xs) & ~np.isnan(ys))
    if len(shown) > max_points:
        # Keep every slice row that fits, then fill up with a sample of the rest.
        sl = shown[in_slice[shown]]
        rest = shown[~in_slice[shown]]
        sl = rng.choice(sl, size=min(len(sl), max_points // 2), replace=False)
        rest = rng.choice(rest, size=min(len(rest), max_points - len(sl)), replace=False)
        shown = np.sort(np.concatenate([sl, rest]))
    # Class colours follow the colour map (first class blue, second red) so that a point
    # of the "wrong" colour on the background is visibly at odds with the model.
    palette = ["#1c3f85", "#9b1c1c", "#2f855a", "#b7791f", "#6b46c1", "#2c7a7b"]
    order = list(classes) + [c for c in pd.unique(pd.Series(yt, dtype=object)) if c not in classes]
    for k, cls in enumerate(order):
        pts = shown[(yt[shown] == cls) & ~wrong[shown]]
        if not len(pts):
            continue
        ax.scatter(
            xs[pts],
            ys[pts],
            s=np.where(in_slice[pts], 20, 8),
            color=palette[k % len(palette)],
            alpha=0.55,
            edgecolors="white",
            linewidths=0.25,
            label=f"true {cls}",
        )
    bad = shown[wrong[shown]]
    if len(bad):
        ax.scatter(
            xs[bad],
            ys[bad],
            s=np.where(in_slice[bad], 36, 18),
            marker="x",
            color="black",
            linewidths=0.9,
            label="misclassified",
        )

    box = None
    bx, by = _slice_box(slice, feature_x), _slice_box(slice, feature_y)
    if bx or by:
        from matplotlib.patches import Rectangle

        x0, x1 = grid["x"][0], grid["x"][-1]
        y0, y1 = grid["y"][0], grid["y"][-1]
        bx0, bx1 = bx if bx else (x0, x1)
        by0, by1 = by if by else (y0, y1)
        bx0, bx1 = max(bx0, x0), min(bx1, x1)
        by0, by1 = max(by0, y0), min(by1, y1)
        box = [float(bx0), float(bx1), float(by0), float(by1)]
        ax.add_patch(
            Rectangle(
                (bx0, by0),
                bx1 - bx0,
                by1 - by0,
                fill=False,
                edgecolor="#d69e2e",
                linewidth=2.2,
                label="slice",
            )
        )
    ax.set_xlabel(str(feature_x))
    ax.set_ylabel(str(feature_y))
    ax.set_xlim(grid["x"][0], grid["x"][-1])
    ax.set_ylim(grid["y"][0], grid["y"][-1])
    ax.set_title(title or f"Decision boundary: {feature_y} vs {feature_x}", fontsize=11)
    if ax.get_legend_handles_labels()[0]:
        # Nothing to list when points are withheld (max_points=0) and there is no slice box.
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    sensitive = set(sensitive_columns or ())
    held = [
        f"{c}={'(withheld)' if c in sensitive else _fmt_value(v)}"
        for c, v in grid["base_row"].items()
        if c not in (feature_x, feature_y)
    ]
    caption = "Held constant: " + (", ".join(held) if held else "nothing")
    if slice:
        caption = f"Slice: {describe_slice(slice)}\n" + caption
    fig.text(0.01, 0.0, _wrap(caption, 130), fontsize=7, va="bottom", ha="left")
    fig.get_layout_engine().set(rect=(0, 0.06, 1, 0.94))
    fig.savefig(path_or_buffer, format="png")

    return {
        "uncertain_share": grid["uncertain_share"],
        "positive_share": grid["positive_share"],
        "n_points": len(df),
        "n_plotted": len(shown),
        "n_misclassified": int(wrong.sum()),
        "error_rate": float(wrong.mean()) if len(df) else 0.0,
        "slice_support": int(in_slice.sum()) if slice else None,
        "slice_box": box,
    }


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


# --------------------------------------------------------------------------------------
# Stress sweeps
# --------------------------------------------------------------------------------------


def _stacked(rows: pd.DataFrame, copies: int) -> pd.DataFrame:
    """``copies`` vertical copies of ``rows`` with a fresh index, dtypes kept."""
    if copies == 1:
        return rows.reset_index(drop=True)
    return rows.iloc[np.tile(np.arange(len(rows)), copies)].reset_index(drop=True)


def noise_sweep(
    model,
    df: pd.DataFrame,
    feature_columns,
    mask,
    *,
    scales=(0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2),
    repeats: int = 5,
    seed: int = 0,
    features=None,
) -> list[dict]:
    """Share of slice rows whose prediction flips under Gaussian noise, per noise scale.

    Noise sd = scale x the feature's standard deviation over the whole dataset (pandas'
    ``std``, ddof=1; a feature with a zero or undefined std gets none), added to each of
    ``features`` (default: every numeric feature column). A flip is a (row, repeat) pair
    whose predicted class differs from the unperturbed one. Each scale draws its noise
    exactly as the ``perturbation_flip_rate`` probe does (``default_rng(seed)``, a
    (repeats x rows, features) standard-normal matrix, repeat-major), so the curve passes
    through that probe's value at the same scale, seed and repeats; the scales share the
    same draws, which keeps the curve free of sampling jitter between points.

    1. Unperturbed predictions of the slice rows and all perturbed copies
       (scales x repeats), stacked so the model is called once (chunked when large).
    2. Flip rate per scale. ``mask`` is a boolean row mask or a slice predicate list.
    """
    cols = _feature_columns(model, df, feature_columns)
    m = _check_mask(df, mask)
    if not m.any():
        raise ValueError("slice is empty")
    feats = _numeric_features(df, cols) if features is None else list(features)
    for f in feats:
        if f not in cols or not _is_numeric(df[f]):
            raise ValueError(f"column {f!r} is not a numeric feature column")
    rows = df.loc[m, cols]
    k = len(rows)
    scales = [float(s) for s in scales]
    big = _stacked(rows, 1 + len(scales) * repeats)
    sds = []
    for f in feats:
        sd = float(pd.to_numeric(df[f], errors="coerce").astype(float).std())
        sds.append(sd if math.isfinite(sd) else 0.0)
    if feats:
        unit = np.random.default_rng(seed).standard_normal((repeats * k, len(feats)))
        noise = np.concatenate(
            [np.zeros((k, len(feats)))] + [unit * s for s in scales], axis=0
        ) * np.asarray(sds)
        for j, f in enumerate(feats):
            big[f] = big[f].to_numpy(dtype=float, na_value=np.nan) + noise[:, j]
    pred = _predict_proba(model, big[cols]).argmax(axis=1).reshape(1 + len(scales) * repeats, k)
    base = pred[0]
    out = []
    for i, s in enumerate(scales):
        block = pred[1 + i * repeats : 1 + (i + 1) * repeats]
        out.append({"scale": s, "flip_rate": float(np.mean(block != base)), "n": int(block.size)})
    return out


def counterfactual_sweep(
    model,
    df: pd.DataFrame,
    feature_columns,
    mask,
    feature,
    *,
    values=None,
) -> list[dict]:
    """Share of slice rows whose prediction changes when ``feature`` is set to each value.

    ``values`` defaults to 20 evenly spaced points across the feature's observed range
    (its distinct values when it has at most 20), or its categories by frequency (at
    most 30). All settings are stacked into one predict_proba call (chunked when large).
    Each point also carries ``mean_proba``: the mean positive-class probability (binary)
    or top-class probability of the changed rows.
    """
    cols = _feature_columns(model, df, feature_columns)
    if feature not in cols:
        raise ValueError(f"column {feature!r} is not a feature column")
    m = _check_mask(df, mask)
    if not m.any():
        raise ValueError("slice is empty")
    s = df[feature]
    if values is None:
        if _is_numeric(s):
            v = s.to_numpy(dtype=float, na_value=np.nan)
            uniq = np.unique(v[~np.isnan(v)])
            if len(uniq) <= 20:
                values = [_py(u) for u in uniq]
            else:
                values = [float(u) for u in np.linspace(uniq[0], uniq[-1], 20)]
        else:
            values = [_py(u) for u in s.value_counts(dropna=True).index[:30]]
    values = list(values)
    rows = df.loc[m, cols]
    k = len(rows)
    big = _stacked(rows, 1 + len(values))
    col = big[feature].to_numpy(dtype=object, copy=True)
    col[k:] = np.repeat(np.asarray(values, dtype=object), k)
    if _is_numeric(s):
        big[feature] = pd.to_numeric(pd.Series(col), errors="coerce").astype(float)
    else:
        try:
            big[feature] = pd.Series(col).astype(s.dtype)
        except (TypeError, ValueError):
            # A value outside a categorical dtype's categories: keep it as plain objects.
            big[feature] = pd.Series(col, dtype=object)
    proba = _predict_proba(model, big[cols])
    pred = proba.argmax(axis=1).reshape(1 + len(values), k)
    score = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
    score = score.reshape(1 + len(values), k)
    return [
        {
            "value": _py(v),
            "flip_rate": float(np.mean(pred[i + 1] != pred[0])),
            "mean_proba": float(score[i + 1].mean()),
            "n": int(k),
        }
        for i, v in enumerate(values)
    ]


def render_curve(
    points,
    x_key,
    y_key,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    path_or_buffer,
    threshold: float | None = None,
) -> None:
    """A small line chart (PNG) of ``points[i][y_key]`` against ``points[i][x_key]``.

    Non-numeric x values (categories) are placed at even positions with their labels.
    ``threshold`` draws a dashed reference line, e.g. the probe's pass threshold.
    """
    xs = [p[x_key] for p in points]
    ys = [float(p[y_key]) for p in points]
    fig = _new_figure(5.0, 3.2)
    ax = fig.add_subplot()
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
    if numeric:
        ax.plot(xs, ys, marker="o", markersize=3.5, color="#2b6cb0")
    else:
        pos = np.arange(len(xs))
        ax.plot(pos, ys, marker="o", markersize=3.5, color="#2b6cb0", linestyle="-")
        ax.set_xticks(
            pos,
            [str(v) for v in xs],
            rotation=45 if len(xs) > 6 else 0,
            fontsize=7,
            ha="right" if len(xs) > 6 else "center",
        )
    if threshold is not None:
        ax.axhline(
            float(threshold),
            color="#c53030",
            linestyle="--",
            linewidth=1,
            label=f"threshold {threshold:g}",
        )
        ax.legend(fontsize=7)
    top = max([*ys, float(threshold) if threshold is not None else 0.0, 1e-9])
    ax.set_ylim(0, top * 1.1 if top < 1 else max(1.0, top * 1.05))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.savefig(path_or_buffer, format="png")


# --------------------------------------------------------------------------------------
# Moved-problem check
# --------------------------------------------------------------------------------------


def _numeric_bounds(df: pd.DataFrame, slice) -> dict:
    """Per numeric feature, the [lo, hi] the slice's ordering predicates allow."""
    bounds = {}
    for pred in slice:
        f, op = pred.get("feature"), pred.get("op")
        if op not in ("<", "<=", ">", ">=", "between") or f not in df.columns:
            continue
        if not _is_numeric(df[f]):
            continue
        box = _slice_box([pred], f)
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
    err = _errors_vector(y_true, y_pred)
    if len(df) != len(err):
        raise ValueError(f"df has {len(df)} rows but the labels have {len(err)}")
    n = len(err)
    if min_support is None:
        min_support = max(20, math.ceil(0.0025 * n))
    p0 = float(err.mean()) if n else 0.0
    sm = apply_slice(df, slice)
    s_n = int(sm.sum())
    if s_n == 0:
        raise ValueError("slice is empty")
    s_e = int(err[sm].sum())
    s_lo, s_hi = wilson_interval(s_e, s_n)

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
        ring = apply_slice(df, preds) & ~sm
        r_n = int(ring.sum())
        key = ring.tobytes()
        if r_n == 0 or key in seen:
            continue
        seen.add(key)
        r_e = int(err[ring].sum())
        lo95, hi95 = wilson_interval(r_e, r_n)
        significant = r_n >= min_support and wilson_interval(r_e, r_n, z_adj)[0] > p0
        rings.append(
            {
                "kind": kind,
                "feature": feature,
                "factor": factor,
                "slice": preds,
                "description": describe_slice(preds) + " minus the slice",
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
