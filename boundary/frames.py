"""Small helpers over tables shared by the slice scan, boundary maps, stress sweeps and the
neighbourhood check (plain pandas and NumPy)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import slices


def py_scalar(value):
    """A JSON-friendly Python scalar for numpy / pandas scalars."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def is_numeric(s: pd.Series) -> bool:
    """A numeric dtype that is not boolean: a candidate axis, threshold or noise target."""
    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def errors_vector(y_true, y_pred) -> np.ndarray:
    """Boolean per row: the prediction differs from the true label."""
    yt = y_true.to_numpy() if isinstance(y_true, (pd.Series, pd.Index)) else np.asarray(y_true)
    yp = y_pred.to_numpy() if isinstance(y_pred, (pd.Series, pd.Index)) else np.asarray(y_pred)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has shape {yt.shape} but y_pred has {yp.shape}")
    return np.asarray(yt != yp, dtype=bool)


def row_mask(df: pd.DataFrame, mask, cache: dict | None = None) -> np.ndarray:
    """Rows of ``df`` given as a boolean mask, a slice (predicate list; ``slices.mask``)
    or None (every row)."""
    if mask is None:
        return np.ones(len(df), dtype=bool)
    if isinstance(mask, (list, tuple)) and (not mask or isinstance(mask[0], dict)):
        return slices.mask(df, list(mask), cache)
    if isinstance(mask, pd.Series):
        m = mask.to_numpy(dtype=bool, na_value=False)
    else:
        m = np.asarray(mask, dtype=bool)
    if m.shape != (len(df),):
        raise ValueError(f"mask has shape {m.shape}, expected ({len(df)},)")
    return m


def new_figure(width: float, height: float):
    """A matplotlib Figure that renders through Agg without touching pyplot's global state,
    so concurrent workers and notebooks with other backends are unaffected."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")
