"""Deeper slice scans: slices of up to three predicates, candidates that are already known
findings, and dismissed candidates that stop coming back (until restored)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from django.db import transaction
from django.db.models import ProtectedError

from boundary.scan import find_weak_slices, slice_key
from boundary.slices import mask as apply_slice
from catalog.models import Finding
from core.models import AuditEvent
from introspection.models import ScanDismissal, SliceScan
from introspection.scans import known_findings
from introspection.tasks import run_scan

from .factories import api_for, client_for
from .planted import REGION, store_planted


def _jaccard(a, b):
    return np.count_nonzero(a & b) / max(1, np.count_nonzero(a | b))


# --------------------------------------------------------------------------------------
# The numeric core (no database)
# --------------------------------------------------------------------------------------


def _wide_table(n, seed):
    rng = np.random.default_rng(seed)
    data = {f"n{k}": rng.uniform(0, 100, n).round(2) for k in range(10)}
    data["z"] = rng.normal(0, 1, n)
    data["city"] = rng.choice([f"c{k:02d}" for k in range(60)], n)
    data["plan"] = rng.choice(["basic", "plus", "gold"], n)
    return pd.DataFrame(data)


def test_a_planted_three_predicate_region_is_found_beside_a_stronger_one():
    df = _wide_table(30000, seed=3)
    three = [
        {"feature": "n2", "op": ">=", "value": 70.0},
        {"feature": "z", "op": "<", "value": -0.3},
        {"feature": "plan", "op": "==", "value": "gold"},
    ]
    strong = [
        {"feature": "n5", "op": "<", "value": 30.0},
        {"feature": "n7", "op": "<", "value": 40.0},
    ]
    rng = np.random.default_rng(4)
    wrong = rng.random(len(df)) < 0.05
    wrong |= apply_slice(df, strong) & (rng.random(len(df)) < 0.6)
    wrong |= apply_slice(df, three) & (rng.random(len(df)) < 0.5)
    found = find_weak_slices(df, np.zeros(len(df), int), wrong.astype(int), max_predicates=3)
    masks = [apply_slice(df, r["slice"]) for r in found]
    planted = apply_slice(df, three)
    best = max(range(len(found)), key=lambda k: _jaccard(masks[k], planted))
    assert {p["feature"] for p in found[best]["slice"]} == {"n2", "z", "plan"}
    assert _jaccard(masks[best], planted) > 0.9
    assert any(_jaccard(m, apply_slice(df, strong)) > 0.9 for m in masks)


def test_slice_key_ignores_predicate_order_and_list_order():
    df = _wide_table(50, seed=0)
    a = [
        {"feature": "plan", "op": "in", "value": ["gold", "basic"]},
        {"feature": "n1", "op": "<", "value": 3},
    ]
    b = [
        {"feature": "n1", "op": "<", "value": 3.0},
        {"feature": "plan", "op": "in", "value": ["basic", "gold"]},
    ]
    assert slice_key(a, df) == slice_key(b, df)
    assert slice_key(a, df) != slice_key([{"feature": "n1", "op": "<", "value": 4}], df)
    assert slice_key([{"feature": "nope", "op": "is_null"}], df) is None


# A candidate of the 40 rows x < 40 against a finding's slice x < t: Jaccard t / 40.
@pytest.mark.parametrize(
    ("below", "known"),
    [(20, True), (19, False), (21, True), (40, True), (0, False)],
    ids=["exactly-0.5-known", "below-0.5-not-known", "above-0.5-known", "same-rows", "none"],
)
def test_a_candidate_is_known_when_a_finding_covers_it_with_jaccard_at_least_half(below, known):
    frame = pd.DataFrame({"x": np.arange(100), "colour": ["red", "blue"] * 50})
    candidate = apply_slice(frame, [{"feature": "x", "op": "<", "value": 40}])
    finding = SimpleNamespace(
        pk=7,
        title="Low x",
        status="open",
        slice=[{"feature": "x", "op": "<", "value": below}],
    )
    other = SimpleNamespace(
        pk=8, title="Other column", status="open", slice=[{"feature": "gone", "op": "is_null"}]
    )
    (marked,) = known_findings(frame, [candidate], [other, finding], {})
    if known:
        assert marked == {
            "finding": 7,
            "title": "Low x",
            "status": "open",
            "jaccard": round(below / 40, 4),
        }
    else:
        assert marked is None


# --------------------------------------------------------------------------------------
# In the app
# --------------------------------------------------------------------------------------


@pytest.fixture
def planted(people, ml_model):
    dataset, (version,) = store_planted(people, ml_model)
    return dataset, version


def _scan(version, dataset):
    scan = SliceScan.queue(version, dataset, dispatch=False)
    assert run_scan(scan.pk) == "done"
    scan.refresh_from_db()
    return scan


def _events(pk):
    return AuditEvent.objects.filter(content_type__model="scandismissal", object_id=str(pk))


def _region_candidates(scan, frame):
    region = apply_slice(frame, REGION)
    return [c for c in scan.candidates if _jaccard(apply_slice(frame, c["slice"]), region) >= 0.5]


@pytest.mark.django_db
def test_a_candidate_covered_by_a_finding_is_marked_known_and_linked(people, planted):
    dataset, version = planted
    finding = Finding.objects.create(
        title="Top-left corner",
        summary="Mislabelled corner.",
        ml_model=version.ml_model,
        model_version=version,
        dataset=dataset,
        slice=[
            {"feature": "x1", "op": "<", "value": 0.31},
            {"feature": "x2", "op": ">=", "value": 0.6},
        ],
        severity="high",
        risk_category="reliability",
        owner=people["contributor"],
        reporter=people["contributor"],
    )
    scan = _scan(version, dataset)
    best = scan.candidates[0]
    assert best["known"]["finding"] == finding.pk and best["known"]["jaccard"] >= 0.9
    assert all("known" not in c for c in scan.candidates[1:])
    page = client_for(people["viewer"]).get(scan.get_absolute_url()).content.decode()
    assert f'href="{finding.get_absolute_url()}"' in page and "Already a finding" in page


@pytest.mark.django_db
def test_a_dismissed_candidate_stops_coming_back_until_restored(people, planted):
    dataset, version = planted
    frame = dataset.read()
    scan = _scan(version, dataset)
    (index,) = [i for i, c in enumerate(scan.candidates) if c in _region_candidates(scan, frame)]
    bob = client_for(people["contributor"])

    # A viewer may not dismiss; nothing is stored.
    response = client_for(people["viewer"]).post(
        f"/scans/{scan.pk}/candidates/{index}/dismiss/", {"reason": "known label noise"}
    )
    assert response.status_code == 403
    assert not ScanDismissal.objects.exists()

    response = bob.post(
        f"/scans/{scan.pk}/candidates/{index}/dismiss/", {"reason": "known label noise"}
    )
    dismissal = ScanDismissal.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/scans/{scan.pk}/#dismissal-{dismissal.pk}"
    assert dismissal.slice == scan.candidates[index]["slice"]
    assert dismissal.ml_model == version.ml_model and dismissal.dataset == dataset
    assert dismissal.dismissed_by == people["contributor"] and dismissal.reason == (
        "known label noise"
    )
    created = _events(dismissal.pk).get(verb="create")
    assert created.actor == people["contributor"] and created.note == "known label noise"

    # The next scan of the same model and dataset leaves it out, and says why.
    again = _scan(version, dataset)
    assert _region_candidates(again, frame) == []
    (hidden,) = again.dismissed_candidates
    assert hidden["dismissal"] == dismissal.pk and hidden["match"] == "slice"
    page = bob.get(again.get_absolute_url()).content.decode()
    assert "Left out as dismissed" in page and "known label noise" in page
    assert f"/scans/{again.pk}/dismissals/{dismissal.pk}/restore/" in page

    # Restoring keeps the record, marked lifted, audited; the next scan shows it again.
    response = bob.post(f"/scans/{again.pk}/dismissals/{dismissal.pk}/restore/")
    assert response.status_code == 302
    dismissal.refresh_from_db()
    assert dismissal.lifted_by == people["contributor"] and dismissal.lifted_at is not None
    lifted = _events(dismissal.pk).get(verb="transition")
    assert (lifted.from_status, lifted.to_status) == ("dismissed", "lifted")
    assert lifted.actor == people["contributor"]
    third = _scan(version, dataset)
    assert len(_region_candidates(third, frame)) == 1 and third.dismissed_candidates == []

    # History stays: a dismissal is never deleted.
    with pytest.raises(ProtectedError), transaction.atomic():
        dismissal.delete()
    assert ScanDismissal.objects.count() == 1


@pytest.mark.django_db
def test_a_candidate_with_other_thresholds_but_the_same_rows_is_hidden_too(people, planted):
    dataset, version = planted
    scan = _scan(version, dataset)
    ScanDismissal.objects.create(
        ml_model=version.ml_model,
        dataset=dataset,
        slice=[
            {"feature": "x2", "op": ">=", "value": 0.62},
            {"feature": "x1", "op": "<", "value": 0.28},
        ],
        description="x1 < 0.28 AND x2 >= 0.62",
        reason="seen before",
        dismissed_by=people["contributor"],
    )
    again = _scan(version, dataset)
    assert _region_candidates(again, dataset.read()) == []
    (hidden,) = again.dismissed_candidates
    assert hidden["match"] == "rows" and 0.5 <= hidden["jaccard"] < 1
    assert "Jaccard" in hidden["why"]
    assert len(again.candidates) <= len(scan.candidates)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"candidate": 99, "reason": "noise"}, "candidate"),
        ({"candidate": 0, "reason": "noise"}, "candidate"),
        ({"candidate": "first", "reason": "noise"}, "candidate"),
        ({"candidate": 1, "reason": ""}, "reason"),
        ({"candidate": 1, "reason": "   "}, "reason"),
        ({"candidate": 1}, "reason"),
    ],
    ids=["index-too-high", "index-zero", "index-not-a-number", "empty", "blank", "missing"],
)
def test_the_api_refuses_a_bad_dismissal_and_saves_nothing(people, planted, body, field):
    dataset, version = planted
    scan = _scan(version, dataset)
    response = api_for(people["contributor"]).post(
        f"/api/v1/scans/{scan.pk}/dismiss/", body, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()
    assert not ScanDismissal.objects.exists()
    assert not AuditEvent.objects.filter(content_type__model="scandismissal").exists()
    scan.refresh_from_db()
    assert all("dismissal" not in c for c in scan.candidates)


@pytest.mark.django_db
def test_the_api_dismisses_and_restores(people, planted):
    dataset, version = planted
    scan = _scan(version, dataset)
    body = {"candidate": 1, "reason": "expected: a labelling campaign"}
    assert (
        api_for(people["viewer"])
        .post(f"/api/v1/scans/{scan.pk}/dismiss/", body, format="json")
        .status_code
        == 403
    )
    api = api_for(people["contributor"])
    response = api.post(f"/api/v1/scans/{scan.pk}/dismiss/", body, format="json")
    assert response.status_code == 201
    data = response.json()
    assert data["active"] is True and data["slice"] == scan.candidates[0]["slice"]
    assert data["reason"] == "expected: a labelling campaign" and data["scan"] == scan.pk
    again = api.post(f"/api/v1/scans/{scan.pk}/dismiss/", body, format="json")
    assert again.status_code == 400 and "dismissed already" in str(again.json())
    listed = api_for(people["viewer"]).get(f"/api/v1/scan-dismissals/?dataset={dataset.pk}")
    assert [d["id"] for d in listed.json()["results"]] == [data["id"]]

    restored = api.post(f"/api/v1/scan-dismissals/{data['id']}/restore/", {}, format="json")
    assert restored.status_code == 200 and restored.json()["active"] is False
    twice = api.post(f"/api/v1/scan-dismissals/{data['id']}/restore/", {}, format="json")
    assert twice.status_code == 400
    assert _events(data["id"]).filter(verb="transition").count() == 1
