"""The search inside a slice scan (``boundary.scan.find_weak_slices``): columns encoded
once into bins or category codes, coarse candidate regions, and their refinement on raw
values by coordinate ascent on the likelihood-ratio statistic G.

The internal conditions here are bin intervals and category sets over the encoded
columns; the scan turns the ones it keeps into slice predicates, whose rows are then
``slices.mask``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import xlogy

from .frames import is_numeric, py_scalar

# Numeric columns re-fitted on raw values per step of ``Scan.extend``, chosen by their
# screen on fine bins: the rest cannot compete at the start of the refit.
EXTEND_REFITS = 4

# An internal condition: ("num", column, low, high) for low <= x < high, ("cat", column,
# frozenset of category codes) or ("null", column).
Cond = tuple[Any, ...]


@dataclass
class Col:
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


def _is_categorical(s: pd.Series) -> bool:
    dt = s.dtype
    return (
        pd.api.types.is_bool_dtype(dt)
        or isinstance(dt, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dt)
        or pd.api.types.is_object_dtype(dt)
    )


def _edges(xs: np.ndarray, bins: int, quantiles: np.ndarray) -> np.ndarray:
    """Cut points splitting sorted values ``xs`` into about ``bins`` equal-count bins
    (``quantiles``: their quantiles at 1/bins, ..., (bins-1)/bins)."""
    distinct = np.r_[True, xs[1:] != xs[:-1]]
    if np.count_nonzero(distinct) <= bins:
        return xs[distinct][1:]
    cuts = np.unique(quantiles)
    return cuts[cuts > xs[0]]


def _bin_codes(order: np.ndarray, xs: np.ndarray, cuts: np.ndarray, n: int, null_code: int):
    """Per row, the number of cuts at or below its value (``searchsorted(cuts, x,
    "right")``), from the rows sorted by value; ``null_code`` for rows without one."""
    starts = np.searchsorted(xs, cuts, "left")
    sorted_codes = np.repeat(
        np.arange(len(cuts) + 1, dtype=np.int64), np.diff(np.r_[0, starts, len(xs)])
    )
    codes = np.full(n, null_code, dtype=np.int64)
    codes[order] = sorted_codes
    return codes


def encode(df: pd.DataFrame, columns, max_bins: int, pair_bins: int) -> list[Col]:
    cols: list[Col] = []
    for name in columns:
        s = df[name]
        if is_numeric(s):
            x = s.to_numpy(dtype=float, na_value=np.nan)
            # One sort per column serves the bins, the codes and every later refit. Ties
            # may come in any order: thresholds only ever fall between distinct values.
            # NaN sorts last.
            order = np.argsort(x)
            order = order[: len(x) - int(np.count_nonzero(np.isnan(x)))]
            xs = x[order]
            if len(xs) < 2 or xs[0] == xs[-1]:
                continue
            fine_q = np.arange(1, max_bins) / max_bins
            pair_q = np.arange(1, pair_bins) / pair_bins
            q = np.quantile(xs, np.r_[fine_q, pair_q])
            cuts = _edges(xs, max_bins, q[: len(fine_q)])
            pair_cuts = _edges(xs, pair_bins, q[len(fine_q) :])
            nb = len(cuts) + 1
            has_null = len(xs) < len(x)
            codes = _bin_codes(order, xs, cuts, len(x), nb)
            pcodes = _bin_codes(order, xs, pair_cuts, len(x), len(pair_cuts) + 1)
            cols.append(
                Col(
                    name=name,
                    kind="num",
                    codes=codes,
                    nbins=nb + int(has_null),
                    null_code=nb if has_null else -1,
                    x=x,
                    order=order,
                    cuts=cuts,
                    pair_cuts=pair_cuts,
                    pair_codes=pcodes,
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
            labels = [py_scalar(uniques[k]) for k in keep] + ([None] if other >= 0 else [])
            addressable = np.zeros(n_main + int(has_null), dtype=bool)
            addressable[: len(keep)] = True
            cols.append(
                Col(
                    name=name,
                    kind="cat",
                    codes=codes.astype(np.int64),
                    nbins=n_main + int(has_null),
                    null_code=n_main if has_null else -1,
                    labels=labels + ([None] if has_null else []),
                    addressable=addressable,
                    all_labels=[py_scalar(u) for u in uniques],
                )
            )
    return cols


def _interval_members(nb: int, nbins: int):
    """Membership matrix of every bin interval [i, j) except the full range."""
    ii, jj = np.triu_indices(nb + 1, 1)
    keep = ~((ii == 0) & (jj == nb))
    ii, jj = ii[keep], jj[keep]
    ar = np.arange(nbins)
    members = (ar[None, :] >= ii[:, None]) & (ar[None, :] < jj[:, None])
    return members, ii, jj


def _num_cond(col: Col, cuts: np.ndarray, i: int, j: int, nb: int):
    lo = float(cuts[i - 1]) if i > 0 else -math.inf
    hi = float(cuts[j - 1]) if j < nb else math.inf
    return ("num", col.name, lo, hi)


def candidates_1d(col: Col, counts, errs, min_support: int, pair: bool):
    """Single-predicate candidate sets of a column as (membership matrix, conditions).

    Numeric: every interval of (fine or pair) bins, which covers ``<``, ``>=`` and
    ``between``. Categorical: each category, plus the prefixes of the categories ordered by
    error rate (the best ``in`` set for a rate-monotone score is such a prefix). Either:
    ``is_null`` when there are enough nulls.
    """
    rows: list[np.ndarray] = []
    conds: list[Cond] = []
    if col.kind == "num":
        cuts = col.pair_cuts if pair else col.cuts
        assert cuts is not None  # numeric columns carry their cuts
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
        assert col.addressable is not None  # categorical columns carry it
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


class Scan:
    """State shared by the refinement steps of one scan."""

    def __init__(self, cols: list[Col], err: np.ndarray, min_support: int):
        self.cols = {c.name: c for c in cols}
        self.err = err
        self.errf = err.astype(float)
        self.min_support = min_support
        self._masks: dict[tuple, np.ndarray] = {}
        self._mask_budget = max(64, 100_000_000 // max(1, len(err)))  # about 100 MB
        self._members: dict[str, np.ndarray] = {}  # fine-bin intervals per numeric column
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
        """``scan.g_stat`` against the active rows, for integer counts n and e."""
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

    def sorted_rows(self, col: Col, ctx: np.ndarray, rows: np.ndarray | None = None):
        """The rows of ``ctx`` (``rows``: their indices, when known) with a value of the
        numeric column ``col``, sorted by it.

        A small context sorts its own rows; a large one filters the column's sorted order.
        Either gives the same values in the same order up to ties, which never matter.
        """
        assert col.order is not None and col.x is not None  # a numeric column
        count = np.count_nonzero(ctx) if rows is None else len(rows)
        if count * 8 > len(ctx):
            return col.order[ctx[col.order]]
        if rows is None:
            rows = np.flatnonzero(ctx)
        vals = col.x[rows]
        keep = ~np.isnan(vals)
        if not keep.all():
            rows, vals = rows[keep], vals[keep]
        return rows[np.argsort(vals)]

    def coarse_gain(self, col: Col, rows: np.ndarray) -> float:
        """The best G of an interval of the numeric column's fine bins among ``rows``
        (a cheap screen before the raw-value re-fit)."""
        members = self._members.get(col.name)
        if members is None:
            assert col.cuts is not None  # a numeric column
            nb = len(col.cuts) + 1
            members = _interval_members(nb, col.nbins)[0].astype(float)
            self._members[col.name] = members
        codes = col.codes[rows]
        counts = np.bincount(codes, minlength=col.nbins).astype(float)
        errs = np.bincount(codes, weights=self.errf[rows], minlength=col.nbins)
        cnt = members @ counts
        g = self.g(cnt, members @ errs)
        g[cnt < self.min_support] = 0.0
        return float(g.max()) if g.size else 0.0

    def refine_num(self, cond, ctx: np.ndarray, rows: np.ndarray | None = None):
        """Best interval of one numeric column inside ``ctx``, by alternating the ends.

        Works on the context's rows sorted by value: every distinct value is a candidate
        threshold, so the boundary lands between two observed values, not on a bin edge.
        """
        col = self.cols[cond[1]]
        assert col.order is not None and col.x is not None  # a numeric column
        idx = self.sorted_rows(col, ctx, rows)
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

    def refine_cat(self, cond, ctx: np.ndarray, rows: np.ndarray | None = None):
        """Best set of categories inside ``ctx``: a prefix of the categories by error rate."""
        col = self.cols[cond[1]]
        pick = ctx if rows is None else rows
        codes = col.codes[pick]
        counts = np.bincount(codes, minlength=col.nbins).astype(float)
        errs = np.bincount(codes, weights=self.errf[pick], minlength=col.nbins)
        assert col.addressable is not None  # a categorical column
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
            rows = np.flatnonzero(base)
            used = {c[1] for c in conds}
            best, best_g = None, full + crit
            # Pruning: numeric columns are screened on their fine bins inside the slice;
            # only the most promising few are re-fitted on raw values.
            numeric = [c for c in self.cols.values() if c.kind == "num" and c.name not in used]
            screen = sorted(numeric, key=lambda c: -self.coarse_gain(c, rows))
            refit = {c.name for c in screen[:EXTEND_REFITS]}
            for col in self.cols.values():
                if col.name in used or (col.kind == "num" and col.name not in refit):
                    continue
                if col.kind == "num":
                    new, g = self.refine_num(("num", col.name, -math.inf, math.inf), base, rows)
                    if not (math.isfinite(new[2]) or math.isfinite(new[3])):
                        continue
                else:
                    new, g = self.refine_cat(("cat", col.name, frozenset()), base, rows)
                if g > best_g:
                    best, best_g = new, g
            if best is None:
                break
            conds = list(self.refine([*conds, best]))
        return tuple(conds)
