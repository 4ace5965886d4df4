"""Boundary maps: the predicted probability over a grid of two numeric features with the
other features held constant, the uncertain band and the slice outlined (PNG).

Plain functions, no web framework. Predictions come from ``boundary.predict`` (the
model's feature columns; ``chunk_rows`` as for every prediction), the slice's rows from
``slices.mask`` and its caption from ``slices.describe``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import slices
from .frames import is_numeric, new_figure, py_scalar
from .predict import feature_columns as _feature_columns
from .predict import predict, top_probability

__all__ = ["boundary_grid", "render_boundary_map", "slice_box"]


def _held_text(value) -> str:
    """A held-constant value in a map's caption."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _base_row(df: pd.DataFrame, cols) -> dict:
    """Median of numeric columns, mode of the others."""
    row = {}
    for c in cols:
        s = df[c]
        if is_numeric(s):
            med = s.median()
            if pd.api.types.is_integer_dtype(s.dtype) and pd.notna(med):
                med = round(float(med))
            row[c] = py_scalar(med)
        else:
            mode = s.mode(dropna=True)
            row[c] = py_scalar(mode.iloc[0]) if len(mode) else None
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
    chunk_rows: int = 0,
) -> dict:
    """Predicted probability over a grid of two numeric features, the others held constant.

    1. The held values: ``base_row`` where given, otherwise the median (numeric) or mode
       (others) over the slice's rows when ``slice`` selects any, else over ``df``.
    2. A ``resolution`` x ``resolution`` grid over the observed range of each axis feature.
    3. The model's predictions over the grid (``predict.predict``: one predict_proba call,
       or one per ``chunk_rows`` rows).

    Returns ``xx``, ``yy``, ``proba`` (of the positive class for a binary model, of the top
    class otherwise), ``margin`` (top minus second probability), ``pred`` (class index),
    plus ``classes``, ``positive_class``, ``base_row``, ``uncertain_share`` (share of the
    grid with margin below ``margin``) and ``positive_share``.
    """
    cols = _feature_columns(model, df.columns, given=feature_columns)
    for f in (feature_x, feature_y):
        if f not in df.columns:
            raise ValueError(f"column {f!r} is not in the dataset")
        if not is_numeric(df[f]):
            raise ValueError(f"column {f!r} is not numeric; a boundary map needs numeric axes")
        if f not in cols:
            # The model never sees it: the map would be flat along that axis.
            raise ValueError(f"column {f!r} is not one of the model's feature columns")
    source = df
    if slice:
        m = slices.mask(df, slice)
        if m.any():
            source = df[m]
    held = _base_row(source, cols)
    if base_row is not None:
        held.update({k: py_scalar(v) for k, v in dict(base_row).items()})
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
    predictions = predict(model, grid, chunk_rows=chunk_rows)
    proba_all = predictions.proba
    classes = [py_scalar(c) for c in predictions.classes]
    if proba_all.shape[1] == 2:
        proba = proba_all[:, 1]
        positive = classes[1]
    else:
        proba = top_probability(proba_all)
        positive = None
    marg = predictions.margin
    pred = predictions.pred_index
    assert pred is not None  # Predictions fills it in on construction
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


def slice_box(slice, feature) -> tuple[float, float] | None:
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
    chunk_rows: int = 0,
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
    cols = _feature_columns(model, df.columns, given=feature_columns)
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
        chunk_rows=chunk_rows,
    )
    classes = grid["classes"]
    pred = predict(model, df[cols], chunk_rows=chunk_rows).pred.astype(object)
    wrong = np.asarray(pred != yt.astype(object), dtype=bool)
    in_slice = slices.mask(df, slice) if slice else np.zeros(len(df), dtype=bool)

    fig = new_figure(7.5, 6.0)
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
    bx, by = slice_box(slice, feature_x), slice_box(slice, feature_y)
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
        f"{c}={'(withheld)' if c in sensitive else _held_text(v)}"
        for c, v in grid["base_row"].items()
        if c not in (feature_x, feature_y)
    ]
    caption = "Held constant: " + (", ".join(held) if held else "nothing")
    if slice:
        caption = f"Slice: {slices.describe(slice)}\n" + caption
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
