"""Probe kinds: definitions, validation and evaluation of stored probes of a classifier on
a reference dataset (DESIGN.md, "Probe kinds (exact definitions)").

Plain functions over pandas and NumPy (no Django), so that the numbers can be reproduced in
a notebook. The rules each have one home, used here:

* the rows of a slice: ``boundary.slices`` (``validate``, ``mask``);
* the predictions: ``boundary.predict``. They come from ONE ``predict_proba`` call over the
  dataset's feature columns, shared by every probe; ``pred`` is ``classes_[argmax(proba)]``
  and ``margin`` the top probability minus the second. Opt-in for memory-bound workers,
  ``chunk_rows`` splits each predict_proba call into calls on consecutive chunks of rows,
  every row predicted once, into one array;
* the intervals: ``boundary.stats`` (Wilson 95 % for proportions, a seeded bootstrap with
  200 resamples otherwise);
* what each kind measures: ``boundary.measures``;
* an ensemble's components and their predictions: ``boundary.ensembles``.

This module holds the kinds' parameters and defaults (``default_params``), the check of a
probe definition (``validate_probe``) and ``evaluate_probes``, which decides each probe's
status from its value, support and comparator.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .measures import (
    ENSEMBLE_KINDS,
    KIND_FUNCTIONS,
    MODEL_CALLING,
    POS_LABEL_METRICS,
    Run,
    component_details,
    component_position,
    json_value,
    match_class,
    not_an_ensemble,
)
from .predict import Predictions, model_features, predict
from .slices import (
    COLUMN_TYPES,
    SLICE_OPS,
    ProbeDefinitionError,
    coerce_value,
    number,
    schema_of,
    validate,
)
from .stats import BOOTSTRAP_RESAMPLES

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "COLUMN_TYPES",
    "COMPARATORS",
    "DEFAULT_COMPARATOR",
    "DISPARITY_METRICS",
    "PROBE_KINDS",
    "SLICE_METRICS",
    "SLICE_OPS",
    "ProbeDefinitionError",
    "ProbeResult",
    "ProbeSpec",
    "default_params",
    "evaluate_probes",
    "schema_of",
    "validate_probe",
]

PROBE_KINDS = (
    "slice_error_rate",
    "slice_error_gap",
    "margin_density",
    "slice_metric",
    "slice_ece",
    "group_disparity",
    "perturbation_flip_rate",
    "counterfactual_flip_rate",
    "slice_share",
    "feature_interaction",
    "ensemble_disagreement",
    "component_error_rate",
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
    "slice_share": "<=",
    "feature_interaction": "<=",
    "ensemble_disagreement": "<=",
    "component_error_rate": "<=",
}

COMPARATORS = ("<=", ">=", "no_worse_than_baseline")
# How a value is decided (DESIGN.md): `point` compares the value with the limit;
# `confident` needs the whole interval on one side and is inconclusive while it straddles.
DECISIONS = ("point", "confident")
SLICE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
DISPARITY_METRICS = ("selection_rate", "tpr", "fpr", "error_rate")

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
    "slice_share": {},
    "feature_interaction": {
        "features": None,
        "pos_label": None,
        "grid": 10,
        "sample": 500,
        "seed": 0,
    },
    "ensemble_disagreement": {},
    "component_error_rate": {"component": None},
}
# feature_interaction predicts sample x (grid² + 2 grid) rows: at most this many.
INTERACTION_MAX_ROWS = 2_000_000


def _err(message: str) -> ProbeDefinitionError:
    return ProbeDefinitionError(message)


def _integer(value: Any, what: str, low: int, high: int | None = None) -> int:
    whole = number(value, what)
    if not isinstance(whole, int):
        raise _err(f"{what} must be a whole number, not {value!r}")
    if whole < low or (high is not None and whole > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _err(f"{what} must be {bound}, not {whole}")
    return whole


def default_params(kind: str) -> dict:
    """Parameter defaults of a probe kind, as shown in forms."""
    if kind not in _DEFAULTS:
        raise _err(f"unknown probe kind {kind!r} (allowed: {', '.join(PROBE_KINDS)})")
    return copy.deepcopy(_DEFAULTS[kind])


def _validate_pos_label(kind: str, params: dict, classes: list | None) -> None:
    value = params["pos_label"]
    if isinstance(value, (list, dict, tuple)):
        raise _err("pos_label must be a single class label")
    if classes is None:
        return
    if value is not None:
        params["pos_label"] = match_class(value, classes)
        return
    if len(classes) == 2:
        return
    if kind == "feature_interaction":
        raise _err(f"pos_label is required for {kind} on a model with {len(classes)} classes")
    if params["metric"] in POS_LABEL_METRICS:
        raise _err(
            f"pos_label is required for metric '{params['metric']}' on a model with "
            f"{len(classes)} classes (scored one-vs-rest)"
        )


# The components of a model that is not known (validate_probe's default).
UNKNOWN: Any = object()


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
    components: Any = UNKNOWN,
) -> dict:
    """Check a probe definition and return its parameters with defaults filled in.

    1. The kind, the slice (see ``slices.validate``) and the comparator must be known.
    2. "<=" and ">=" need a finite threshold; "no_worse_than_baseline" ignores it.
    3. Parameters: unknown names are refused, None means the default, each value is
       checked for its kind (ranges, metric names, columns that must exist and fit).
    4. With ``classes`` (the model's ``classes_``) the pos_label is matched to a class, and
       a multiclass model must name one where the metric is one-vs-rest.
    5. With ``components`` (``boundary.ensembles.component_names`` of the model: names or
       indices, None for a model that is not an ensemble) the ensemble kinds are refused
       on a model that is not one, and component_error_rate's component must be one of
       them. Without it (the model is not known) only the component's type is checked.
    """
    return _validate_probe(
        kind, slice, params, comparator, threshold, schema, target_column, classes, components
    )[0]


def _validate_probe(
    kind,
    slice,
    params,
    comparator,
    threshold,
    schema,
    target_column,
    classes,
    components=UNKNOWN,
):
    """validate_probe's work; also returns the normalised slice."""
    if kind not in _DEFAULTS:
        raise _err(f"unknown probe kind {kind!r} (allowed: {', '.join(PROBE_KINDS)})")
    normalised_slice = validate(slice, schema)
    if comparator not in COMPARATORS:
        raise _err(f"comparator must be one of {', '.join(COMPARATORS)}, not {comparator!r}")
    if comparator != "no_worse_than_baseline":
        if threshold is None or threshold == "":
            raise _err(f"threshold is required with comparator '{comparator}'")
        number(threshold, "threshold")
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
        margin = number(out["margin"], "margin")
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
        scale = number(out["scale"], "scale")
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
    elif kind == "feature_interaction":
        _validate_interaction(out, schema, target_column)
        _validate_pos_label(kind, out, classes)
    elif kind == "component_error_rate":
        component = out["component"]
        if component is None or component == "":
            raise _err(
                "component is required: the name of one of the ensemble's components "
                "(VotingClassifier, StackingClassifier) or its index (the others)"
            )
        if isinstance(component, bool) or not isinstance(component, (str, int)):
            raise _err(f"component must be a name or an index, not {component!r}")
        if isinstance(component, int) and component < 0:
            raise _err(f"component must be an index of 0 or more, not {component}")
    if kind in ENSEMBLE_KINDS and components is not UNKNOWN:
        if components is None:
            raise not_an_ensemble(kind)
        if kind == "component_error_rate":
            position = component_position(components, out["component"])
            out["component"] = json_value(components[position])
    return out, normalised_slice


def _validate_interaction(out: dict, schema: dict[str, str], target_column: str | None) -> None:
    features = out["features"]
    if (
        not isinstance(features, (list, tuple))
        or len(features) != 2
        or not all(isinstance(name, str) for name in features)
    ):
        raise _err('features must name two numeric columns: ["a", "b"]')
    for name in features:
        if name not in schema:
            raise _err(f"features: column '{name}' is not in the dataset")
        if name == target_column:
            raise _err(f"features: column '{name}' is the target column")
        if schema[name] != "numeric":
            raise _err(f"features: column '{name}' is {schema[name]}, not numeric")
    if features[0] == features[1]:
        raise _err(f"features must be two different columns, not '{features[0]}' twice")
    out["features"] = list(features)
    out["grid"] = _integer(out["grid"], "grid", 2, 100)
    out["sample"] = _integer(out["sample"], "sample", 2)
    grid, sample = out["grid"], out["sample"]
    predicted = sample * (grid * grid + 2 * grid)
    if predicted > INTERACTION_MAX_ROWS:
        raise _err(
            f"sample x (grid² + 2 x grid) is the number of rows the model predicts, "
            f"{predicted:,} with sample {sample} and grid {grid}: at most "
            f"{INTERACTION_MAX_ROWS:,}; lower sample or grid"
        )


def _validate_changes(changes: Any, schema: dict[str, str], target_column: str | None) -> dict:
    if not isinstance(changes, Mapping) or not changes:
        raise _err('changes must name at least one column: {"column": {"set": v} or {"add": d}}')
    out: dict[str, dict[str, Any]] = {}
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
            out[name] = {"add": number(value, f"changes: amount added to column '{name}'")}
        elif value is None:
            out[name] = {"set": None}
        else:
            out[name] = {"set": coerce_value(schema[name], name, value)}
    return out


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
    decide: str = "point"


@dataclass
class ProbeResult:
    """Outcome of one probe. ``error`` also carries the reason of an inconclusive result."""

    key: object
    status: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    support: int | None  # None only when a sensitive result is suppressed
    error: str = ""
    seed: int | None = None
    duration_s: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _limit(spec: ProbeSpec) -> tuple[float, str, str]:
    """(limit, op, what the limit is called) that a value of this probe must meet."""
    if spec.comparator == "no_worse_than_baseline":
        baseline = float(spec.baseline_value)  # type: ignore[arg-type]
        tolerance = float(spec.tolerance or 0.0)
        if not math.isfinite(tolerance) or tolerance < 0:
            raise _err(f"tolerance must be a finite number >= 0, not {spec.tolerance!r}")
        name = f"baseline {baseline:.6g} with tolerance {tolerance:.6g}"
        if DEFAULT_COMPARATOR[spec.kind] == "<=":
            return baseline + tolerance, "<=", name
        return baseline - tolerance, ">=", name
    threshold = float(number(spec.threshold, "threshold"))
    return threshold, spec.comparator, f"{threshold:.6g}"


def _meets(value: float, op: str, limit: float) -> bool:
    return value <= limit if op == "<=" else value >= limit


def _decide(
    spec: ProbeSpec, value: float, ci_low: float | None = None, ci_high: float | None = None
) -> tuple[str, str, str]:
    """(status, reason, decision text) of a defined value under the spec's comparator and
    its decision rule (DECISIONS): `point` compares the value; `confident` passes only when
    the whole interval meets the limit, fails only when none of it does, and is
    inconclusive in between (or without an interval)."""
    if spec.decide not in DECISIONS:
        raise _err(f"decide must be one of {', '.join(DECISIONS)}, not {spec.decide!r}")
    if spec.comparator == "no_worse_than_baseline":
        if spec.is_baseline:
            return "passed", "", f"{value:.6g} is the baseline (the discovery version)"
        if spec.baseline_value is None:
            reason = "no baseline value recorded for comparator no_worse_than_baseline"
            return "inconclusive", reason, ""
    limit, op, name = _limit(spec)
    if spec.decide == "confident":
        if ci_low is None or ci_high is None:
            return "inconclusive", "no interval to decide with confidence", ""
        interval = f"interval [{ci_low:.6g}, {ci_high:.6g}]"
        # The interval's worst and best ends for this direction.
        worst, best = (ci_high, ci_low) if op == "<=" else (ci_low, ci_high)
        if _meets(worst, op, limit):
            return "passed", "", f"the whole {interval} {op} {name}"
        if not _meets(best, op, limit):
            return "failed", "", f"none of the {interval} {op} {name}"
        reason = f"the {interval} straddles {name}: not confident either way"
        return "inconclusive", reason, ""
    ok = _meets(value, op, limit)
    text = f"{value:.6g} {op} {name}"
    return ("passed" if ok else "failed"), "", (text if ok else "not " + text)


SENSITIVE_MESSAGE = (
    "Not reported: the slice or grouping involves a sensitive column and covers too few "
    "rows to show without telling something about the people in it."
)


@dataclass(frozen=True)
class Sensitivity:
    """Sensitive columns and the fewest rows a result involving them may describe
    (DESIGN.md: SENSITIVE_MIN_ROWS, default 10)."""

    columns: frozenset = frozenset()
    min_rows: int = 10

    def involved(self, slice_: list, params: Mapping) -> set:
        used = {p.get("feature") for p in slice_ or []}
        if params.get("group_feature"):
            used.add(params["group_feature"])
        return used & set(self.columns)


def _evaluate_one(
    run: Run, spec: ProbeSpec, classes: list, sensitivity: Sensitivity = Sensitivity()
) -> ProbeResult:
    """Evaluate one probe.

    1. Re-validate the definition against this dataset and model (columns may be gone).
    2. Mask the slice. When the slice or the grouping involves a sensitive column and the
       slice covers fewer than `sensitivity.min_rows` rows, none included, the result is
       inconclusive with no value, support or interval and one fixed message: a 1-row
       slice and an empty one cannot be told apart. Groups of a sensitive column count
       only from that many rows up. Otherwise an empty slice is an error.
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
        run.component_names,
    )
    seed = params.get("seed")
    mask = run.mask(slice_)
    support = int(np.count_nonzero(mask))
    if sensitivity.involved(slice_, params):
        if support < sensitivity.min_rows:
            return ProbeResult(
                spec.key,
                "inconclusive",
                None,
                None,
                None,
                None,
                SENSITIVE_MESSAGE,
                seed,
                details={"suppressed": True},
            )
        if "min_support" in params and params.get("group_feature") in sensitivity.columns:
            params = {**params, "min_support": max(params["min_support"], sensitivity.min_rows)}
    if support == 0:
        return ProbeResult(spec.key, "error", None, None, None, 0, "slice is empty", seed)
    outcome = KIND_FUNCTIONS[spec.kind](run, mask, params, support)
    details = dict(outcome.details)
    details["params"] = {k: _json_params(v) for k, v in params.items()}
    if run.component_names is not None:
        # Every run on an ensemble says how its components did on the slice.
        try:
            details["components"] = component_details(run, mask)
        except Exception as exc:  # the probe's own value stands
            details["components_error"] = f"{type(exc).__name__}: {exc}"
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
        status, reason, decision = _decide(spec, value, outcome.ci_low, outcome.ci_high)
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
    return json_value(value)


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
    sensitive_columns=(),
    sensitive_min_rows: int = 10,
) -> list[ProbeResult]:
    """Evaluate probes of one model on one dataset; one result per spec, in order.

    1. The features are ``predict.model_features``: the model's ``feature_names_in_`` in
       that order, or else every column but the target and the ignored ones, as a
       DataFrame with its dtypes. A target column the dataset lacks raises.
    2. predict_proba runs once over the features (unless ``predictions`` are given) and is
       shared by every probe; if it fails (or a feature column is missing), every probe
       gets status "error" with the reason.
    3. Each probe masks its slice (predicate masks cached across probes) and computes its
       value; perturbation and counterfactual probes call predict_proba once more, on
       their slice rows only; feature_interaction calls it once per grid value of its
       first feature (and once more), on its sampled slice rows. On an ensemble
       (boundary.ensembles) the components are predicted once over the dataset, for the
       ensemble kinds and for the ``details.components`` of every probe (a failure there
       is ``details.components_error`` on the other kinds).
       With ``chunk_rows`` > 0 each of these predict_proba calls becomes one call per
       chunk of at most that many rows (every row still predicted once): the same
       results in a fraction of the model's working memory.
    4. A probe that raises becomes status "error" with the message; the others go on.
       ``on_result`` is called with each result as it is ready; model-calling probes are
       evaluated first (see below), then the others, each group in the order of ``specs``
       (callers that track the probe in progress rely on this); the returned list follows
       ``specs``.
    5. Results that involve ``sensitive_columns`` on fewer than ``sensitive_min_rows``
       rows are suppressed (see _evaluate_one).
    """
    sensitivity = Sensitivity(frozenset(sensitive_columns), int(sensitive_min_rows))
    if target_column not in df.columns:
        raise ProbeDefinitionError(f"target column '{target_column}' is not in the dataset")
    try:
        features = model_features(model, df, target_column, ignored_columns)
        if predictions is None:
            predictions = predict(model, features, chunk_rows=chunk_rows)
        elif len(predictions.proba) != len(df):
            raise ValueError(f"predictions cover {len(predictions.proba)} rows, not {len(df)}")
        run = Run(model, df, target_column, features, predictions, chunk_rows)
    except Exception as exc:  # every probe must get a recorded outcome
        message = f"predicting on the dataset failed: {type(exc).__name__}: {exc}"
        failed = [ProbeResult(spec.key, "error", None, None, None, 0, message) for spec in specs]
        for result in failed:
            if on_result is not None:
                on_result(result)
        return failed

    # Model-calling probes go first: their predict_proba batch is the memory peak, and it
    # then happens before the other probes have filled the shared caches.
    order = sorted(range(len(specs)), key=lambda i: specs[i].kind not in MODEL_CALLING)
    by_position: dict[int, ProbeResult] = {}
    for position in order:
        spec = specs[position]
        started = time.perf_counter()
        try:
            result = _evaluate_one(run, spec, run.class_list, sensitivity)
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
