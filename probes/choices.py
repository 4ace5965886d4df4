from django.db import models


class ProbeKind(models.TextChoices):
    SLICE_ERROR_RATE = "slice_error_rate", "Slice error rate"
    SLICE_ERROR_GAP = "slice_error_gap", "Slice error gap"
    MARGIN_DENSITY = "margin_density", "Margin density"
    SLICE_METRIC = "slice_metric", "Slice metric"
    SLICE_ECE = "slice_ece", "Slice calibration error (ECE)"
    GROUP_DISPARITY = "group_disparity", "Group disparity"
    PERTURBATION_FLIP_RATE = "perturbation_flip_rate", "Perturbation flip rate"
    COUNTERFACTUAL_FLIP_RATE = "counterfactual_flip_rate", "Counterfactual flip rate"
    SLICE_SHARE = "slice_share", "Slice share of the dataset"
    FEATURE_INTERACTION = "feature_interaction", "Feature interaction (Friedman's H²)"
    ENSEMBLE_DISAGREEMENT = "ensemble_disagreement", "Ensemble disagreement"
    COMPONENT_ERROR_RATE = "component_error_rate", "Ensemble component error rate"


class Comparator(models.TextChoices):
    LTE = "<=", "≤ threshold"
    GTE = ">=", "≥ threshold"
    NO_WORSE = "no_worse_than_baseline", "no worse than the baseline version"


class Decide(models.TextChoices):
    POINT = "point", "on the value"
    CONFIDENT = "confident", "on the whole interval (inconclusive while it straddles)"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    INCONCLUSIVE = "inconclusive", "Inconclusive"
    ERROR = "error", "Error"


FINISHED_RUN_STATUSES = (
    RunStatus.PASSED,
    RunStatus.FAILED,
    RunStatus.INCONCLUSIVE,
    RunStatus.ERROR,
)


class Trigger(models.TextChoices):
    REGISTRATION = "registration", "Registration of the version"
    MANUAL = "manual", "Run now"
    SCHEDULE = "schedule", "Nightly schedule"
