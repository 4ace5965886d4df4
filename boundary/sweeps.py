"""Stress sweeps on a slice: how many of its decisions flip under growing noise, or when
one feature is set to each value across its range; and a small PNG line chart of them.

Plain functions, no web framework. The slice's rows are ``slices.mask``'s (or a boolean
mask), the predictions ``boundary.predict``'s: every sweep stacks its settings into one
frame predicted once (one predict_proba call per ``chunk_rows`` rows when that is set).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .frames import is_numeric, new_figure, py_scalar, row_mask
from .predict import feature_columns as _feature_columns
from .predict import predict, top_probability

__all__ = ["counterfactual_sweep", "noise_sweep", "render_curve"]


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
    chunk_rows: int = 0,
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
       (scales x repeats), stacked into one frame and predicted once (``chunk_rows``).
    2. Flip rate per scale. ``mask`` is a boolean row mask or a slice predicate list.
    """
    cols = _feature_columns(model, df.columns, given=feature_columns)
    m = row_mask(df, mask)
    if not m.any():
        raise ValueError("slice is empty")
    feats = [c for c in cols if is_numeric(df[c])] if features is None else list(features)
    for f in feats:
        if f not in cols or not is_numeric(df[f]):
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
    predictions = predict(model, big[cols], chunk_rows=chunk_rows)
    assert predictions.pred_index is not None  # Predictions fills it in on construction
    pred = predictions.pred_index.reshape(1 + len(scales) * repeats, k)
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
    chunk_rows: int = 0,
) -> list[dict]:
    """Share of slice rows whose prediction changes when ``feature`` is set to each value.

    ``values`` defaults to 20 evenly spaced points across the feature's observed range
    (its distinct values when it has at most 20), or its categories by frequency (at
    most 30). All settings are stacked into one frame and predicted once (``chunk_rows``).
    Each point also carries ``mean_proba``: the mean positive-class probability (binary)
    or top-class probability of the changed rows.
    """
    cols = _feature_columns(model, df.columns, given=feature_columns)
    if feature not in cols:
        raise ValueError(f"column {feature!r} is not a feature column")
    m = row_mask(df, mask)
    if not m.any():
        raise ValueError("slice is empty")
    s = df[feature]
    if values is None:
        if is_numeric(s):
            v = s.to_numpy(dtype=float, na_value=np.nan)
            uniq = np.unique(v[~np.isnan(v)])
            if len(uniq) <= 20:
                values = [py_scalar(u) for u in uniq]
            else:
                values = [float(u) for u in np.linspace(uniq[0], uniq[-1], 20)]
        else:
            values = [py_scalar(u) for u in s.value_counts(dropna=True).index[:30]]
    values = list(values)
    rows = df.loc[m, cols]
    k = len(rows)
    big = _stacked(rows, 1 + len(values))
    col = big[feature].to_numpy(dtype=object, copy=True)
    col[k:] = np.repeat(np.asarray(values, dtype=object), k)
    if is_numeric(s):
        big[feature] = pd.to_numeric(pd.Series(col), errors="coerce").astype(float)
    else:
        try:
            big[feature] = pd.Series(col).astype(s.dtype)
        except (TypeError, ValueError):
            # A value outside a categorical dtype's categories: keep it as plain objects.
            big[feature] = pd.Series(col, dtype=object)
    predictions = predict(model, big[cols], chunk_rows=chunk_rows)
    proba = predictions.proba
    assert predictions.pred_index is not None  # Predictions fills it in on construction
    pred = predictions.pred_index.reshape(1 + len(values), k)
    score = proba[:, 1] if proba.shape[1] == 2 else top_probability(proba)
    score = score.reshape(1 + len(values), k)
    return [
        {
            "value": py_scalar(v),
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
    fig = new_figure(5.0, 3.2)
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
