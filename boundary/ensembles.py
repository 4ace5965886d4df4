"""Ensembles and their components (DESIGN.md, "Probe kinds": ``ensemble_disagreement``,
``component_error_rate`` and the ``details.components`` of every run on an ensemble).

* The ensemble is the model's final step, followed down nested pipelines. Its components
  are its fitted sub-estimators: ``VotingClassifier`` / ``StackingClassifier``
  ``estimators_`` (named after their entries of ``estimators``, the dropped ones left out),
  ``BaggingClassifier`` ``estimators_`` on their ``estimators_features_``, and
  ``RandomForestClassifier`` / ``ExtraTreesClassifier`` ``estimators_`` (both numbered
  from 0). Any other final step is not an ensemble.
* Each component is fed what the ensemble feeds it: the rows transformed by the pipeline's
  earlier steps; for bagging, those validated as the ensemble does (``validate_data`` with
  ``dtype=None``) and cut to the component's features; for forests, the ensemble's own
  ``_validate_X_predict`` (float32, as the trees are fitted).
* A component's class is the ensemble's ``classes_[argmax(component.predict_proba(X))]``,
  the first class on ties. These ensembles fit their components on the class indices
  (0 to k-1), so a component's own ``classes_`` are read as indices into the ensemble's
  ``classes_``: a bagged component that saw only some classes keeps its place. A
  component whose ``classes_`` are not such indices (a prefitted stacking component) is
  read by label. A component without ``predict_proba`` (stacked on its decision
  function) counts with its ``predict``.
* A model that answers from another process (``boundary.artifacts.IsolatedModel``) has
  ``component_names`` and ``component_predictions``: the same functions, run there.

The predictions are class indices (into the ensemble's ``classes_``), one row per
component and one column per row of the input, in the smallest integer type that holds
them. They are predicted in consecutive runs of at most ``chunk_rows`` rows at a time
(``boundary.predict.row_runs``; by default ``boundary.predict.CHUNK_ROWS``, 0: all at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .predict import CHUNK_ROWS, probabilities, row_runs

__all__ = [
    "Component",
    "component_names",
    "component_predictions",
    "components",
    "final_step",
]

ENSEMBLE_NAMES = (
    "VotingClassifier, StackingClassifier, BaggingClassifier, RandomForestClassifier "
    "or ExtraTreesClassifier"
)


@dataclass(frozen=True)
class Component:
    """One fitted sub-estimator: its name (Voting/Stacking) or index, the estimator, and
    the columns it reads (bagging's ``estimators_features_``; None: all)."""

    name: str | int
    estimator: Any
    features: np.ndarray | None = None


def _answers_elsewhere(model: Any) -> bool:
    return callable(getattr(type(model), "component_predictions", None))


def final_step(model: Any) -> tuple[list, Any]:
    """(the pipelines of the steps before the final estimator, outermost first; that
    estimator), followed down nested pipelines."""
    from sklearn.pipeline import Pipeline

    before = []
    while isinstance(model, Pipeline):
        if len(model.steps) > 1:
            before.append(model[:-1])
        model = model.steps[-1][1]
    return before, model


def components(model: Any) -> list[Component] | None:
    """The components of the model's final step, or None when it is not an ensemble."""
    from sklearn.ensemble import (
        BaggingClassifier,
        ExtraTreesClassifier,
        RandomForestClassifier,
        StackingClassifier,
        VotingClassifier,
    )

    _, final = final_step(model)
    if isinstance(final, (VotingClassifier, StackingClassifier)):
        names = [name for name, est in final.estimators if not _dropped(est)]
        return [Component(n, e) for n, e in zip(names, final.estimators_, strict=True)]
    if isinstance(final, BaggingClassifier):
        pairs = zip(final.estimators_, final.estimators_features_, strict=True)
        return [Component(i, e, np.asarray(f)) for i, (e, f) in enumerate(pairs)]
    if isinstance(final, (RandomForestClassifier, ExtraTreesClassifier)):
        return [Component(i, e) for i, e in enumerate(final.estimators_)]
    return None


def _dropped(estimator: Any) -> bool:
    return isinstance(estimator, str) and estimator == "drop"


def component_names(model: Any) -> list | None:
    """The components' names (Voting/Stacking) or indices, or None: not an ensemble."""
    if _answers_elsewhere(model):
        return model.component_names
    found = components(model)
    return None if found is None else [c.name for c in found]


def code_dtype(n_classes: int) -> np.dtype:
    """The smallest signed integer type that holds the indices of ``n_classes`` classes."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_classes <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def component_predictions(
    model: Any, X: pd.DataFrame, *, chunk_rows: int = CHUNK_ROWS
) -> np.ndarray:
    """Each component's class index (into the model's ``classes_``) for each row of ``X``
    (the frame the model's ``predict_proba`` is given), shape (components, rows).

    1. Find the components (a model that is not an ensemble raises ValueError).
    2. Per run of at most ``chunk_rows`` rows (0: all): transform them through the
       pipeline's earlier steps, validate them as the ensemble does, and predict each
       component on what it is fed.
    3. Map each component's argmax to the ensemble's class index.
    """
    if _answers_elsewhere(model):
        return model.component_predictions(X)
    found = components(model)
    if found is None:
        raise ValueError(f"the model is not an ensemble (its final step is no {ENSEMBLE_NAMES})")
    before, final = final_step(model)
    n_classes = len(final.classes_)
    n = len(X)
    out = np.empty((len(found), n), dtype=code_dtype(n_classes))
    for start, stop in row_runs(n, chunk_rows):
        rows = X.iloc[start:stop] if hasattr(X, "iloc") else X[start:stop]
        for transform in before:
            rows = transform.transform(rows)
        fed = _ensemble_input(final, rows)
        for c, component in enumerate(found):
            own = fed if component.features is None else fed[:, component.features]
            out[c, start:stop] = _class_index(component.estimator, own, n_classes)
    return out


def _ensemble_input(final: Any, X: Any) -> Any:
    """What the ensemble hands its components, as its own predict_proba prepares it."""
    from sklearn.ensemble import BaggingClassifier, ExtraTreesClassifier, RandomForestClassifier
    from sklearn.utils.validation import validate_data

    if isinstance(final, BaggingClassifier):
        return validate_data(
            final,
            X,
            accept_sparse=["csr", "csc"],
            dtype=None,
            ensure_all_finite=False,
            reset=False,
        )
    if isinstance(final, (RandomForestClassifier, ExtraTreesClassifier)):
        return final._validate_X_predict(X)
    return X


def _class_index(estimator: Any, X: Any, n_classes: int) -> np.ndarray:
    """The ensemble's class index of the component's prediction on each row of ``X``."""
    own = np.asarray(getattr(estimator, "classes_", np.arange(n_classes)))
    if hasattr(estimator, "predict_proba"):
        chosen = own[np.argmax(probabilities(estimator, X, chunk_rows=0), axis=1)]
    else:
        chosen = np.asarray(estimator.predict(X))
    return _as_index(chosen, own, n_classes)


def _as_index(labels: np.ndarray, own: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices of a component's labels: the labels themselves when the component's
    classes are indices (0 to n_classes - 1, as the ensembles fit them), else their
    position in its own ``classes_`` (a component that knows every class by label)."""
    if own.dtype.kind in "iuf" and own.size:
        whole = np.all(np.mod(own, 1) == 0) and own.min() >= 0 and own.max() < n_classes
        if whole:
            return labels.astype(np.int64)
    if own.size != n_classes:
        raise ValueError(
            f"a component knows {own.size} classes by label where the ensemble has {n_classes}"
        )
    return pd.Index(own).get_indexer(labels)
