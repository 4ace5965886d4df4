"""Probe engine: evaluates stored probes of a classifier on a reference dataset.

Plain functions over pandas and NumPy (no Django), so that the numbers can be reproduced in
a notebook. The definitions follow DESIGN.md, "Probe kinds (exact definitions)":

* Predictions come from ONE ``predict_proba`` call over the dataset's feature columns (all
  columns but the target and the ignored ones, as a DataFrame). ``pred`` is
  ``classes_[argmax(proba)]`` (first class on ties, as NumPy's argmax and scikit-learn's
  ``predict``); ``margin`` is top-1 minus top-2 probability (binary: ``|p1 - p0|``).
  Opt-in for memory-bound workers, ``chunk_rows`` splits each predict_proba call into
  calls on consecutive chunks of rows, every row predicted once, into one array.
* Rows whose target value is not one of the model's classes (including a missing target)
  can never be predicted correctly: they count as errors and as "not pos_label".
* Slice predicates follow pandas' NumPy semantics for missing values: a missing value
  satisfies no comparison (``== < <= > >= between in``) and satisfies their negations
  (``!=`` and ``not_in``), like ``df[df.x != 3]`` on a float column. ``between`` is
  inclusive on both ends, like ``Series.between``.
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
* ``slice_ece``: bins ``[b/B, (b+1)/B)`` with the edges of ``np.linspace(0, 1, B + 1)``,
  a confidence of exactly 1.0 in the last bin.

Confidence intervals are 95 %: Wilson score intervals for proportions (error rate, margin
density, flip rates, accuracy, precision, recall; flip-rate pairs are treated as
independent) and a seeded bootstrap (200 resamples) for the error gap, f1, roc_auc, ece and
group disparity. The bootstrap draws multinomial counts over cells of rows rather than
row indices, which keeps it cheap on large slices. For statistics that depend only on cell
counts (error gap: in-slice x error; f1: the confusion matrix; group disparity: group x
confusion cell, with the qualifying groups held fixed) this is exactly the row bootstrap.
For roc_auc the cells are score groups (each distinct score while there are at most 128,
else 128 rank groups) x label; for ece they are confidence cells (each distinct confidence
while there are at most 64, else sub-bins of the ECE bins) x correctness. Rows of a cell
are then represented by the cell's mean, an approximation that only applies to large
slices, where the intervals are narrow.
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PROBE_KINDS = (
    "slice_error_rate",
    "slice_error_gap",
    "margin_density",
    "slice_metric",
    "slice_ece",
    "group_disparity",
    "perturbation_flip_rate",
    "counterfactual_flip_rate",
)

# "<=" kinds measure something bad (lower is better), ">=" kinds something good.
DEFAULT_COMPARATOR = {
    "slice_error_rate": "<=",
    "slice_error_gap": "<=",
    "margin_density": "<=",
    "slice_metric": ">=",
    "slice_ece": "<=",
    "group_disparity": "<=",
    "perturbation_flip_rate": "<=",
    "counterfactual_flip_rate": "<=",
}

COMPARATORS = ("<=", ">=", "no_worse_than_baseline")
SLICE_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "not_null")
SLICE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
DISPARITY_METRICS = ("selection_rate", "tpr", "fpr", "error_rate")
COLUMN_TYPES = ("numeric", "categorical", "boolean", "datetime")
BOOTSTRAP_RESAMPLES = 200

_ORDER_OPS = {"<", "<=", ">", ">=", "between"}
_NULL_OPS = {"is_null", "not_null"}
_LIST_OPS = {"in", "not_in"}
_OPS_BY_TYPE = {
    "numeric": set(SLICE_OPS),
    "datetime": set(SLICE_OPS),
    "categorical": set(SLICE_OPS) - _ORDER_OPS,
    "boolean": set(SLICE_OPS) - _ORDER_OPS,
}
# Metrics that score one class against the rest and so need to know which class.
_POS_LABEL_METRICS = {"precision", "recall", "f1", "roc_auc", "selection_rate", "tpr", "fpr"}
_Z95 = 1.959963984540054
_AUC_MAX_GROUPS = 64
_ECE_SUB_BINS = 32

_DEFAULTS: dict[str, dict[str, Any]] = {
    "slice_error_rate": {},
    "slice_error_gap": {"seed": 0},
    "margin_density": {"margin": 0.1},
    "slice_metric": {"metric": "accuracy", "pos_label": None, "seed": 0},
    "slice_ece": {"bins": 10, "seed": 0},
    "group_disparity": {
        "group_feature": None,
        "metric": "selection_rate",
        "min_support": 30,
        "pos_label": None,
        "seed": 0,
    },
    "perturbation_flip_rate": {"scale": 0.05, "features": None, "repeats": 5, "seed": 0},
    "counterfactual_flip_rate": {"changes": {}},
}


class ProbeDefinitionError(ValueError):
    """A probe or slice definition that cannot be evaluated; the message names the culprit."""


# ---------------------------------------------------------------------------------------
# Schema and validation
# ---------------------------------------------------------------------------------------


def _column_type(values: pd.Series) -> str:
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "numeric"
    if pd.api.types.is_object_dtype(dtype):
        # Object columns hold whatever was put in them; look at the values.
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred == "boolean":
            return "boolean"
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "numeric"
        if inferred in ("datetime", "datetime64"):
            return "datetime"
    return "categorical"


def schema_of(df: pd.DataFrame) -> dict[str, str]:
    """Map each column to "numeric", "categorical", "boolean" or "datetime"."""
    return {col: _column_type(df[col]) for col in df.columns}


def _err(message: str) -> ProbeDefinitionError:
    return ProbeDefinitionError(message)


def _number(value: Any, what: str) -> int | float:
    """Coerce a JSON/form value to a finite int or float, refusing booleans."""
    if isinstance(value, (bool, np.bool_)):
        raise _err(f"{what} must be a number, not {value!r}")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise _err(f"{what} must be a number, not {value!r}") from None
    if not isinstance(value, (int, float)):
        raise _err(f"{what} must be a number, not {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _err(f"{what} must be a finite number, not {value!r}")
        if value.is_integer() and abs(value) < 2**53:
            # 22.0 and 22 are the same predicate; one spelling keeps cache keys equal.
            return int(value)
    return value


def _integer(value: Any, what: str, low: int, high: int | None = None) -> int:
    number = _number(value, what)
    if not isinstance(number, int):
        raise _err(f"{what} must be a whole number, not {value!r}")
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _err(f"{what} must be {bound}, not {number}")
    return number


def _coerce_value(ctype: str, feature: str, value: Any) -> Any:
    """Normalise one predicate (or change) value for a column of type ``ctype``."""
    if value is None:
        raise _err(f"value for column '{feature}' is missing (use is_null / not_null)")
    if ctype == "numeric":
        return _number(value, f"value {value!r} for numeric column '{feature}'")
    if ctype == "boolean":
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, np.integer)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no"):
            return False
        raise _err(f"value {value!r} for boolean column '{feature}' is not true or false")
    if ctype == "datetime":
        try:
            stamp = pd.Timestamp(value)
        except (TypeError, ValueError):
            raise _err(f"value {value!r} for datetime column '{feature}' is not a date") from None
        if pd.isna(stamp):
            raise _err(f"value for column '{feature}' is missing (use is_null / not_null)")
        return stamp.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise _err(f"value for column '{feature}' is missing (use is_null / not_null)")
    if not isinstance(value, (str, int, float, bool)):
        raise _err(f"value {value!r} for categorical column '{feature}' is not a single value")
    return value


def validate_slice(slice: list[dict] | None, schema: dict[str, str]) -> list[dict]:
    """Check a slice against a dataset schema and return it normalised.

    1. The slice must be a list (None means the whole dataset) of predicate objects with
       the keys ``feature``, ``op`` and (except for is_null / not_null) ``value``.
    2. The feature must be a column of the dataset and the op must fit its type (no order
       comparisons on categorical or boolean columns).
    3. Values are coerced to the column's type: numeric strings to numbers, "true"/"false"
       to booleans, dates to ISO strings; ``between`` takes ``[low, high]`` with
       ``low <= high``; ``in`` / ``not_in`` take a non-empty list (duplicates dropped).
    """
    if slice is None:
        return []
    if not isinstance(slice, (list, tuple)):
        raise _err("slice must be a list of predicates")
    normalised = []
    for position, predicate in enumerate(slice, start=1):
        if not isinstance(predicate, Mapping):
            raise _err(f"predicate {position} must be an object with feature, op and value")
        unknown = set(predicate) - {"feature", "op", "value"}
        if unknown:
            raise _err(f"predicate {position} has unknown keys: {', '.join(sorted(unknown))}")
        feature = predicate.get("feature")
        if not isinstance(feature, str) or not feature:
            raise _err(f"predicate {position} names no column (feature)")
        if feature not in schema:
            raise _err(f"column '{feature}' is not in the dataset")
        op = predicate.get("op")
        if op not in SLICE_OPS:
            raise _err(
                f"unknown operator {op!r} for column '{feature}' (allowed: {', '.join(SLICE_OPS)})"
            )
        ctype = schema[feature]
        if op not in _OPS_BY_TYPE.get(ctype, ()):
            raise _err(f"operator '{op}' does not fit {ctype} column '{feature}'")
        value = predicate.get("value")
        if op in _NULL_OPS:
            if value is not None:
                raise _err(f"operator '{op}' on column '{feature}' takes no value")
            normalised.append({"feature": feature, "op": op})
            continue
        if op == "between":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise _err(f"'between' on column '{feature}' needs a value [low, high]")
            low, high = (_coerce_value(ctype, feature, v) for v in value)
            if _order_key(ctype, low) > _order_key(ctype, high):
                raise _err(f"'between' on column '{feature}': low {low!r} is above high {high!r}")
            value = [low, high]
        elif op in _LIST_OPS:
            if not isinstance(value, (list, tuple)) or not value:
                raise _err(f"'{op}' on column '{feature}' needs a non-empty list of values")
            value = list(dict.fromkeys(_coerce_value(ctype, feature, v) for v in value))
        else:
            if isinstance(value, (list, tuple, dict)):
                raise _err(f"operator '{op}' on column '{feature}' takes a single value")
            value = _coerce_value(ctype, feature, value)
        normalised.append({"feature": feature, "op": op, "value": value})
    return normalised


def _order_key(ctype: str, value: Any) -> Any:
    return pd.Timestamp(value) if ctype == "datetime" else value


def default_params(kind: str) -> dict:
    """Parameter defaults of a probe kind, as shown in forms."""
    if kind not in _DEFAULTS:
        raise _err(f"unknown probe kind {kind!r} (allowed: {', '.join(PROBE_KINDS)})")
    return copy.deepcopy(_DEFAULTS[kind])


def _match_class(value: Any, classes: list) -> Any:
    """Return the model class equal to ``value`` (also matching "1" to 1), or raise."""
    for cls in classes:
        native = cls.item() if isinstance(cls, np.generic) else cls
        if native == value or str(native) == str(value):
            return native
    names = ", ".join(repr(c.item() if isinstance(c, np.generic) else c) for c in classes)
    raise _err(f"pos_label {value!r} is not one of the model's classes ({names})")


def _validate_pos_label(kind: str, params: dict, classes: list | None) -> None:
    value = params["pos_label"]
    if isinstance(value, (list, dict, tuple)):
        raise _err("pos_label must be a single class label")
    if classes is None:
        return
    if value is not None:
        params["pos_label"] = _match_class(value, classes)
        return
    needs = params["metric"] in _POS_LABEL_METRICS
    if needs and len(classes) != 2:
        raise _err(
            f"pos_label is required for metric '{params['metric']}' on a model with "
            f"{len(classes)} classes (scored one-vs-rest)"
        )


def validate_probe(
    kind: str,
    slice: list[dict] | None,
    params: dict | None,
    comparator: str,
    threshold: float | None,
    schema: dict[str, str],
    *,
    target_column: str | None = None,
    classes: list | None = None,
) -> dict:
    """Check a probe definition and return its parameters with defaults filled in.

    1. The kind, the slice (see ``validate_slice``) and the comparator must be known.
    2. "<=" and ">=" need a finite threshold; "no_worse_than_baseline" ignores it.
    3. Parameters: unknown names are refused, None means the default, each value is
       checked for its kind (ranges, metric names, columns that must exist and fit).
    4. With ``classes`` (the model's ``classes_``) the pos_label is matched to a class, and
       a multiclass model must name one where the metric is one-vs-rest.
    """
    return _validate_probe(
        kind, slice, params, comparator, threshold, schema, target_column, classes
    )[0]


def _validate_probe(kind, slice, params, comparator, threshold, schema, target_column, classes):
    """validate_probe's work; also returns the normalised slice."""
    if kind not in _DEFAULTS:
        raise _err(f"unknown probe kind {kind!r} (allowed: {', '.join(PROBE_KINDS)})")
    normalised_slice = validate_slice(slice, schema)
    if comparator not in COMPARATORS:
        raise _err(f"comparator must be one of {', '.join(COMPARATORS)}, not {comparator!r}")
    if comparator != "no_worse_than_baseline":
        if threshold is None or threshold == "":
            raise _err(f"threshold is required with comparator '{comparator}'")
        _number(threshold, "threshold")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise _err("params must be an object")
    defaults = _DEFAULTS[kind]
    unknown = set(params) - set(defaults)
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise _err(
            f"unknown parameter(s) {', '.join(sorted(map(str, unknown)))} for {kind} "
            f"(allowed: {allowed})"
        )
    out = copy.deepcopy(defaults)
    out.update({k: v for k, v in params.items() if v is not None})
    classes = None if classes is None else list(classes)

    if "seed" in out:
        out["seed"] = _integer(out["seed"], "seed", 0, 2**63 - 1)
    if kind == "margin_density":
        margin = _number(out["margin"], "margin")
        if not 0 < margin <= 1:
            raise _err(f"margin must be in (0, 1], not {margin}")
        out["margin"] = float(margin)
    elif kind == "slice_metric":
        if out["metric"] not in SLICE_METRICS:
            raise _err(f"metric must be one of {', '.join(SLICE_METRICS)}, not {out['metric']!r}")
        _validate_pos_label(kind, out, classes)
    elif kind == "slice_ece":
        out["bins"] = _integer(out["bins"], "bins", 1, 10_000)
    elif kind == "group_disparity":
        group = out["group_feature"]
        if not isinstance(group, str) or not group:
            raise _err("group_feature is required (a column of the dataset)")
        if group not in schema:
            raise _err(f"group_feature: column '{group}' is not in the dataset")
        if group == target_column:
            raise _err(f"group_feature: column '{group}' is the target column")
        if out["metric"] not in DISPARITY_METRICS:
            raise _err(
                f"metric must be one of {', '.join(DISPARITY_METRICS)}, not {out['metric']!r}"
            )
        out["min_support"] = _integer(out["min_support"], "min_support", 1)
        _validate_pos_label(kind, out, classes)
    elif kind == "perturbation_flip_rate":
        scale = _number(out["scale"], "scale")
        if scale <= 0:
            raise _err(f"scale must be above 0, not {scale}")
        out["scale"] = float(scale)
        out["repeats"] = _integer(out["repeats"], "repeats", 1, 1000)
        features = out["features"]
        if features is not None:
            if isinstance(features, str):
                features = [features]
            if not isinstance(features, (list, tuple)) or not features:
                raise _err("features must be a non-empty list of numeric columns")
            for name in features:
                if not isinstance(name, str) or name not in schema:
                    raise _err(f"features: column '{name}' is not in the dataset")
                if name == target_column:
                    raise _err(f"features: column '{name}' is the target column")
                if schema[name] != "numeric":
                    raise _err(f"features: column '{name}' is {schema[name]}, not numeric")
            out["features"] = list(dict.fromkeys(features))
    elif kind == "counterfactual_flip_rate":
        out["changes"] = _validate_changes(out["changes"], schema, target_column)
    return out, normalised_slice


def _validate_changes(changes: Any, schema: dict[str, str], target_column: str | None) -> dict:
    if not isinstance(changes, Mapping) or not changes:
        raise _err('changes must name at least one column: {"column": {"set": v} or {"add": d}}')
    out = {}
    for name, change in changes.items():
        if name not in schema:
            raise _err(f"changes: column '{name}' is not in the dataset")
        if name == target_column:
            raise _err(f"changes: column '{name}' is the target column")
        if not isinstance(change, Mapping) or len(change) != 1 or set(change) - {"set", "add"}:
            raise _err(f'changes: column \'{name}\' needs {{"set": value}} or {{"add": number}}')
        ((action, value),) = change.items()
        if action == "add":
            if schema[name] != "numeric":
                raise _err(f"changes: 'add' does not fit {schema[name]} column '{name}'")
            out[name] = {"add": _number(value, f"changes: amount added to column '{name}'")}
        elif value is None:
            out[name] = {"set": None}
        else:
            out[name] = {"set": _coerce_value(schema[name], name, value)}
    return out


# ---------------------------------------------------------------------------------------
# Slice masks
# ---------------------------------------------------------------------------------------


def _small_codes(codes: np.ndarray, count: int) -> np.ndarray:
    """Codes from -2 to ``count - 1`` in the narrowest signed integer type.

    Factorised columns and class indices stay in memory for the whole run (and are there
    when the model-calling probes predict, the memory peak); int8 instead of int64 is an
    eighth of it. Widen them before any arithmetic.
    """
    for dtype in (np.int8, np.int16, np.int32):
        if count <= np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes


class _Column:
    """A column encoded once for fast predicates: NumPy values, or factorised codes."""

    __slots__ = ("_lookup", "codes", "ctype", "isnull", "labels", "tz", "values")

    def __init__(self, series: pd.Series, ctype: str):
        self.ctype = ctype
        self.values = self.isnull = self.codes = self.labels = self._lookup = self.tz = None
        if ctype == "numeric":
            if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf":
                values = series.to_numpy()
            else:
                values = pd.to_numeric(series, errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
            self.values = values
            self.isnull = np.isnan(values) if values.dtype.kind == "f" else None
        elif ctype == "datetime":
            if not pd.api.types.is_datetime64_any_dtype(series.dtype):
                series = pd.to_datetime(series, errors="coerce")
            self.tz = getattr(series.dtype, "tz", None)
            if self.tz is not None:
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            self.values = series.to_numpy()
            self.isnull = np.isnat(self.values)
        else:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            self.codes = _small_codes(codes, len(uniques))
            self.labels = list(uniques)

    def lookup(self, value: Any) -> int:
        """Code of ``value`` in this column (a number also matches its text, and back)."""
        if self._lookup is None:
            self._lookup = {}
            for code, label in enumerate(self.labels):
                label = label.item() if isinstance(label, np.generic) else label
                self._lookup.setdefault(label, code)
        for candidate in self._candidates(value):
            try:
                code = self._lookup.get(candidate)
            except TypeError:
                code = None
            if code is not None:
                return code
        return -2  # matches no row (-1 is the missing-value code)

    @staticmethod
    def _candidates(value: Any):
        yield value
        if not isinstance(value, str):
            yield str(value)
        else:
            try:
                number = _number(value, "value")
            except ProbeDefinitionError:
                return
            yield number
            yield float(number)

    def datetime_value(self, value: Any) -> np.datetime64:
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        elif self.tz is not None:
            # A naive date on an aware column means the column's own wall-clock time.
            stamp = stamp.tz_localize(self.tz).tz_convert("UTC").tz_localize(None)
        return np.datetime64(stamp.to_datetime64())


class _Table:
    """Uniform column access over a DataFrame or a mapping of equal-length arrays."""

    def __init__(self, data: pd.DataFrame | Mapping[str, Any]):
        if isinstance(data, pd.DataFrame):
            self._frame = data
            self.columns = list(data.columns)
            self.n = len(data)
        elif isinstance(data, Mapping):
            self._frame = None
            self._arrays = data
            self.columns = list(data)
            lengths = {len(v) for v in data.values()}
            if len(lengths) > 1:
                raise ValueError("arrays of different lengths")
            self.n = lengths.pop() if lengths else 0
        else:
            raise TypeError("slice_mask needs a DataFrame or a mapping of column arrays")

    def series(self, name: str) -> pd.Series:
        if self._frame is not None:
            return self._frame[name]
        values = self._arrays[name]
        return values if isinstance(values, pd.Series) else pd.Series(values)

    def schema(self) -> dict[str, str]:
        return {name: _column_type(self.series(name)) for name in self.columns}


def _cached_column(table: _Table, name: str, ctype: str, cache: dict) -> _Column:
    key = ("column", name)
    column = cache.get(key)
    if column is None:
        column = cache[key] = _Column(table.series(name), ctype)
    return column


def _identity(value: Any) -> Any:
    return value


def _predicate_mask(column: _Column, op: str, value: Any) -> np.ndarray:
    """Rows of one encoded column that satisfy one normalised predicate."""
    if column.codes is not None:
        codes = column.codes
        if op == "is_null":
            return codes == -1
        if op == "not_null":
            return codes != -1
        if op in _LIST_OPS:
            table = np.zeros(len(column.labels) + 2, dtype=bool)
            for item in value:
                code = column.lookup(item)
                if code >= 0:
                    table[code] = True
            # codes -1 (missing) indexes the last slot, which stays False.
            hit = table[codes]
            return hit if op == "in" else ~hit
        hit = codes == column.lookup(value)
        return hit if op == "==" else ~hit
    values = column.values
    if op == "is_null":
        return column.isnull.copy() if column.isnull is not None else np.zeros(len(values), bool)
    if op == "not_null":
        return ~column.isnull if column.isnull is not None else np.ones(len(values), bool)
    convert = column.datetime_value if column.ctype == "datetime" else _identity
    if op == "between":
        low, high = convert(value[0]), convert(value[1])
        return (values >= low) & (values <= high)
    if op in _LIST_OPS:
        hit = np.isin(values, np.array([convert(v) for v in value]))
        return hit if op == "in" else ~hit
    value = convert(value)
    if op == "==":
        return values == value
    if op == "!=":
        return values != value
    if op == "<":
        return values < value
    if op == "<=":
        return values <= value
    if op == ">":
        return values > value
    return values >= value


def _slice_mask_normalised(table: _Table, slice: list[dict], schema: dict, cache: dict):
    mask = None
    for predicate in slice:
        key = ("predicate", json.dumps(predicate, sort_keys=True, default=str))
        hit = cache.get(key)
        if hit is None:
            column = _cached_column(
                table, predicate["feature"], schema[predicate["feature"]], cache
            )
            hit = cache[key] = _predicate_mask(column, predicate["op"], predicate.get("value"))
        mask = hit.copy() if mask is None else np.logical_and(mask, hit, out=mask)
    if mask is None:
        mask = np.ones(table.n, dtype=bool)
    return mask


def slice_mask(
    df_or_arrays: pd.DataFrame | Mapping[str, Any],
    slice: list[dict] | None,
    cache: dict | None = None,
) -> np.ndarray:
    """Boolean mask of the rows in a slice (predicates ANDed; the empty slice is all rows).

    1. The slice is validated and normalised against the table's schema.
    2. Each predicate is evaluated on the column encoded once as NumPy arrays (factorised
       codes for categorical and boolean columns), and kept in ``cache`` so that the same
       predicate in another probe costs nothing.
    3. The predicate masks are ANDed.

    A ``cache`` belongs to one table: reuse it only with the same ``df_or_arrays``.
    """
    cache = {} if cache is None else cache
    table = _Table(df_or_arrays)
    schema = cache.get(("schema",))
    if schema is None:
        schema = cache[("schema",)] = table.schema()
    return _slice_mask_normalised(table, validate_slice(slice, schema), schema, cache)


# ---------------------------------------------------------------------------------------
# Predictions and results
# ---------------------------------------------------------------------------------------


@dataclass
class ProbeSpec:
    """One probe to evaluate; ``key`` is the caller's id, echoed in the result."""

    key: object
    kind: str
    slice: list
    params: dict
    comparator: str
    threshold: float | None
    min_support: int = 30
    baseline_value: float | None = None
    tolerance: float = 0.0
    # True on the version the probe's baseline comes from: there, no_worse_than_baseline
    # compares the value with itself and passes.
    is_baseline: bool = False


@dataclass
class ProbeResult:
    """Outcome of one probe. ``error`` also carries the reason of an inconclusive result."""

    key: object
    status: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    support: int
    error: str = ""
    seed: int | None = None
    duration_s: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class Predictions:
    """Output of one ``predict_proba`` call; ``pred_index`` indexes ``classes``."""

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


def _margin(proba: np.ndarray) -> np.ndarray:
    k = proba.shape[1]
    if k == 1:
        return proba[:, 0].copy()
    if k == 2:
        return np.abs(proba[:, 1] - proba[:, 0])
    top2 = np.partition(proba, k - 2, axis=1)[:, k - 2 :]
    return top2[:, 1] - top2[:, 0]


def _checked_proba(model: Any, X: pd.DataFrame, n_classes: int) -> np.ndarray:
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (len(X), n_classes):
        raise ValueError(
            f"predict_proba returned shape {proba.shape}, expected ({len(X)}, {n_classes})"
        )
    return proba


def _proba(model: Any, X: pd.DataFrame, n_classes: int, chunk_rows: int = 0) -> np.ndarray:
    """``predict_proba`` of ``X``: one call, or with ``chunk_rows`` > 0 one call per run of
    at most that many consecutive rows (each row predicted once) into one preallocated
    array.

    A model's own working memory grows with the rows of a call (a ColumnTransformer holds
    its dense parts and their concatenation at once); chunks bound it, for models that
    predict each row on its own, as scikit-learn's do.
    """
    n = len(X)
    if chunk_rows <= 0 or n <= chunk_rows:
        return _checked_proba(model, X, n_classes)
    proba = np.empty((n, n_classes), dtype=np.float64)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        proba[start:stop] = _checked_proba(model, X.iloc[start:stop], n_classes)
    return proba


def predict(model: Any, X: pd.DataFrame, *, chunk_rows: int = 0) -> Predictions:
    """Predictions of ``model`` on ``X`` from exactly one ``predict_proba`` call, or with
    ``chunk_rows`` > 0 from one call per chunk of rows (see ``_proba``)."""
    classes = np.asarray(model.classes_)
    proba = _proba(model, X, len(classes), chunk_rows)
    index = np.argmax(proba, axis=1)
    return Predictions(proba, classes, classes[index], _margin(proba), index)


# ---------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------


def _wilson(k: int, n: int) -> tuple[float | None, float | None]:
    if n <= 0:
        return None, None
    p = k / n
    z2 = _Z95 * _Z95
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _bootstrap(counts: np.ndarray, statistic: Callable, seed: int):
    """Percentile 95 % interval of ``statistic`` over multinomial resamples of cell counts.

    Resampling n rows with replacement puts Multinomial(n, counts / n) rows in the cells,
    so drawing the counts directly is the row bootstrap of any statistic of the counts.
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


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _auc(s: np.ndarray, lab: np.ndarray, seed: int):
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
    auc = u_total / (positives * negatives)

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

    low, high = _bootstrap(np.concatenate((pos_g, neg_g)), statistic, seed)
    return float(auc), low, high


def _ece_cells(conf: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(ECE bin, bootstrap sub-bin, sub-bins per bin) of each confidence.

    Bins are [b/B, (b+1)/B) with the edges of np.linspace(0, 1, B + 1), 1.0 in the last;
    each bin is split into equal sub-bins (about 32 in all) for the bootstrap cells.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    b = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    sub = max(1, -(-_ECE_SUB_BINS // bins))
    inner = np.clip(((conf - edges[b]) * (bins * sub)).astype(np.int64), 0, sub - 1)
    return b, b * sub + inner, sub


def _ece(conf, correct, b, cell, bins: int, sub: int, seed: int):
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
    ece = float(np.abs(correct_b - conf_b).sum() / n)
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
    to_bin = np.zeros((n_codes, bins))
    to_bin[np.arange(n_codes), np.arange(n_codes) // (2 * sub)] = 1.0

    def statistic(draws):
        return np.abs((draws * signed) @ to_bin).sum(axis=1) / draws.sum(axis=1)

    low, high = _bootstrap(counts, statistic, seed)
    return ece, low, high, table


def _py(value: Any) -> Any:
    """JSON-friendly Python value (NumPy scalars unwrapped, other objects as text)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    support: int = 0
    details: dict = field(default_factory=dict)
    undefined: str = ""  # why the value is NaN


class _Run:
    """State shared by the probes of one evaluate_probes call."""

    def __init__(self, model, df, target_column, features, predictions, chunk_rows=0):
        self.model = model
        self.chunk_rows = chunk_rows
        self.df = df
        self.features = features
        self.table = _Table(df)
        self.cache: dict = {}
        self.schema = schema_of(df)
        self.cache[("schema",)] = self.schema
        self.n = len(df)
        self.predictions = predictions
        self.classes = predictions.classes
        self.class_list = [c.item() if isinstance(c, np.generic) else c for c in self.classes]
        self.pred_index = predictions.pred_index
        self.target_column = target_column
        target = df[target_column].to_numpy()
        y_index = pd.Index(self.classes).get_indexer(target)
        self.y_index = _small_codes(y_index, len(self.classes))
        self.correct = self.pred_index == self.y_index
        self.wrong = ~self.correct
        self.total_errors = int(np.count_nonzero(self.wrong))
        self.unknown_targets = int(np.count_nonzero(self.y_index < 0))
        self._pos: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._confidence = None
        self._std: dict[str, float] = {}

    def mask(self, slice: list[dict]) -> np.ndarray:
        return _slice_mask_normalised(self.table, slice, self.schema, self.cache)

    def pos_index(self, pos_label: Any, metric: str) -> int | None:
        """Index of the positive class: the given label, or classes_[1] of a binary model."""
        if pos_label is None:
            if len(self.classes) == 2:
                return 1
            if metric in _POS_LABEL_METRICS:
                raise _err(
                    f"pos_label is required for metric '{metric}' on a model with "
                    f"{len(self.classes)} classes (scored one-vs-rest)"
                )
            return None
        return self.class_list.index(_match_class(pos_label, self.class_list))

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
            order = np.argsort(scores, kind="stable")
            self.cache[key] = (order, scores[order])
        return self.cache[key]

    def ece_cells(self, bins: int) -> tuple[np.ndarray, np.ndarray, int]:
        key = ("ece", bins)
        if key not in self.cache:
            self.cache[key] = _ece_cells(self.confidence, bins)
        return self.cache[key]

    @property
    def correct_int(self) -> np.ndarray:
        if ("correct_int",) not in self.cache:
            self.cache[("correct_int",)] = self.correct.astype(np.int64)
        return self.cache[("correct_int",)]

    @property
    def confidence(self) -> np.ndarray:
        if self._confidence is None:
            self._confidence = self.predictions.proba.max(axis=1)
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

    def group_codes(self, feature: str) -> tuple[np.ndarray, list]:
        """Factorised codes (-1 for missing) and labels of a column, computed once."""
        column = _cached_column(self.table, feature, self.schema[feature], self.cache)
        if column.codes is not None:
            return column.codes, column.labels
        key = ("groups", feature)
        if key not in self.cache:
            codes, uniques = pd.factorize(pd.Series(column.values), use_na_sentinel=True)
            self.cache[key] = (_small_codes(codes, len(uniques)), list(uniques))
        return self.cache[key]

    def predict_rows(self, frame: pd.DataFrame) -> np.ndarray:
        proba = _proba(self.model, frame, len(self.classes), self.chunk_rows)
        return np.argmax(proba, axis=1)


def _error_rate(run: _Run, mask, params, n) -> _Outcome:
    errors = int(np.count_nonzero(run.wrong & mask))
    low, high = _wilson(errors, n)
    return _Outcome(errors / n, low, high, details={"errors": errors, "rows": n})


def _error_gap(run: _Run, mask, params, n) -> _Outcome:
    errors = int(np.count_nonzero(run.wrong & mask))
    total, rows = run.total_errors, run.n
    slice_rate, dataset_rate = errors / n, total / rows
    cells = [errors, n - errors, total - errors, rows - n - (total - errors)]

    def statistic(d):
        return d[:, 0] / (d[:, 0] + d[:, 1]) - (d[:, 0] + d[:, 2]) / d.sum(axis=1)

    low, high = _bootstrap(np.array(cells), statistic, params["seed"])
    details = {
        "slice_error_rate": slice_rate,
        "dataset_error_rate": dataset_rate,
        "slice_errors": errors,
        "dataset_errors": total,
        "dataset_rows": rows,
    }
    return _Outcome(slice_rate - dataset_rate, low, high, details=details)


def _margin_density(run: _Run, mask, params, n) -> _Outcome:
    below = int(np.count_nonzero((run.predictions.margin < params["margin"]) & mask))
    low, high = _wilson(below, n)
    return _Outcome(below / n, low, high, details={"rows_below_margin": below, "rows": n})


def _slice_metric(run: _Run, mask, params, n) -> _Outcome:
    metric = params["metric"]
    if metric == "accuracy":
        right = int(np.count_nonzero(run.correct & mask))
        low, high = _wilson(right, n)
        return _Outcome(right / n, low, high, details={"metric": metric, "correct": right})
    pos = run.pos_index(params["pos_label"], metric)
    details = {"metric": metric, "pos_label": run.class_list[pos]}
    y_pos, p_pos = run.positives(pos)
    if metric == "roc_auc":
        order, scores = run.score_order(pos)
        keep = mask[order]
        labels = y_pos[order[keep]]
        value, low, high = _auc(scores[keep], labels, params["seed"])
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
        low, high = _wilson(tp, tp + fp)
        reason = (
            ""
            if tp + fp
            else "precision is undefined: no row of the slice is predicted as pos_label"
        )
        return _Outcome(_ratio(tp, tp + fp), low, high, details=details, undefined=reason)
    if metric == "recall":
        low, high = _wilson(tp, tp + fn)
        reason = "" if tp + fn else "recall is undefined: the slice has no row of pos_label"
        return _Outcome(_ratio(tp, tp + fn), low, high, details=details, undefined=reason)

    def statistic(d):
        return 2 * d[:, 0] / (2 * d[:, 0] + d[:, 1] + d[:, 2])

    low, high = _bootstrap(np.array([tp, fp, fn, tn]), statistic, params["seed"])
    den = 2 * tp + fp + fn
    reason = "" if den else "f1 is undefined: pos_label is neither predicted nor present"
    return _Outcome(_ratio(2 * tp, den), low, high, details=details, undefined=reason)


def _slice_ece(run: _Run, mask, params, n) -> _Outcome:
    rows = np.flatnonzero(mask)
    bins = params["bins"]
    b, cell, sub = run.ece_cells(bins)
    value, low, high, table = _ece(
        run.confidence[rows], run.correct_int[rows], b[rows], cell[rows], bins, sub, params["seed"]
    )
    return _Outcome(value, low, high, details={"bins": table})


def _group_disparity(run: _Run, mask, params, n) -> _Outcome:
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
        {"group": _py(labels[g]), "rows": int(sizes[g]), "value": float(values[g])}
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
        low, high = _bootstrap(cells, statistic, params["seed"])
    return _Outcome(value, low, high, details=details)


def _model_feature(run: _Run, name: str, what: str) -> None:
    if name not in run.features.columns:
        raise _err(f"{what}: column '{name}' is not a model feature (target or ignored)")


def _perturbation(run: _Run, mask, params, n) -> _Outcome:
    """Share of (row, repeat) pairs whose prediction changes under Gaussian noise.

    1. Features: params.features or every numeric model feature; noise sd per feature is
       scale x its std over the whole dataset.
    2. Stack the repeats of the slice rows into one frame, add the noise (layout in the
       module docstring) and call predict_proba once.
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
    stacked_rows = np.tile(rows, repeats)
    sds = np.array([params["scale"] * run.std(f) for f in features])
    rng = np.random.default_rng(params["seed"])
    noise = rng.standard_normal((stacked_rows.size, len(features)))
    noise *= sds
    frame = run.features.take(stacked_rows)
    # The taken labels repeat and the model ignores them; a RangeIndex holds no array.
    frame.index = pd.RangeIndex(len(frame))
    for j, name in enumerate(features):
        frame[name] = run.float_values(name)[stacked_rows] + noise[:, j]
    pairs = stacked_rows.size
    # Only the frame is needed while the model runs (the memory peak).
    del noise, stacked_rows
    flipped = run.predict_rows(frame).reshape(repeats, n) != run.pred_index[rows]
    flips = int(np.count_nonzero(flipped))
    rows_flipped = int(np.count_nonzero(flipped.any(axis=0)))
    low, high = _wilson(flips, pairs)
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


def _added(run: _Run, name: str, rows: np.ndarray, amount: int | float) -> np.ndarray:
    """Column ``name`` at ``rows`` plus ``amount``; integers stay integers, as in pandas."""
    dtype = run.features[name].dtype
    if isinstance(amount, int) and isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return run.features[name].to_numpy()[rows] + amount
    return run.float_values(name)[rows] + amount


def _counterfactual(run: _Run, mask, params, n) -> _Outcome:
    """Share of slice rows whose prediction changes when params.changes is applied.

    1. Gather the slice rows of the features (one frame, dtypes and column order kept).
    2. Apply each change in order: "add" to a numeric column, "set" a constant.
    3. One predict_proba call; count rows whose predicted class differs.
    """
    changes = params["changes"]
    for name in changes:
        _model_feature(run, name, "changes")
    rows = np.flatnonzero(mask)
    frame = run.features.take(rows)
    for name, change in changes.items():
        if "add" in change:
            frame[name] = _added(run, name, rows, change["add"])
        else:
            frame[name] = _constant(run.features[name], change["set"], rows.size)
    flips = int(np.count_nonzero(run.predict_rows(frame) != run.pred_index[rows]))
    low, high = _wilson(flips, n)
    return _Outcome(flips / n, low, high, details={"flips": flips, "rows": n})


_MODEL_CALLING = {"perturbation_flip_rate", "counterfactual_flip_rate"}

_KIND_FUNCTIONS = {
    "slice_error_rate": _error_rate,
    "slice_error_gap": _error_gap,
    "margin_density": _margin_density,
    "slice_metric": _slice_metric,
    "slice_ece": _slice_ece,
    "group_disparity": _group_disparity,
    "perturbation_flip_rate": _perturbation,
    "counterfactual_flip_rate": _counterfactual,
}


def _decide(spec: ProbeSpec, value: float) -> tuple[str, str, str]:
    """(status, reason, decision text) of a defined value under the spec's comparator."""
    if spec.comparator == "no_worse_than_baseline":
        if spec.is_baseline:
            return "passed", "", f"{value:.6g} is the baseline (the discovery version)"
        if spec.baseline_value is None:
            reason = "no baseline value recorded for comparator no_worse_than_baseline"
            return "inconclusive", reason, ""
        baseline = float(spec.baseline_value)
        tolerance = float(spec.tolerance or 0.0)
        if not math.isfinite(tolerance) or tolerance < 0:
            raise _err(f"tolerance must be a finite number >= 0, not {spec.tolerance!r}")
        if DEFAULT_COMPARATOR[spec.kind] == "<=":
            ok, op = value <= baseline + tolerance, "<="
        else:
            ok, op = value >= baseline - tolerance, ">="
        text = f"{value:.6g} {op} baseline {baseline:.6g} with tolerance {tolerance:.6g}"
        return ("passed" if ok else "failed"), "", (text if ok else "not " + text)
    threshold = float(_number(spec.threshold, "threshold"))
    ok = value <= threshold if spec.comparator == "<=" else value >= threshold
    text = f"{value:.6g} {spec.comparator} {threshold:.6g}"
    return ("passed" if ok else "failed"), "", (text if ok else "not " + text)


def _evaluate_one(run: _Run, spec: ProbeSpec, classes: list) -> ProbeResult:
    """Evaluate one probe.

    1. Re-validate the definition against this dataset and model (columns may be gone).
    2. Mask the slice; an empty slice is an error.
    3. Compute the kind's value and interval.
    4. Decide: low support or an undefined value is inconclusive, else the comparator.
    """
    params, slice_ = _validate_probe(
        spec.kind,
        spec.slice,
        spec.params,
        spec.comparator,
        spec.threshold,
        run.schema,
        run.target_column,
        classes,
    )
    seed = params.get("seed")
    mask = run.mask(slice_)
    support = int(np.count_nonzero(mask))
    if support == 0:
        return ProbeResult(spec.key, "error", None, None, None, 0, "slice is empty", seed)
    outcome = _KIND_FUNCTIONS[spec.kind](run, mask, params, support)
    details = dict(outcome.details)
    details["params"] = {k: _json_params(v) for k, v in params.items()}
    if run.unknown_targets:
        details["rows_with_unknown_target"] = run.unknown_targets
    value = outcome.value if math.isfinite(outcome.value) else None
    min_support = int(spec.min_support or 0)
    if support < min_support:
        status, reason, decision = (
            "inconclusive",
            f"support {support} is below the minimum of {min_support} rows",
            "",
        )
    elif value is None:
        status, reason, decision = "inconclusive", outcome.undefined or "value is undefined", ""
    else:
        status, reason, decision = _decide(spec, value)
    if decision:
        details["decision"] = decision
    return ProbeResult(
        spec.key,
        status,
        value,
        outcome.ci_low,
        outcome.ci_high,
        support,
        reason,
        seed,
        details=details,
    )


def _json_params(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_params(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_params(v) for v in value]
    return _py(value)


def model_features(
    model: Any, df: pd.DataFrame, target_column: str, ignored_columns=()
) -> pd.DataFrame:
    """The frame ``predict_proba`` sees: every column but the target and the ignored ones
    (ignored names absent from the dataset are skipped), in the order of the model's
    ``feature_names_in_`` when it has the same columns in another order.

    Callers that share predictions between several ``evaluate_probes`` calls compute them
    with ``predict(model, model_features(...))``.
    """
    if target_column not in df.columns:
        raise ProbeDefinitionError(f"target column '{target_column}' is not in the dataset")
    dropped = [target_column] + [c for c in ignored_columns if c in df.columns]
    features = df.drop(columns=dropped)
    fitted_on = getattr(model, "feature_names_in_", None)
    # scikit-learn refuses the right columns in another order; the order of a dataset's
    # columns carries no meaning, so follow the model's.
    reorder = fitted_on is not None and list(fitted_on) != list(features.columns)
    if reorder and set(fitted_on) == set(features.columns):
        features = features[list(fitted_on)]
    return features


def evaluate_probes(
    model: Any,
    df: pd.DataFrame,
    target_column: str,
    specs: list[ProbeSpec],
    *,
    ignored_columns=(),
    predictions: Predictions | None = None,
    on_result: Callable[[ProbeResult], None] | None = None,
    chunk_rows: int = 0,
) -> list[ProbeResult]:
    """Evaluate probes of one model on one dataset; one result per spec, in order.

    1. Features are all columns but the target and the ignored ones (ignored names absent
       from the dataset are skipped), as a DataFrame with its dtypes, in the order of the
       model's feature_names_in_ when it has the same columns in another order.
    2. predict_proba runs once over the features (unless ``predictions`` are given) and is
       shared by every probe; if it fails, every probe gets status "error" with the reason.
    3. Each probe masks its slice (predicate masks cached across probes) and computes its
       value; perturbation and counterfactual probes call predict_proba once more, on
       their slice rows only.
       With ``chunk_rows`` > 0 each of these predict_proba calls becomes one call per
       chunk of at most that many rows (every row still predicted once): the same
       results in a fraction of the model's working memory.
    4. A probe that raises becomes status "error" with the message; the others go on.
       ``on_result`` is called with each result as it is ready; model-calling probes are
       evaluated first (see below), then the others, each group in the order of ``specs``
       (callers that track the probe in progress rely on this); the returned list follows
       ``specs``.
    """
    features = model_features(model, df, target_column, ignored_columns)
    try:
        if predictions is None:
            predictions = predict(model, features, chunk_rows=chunk_rows)
        elif len(predictions.proba) != len(df):
            raise ValueError(f"predictions cover {len(predictions.proba)} rows, not {len(df)}")
        run = _Run(model, df, target_column, features, predictions, chunk_rows)
    except Exception as exc:  # every probe must get a recorded outcome
        message = f"predicting on the dataset failed: {type(exc).__name__}: {exc}"
        failed = [ProbeResult(spec.key, "error", None, None, None, 0, message) for spec in specs]
        for result in failed:
            if on_result is not None:
                on_result(result)
        return failed

    # Model-calling probes go first: their predict_proba batch is the memory peak, and it
    # then happens before the other probes have filled the shared caches.
    order = sorted(range(len(specs)), key=lambda i: specs[i].kind not in _MODEL_CALLING)
    by_position: dict[int, ProbeResult] = {}
    for position in order:
        spec = specs[position]
        started = time.perf_counter()
        try:
            result = _evaluate_one(run, spec, run.class_list)
        except ProbeDefinitionError as exc:
            result = ProbeResult(spec.key, "error", None, None, None, 0, str(exc))
        except Exception as exc:  # one broken probe must not stop the others
            result = ProbeResult(
                spec.key, "error", None, None, None, 0, f"{type(exc).__name__}: {exc}"
            )
        result.duration_s = time.perf_counter() - started
        by_position[position] = result
        if on_result is not None:
            on_result(result)
    return [by_position[i] for i in range(len(specs))]
