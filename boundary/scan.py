"""The slice scan: regions (conjunctions of predicates in the shared slice format) where a
model errs significantly more often than overall.

Plain functions over pandas and NumPy, free of any web-framework import. The search itself
(column encoding, coarse candidates, refinement) is in ``boundary.scan_search``; this
module scores, selects and reports. The rows of every reported slice are
``slices.mask``'s, its text is ``slices.describe``'s and its interval is
``stats.wilson``'s.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import xlogy
from scipy.stats import chi2

from . import slices
from .frames import errors_vector
from .scan_search import Col, Cond, Scan, candidates_1d, encode
from .stats import wilson

__all__ = ["find_weak_slices", "g_stat", "overlaps", "row_jaccard", "slice_key"]

# Coarse seeds on the same set of columns that enter the shortlist (see step 3).
SEEDS_PER_COLUMNS = 2


def _ll(n, e):
    # Maximised binomial log-likelihood of e successes in n trials (0 log 0 = 0).
    return xlogy(e, e) + xlogy(n - e, n - e) - xlogy(n, n)


def g_stat(n, e, total_n: float, total_e: float):
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


def _lower_bound(k: int, n: int) -> float:
    """Wilson lower bound of k / n, for n >= 1."""
    low = wilson(k, n)[0]
    assert low is not None  # wilson gives None only for n <= 0
    return low


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


def _num_predicate(col: Col, cond, ctx: np.ndarray) -> dict:
    lo, hi = cond[2], cond[3]
    assert col.x is not None  # a numeric column
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


def _cat_predicate(col: Col, cond) -> dict:
    assert col.labels is not None and col.all_labels is not None  # a categorical column
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


def _to_predicates(scan: Scan, df: pd.DataFrame, conds, cache: dict) -> list[dict]:
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
            pred = {"feature": col.name, "op": "is_null"}
        else:
            pred = _cat_predicate(col, cond)
        preds.append(pred)
        masks[i] = slices.mask(df, [pred], cache)
    return preds


def row_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity |a & b| / |a | b| of two row masks (0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


_jaccard = row_jaccard


def slice_key(predicates: list[dict] | None, df: pd.DataFrame) -> str | None:
    """A canonical text of a slice on ``df``'s columns, equal for two slices that differ
    only in the order of their predicates or of the values of an ``in`` / ``not_in`` list,
    or in how a value is written (``slices.validate`` normalises them). None when the
    slice does not fit the table (a column it lacks, an op that does not fit)."""
    try:
        normalised = slices.validate(predicates, slices.schema_of(df))
    except slices.ProbeDefinitionError:
        return None
    canonical = []
    for predicate in normalised:
        predicate = dict(predicate)
        if predicate["op"] in ("in", "not_in"):
            predicate["value"] = sorted(predicate["value"], key=lambda v: (str(type(v)), str(v)))
        canonical.append(json.dumps(predicate, sort_keys=True, default=str))
    return json.dumps(sorted(canonical))


def overlaps(
    df: pd.DataFrame, masks: list[np.ndarray], others: list[list[dict] | None], cache: dict
) -> list[list[float | None]]:
    """Row-set Jaccard of each mask with each of the ``others`` slices' rows on ``df``
    (``slices.mask``, sharing ``cache``); None where a slice does not fit the table."""
    other_masks: list[np.ndarray | None] = []
    for other in others:
        try:
            other_masks.append(slices.mask(df, other, cache))
        except slices.ProbeDefinitionError:
            other_masks.append(None)
    return [[None if o is None else row_jaccard(m, o) for o in other_masks] for m in masks]


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
    err = errors_vector(y_true, y_pred)
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
    cols = encode(df, columns, max_bins, pair_bins)
    if not cols:
        return []
    scan = Scan(cols, err, min_support)
    cache: dict = {}  # slices.mask's encoded columns and predicate masks of df
    errf = scan.errf

    # The evidence a predicate must add to stay in a slice (Scan.simplify).
    crit_simplify = float(chi2.isf(min(1.0, alpha / (len(cols) * max_bins)), 1))

    # 2. Coarse candidates.
    scored: list[tuple[float, tuple]] = []
    n_tested = 0
    singles: dict[str, tuple[np.ndarray, int, np.ndarray, list[Cond], np.ndarray]] = {}
    for col in cols:
        counts = np.bincount(col.codes, minlength=col.nbins).astype(float)
        errs = np.bincount(col.codes, weights=errf, minlength=col.nbins)
        members, conds = candidates_1d(col, counts, errs, min_support, pair=False)
        if conds:
            g = g_stat(members @ counts, members @ errs, n, total_e)
            n_tested += len(conds)
            scored.extend((float(g[k]), (conds[k],)) for k in np.flatnonzero(g > 0))
        if max_predicates >= 2:
            if col.kind == "num":
                assert col.pair_codes is not None and col.pair_cuts is not None
                codes = col.pair_codes
                nbins = len(col.pair_cuts) + 1 + int(col.null_code >= 0)
            else:
                codes, nbins = col.codes, col.nbins
            pc = np.bincount(codes, minlength=nbins).astype(float)
            pe = np.bincount(codes, weights=errf, minlength=nbins)
            pm, pconds = candidates_1d(col, pc, pe, min_support, pair=True)
            pm = pm.astype(float)
            # Each single's own G: a pair must beat both of its parts (pruning below).
            g_single = scan.g(pm @ pc, pm @ pe)
            singles[col.name] = (codes, nbins, pm, pconds, g_single)
    if max_predicates >= 2:
        per_pair = max(8, 2 * top_k)
        names = [c.name for c in cols]
        # Each pair's count and error tables come from one bincount of
        # (code_a * nb_b + code_b) * 2 + error, on 32-bit codes.
        err_code = err.astype(np.int32)
        low = {
            name: (2 * codes.astype(np.int32) + err_code) for name, (codes, *_) in singles.items()
        }
        for a in range(len(names)):
            codes_a, nb_a, m_a, conds_a, g_a = singles[names[a]]
            if not conds_a:
                continue
            high_a = codes_a.astype(np.int32)
            for b in range(a + 1, len(names)):
                codes_b, nb_b, m_b, conds_b, g_b = singles[names[b]]
                if not conds_b:
                    continue
                flat = high_a * (2 * nb_b) + low[names[b]]
                t = np.bincount(flat, minlength=nb_a * nb_b * 2).reshape(nb_a, nb_b, 2)
                t_e = t[:, :, 1].astype(float)
                t_n = t_e + t[:, :, 0]
                cnt = m_a @ t_n @ m_b.T
                ers = m_a @ t_e @ m_b.T
                # Integer counts: G by the scan's look-up table (same values as g_stat).
                g = scan.g(cnt, ers)
                g[cnt < min_support] = 0.0
                n_tested += g.size
                # Pruning: a pair that does not beat both of its parts by the evidence a
                # predicate needs to stay (crit_simplify) would be simplified back to one
                # of them; it would only crowd the shortlist with copies of a strong
                # single region and hide weaker, genuine pairs.
                g[g < np.maximum(g_a[:, None], g_b[None, :]) + crit_simplify] = 0.0
                flat_g = g.ravel()
                k = min(per_pair, flat_g.size)
                top_cells = np.argpartition(-flat_g, k - 1)[:k]
                for t_cell in top_cells:
                    if flat_g[t_cell] > 0:
                        i, j = divmod(int(t_cell), g.shape[1])
                        scored.append((float(flat_g[t_cell]), (conds_a[i], conds_b[j])))
    if not scored:
        return []
    # Refinement searches many thresholds per candidate; count them in the correction.
    n_eff = max(1, n_tested) * max_bins
    crit = float(chi2.isf(min(1.0, alpha / n_eff), 1))
    scored.sort(key=lambda t: -t[0])

    # 3. Diverse shortlist.
    shortlist: list[tuple] = []
    short_masks: list[np.ndarray] = []
    limit = max(4 * top_k, 16)
    # Refinement re-fits every threshold and category set, so variants of one set of
    # columns mostly polish into the same slice: a few seeds per column set suffice, and
    # the rest of the shortlist goes to other columns.
    per_columns: dict[frozenset, int] = {}
    for g, conds in scored[: 40 * limit]:
        if g < crit_simplify:
            break
        column_set = frozenset(c[1] for c in conds)
        if per_columns.get(column_set, 0) >= SEEDS_PER_COLUMNS:
            continue
        m = scan.mask(conds)
        if any(_jaccard(m, other) >= 0.7 for other in short_masks):
            continue
        per_columns[column_set] = per_columns.get(column_set, 0) + 1
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
    results: list[dict[str, Any]] = []
    chosen_masks: list[np.ndarray] = []
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
        preds = _to_predicates(scan, df, conds, cache)
        m = slices.mask(df, preds, cache)
        support = int(m.sum())
        errors = int(err[m].sum())
        lo, hi = wilson(errors, support)
        if support < min_support or lo is None or lo <= p0:  # lo is None only for no rows
            continue
        overlaps = [k for k, other in enumerate(chosen_masks) if _jaccard(m, other) >= 0.5]
        if overlaps:
            results[overlaps[0]]["absorbed"] += 1
            continue
        resid = m & ~covered
        r_n, r_e = int(resid.sum()), int(err[resid].sum())
        if chosen_masks and (
            r_n < min_support or _lower_bound(r_e, r_n) <= p0 or _g_vs_rate(r_n, r_e, p0) < crit
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
                r_n < min_support or _lower_bound(r_e, r_n) <= p0 or _g_vs_rate(r_n, r_e, p0) < crit
            ):
                # Nothing is wrong with the slice beyond its parts: offer the parts instead.
                decomposed.add(conds)
                pool.extend([scan.score(child), child, child, False] for child in children)
                continue
        g_final = float(g_stat(support, errors, n, total_e))
        results.append(
            {
                "slice": preds,
                "description": slices.describe(preds),
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
            if _jaccard(km, m) >= 0.5 or inter >= 0.8 * max(1, int(np.count_nonzero(km))):
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
            if np.count_nonzero(km & m) > 0.05 * max(1, int(np.count_nonzero(km))):
                entry[3] = True
            elif not entry[3]:
                entry[0] = scan.score(entry[1])
    return results
