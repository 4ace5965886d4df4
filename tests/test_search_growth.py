"""The ways a ranked search finds its newest matches (walking from the newest finding,
reading every match, reading the matches among the newest findings first) find the same
candidates; and what a walk meets is told from the filters."""

import datetime

import pytest
from django.db import connection
from django.http import QueryDict
from django.utils import timezone

from catalog.filtersets import FindingFilterSet
from catalog.models import Finding, Tag
from catalog.search import SearchResults
from catalog.search.results import _walk_filters
from catalog.search.sorting import order
from registry.models import MLModel

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL full-text search"
)


@pytest.fixture
def catalog(people, ml_model):
    """Forty findings over forty days; "calibration" in every other one, "drift" in every
    third, a tag on every fourth; some created at the same moment."""
    other = MLModel.objects.create(name="other-model", task="binary")
    now = timezone.now()
    tag = Tag.from_names(["shared"])[0]
    made = []
    for i in range(40):
        words = " ".join(w for w, k in (("calibration", 2), ("drift", 3)) if i % k == 0)
        finding = Finding.objects.create(
            title=f"Finding {i} {words}",
            ml_model=ml_model if i % 5 else other,
            status="resolved" if i % 4 == 1 else "open",
            severity="high" if i % 3 else "low",
            created_at=now - datetime.timedelta(days=i // 2),  # pairs share a moment
        )
        if i % 4 == 0:
            finding.tags.add(tag)
        made.append(finding)
    return made


def _candidates(q, params=None, **overrides):
    base = FindingFilterSet(QueryDict(params or ""), queryset=Finding.objects.all()).qs
    results = SearchResults(base, q, limit=5)
    for name, value in overrides.items():
        setattr(results, name, value)
    return [(c.pk, round(c.rank, 6)) for c in results.candidates]


@postgres_only
@pytest.mark.parametrize("q", ["calibration", "drift", "calibration drift", '"finding 3"'])
@pytest.mark.parametrize("params", ["", "status=open", "tag=shared", "severity=high&status=open"])
def test_the_window_walk_and_full_read_find_the_same_newest_matches(catalog, q, params):
    full = _candidates(q, params, _walk_created_at=lambda *a: False, _window_start=lambda *a: None)
    walk = _candidates(q, params, _walk_created_at=lambda *a: True)
    assert walk == full
    # Windows from the newest finding's moment (few matches: read everything after all)
    # to the oldest one's (the window holds every match), through moments that several
    # findings share.
    moments = sorted({f.created_at for f in catalog}, reverse=True)
    for start in moments[::3] + moments[-1:]:
        windowed = _candidates(
            q, params, _walk_created_at=lambda *a: False, _window_start=lambda *a, s=start: s
        )
        assert windowed == full, start


@postgres_only
def test_the_chosen_way_finds_what_reading_everything_finds(catalog):
    for q in ("calibration", "drift", "calibration or drift", "finding -drift"):
        found = _candidates(q)
        assert found
        assert found == _candidates(
            q, _walk_created_at=lambda *a: False, _window_start=lambda *a: None
        )


def test_a_walk_is_narrowed_by_the_ml_model_and_status_filters_only(catalog, ml_model):
    def filters(params):
        base = FindingFilterSet(QueryDict(params), queryset=Finding.objects.all()).qs
        return {name: getattr(value, "pk", value) for name, value in _walk_filters(base)}

    assert filters("") == {}
    assert filters(f"ml_model={ml_model.pk}&status=open") == {
        "ml_model": ml_model.pk,
        "status": "open",
    }
    assert filters("severity=high&tag=shared") == {}
    assert filters("status=open&severity=high") == {"status": "open"}


def test_newest_first_lists_every_finding_in_the_same_order(catalog):
    """Newest first without NULLS LAST (created_at is never empty): the same order."""
    listed = list(order(Finding.objects.all(), "newest").values_list("pk", flat=True))
    expected = [f.pk for f in sorted(catalog, key=lambda f: (f.created_at, f.pk), reverse=True)]
    assert listed == expected
    oldest = list(order(Finding.objects.all(), "oldest").values_list("pk", flat=True))
    assert oldest == expected[::-1]
    by_owner = list(order(Finding.objects.all(), "-owner").values_list("owner", flat=True))
    assert by_owner == [None] * len(catalog)  # owners left empty still come last
