"""Intervals: the one Wilson score interval and the one bootstrap (DESIGN.md, "One truth").

* ``wilson(k, n)``: the 95 % Wilson score interval of k successes in n trials (another
  ``z`` gives another level, e.g. a Bonferroni-adjusted one), clamped to [0, 1];
  (None, None) without trials.
* ``bootstrap(counts, statistic, seed)``: the seeded percentile 95 % interval of a
  statistic of cell counts over 200 multinomial resamples. Resampling n rows with
  replacement puts Multinomial(n, counts / n) rows in the cells, so drawing the counts
  directly is the row bootstrap of any statistic of the counts, and cheap on large tables.
* ``auc`` and ``ece`` (with ``ece_cells``): ROC AUC and expected calibration error with
  their bootstrap intervals over cells of rows. For roc_auc the cells are score groups
  (each distinct score while there are at most 64, else 64 rank groups) x label; for ece
  they are confidence cells (sub-bins of the ECE bins) x correctness. Rows of a cell are
  represented by the cell's mean, an approximation that only applies to large slices,
  where the intervals are narrow.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["BOOTSTRAP_RESAMPLES", "Z95", "auc", "bootstrap", "ece", "ece_cells", "wilson"]

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 200
_AUC_MAX_GROUPS = 64
_ECE_SUB_BINS = 32


def wilson(k: float, n: float, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval of the proportion k / n; (None, None) when n is 0.

    The bounds are clamped to [0, 1] and hold the proportion itself; they are exactly 0
    when k is 0 and exactly 1 when k is n (DESIGN.md, "Probe kinds": the rounding of the
    formula would otherwise give 1e-19 above a value of 0, or 0.9999999999999999 below 1).
    """
    if n <= 0:
        return None, None
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low = 0.0 if k <= 0 else min(p, max(0.0, centre - half))
    high = 1.0 if k >= n else max(p, min(1.0, centre + half))
    return low, high


def bootstrap(counts: np.ndarray, statistic: Callable, seed: int):
    """Percentile 95 % interval of ``statistic`` over multinomial resamples of cell counts.

    ``statistic`` maps a (resamples, cells) array of counts to one value per resample;
    resamples where it is undefined (NaN) are dropped, and fewer than half defined give
    no interval (None, None), as does an empty table.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = int(counts.sum())
    if total == 0:
        return None, None
    rng = np.random.default_rng(seed)
    # Empty cells stay empty in every resample; drawing only the others is cheaper.
    used = np.flatnonzero(counts)
    drawn = rng.multinomial(total, counts[used] / total, size=BOOTSTRAP_RESAMPLES)
    draws = np.zeros((BOOTSTRAP_RESAMPLES, counts.size))
    draws[:, used] = drawn
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(statistic(draws), dtype=np.float64)
    values = values[np.isfinite(values)]
    # An interval from a minority of defined resamples would be misleading.
    if values.size < BOOTSTRAP_RESAMPLES // 2:
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def auc(s: np.ndarray, lab: np.ndarray, seed: int):
    """ROC AUC (Mann-Whitney, ties counted half) of scores sorted ascending, and its interval.

    1. Tied scores get their average rank; AUC = U / (P N).
    2. Group the sorted rows (tie groups, merged into at most 64 rank groups) and keep per
       group the positives, negatives and the U of the pairs inside the group.
    3. A resample of (group, label) counts scores P_g N_h pairs as wins when g > h and at
       the group's own AUC when g == h.
    """
    n = s.size
    positives = int(np.count_nonzero(lab))
    negatives = n - positives
    if positives == 0 or negatives == 0:
        return math.nan, None, None
    change = np.flatnonzero(s[1:] != s[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n]))
    tie_of_row = np.repeat(np.arange(starts.size), ends - starts)
    ranks = ((starts + ends + 1) / 2.0)[tie_of_row]
    u_total = ranks[lab].sum() - positives * (positives + 1) / 2.0
    value = u_total / (positives * negatives)

    if starts.size <= _AUC_MAX_GROUPS:
        group_of_row = tie_of_row
    else:
        # Rank groups of about n / 64 rows that never split a tie; numbered densely.
        group_of_tie = (starts * _AUC_MAX_GROUPS) // n
        dense = np.concatenate(([0], np.cumsum(group_of_tie[1:] != group_of_tie[:-1])))
        group_of_row = dense[tie_of_row]
    n_groups = int(group_of_row[-1]) + 1
    pos_g = np.bincount(group_of_row, weights=lab, minlength=n_groups)
    all_g = np.bincount(group_of_row, minlength=n_groups).astype(np.float64)
    neg_g = all_g - pos_g
    group_start = np.concatenate(([0.0], np.cumsum(all_g)[:-1]))
    rank_sum_g = np.bincount(group_of_row, weights=ranks * lab, minlength=n_groups)
    u_g = rank_sum_g - pos_g * group_start - pos_g * (pos_g + 1) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        within = np.where(pos_g * neg_g > 0, u_g / (pos_g * neg_g), 0.0)

    def statistic(draws):
        wp, wn = draws[:, :n_groups], draws[:, n_groups:]
        below = np.cumsum(wn, axis=1) - wn
        wins = (wp * below).sum(axis=1) + (wp * wn * within).sum(axis=1)
        return wins / (wp.sum(axis=1) * wn.sum(axis=1))

    low, high = bootstrap(np.concatenate((pos_g, neg_g)), statistic, seed)
    return float(value), low, high


def stable_order(scores: np.ndarray) -> np.ndarray:
    """``np.argsort(scores, kind="stable")`` of float scores, the same permutation.

    Scores that are all zero or positive (probabilities) sort as the unsigned integers
    of their bits, which keep their order (+0.0 for -0.0, which the float sort ties with
    0.0), a third faster; anything else (NaN, negatives) sorts as floats.
    """
    if scores.dtype == np.float64 and bool(np.all(scores >= 0)):
        return np.argsort((scores + 0.0).view(np.uint64), kind="stable")
    return np.argsort(scores, kind="stable")


def ece_cells(conf: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(ECE bin, bootstrap sub-bin, sub-bins per bin) of each confidence.

    Bins are [b/B, (b+1)/B) with the edges np.arange(B + 1) / B, 1.0 in the last (never
    linspace: its 0.6000000000000001 would put a confidence of exactly 0.6 a bin too low);
    each bin is split into equal sub-bins (about 32 in all) for the bootstrap cells.
    """
    edges = np.arange(bins + 1) / bins
    b = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    sub = max(1, -(-_ECE_SUB_BINS // bins))
    inner = np.clip(((conf - edges[b]) * (bins * sub)).astype(np.int64), 0, sub - 1)
    return b, b * sub + inner, sub


def ece(conf, correct, b, cell, bins: int, sub: int, seed: int):
    """Expected calibration error, its per-bin table and bootstrap interval.

    1. ECE = sum over non-empty bins of |correct_b - confidence_sum_b| / n, which is
       sum (n_b / n) |acc_b - conf_b|.
    2. Bootstrap cells are (sub-bin, correct) with the cell's mean confidence; sub-bins
       nest in the ECE bins. Where a cell holds a single distinct confidence (models with
       few distinct outputs) this is the exact row bootstrap.
    """
    n = conf.size
    count_b = np.bincount(b, minlength=bins).astype(np.float64)
    correct_b = np.bincount(b, weights=correct, minlength=bins)
    conf_b = np.bincount(b, weights=conf, minlength=bins)
    value = float(np.abs(correct_b - conf_b).sum() / n)
    table = [
        {
            "bin": int(i),
            "low": float(i / bins),
            "high": float((i + 1) / bins),
            "rows": int(count_b[i]),
            "accuracy": float(correct_b[i] / count_b[i]),
            "confidence": float(conf_b[i] / count_b[i]),
        }
        for i in np.flatnonzero(count_b)
    ]
    n_codes = 2 * bins * sub
    code = cell * 2 + correct
    counts = np.bincount(code, minlength=n_codes).astype(np.float64)
    conf_sum = np.bincount(code, weights=conf, minlength=n_codes)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_conf = np.where(counts > 0, conf_sum / counts, 0.0)
    signed = np.tile([0.0, 1.0], bins * sub) - mean_conf  # correct minus confidence

    def statistic(draws):
        # Codes run bin by bin (2 * sub of them each): a reshape sums them per bin,
        # without a (codes x bins) matrix (1.6 GB at 10,000 bins).
        per_bin = (draws * signed).reshape(len(draws), bins, 2 * sub).sum(axis=2)
        return np.abs(per_bin).sum(axis=1) / draws.sum(axis=1)

    low, high = bootstrap(counts, statistic, seed)
    return value, low, high, table
