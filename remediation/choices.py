from django.db import models


class ActionKind(models.TextChoices):
    FEATURE_ENGINEERING = "feature_engineering", "Feature engineering"
    RELABELING = "relabeling", "Relabeling"
    RECALIBRATION = "recalibration", "Recalibration"
    FALLBACK_RULE = "fallback_rule", "Fallback rule"
    RETRAIN = "retrain", "Retrain"
    FEATURE_PRUNING = "feature_pruning", "Feature pruning"
    DATA_COLLECTION = "data_collection", "Data collection"
    THRESHOLD_CHANGE = "threshold_change", "Threshold change"
    OTHER = "other", "Other"


class ActionStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    IN_PROGRESS = "in_progress", "In progress"
    IMPLEMENTED = "implemented", "Implemented"
    VERIFIED = "verified", "Verified"
    INEFFECTIVE = "ineffective", "Ineffective"
    CANCELLED = "cancelled", "Cancelled"


OPEN_ACTION_STATUSES = (
    ActionStatus.PROPOSED,
    ActionStatus.APPROVED,
    ActionStatus.IN_PROGRESS,
    ActionStatus.IMPLEMENTED,
)


class Outcome(models.TextChoices):
    HELD = "held", "Held"
    # Passes on the probes' own datasets, fails on an `also_on` one.
    NARROW = "narrow", "Narrow"
    REGRESSED = "regressed", "Regressed"
    INCONCLUSIVE = "inconclusive", "Inconclusive"


# A verified, ineffective, rejected or cancelled action is settled: its fields are frozen
# (its description aside).
FROZEN_ACTION_STATUSES = (
    ActionStatus.VERIFIED,
    ActionStatus.INEFFECTIVE,
    ActionStatus.REJECTED,
    ActionStatus.CANCELLED,
)

# Days from proposal to an action's default due date, by its finding's severity
# (settings.DUE_DAYS_BY_SEVERITY overrides any of them).
DEFAULT_DUE_DAYS_BY_SEVERITY = {"critical": 7, "high": 30, "medium": 90, "low": 180}
