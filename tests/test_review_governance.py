"""The review pack's and the effectiveness page's governance figures: time to remediate
(median and 90th percentile per severity), overdue actions by owner, per-fix survival
over later versions (held on N of M) and risk acceptances expiring within 30 days."""

import datetime

import pytest
from django.utils import timezone

from catalog.models import Finding
from registry.models import ModelVersion
from remediation import reports
from remediation.models import Evaluation, RemediationAction

from .factories import client_for, fitted_model, skops_upload

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def logged(ml_model, people, severity, days_ago, title):
    finding = Finding.objects.create(
        title=title,
        ml_model=ml_model,
        severity=severity,
        risk_category="reliability",
        reporter=people["contributor"],
        owner=people["contributor"],
    )
    Finding.objects.filter(pk=finding.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=days_ago)
    )
    return finding


def resolve(finding, people):
    finding.transition_to("remediating", by=people["contributor"])
    finding.transition_to("resolved", by=people["reviewer"])


def test_time_to_remediate_per_severity(people, ml_model):
    for days in (2, 4, 10):
        resolve(logged(ml_model, people, "high", days, f"High {days}"), people)
    resolve(logged(ml_model, people, "critical", 1, "Critical"), people)
    logged(ml_model, people, "high", 30, "Still open")  # not resolved: not counted
    frame = reports.time_to_remediate().set_index("severity")
    assert frame.loc["High", "resolved"] == 3
    assert frame.loc["High", "median_days"] == pytest.approx(4.0, abs=0.05)
    # pandas' linear 90th percentile of 2, 4, 10: 4 + 0.8 * (10 - 4)
    assert frame.loc["High", "p90_days"] == pytest.approx(8.8, abs=0.05)
    assert frame.loc["Critical", "resolved"] == 1
    assert frame.loc["Low", "resolved"] == 0
    # Within a range that ended yesterday, nothing was resolved.
    yesterday = TODAY - datetime.timedelta(days=1)
    assert reports.time_to_remediate(yesterday, yesterday)["resolved"].sum() == 0


def test_overdue_actions_by_owner_worst_first(people, finding):
    def action(owner, days_late, status="approved"):
        a = RemediationAction.objects.create(
            finding=finding, kind="retrain", title=f"late {days_late}", owner=owner
        )
        RemediationAction.objects.filter(pk=a.pk).update(
            status=status, due_date=TODAY - datetime.timedelta(days=days_late)
        )

    action(people["contributor"], 3)
    action(people["contributor"], 9)
    action(people["reviewer"], 20)
    action(people["reviewer"], 50, status="verified")  # settled: not overdue
    action(people["reviewer"], -5)  # not due yet
    frame = reports.overdue_by_owner()
    assert frame.values.tolist() == [
        ["bob", 2, (TODAY - datetime.timedelta(days=9)).isoformat(), 9],
        ["rita", 1, (TODAY - datetime.timedelta(days=20)).isoformat(), 20],
    ]


def test_fix_survival_counts_later_versions_only(people, ml_model, finding, version):
    later = [
        ModelVersion.register(
            ml_model=ml_model,
            version=str(n),
            artifact=skops_upload(fitted_model()),
            by=people["maintainer"],
            enqueue=False,
        )
        for n in (2, 3, 4)
    ]
    v2, v3, v4 = later
    fix = RemediationAction.objects.create(finding=finding, kind="retrain", title="Retrain")
    RemediationAction.objects.filter(pk=fix.pk).update(
        status="verified", fixed_in_version=v2, broke_on_version=v4
    )
    for v, outcome in [(version, "regressed"), (v2, "held"), (v3, "held"), (v4, "regressed")]:
        Evaluation.objects.create(action=fix, model_version=v, outcome=outcome)
    (row,) = reports.fix_survival().to_dict("records")
    assert (row["held_later"], row["evaluated_later"]) == (1, 2)
    assert row["survival"] == "held on 1 of 2 later versions"
    assert row["broke_on"] == "toy-risk v4"


def test_risks_expiring_within_30_days(people, ml_model):
    soon = logged(ml_model, people, "medium", 5, "Expires soon")
    later = logged(ml_model, people, "medium", 5, "Expires later")
    for finding, days in ((soon, 10), (later, 40)):
        Finding.objects.filter(pk=finding.pk).update(
            status="accepted_risk", accepted_until=TODAY + datetime.timedelta(days=days)
        )
    frame = reports.risks_expiring()
    assert frame["id"].tolist() == [soon.pk]
    assert frame["days_left"].tolist() == [10]


def test_the_pages_show_the_figures(people, ml_model):
    resolve(logged(ml_model, people, "low", 3, "Low one"), people)
    reviewer = client_for(people["reviewer"])
    pack = reviewer.get("/review/pack/").content.decode()
    for heading in ("Time to remediate", "Overdue by owner", "Fix survival", "Risks expiring"):
        assert heading in pack
    assert "median days" in pack  # human labels, not column names
    csv = reviewer.get("/review/pack/?format=csv").content.decode()
    assert "time_to_remediate,,,,Low" in csv  # sections with no rows have no lines
    page = reviewer.get("/review/effectiveness/").content.decode()
    assert "Time to remediate" in page and "Fix survival" in page
