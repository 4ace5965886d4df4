"""Predictions of a model on a table: the one prediction path (DESIGN.md, "Probe kinds").

* Feature columns: a model that records ``feature_names_in_`` (every scikit-learn
  estimator or pipeline fitted on a DataFrame) is given exactly those columns, in that
  order; other columns of the table (ids, sensitive attributes, metadata) are not an
  error, a missing one is, by name. Otherwise the features are every column but the
  target and the ignored ones (ignored names the table lacks are skipped). A caller that
  already knows the columns passes them as ``columns``.
* ``probabilities``: ``predict_proba`` on those columns as a DataFrame, checked to be one
  row per input row and one column per class, in one call per run of at most
  ``chunk_rows`` consecutive rows (``row_runs``), every row predicted once, into one array.
  The default is ``CHUNK_ROWS`` (the app passes ``settings.PREDICT_CHUNK_ROWS``, whose
  default it is); 0 is one call over every row.
* ``predict``: ``pred`` is the class with the highest probability
  (``classes_[argmax(proba)]``, the first class on ties, as scikit-learn's ``predict``);
  ``margin`` is the top probability minus the second, computed as that subtraction (a
  one-class model's margin is its top probability).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .slices import ProbeDefinitionError

__all__ = [
    "CHUNK_ROWS",
    "Predictions",
    "feature_columns",
    "margin",
    "model_features",
    "predict",
    "probabilities",
    "row_runs",
]

# Rows per predict_proba call unless the caller says otherwise (the app passes
# settings.PREDICT_CHUNK_ROWS, whose default this is). A model's working memory grows with
# the rows of a call, several times their size: a scikit-learn pipeline holds its encoded
# columns (one-hot blocks, object arrays of the strings) and their concatenation at once,
# about 450 bytes per row of benchmarks/probe_engine.py's 11-column table, 3.6 times the
# table and its probabilities when the whole table is one call. 20,000 rows bound that to
# about 9 MB there (some 250 MB at 300 columns), under the engine's own needs from 100,000
# rows up, where 50,000 would not be (the engine's peak at 100,000 rows: 1.7x the table and
# its probabilities with 20,000 or 10,000, 2.6x with 50,000, 3.3x with 65,536). A call of
# 20,000 rows is long enough (about 0.1 s of that gradient-boosted pipeline, 6 ms of which
# is the fixed cost of a call) that chunks cost nothing measurable: a million rows take
# less CPU in them than in one call (5.3 s against 6.4 s).
CHUNK_ROWS = 20_000


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


def top_probability(proba: np.ndarray) -> np.ndarray:
    """Each row's highest probability, ``proba.max(axis=1)`` (NaN wherever a row holds
    one, as there), taken column by column: NumPy reduces a row of two to a few columns
    some 40 times slower than it takes the elementwise maximum of two columns."""
    k = proba.shape[1]
    if k == 1 or k > 32:
        return proba.max(axis=1)
    top = proba[:, 0].copy()
    for j in range(1, k):
        np.maximum(top, proba[:, j], out=top)
    return top


def margin(proba: np.ndarray) -> np.ndarray:
    """Top probability minus the second, per row."""
    k = proba.shape[1]
    if k == 1:
        return proba[:, 0].copy()
    if k == 2:
        # The same subtraction, into the maximum's array (one temporary fewer).
        top = np.maximum(proba[:, 0], proba[:, 1])
        top -= np.minimum(proba[:, 0], proba[:, 1])
        return top
    top2 = np.partition(proba, k - 2, axis=1)[:, k - 2 :]
    return top2[:, 1] - top2[:, 0]


def _checked(model: Any, X: pd.DataFrame, n_classes: int) -> np.ndarray:
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (len(X), n_classes):
        raise ValueError(
            f"predict_proba returned shape {proba.shape}, expected ({len(X)}, {n_classes})"
        )
    return proba


def row_runs(n: int, chunk_rows: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of the consecutive runs of at most ``chunk_rows`` of ``n`` rows, in
    order; one run of all of them when ``chunk_rows`` is 0 (or less), none when ``n`` is 0.
    The one rule by which predictions are split: every row in exactly one run."""
    step = n if chunk_rows <= 0 else chunk_rows
    for start in range(0, n, max(step, 1)):
        yield start, min(start + step, n)


def probabilities(model: Any, X: pd.DataFrame, *, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """``predict_proba`` of ``X``: one call per run of at most ``chunk_rows`` consecutive
    rows (``row_runs``; 0: one call), each row predicted once, into one preallocated array.

    A model's own working memory grows with the rows of a call (a ColumnTransformer holds
    its dense parts and their concatenation at once); chunks bound it. Models that predict
    each row on its own, as scikit-learn's do, give the same numbers in any chunks (trees
    exactly; linear models up to the last bit of a BLAS sum).
    """
    n_classes = len(model.classes_)
    n = len(X)
    if chunk_rows <= 0 or n <= chunk_rows:
        return _checked(model, X, n_classes)
    proba = np.empty((n, n_classes), dtype=np.float64)
    for start, stop in row_runs(n, chunk_rows):
        proba[start:stop] = _checked(model, X.iloc[start:stop], n_classes)
    return proba


def predict(model: Any, X: pd.DataFrame, *, chunk_rows: int = CHUNK_ROWS) -> Predictions:
    """Predictions of ``model`` on the feature frame ``X`` (see ``model_features``), in
    calls of at most ``chunk_rows`` rows (see ``probabilities``)."""
    classes = np.asarray(model.classes_)
    proba = probabilities(model, X, chunk_rows=chunk_rows)
    index = np.argmax(proba, axis=1)
    return Predictions(proba, classes, classes[index], margin(proba), index)
