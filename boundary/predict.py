"""Predictions of a model on a table: the one prediction path (DESIGN.md, "Probe kinds").

* Feature columns: a model that records ``feature_names_in_`` (every scikit-learn
  estimator or pipeline fitted on a DataFrame) is given exactly those columns, in that
  order; other columns of the table (ids, sensitive attributes, metadata) are not an
  error, a missing one is, by name. Otherwise the features are every column but the
  target and the ignored ones (ignored names the table lacks are skipped). A caller that
  already knows the columns passes them as ``columns``.
* ``probabilities``: ``predict_proba`` on those columns as a DataFrame, checked to be one
  row per input row and one column per class. ``chunk_rows`` > 0 makes it one call per
  run of at most that many consecutive rows, every row predicted once, into one array
  (callers pass ``settings.PREDICT_CHUNK_ROWS``); 0 is one call.
* ``predict``: ``pred`` is the class with the highest probability
  (``classes_[argmax(proba)]``, the first class on ties, as scikit-learn's ``predict``);
  ``margin`` is the top probability minus the second, computed as that subtraction (a
  one-class model's margin is its top probability).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .slices import ProbeDefinitionError

__all__ = [
    "Predictions",
    "feature_columns",
    "margin",
    "model_features",
    "predict",
    "probabilities",
]


def _missing(wanted: list, present: Iterable, what: str) -> None:
    present = set(present)
    missing = [c for c in wanted if c not in present]
    if missing:
        names = ", ".join(f"'{c}'" for c in missing)
        noun = "column is" if len(missing) == 1 else "columns are"
        raise ProbeDefinitionError(f"{what} {noun} not in the dataset: {names}")


def feature_columns(
    model: Any,
    columns: Iterable,
    *,
    target_column: str | None = None,
    ignored_columns: Iterable = (),
    given: Iterable | None = None,
) -> list:
    """The columns ``predict_proba`` is given, in order, out of a table's ``columns``:
    ``given`` when the caller names them, else the model's ``feature_names_in_``, else
    every column but the target and the ignored ones. A missing one is an error."""
    columns = list(columns)
    if given is not None:
        chosen = list(given)
        _missing(chosen, columns, "feature")
        return chosen
    fitted_on = getattr(model, "feature_names_in_", None)
    if fitted_on is not None:
        chosen = list(fitted_on)
        _missing(chosen, columns, "model feature")
        return chosen
    dropped = {target_column, *ignored_columns}
    return [c for c in columns if c not in dropped]


def model_features(
    model: Any,
    df: pd.DataFrame,
    target_column: str | None = None,
    ignored_columns: Iterable = (),
    *,
    columns: Iterable | None = None,
) -> pd.DataFrame:
    """The frame ``predict_proba`` sees (see ``feature_columns``), dtypes kept.

    A ``target_column`` the table lacks is an error. Callers that share predictions between
    several probe evaluations compute them with ``predict(model, model_features(...))``.
    """
    if target_column is not None and target_column not in df.columns:
        raise ProbeDefinitionError(f"target column '{target_column}' is not in the dataset")
    chosen = feature_columns(
        model,
        df.columns,
        target_column=target_column,
        ignored_columns=ignored_columns,
        given=columns,
    )
    if chosen == list(df.columns):
        return df
    return df[chosen]


@dataclass
class Predictions:
    """Output of ``predict``; ``pred_index`` indexes ``classes``."""

    proba: np.ndarray
    classes: np.ndarray
    pred: np.ndarray
    margin: np.ndarray
    pred_index: np.ndarray | None = None

    def __post_init__(self):
        self.proba = np.asarray(self.proba, dtype=np.float64)
        self.classes = np.asarray(self.classes)
        if self.pred_index is None:
            self.pred_index = np.argmax(self.proba, axis=1)


def margin(proba: np.ndarray) -> np.ndarray:
    """Top probability minus the second, per row."""
    k = proba.shape[1]
    if k == 1:
        return proba[:, 0].copy()
    if k == 2:
        return np.maximum(proba[:, 0], proba[:, 1]) - np.minimum(proba[:, 0], proba[:, 1])
    top2 = np.partition(proba, k - 2, axis=1)[:, k - 2 :]
    return top2[:, 1] - top2[:, 0]


def _checked(model: Any, X: pd.DataFrame, n_classes: int) -> np.ndarray:
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (len(X), n_classes):
        raise ValueError(
            f"predict_proba returned shape {proba.shape}, expected ({len(X)}, {n_classes})"
        )
    return proba


def probabilities(model: Any, X: pd.DataFrame, *, chunk_rows: int = 0) -> np.ndarray:
    """``predict_proba`` of ``X``: one call, or with ``chunk_rows`` > 0 one call per run of
    at most that many consecutive rows (each row predicted once) into one preallocated
    array.

    A model's own working memory grows with the rows of a call (a ColumnTransformer holds
    its dense parts and their concatenation at once); chunks bound it, for models that
    predict each row on its own, as scikit-learn's do.
    """
    n_classes = len(model.classes_)
    n = len(X)
    if chunk_rows <= 0 or n <= chunk_rows:
        return _checked(model, X, n_classes)
    proba = np.empty((n, n_classes), dtype=np.float64)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        proba[start:stop] = _checked(model, X.iloc[start:stop], n_classes)
    return proba


def predict(model: Any, X: pd.DataFrame, *, chunk_rows: int = 0) -> Predictions:
    """Predictions of ``model`` on the feature frame ``X`` (see ``model_features``)."""
    classes = np.asarray(model.classes_)
    proba = probabilities(model, X, chunk_rows=chunk_rows)
    index = np.argmax(proba, axis=1)
    return Predictions(proba, classes, classes[index], margin(proba), index)
