"""Suggestions (DESIGN.md: findings/{id}/suggestions/): the actions of similar findings
with their record, best first — a fix that held on a close finding before one that was
never evaluated, and far before one that regressed; cancelled and rejected ones left out."""

import pytest

from catalog.models import Finding, Tag
from remediation.models import Evaluation, RemediationAction

from .factories import api_for, fitted_model, skops_upload


def finding(ml_model, title, tags=(), lesson=""):
    f = Finding.objects.create(title=title, ml_model=ml_model, lesson=lesson)
    f.tags.set(Tag.from_names(list(tags)))
    return f


def action(f, title, kind="retrain", status="verified", held=0, regressed=0, versions=()):
    a = RemediationAction.objects.create(finding=f, kind=kind, title=title)
    RemediationAction.objects.filter(pk=a.pk).update(status=status)
    outcomes = ["held"] * held + ["regressed"] * regressed
    for version, outcome in zip(versions, outcomes, strict=False):
        Evaluation.objects.create(action=a, model_version=version, outcome=outcome)
    return a


@pytest.fixture
def catalog(people, ml_model):
    from registry.models import ModelVersion

    versions = [
        ModelVersion.register(
            ml_model=ml_model,
            version=str(i),
            artifact=skops_upload(fitted_model()),
            by=people["maintainer"],
            enqueue=False,
        )
        for i in range(1, 5)
    ]
    here = finding(
        ml_model,
        "Young applicants refused despite repaying",
        ["young-applicants"],
        "Age and income interact.",
    )
    close = finding(
        ml_model,
        "Young applicants with thin files refused",
        ["young-applicants"],
        "Age and income interact for thin files.",
    )
    return {
        "here": here,
        "held": action(
            close, "Add the age x income feature", "feature_engineering", held=3, versions=versions
        ),
        "untested": action(
            close, "Collect more young applicants", "data_collection", status="implemented"
        ),
        "regressed": action(
            close,
            "Raise the threshold for the young",
            "threshold_change",
            held=0,
            regressed=2,
            versions=versions,
        ),
        "cancelled": action(close, "Drop the age column", "feature_pruning", status="cancelled"),
    }


def test_suggestions_rank_held_fixes_first_and_leave_out_dead_ones(catalog, people):
    response = api_for(people["viewer"]).get(f"/api/v1/findings/{catalog['here'].pk}/suggestions/")
    assert response.status_code == 200
    rows = response.json()
    assert [r["action"] for r in rows] == [catalog[k].pk for k in ("held", "untested", "regressed")]
    first = rows[0]
    assert set(first) == {"action", "finding", "kind", "title", "similarity", "held", "regressed"}
    assert (first["held"], first["regressed"], first["kind"]) == (3, 0, "feature_engineering")
    assert rows[2]["regressed"] == 2


def test_the_finding_page_offers_the_same_fix_in_one_click(catalog, people):
    from .factories import client_for

    client = client_for(people["contributor"])
    page = client.get(catalog["here"].get_absolute_url()).content.decode()
    assert "Fixes tried on similar findings" in page and "Propose the same fix" in page
    response = client.post(
        f"/findings/{catalog['here'].pk}/actions/new/",
        {
            "kind": "feature_engineering",
            "title": "Add the age x income feature",
            "description": "As on finding #2.",
        },
    )
    assert response.status_code == 302
    proposed = RemediationAction.objects.get(finding=catalog["here"])
    assert (proposed.kind, proposed.status) == ("feature_engineering", "proposed")


def test_no_similar_finding_no_suggestion(people, ml_model):
    lone = finding(ml_model, "Wine acidity outliers")
    response = api_for(people["viewer"]).get(f"/api/v1/findings/{lone.pk}/suggestions/")
    assert response.status_code == 200 and response.json() == []
