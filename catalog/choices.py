from django.db import models


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class RiskCategory(models.TextChoices):
    FAIRNESS = "fairness", "Fairness"
    SAFETY = "safety", "Safety"
    FINANCIAL = "financial", "Financial"
    PRIVACY = "privacy", "Privacy"
    RELIABILITY = "reliability", "Reliability"
    COMPLIANCE = "compliance", "Compliance"
    OTHER = "other", "Other"


class FindingStatus(models.TextChoices):
    OPEN = "open", "Open"
    REMEDIATING = "remediating", "Remediating"
    RESOLVED = "resolved", "Resolved"
    REGRESSED = "regressed", "Regressed"
    ACCEPTED_RISK = "accepted_risk", "Accepted risk"
