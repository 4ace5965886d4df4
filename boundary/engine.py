"""The probe engine's public names, re-exported for callers written against them.

Nothing is defined here. The rules live in ``boundary.slices`` (which rows a slice
selects), ``boundary.predict`` (predictions), ``boundary.stats`` (intervals),
``boundary.kinds`` (probe kinds: validation and evaluation) and ``boundary.measures``
(what each kind measures); new code imports from those.
"""

from .kinds import (
    COMPARATORS,
    DEFAULT_COMPARATOR,
    DISPARITY_METRICS,
    PROBE_KINDS,
    SLICE_METRICS,
    UNKNOWN,
    ProbeResult,
    ProbeSpec,
    default_params,
    evaluate_probes,
    validate_probe,
)
from .predict import Predictions, model_features, predict
from .slices import COLUMN_TYPES, SLICE_OPS, ProbeDefinitionError, schema_of
from .slices import mask as slice_mask
from .slices import validate as validate_slice

__all__ = [
    "COLUMN_TYPES",
    "COMPARATORS",
    "DEFAULT_COMPARATOR",
    "DISPARITY_METRICS",
    "PROBE_KINDS",
    "SLICE_METRICS",
    "SLICE_OPS",
    "UNKNOWN",
    "Predictions",
    "ProbeDefinitionError",
    "ProbeResult",
    "ProbeSpec",
    "default_params",
    "evaluate_probes",
    "model_features",
    "predict",
    "schema_of",
    "slice_mask",
    "validate_probe",
    "validate_slice",
]
