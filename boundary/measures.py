"""What each probe kind measures on the rows of a slice (DESIGN.md, "Probe kinds").

The value functions of ``boundary.kinds``: each takes the shared state of one evaluation
(``Run``: the table, the predictions, caches), the slice's row mask, the validated
parameters and the slice's row count, and returns the value with its interval and details.

* Rows whose target value is not one of the model's classes (including a missing target)
  can never be predicted correctly: they count as errors and as "not pos_label".
* ``slice_metric``: precision, recall and f1 are one-vs-rest scores of ``pos_label``; for a
  binary model ``pos_label`` defaults to ``classes_[1]``, for a multiclass model
  precision/recall/f1/roc_auc need an explicit ``pos_label``. A metric whose denominator is
  zero (precision without a prediction of pos_label, recall without a pos_label row,
  roc_auc with one class in the slice) is undefined and the run is inconclusive, where
  scikit-learn would warn and return 0.
* ``group_disparity``: groups are the distinct non-missing values of ``group_feature`` in
  the slice (missing values form no group, as in ``DataFrame.groupby``); groups with fewer
  than ``min_support`` rows, and groups where the metric is undefined (tpr without
  positives, fpr without negatives), are left out.
* ``perturbation_flip_rate``: the noise standard deviation of a feature is ``scale`` times
  ``Series.std()`` over the whole dataset (pandas' default ``ddof=1``, missing values
  skipped; a feature with a zero or undefined std gets no noise). The perturbed frame
  stacks the repeats: row ``r * n + i`` is repeat ``r`` of the ``i``-th slice row (dataset
  order), and its noise is row ``r * n + i`` of
  ``np.random.default_rng(seed).standard_normal((repeats * n, len(features)))``, column j
  scaled for ``features[j]``.
* ``slice_ece``: bins ``[b/B, (b+1)/B)`` with the edges ``np.arange(B + 1) / B`` (so 0.6
  and 0.7 open their own bins), a confidence of exactly 1.0 in the last bin.
* ``slice_share``: the slice's rows over the dataset's.
* ``feature_interaction``: Friedman's H² (see ``_interaction``). Missing values of a
  feature are left out of its grid's quantiles. A grid feature is set as float64 in the
  frames predicted. Its details keep the grids and the partial dependences PD_ab, PD_a
  and PD_b over the sampled rows (rounded to ``GRID_DECIMALS``), so that the interaction
  surface (``interaction_surface``) can be drawn without calling the model again.
* ``ensemble_disagreement``, ``component_error_rate`` and ``details.components``: the
  components' class indices come from ``boundary.ensembles`` (once per evaluation, over
  the whole dataset); a component "shares" an ensemble error on a row where it is wrong
  too (not necessarily with the same class).

Intervals come from ``boundary.stats``: Wilson for proportions (error rate, margin density,
flip rates, accuracy, precision, recall, slice share, disagreement, component error rate;
flip-rate pairs are treated as independent) and the seeded bootstrap of cell counts for
the error gap, f1, roc_auc, ece, group disparity and feature interaction (one cell per
sampled row: the row bootstrap of the sampled rows, the grid held fixed).
For statistics that depend only on cell counts (error gap: in-slice x error; f1: the
confusion matrix; group disparity: group x confusion cell, with the qualifying groups held
fixed) this is exactly the row bootstrap.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import ensembles, slices
from .predict import CHUNK_ROWS, predict, probabilities, row_runs, top_probability
from .slices import ProbeDefinitionError, small_codes
from .stats import BOOTSTRAP_RESAMPLES, auc, bootstrap, ece, ece_cells, stable_order, wilson

# Metrics that score one class against the rest and so need to know which class.
POS_LABEL_METRICS = {"precision", "recall", "f1", "roc_auc", "selection_rate", "tpr", "fpr"}
MODEL_CALLING = {
    "perturbation_flip_rate",
    "counterfactual_flip_rate",
    "feature_interaction",
    "ensemble_disagreement",
    "component_error_rate",
}
# Kinds that measure an ensemble's components (boundary.ensembles).
ENSEMBLE_KINDS = {"ensemble_disagreement", "component_error_rate"}


def _err(message: str) -> ProbeDefinitionError:
    return ProbeDefinitionError(message)


def match_class(value: Any, classes: list) -> Any:
    """Return the model class equal to ``value`` (also matching "1" to 1), or raise."""
    for cls in classes:
        native = cls.item() if isinstance(cls, np.generic) else cls
        if native == value or str(native) == str(value):
            return native
    names = ", ".join(repr(c.item() if isinstance(c, np.generic) else c) for c in classes)
    raise _err(f"pos_label {value!r} is not one of the model's classes ({names})")


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def json_value(value: Any) -> Any:
    """JSON-friendly Python value (NumPy scalars unwrapped, other objects as text)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


@dataclass
class _Outcome:
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    support: int = 0
    details: dict = field(default_factory=dict)
    undefined: str = ""  # why the value is NaN


class Run:
    """State shared by the probes of one evaluate_probes call."""

    def __init__(self, model, df, target_column, features, predictions, chunk_rows=CHUNK_ROWS):
        self.model = model
        self.chunk_rows = chunk_rows
        self.df = df
        self.features = features
        self.cache: dict = {}
        self.schema = slices.schema_of(df)
        self.cache[("schema",)] = self.schema
        self.n = len(df)
        self.predictions = predictions
        self.classes = predictions.classes
        self.class_list = [c.item() if isinstance(c, np.generic) else c for c in self.classes]
        self.pred_index = predictions.pred_index
        self.target_column = target_column
        target = df[target_column].to_numpy()
        y_index = pd.Index(self.classes).get_indexer(target)
        self.y_index = small_codes(y_index, len(self.classes))
        self.correct = self.pred_index == self.y_index
        self.wrong = ~self.correct
        self.total_errors = int(np.count_nonzero(self.wrong))
        self.unknown_targets = int(np.count_nonzero(self.y_index < 0))
        self._pos: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._confidence = None
        self._std: dict[str, float] = {}

    def mask(self, slice: list[dict]) -> np.ndarray:
        return slices.mask(self.df, slice, self.cache)

    def pos_index(self, pos_label: Any, metric: str) -> int | None:
        """Index of the positive class: the given label, or classes_[1] of a binary model."""
        if pos_label is None:
            if len(self.classes) == 2:
                return 1
            if metric in POS_LABEL_METRICS:
                raise _err(
                    f"pos_label is required for metric '{metric}' on a model with "
                    f"{len(self.classes)} classes (scored one-vs-rest)"
                )
            return None
        return self.class_list.index(match_class(pos_label, self.class_list))

    def positives(self, pos: int) -> tuple[np.ndarray, np.ndarray]:
        """(target is pos_label, prediction is pos_label) over the whole dataset."""
        if pos not in self._pos:
            self._pos[pos] = (self.y_index == pos, self.pred_index == pos)
        return self._pos[pos]

    def score_order(self, pos: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows sorted by the probability of class ``pos`` (once), and those scores.

        A slice's sorted scores are then a filter of this order, not a new sort.
        """
        key = ("order", pos)
        if key not in self.cache:
            scores = self.predictions.proba[:, pos]
            order = stable_order(scores)
            self.cache[key] = (order, scores[order])
        return self.cache[key]

    def ece_cells(self, bins: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Each row's ECE bin and bootstrap cell (``stats.ece_cells``), kept per bin count
        in the smallest integer types that hold them (a slice widens its own rows)."""
        key = ("ece", bins)
        if key not in self.cache:
            b, cell, sub = ece_cells(self.confidence, bins)
            self.cache[key] = (small_codes(b, bins), small_codes(cell, bins * sub), sub)
        return self.cache[key]

    @property
    def confidence(self) -> np.ndarray:
        if self._confidence is None:
            self._confidence = top_probability(self.predictions.proba)
        return self._confidence

    def std(self, feature: str) -> float:
        if feature not in self._std:
            sd = float(pd.Series(self.float_values(feature)).std())
            self._std[feature] = sd if math.isfinite(sd) else 0.0
        return self._std[feature]

    def float_values(self, feature: str) -> np.ndarray:
        """The feature as float64: a view of a float column, a fresh copy of an integer
        column (cheap to redo, where a cached copy would stay in memory through the
        model-calling probes), other columns parsed once and cached."""
        series = self.features[feature]
        if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf":
            return _as_float(series)
        key = ("float", feature)
        if key not in self.cache:
            self.cache[key] = _as_float(series)
        return self.cache[key]

    def float_rows(self, feature: str, rows: np.ndarray) -> np.ndarray:
        """``float_values(feature)[rows]``, without converting the rest of an integer column
        (a model-calling probe asks for one run of rows at a time)."""
        series = self.features[feature]
        if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":
            return series.to_numpy()[rows].astype(np.float64)
        return self.float_values(feature)[rows]

    def group_codes(self, feature: str) -> tuple[np.ndarray, list]:
        """Factorised codes (-1 for missing) and labels of a column, computed once."""
        return slices.column_codes(self.df, feature, self.cache)

    @property
    def component_names(self) -> list | None:
        """The model's components (names or indices), or None: not an ensemble."""
        if ("component_names",) not in self.cache:
            self.cache[("component_names",)] = ensembles.component_names(self.model)
        return self.cache[("component_names",)]

    def component_index(self) -> np.ndarray:
        """Each component's class index on each row of the dataset, (components, rows):
        one request to the model, kept for the other probes (a failure too)."""
        key = ("component_index",)
        if key not in self.cache:
            try:
                found = ensembles.component_predictions(
                    self.model, self.features, chunk_rows=self.chunk_rows
                )
                found = np.asarray(found)
                names = self.component_names or []
                if found.shape != (len(names), self.n):
                    raise ValueError(
                        f"component predictions of shape {found.shape}, expected "
                        f"({len(names)}, {self.n})"
                    )
                self.cache[key] = found
            except Exception as exc:
                self.cache[key] = exc
        found = self.cache[key]
        if isinstance(found, Exception):
            raise found
        return found

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """``predict_proba`` of the model on ``frame`` (in chunks, as the dataset's)."""
        return probabilities(self.model, frame, chunk_rows=self.chunk_rows)

    def predict_rows(self, frame: pd.DataFrame) -> np.ndarray:
        """Index (in ``classes``) of the predicted class of each row of ``frame``."""
        pred_index = predict(self.model, frame, chunk_rows=self.chunk_rows).pred_index
        assert pred_index is not None  # Predictions fills it in on construction
        return pred_index


def _error_rate(run: Run, mask, params, n) -> _Outcome:
    errors = int(np.count_nonzero(run.wrong & mask))
    low, high = wilson(errors, n)
    return _Outcome(errors / n, low, high, details={"errors": errors, "rows": n})


def _error_gap(run: Run, mask, params, n) -> _Outcome:
    errors = int(np.count_nonzero(run.wrong & mask))
    total, rows = run.total_errors, run.n
    slice_rate, dataset_rate = errors / n, total / rows
    cells = [errors, n - errors, total - errors, rows - n - (total - errors)]

    def statistic(d):
        return d[:, 0] / (d[:, 0] + d[:, 1]) - (d[:, 0] + d[:, 2]) / d.sum(axis=1)

    low, high = bootstrap(np.array(cells), statistic, params["seed"])
    details = {
        "slice_error_rate": slice_rate,
        "dataset_error_rate": dataset_rate,
        "slice_errors": errors,
        "dataset_errors": total,
        "dataset_rows": rows,
    }
    return _Outcome(slice_rate - dataset_rate, low, high, details=details)


def _margin_density(run: Run, mask, params, n) -> _Outcome:
    below = int(np.count_nonzero((run.predictions.margin < params["margin"]) & mask))
    low, high = wilson(below, n)
    return _Outcome(below / n, low, high, details={"rows_below_margin": below, "rows": n})


def _slice_metric(run: Run, mask, params, n) -> _Outcome:
    metric = params["metric"]
    if metric == "accuracy":
        right = int(np.count_nonzero(run.correct & mask))
        low, high = wilson(right, n)
        return _Outcome(right / n, low, high, details={"metric": metric, "correct": right})
    pos = run.pos_index(params["pos_label"], metric)
    assert pos is not None  # the metrics past accuracy are all in POS_LABEL_METRICS
    details = {"metric": metric, "pos_label": run.class_list[pos]}
    y_pos, p_pos = run.positives(pos)
    if metric == "roc_auc":
        order, scores = run.score_order(pos)
        keep = mask[order]
        labels = y_pos[order[keep]]
        value, low, high = auc(scores[keep], labels, params["seed"])
        details["positives"] = int(np.count_nonzero(labels))
        details["negatives"] = int(labels.size - details["positives"])
        reason = "" if math.isfinite(value) else "roc_auc is undefined: the slice holds one class"
        return _Outcome(value, low, high, details=details, undefined=reason)
    in_pos = y_pos & mask
    tp = int(np.count_nonzero(in_pos & p_pos))
    fn = int(np.count_nonzero(in_pos)) - tp
    fp = int(np.count_nonzero(p_pos & mask)) - tp
    tn = n - tp - fn - fp
    details.update(tp=tp, fp=fp, fn=fn, tn=tn)
    if metric == "precision":
        low, high = wilson(tp, tp + fp)
        reason = (
            ""
            if tp + fp
            else "precision is undefined: no row of the slice is predicted as pos_label"
        )
        return _Outcome(_ratio(tp, tp + fp), low, high, details=details, undefined=reason)
    if metric == "recall":
        low, high = wilson(tp, tp + fn)
        reason = "" if tp + fn else "recall is undefined: the slice has no row of pos_label"
        return _Outcome(_ratio(tp, tp + fn), low, high, details=details, undefined=reason)

    def statistic(d):
        return 2 * d[:, 0] / (2 * d[:, 0] + d[:, 1] + d[:, 2])

    low, high = bootstrap(np.array([tp, fp, fn, tn]), statistic, params["seed"])
    den = 2 * tp + fp + fn
    reason = "" if den else "f1 is undefined: pos_label is neither predicted nor present"
    return _Outcome(_ratio(2 * tp, den), low, high, details=details, undefined=reason)


def _slice_ece(run: Run, mask, params, n) -> _Outcome:
    rows = np.flatnonzero(mask)
    bins = params["bins"]
    b, cell, sub = run.ece_cells(bins)
    value, low, high, table = ece(
        run.confidence[rows],
        run.correct[rows].astype(np.int64),
        b[rows].astype(np.int64),
        cell[rows].astype(np.int64),
        bins,
        sub,
        params["seed"],
    )
    return _Outcome(value, low, high, details={"bins": table})


def _group_disparity(run: Run, mask, params, n) -> _Outcome:
    """Spread (max - min) of a per-group metric over the groups of a column in the slice.

    1. Groups are the factorised values of group_feature (missing values form none).
    2. Per group, count the cells (target is pos, pred is pos) - or (wrong) for
       error_rate - in one bincount over the slice rows.
    3. Groups with at least min_support rows and a defined metric qualify; fewer than two
       make the value undefined.
    4. The bootstrap resamples the slice's cell counts with the qualifying groups fixed;
       the rows of other groups stay in one cell so the slice size is resampled right.
    """
    feature, metric, min_support = params["group_feature"], params["metric"], params["min_support"]
    codes, labels = run.group_codes(feature)
    rows = np.flatnonzero(mask)
    group = codes[rows].astype(np.int64)  # the cached codes may be int8: widen before * width
    n_groups = len(labels)
    if metric == "error_rate":
        width = 2
        cell = run.wrong[rows].astype(np.int64)
        details = {"metric": metric}
    else:
        pos = run.pos_index(params["pos_label"], metric)
        assert pos is not None  # the metrics past error_rate are all in POS_LABEL_METRICS
        y_pos, p_pos = run.positives(pos)
        width = 4
        cell = 2 * y_pos[rows].astype(np.int64) + p_pos[rows]
        details = {"metric": metric, "pos_label": run.class_list[pos]}
    valid = group >= 0
    counts = np.bincount(group[valid] * width + cell[valid], minlength=n_groups * width)
    counts = counts.reshape(n_groups, width).astype(np.float64)

    def metric_of(c):  # c: (..., groups, width) -> (..., groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            if metric == "error_rate":
                return c[..., 1] / c.sum(axis=-1)
            if metric == "selection_rate":
                return (c[..., 1] + c[..., 3]) / c.sum(axis=-1)
            if metric == "tpr":
                return c[..., 3] / (c[..., 2] + c[..., 3])
            return c[..., 1] / (c[..., 0] + c[..., 1])

    sizes = counts.sum(axis=1)
    values = metric_of(counts)
    qualifying = np.flatnonzero((sizes >= min_support) & np.isfinite(values))
    details["groups"] = [
        {"group": json_value(labels[g]), "rows": int(sizes[g]), "value": float(values[g])}
        for g in qualifying[np.argsort(-values[qualifying], kind="stable")][:100]
    ]
    details["groups_qualifying"] = int(qualifying.size)
    details["groups_in_slice"] = int(np.count_nonzero(sizes))
    if qualifying.size < 2:
        reason = (
            f"fewer than 2 groups of '{feature}' with at least {min_support} rows "
            f"and a defined {metric}"
        )
        return _Outcome(math.nan, details=details, undefined=reason)
    chosen = values[qualifying]
    value = float(chosen.max() - chosen.min())
    rest = n - counts[qualifying].sum()
    cells = np.concatenate((counts[qualifying].ravel(), [rest]))
    k = qualifying.size

    def statistic(d):
        per_group = metric_of(d[:, : k * width].reshape(-1, k, width))
        with np.errstate(all="ignore"):
            spread = np.nanmax(per_group, axis=1) - np.nanmin(per_group, axis=1)
        return np.where(np.isfinite(per_group).sum(axis=1) >= 2, spread, np.nan)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are dropped below
        low, high = bootstrap(cells, statistic, params["seed"])
    return _Outcome(value, low, high, details=details)


def _model_feature(run: Run, name: str, what: str) -> None:
    if name not in run.features.columns:
        raise _err(f"{what}: column '{name}' is not a model feature (target or ignored)")


def _perturbation(run: Run, mask, params, n) -> _Outcome:
    """Share of (row, repeat) pairs whose prediction changes under Gaussian noise.

    1. Features: params.features or every numeric model feature; noise sd per feature is
       scale x its std over the whole dataset.
    2. Stack the repeats of the slice rows, add the noise (layout in the module docstring)
       and predict them, one run of at most ``run.chunk_rows`` stacked rows at a time: the
       frame of a run is built, predicted and dropped before the next (with 0, one frame
       and one call). The noise is drawn run after run from the one generator, which gives
       exactly the numbers of one draw of the whole stack.
    3. Count the pairs whose predicted class differs from the unperturbed one.
    """
    features = params["features"]
    if features is None:
        features = [c for c in run.features.columns if run.schema.get(c) == "numeric"]
    for name in features:
        _model_feature(run, name, "features")
    if not features:
        raise _err("perturbation needs numeric features, and the model has none")
    repeats = params["repeats"]
    rows = np.flatnonzero(mask)
    sds = np.array([params["scale"] * run.std(f) for f in features])
    rng = np.random.default_rng(params["seed"])
    pairs = rows.size * repeats
    predicted = np.empty(pairs, dtype=run.pred_index.dtype)
    for start, stop in row_runs(pairs, run.chunk_rows):
        # Stacked row i is slice row i % n (np.tile(rows, repeats)[start:stop]).
        stacked_rows = rows[np.arange(start, stop) % rows.size]
        noise = rng.standard_normal((stop - start, len(features)))
        noise *= sds
        frame = run.features.take(stacked_rows)
        # The taken labels repeat and the model ignores them; a RangeIndex holds no array.
        frame.index = pd.RangeIndex(start, stop)
        for j, name in enumerate(features):
            frame[name] = run.float_rows(name, stacked_rows) + noise[:, j]
        # Only the frame is needed while the model runs (the memory peak).
        del noise, stacked_rows
        predicted[start:stop] = run.predict_rows(frame)
        del frame
    flipped = predicted.reshape(repeats, n) != run.pred_index[rows]
    flips = int(np.count_nonzero(flipped))
    rows_flipped = int(np.count_nonzero(flipped.any(axis=0)))
    low, high = wilson(flips, pairs)
    details = {
        "features": list(features),
        "noise_sd": {f: float(s) for f, s in zip(features, sds, strict=True)},
        "repeats": repeats,
        "pairs": pairs,
        "flips": flips,
        "rows_flipped": rows_flipped,
    }
    return _Outcome(flips / pairs, low, high, details=details)


def _as_float(series: pd.Series) -> np.ndarray:
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf":
        return series.to_numpy(dtype=np.float64, copy=False)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _constant(template: pd.Series, value: Any, rows: int) -> Any:
    """A column of ``rows`` copies of ``value``, in the template's dtype when it fits.

    Keeping the dtype matters to models that read it (native categorical support); a
    value the dtype cannot hold falls back to the inferred dtype, except that a category
    outside a categorical column's categories is refused, as it would silently go missing.
    """
    dtype = template.dtype
    if value is not None and pd.api.types.is_datetime64_any_dtype(dtype):
        value = pd.Timestamp(value)
        tz = getattr(dtype, "tz", None)
        if tz is not None and value.tzinfo is None:
            value = value.tz_localize(tz)
    is_category = isinstance(dtype, pd.CategoricalDtype)
    if is_category and value is not None and value not in set(dtype.categories):
        raise _err(f"changes: {value!r} is not a category of column '{template.name}'")
    try:
        one = pd.Series([value], dtype=dtype)
    except (TypeError, ValueError):
        one = None
    if one is not None and value is not None and one.isna().iloc[0]:
        one = None
    if one is None:
        if value is None and pd.api.types.is_numeric_dtype(dtype):
            return np.full(rows, np.nan)
        one = pd.Series([value])
    column = one.take(np.zeros(rows, dtype=np.intp))
    return column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array


def _added(run: Run, name: str, rows: np.ndarray, amount: int | float) -> np.ndarray:
    """Column ``name`` at ``rows`` plus ``amount``; integers stay integers, as in pandas."""
    dtype = run.features[name].dtype
    if isinstance(amount, int) and isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return run.features[name].to_numpy()[rows] + amount
    return run.float_rows(name, rows) + amount


def _counterfactual(run: Run, mask, params, n) -> _Outcome:
    """Share of slice rows whose prediction changes when params.changes is applied.

    1. Gather the slice rows of the features (dtypes and column order kept), one run of at
       most ``run.chunk_rows`` rows at a time (0: all of them, one call).
    2. Apply each change in order: "add" to a numeric column, "set" a constant.
    3. Predict the run; count rows whose predicted class differs.
    """
    changes = params["changes"]
    for name in changes:
        _model_feature(run, name, "changes")
    rows = np.flatnonzero(mask)
    flips = 0
    for start, stop in row_runs(rows.size, run.chunk_rows):
        part = rows[start:stop]
        frame = run.features.take(part)
        for name, change in changes.items():
            if "add" in change:
                frame[name] = _added(run, name, part, change["add"])
            else:
                frame[name] = _constant(run.features[name], change["set"], part.size)
        flips += int(np.count_nonzero(run.predict_rows(frame) != run.pred_index[part]))
        del frame
    low, high = wilson(flips, n)
    return _Outcome(flips / n, low, high, details={"flips": flips, "rows": n})


def _slice_share(run: Run, mask, params, n) -> _Outcome:
    low, high = wilson(n, run.n)
    return _Outcome(n / run.n, low, high, details={"rows": n, "dataset_rows": run.n})


def _pos_of(run: Run, pos_label: Any, kind: str) -> int:
    """The class whose probability a kind follows: pos_label, or classes_[1] of a binary
    model (as slice_metric)."""
    if pos_label is None:
        if len(run.classes) != 2:
            raise _err(
                f"pos_label is required for {kind} on a model with {len(run.classes)} classes"
            )
        return 1
    return run.class_list.index(match_class(pos_label, run.class_list))


def _grid(values: np.ndarray, size: int, feature: str) -> np.ndarray:
    """``np.unique(np.quantile(values, (np.arange(size) + 0.5) / size))`` over the
    slice's non-missing values of the feature."""
    values = values[~np.isnan(values)]
    if not values.size:
        raise _err(f"features: column '{feature}' has no values in the slice")
    return np.unique(np.quantile(values, (np.arange(size) + 0.5) / size))


def _centred(values: np.ndarray, axes: tuple) -> np.ndarray:
    """``values`` minus their mean over ``axes``; the first cell is taken off first, so
    that a flat partial dependence is exactly 0 (not the rounding of a mean)."""
    index: tuple = (Ellipsis, *([slice(0, 1)] * len(axes)))
    shifted = values - values[index]
    return shifted - shifted.mean(axis=axes, keepdims=True)


def interaction_surface(pd_ab: np.ndarray, pd_a: np.ndarray, pd_b: np.ndarray) -> np.ndarray:
    """The part of the joint partial dependence that the two features' own effects do not
    explain, per grid cell: PD_ab(i, j) - PD_a(i) - PD_b(j), each centred by its own mean
    over its grid cells, over any leading axes (pd_ab (..., A, B), pd_a (..., A), pd_b
    (..., B)). Positive where the pair together raises the probability beyond the sum of
    their separate effects; H² is its sum of squares over that of the centred PD_ab."""
    ab = _centred(pd_ab, (-2, -1))
    return ab - _centred(pd_a, (-1,))[..., :, None] - _centred(pd_b, (-1,))[..., None, :]


def h_squared(pd_ab: np.ndarray, pd_a: np.ndarray, pd_b: np.ndarray) -> np.ndarray:
    """Friedman's H² of two features from their partial dependences, over any leading
    axes: pd_ab (..., A, B), pd_a (..., A), pd_b (..., B). Each is centred by its own
    mean over its grid cells; H² = sum (PD_ab - PD_a - PD_b)² / sum PD_ab², 0 when the
    denominator is 0."""
    ab = _centred(pd_ab, (-2, -1))
    numerator = (interaction_surface(pd_ab, pd_a, pd_b) ** 2).sum(axis=(-2, -1))
    denominator = (ab**2).sum(axis=(-2, -1))
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def _interaction(run: Run, mask, params, n) -> _Outcome:
    """Friedman's H² of params.features [a, b] for the probability of pos_label.

    1. The grid of each feature comes from all the slice's rows (``_grid``); the rows
       predicted are the slice's, or a seeded sample of params.sample of them in dataset
       order.
    2. Brute partial dependence: each sampled row with a set to each grid value (PD_a),
       b to each (PD_b), and both to each pair (PD_ab); one model call for PD_b and one per
       grid value of a (its PD_a rows and PD_ab row of cells), each of at most
       sample x (grid + 1) rows. Every row's predictions are kept (ICE curves).
    3. H² of the means over the rows (``h_squared``).
    4. Interval: the seeded row bootstrap (``stats.bootstrap`` over the sampled rows, one
       cell each): a resample weighs each row's ICE values by its count, with no further
       model call.
    """
    a, b = params["features"]
    for name in (a, b):
        _model_feature(run, name, "features")
    pos = _pos_of(run, params["pos_label"], "feature_interaction")
    rows = np.flatnonzero(mask)
    grid_a = _grid(run.float_values(a)[rows], params["grid"], a)
    grid_b = _grid(run.float_values(b)[rows], params["grid"], b)
    if rows.size > params["sample"]:
        rng = np.random.default_rng(params["seed"] or 0)
        rows = rows[np.sort(rng.choice(rows.size, params["sample"], replace=False))]
    size = rows.size
    base = run.features.take(rows)
    base.index = pd.RangeIndex(size)

    def ice(copies: int, a_values: np.ndarray | None, b_values: np.ndarray) -> np.ndarray:
        """P(pos) of each sampled row in each of ``copies`` stacked copies of them (copy c
        is rows c * size to (c + 1) * size), shape (rows, copies)."""
        frame = base.take(np.tile(np.arange(size), copies))
        frame.index = pd.RangeIndex(len(frame))
        if a_values is not None:
            frame[a] = a_values
        frame[b] = b_values
        return run.probabilities(frame)[:, pos].reshape(copies, size).T

    ice_b = ice(grid_b.size, None, np.repeat(grid_b, size))
    ice_a = np.empty((size, grid_a.size))
    ice_ab = np.empty((size, grid_a.size, grid_b.size))
    # Per grid value of a: a copy with b as it is (PD_a), then one per grid value of b.
    own_b = run.float_values(b)[rows]
    b_values = np.concatenate((own_b, np.repeat(grid_b, size)))
    for i, value in enumerate(grid_a):
        cells = ice(grid_b.size + 1, np.full(b_values.size, value), b_values)
        ice_a[:, i] = cells[:, 0]
        ice_ab[:, i, :] = cells[:, 1:]
    pd_ab, pd_a, pd_b = ice_ab.mean(axis=0), ice_a.mean(axis=0), ice_b.mean(axis=0)
    value = float(h_squared(pd_ab, pd_a, pd_b))
    flat_ab = ice_ab.reshape(size, -1)

    def statistic(draws):
        weights = draws / draws.sum(axis=1, keepdims=True)
        pd_ab = (weights @ flat_ab).reshape(-1, grid_a.size, grid_b.size)
        return h_squared(pd_ab, weights @ ice_a, weights @ ice_b)

    low, high = bootstrap(np.ones(size), statistic, params["seed"])
    details = {
        "features": [a, b],
        "pos_label": run.class_list[pos],
        "grid": {a: grid_a.tolist(), b: grid_b.tolist()},
        # The partial dependences H² is computed from (before centring), so that a page can
        # show where the interaction lies: pd_ab[i][j] at grid[a][i], grid[b][j].
        "pd_ab": stored_grid(pd_ab),
        "pd_a": stored_grid(pd_a),
        "pd_b": stored_grid(pd_b),
        "rows": int(size),
        "resamples": BOOTSTRAP_RESAMPLES,
    }
    return _Outcome(value, low, high, details=details)


# Decimals a stored partial dependence keeps: far below any difference a page shows, and
# a tenth of the smallest a test of the numbers looks at (1e-9).
GRID_DECIMALS = 10


def stored_grid(values: np.ndarray) -> list:
    """A partial dependence as nested lists of floats rounded to GRID_DECIMALS, a value
    that is not finite as None (JSON has no NaN)."""
    rounded = np.round(np.asarray(values, dtype=float), GRID_DECIMALS).tolist()

    def clean(item):
        if isinstance(item, list):
            return [clean(v) for v in item]
        return item if math.isfinite(item) else None

    return clean(rounded)


def not_an_ensemble(kind: str) -> ProbeDefinitionError:
    return _err(
        f"{kind} needs an ensemble: the model's final step is no {ensembles.ENSEMBLE_NAMES}"
    )


def _disagreement(run: Run, mask, params, n) -> _Outcome:
    """Share of slice rows on which the components do not all predict the same class."""
    if run.component_names is None:
        raise not_an_ensemble("ensemble_disagreement")
    chosen = run.component_index()[:, mask]
    split = int(np.count_nonzero((chosen != chosen[:1]).any(axis=0)))
    low, high = wilson(split, n)
    details = {"rows_disagreeing": split, "rows": n, "component_count": int(chosen.shape[0])}
    return _Outcome(split / n, low, high, details=details)


def component_position(names: list | None, component: Any) -> int:
    """Where params.component is among the model's components: a name of a Voting or
    Stacking ensemble's, an index of the others' (a digit string is read as one)."""
    if names is None:
        raise not_an_ensemble("component_error_rate")
    if names and all(isinstance(name, int) for name in names):
        if isinstance(component, str) and component.strip().isdigit():
            component = int(component)
        whole = isinstance(component, int) and not isinstance(component, bool)
        if whole and 0 <= component < len(names):
            return component
        raise _err(
            f"component must be the index of one of the ensemble's {len(names)} components "
            f"(0 to {len(names) - 1}), not {component!r}"
        )
    if isinstance(component, str) and component in names:
        return names.index(component)
    shown = ", ".join(map(str, names)) or "none"
    raise _err(f"component {component!r} is not one of the ensemble's components ({shown})")


def _component_error_rate(run: Run, mask, params, n) -> _Outcome:
    names = run.component_names
    c = component_position(names, params["component"])
    wrong = run.component_index()[c, mask] != run.y_index[mask]
    errors = int(np.count_nonzero(wrong))
    low, high = wilson(errors, n)
    details = {"component": names[c], "errors": errors, "rows": n}  # type: ignore[index]
    return _Outcome(errors / n, low, high, details=details)


def component_details(run: Run, mask) -> list[dict]:
    """Per component of an ensemble, on the slice's rows: its error rate, its agreement
    with the ensemble (share of rows where it predicts the ensemble's class) and the share
    of the ensemble's errors that it makes too (None when the ensemble makes none)."""
    names = run.component_names or []
    chosen = run.component_index()[:, mask]
    target = run.y_index[mask]
    ensemble_wrong = run.wrong[mask]
    ensemble_errors = int(np.count_nonzero(ensemble_wrong))
    n = int(chosen.shape[1])
    wrong = chosen != target
    errors = np.count_nonzero(wrong, axis=1)
    agree = np.count_nonzero(chosen == run.pred_index[mask], axis=1)
    shared = np.count_nonzero(wrong & ensemble_wrong, axis=1)
    return [
        {
            "component": json_value(name),
            "error_rate": int(errors[c]) / n,
            "agreement": int(agree[c]) / n,
            "shared_errors": int(shared[c]) / ensemble_errors if ensemble_errors else None,
        }
        for c, name in enumerate(names)
    ]


KIND_FUNCTIONS = {
    "slice_error_rate": _error_rate,
    "slice_error_gap": _error_gap,
    "margin_density": _margin_density,
    "slice_metric": _slice_metric,
    "slice_ece": _slice_ece,
    "group_disparity": _group_disparity,
    "perturbation_flip_rate": _perturbation,
    "counterfactual_flip_rate": _counterfactual,
    "slice_share": _slice_share,
    "feature_interaction": _interaction,
    "ensemble_disagreement": _disagreement,
    "component_error_rate": _component_error_rate,
}
