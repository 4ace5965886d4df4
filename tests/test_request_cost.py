"""What the catalog's list endpoint and page compute once per page (or per request) instead
of once per row or per query gives exactly what the per-row way gave: the rows of the API,
the cards and the table, the links, and the user's permissions and roles."""

import datetime
import unicodedata

import pytest
from django.db import connection
from django.http import QueryDict
from django.template.defaultfilters import date as date_filter
from django.template.defaultfilters import truncatechars
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog import table
from catalog.api.serializers import FindingSerializer
from catalog.models import Finding, Tag
from catalog.search.results import attach_tags

from .factories import api_for, client_for


@pytest.fixture
def findings(people, ml_model, dataset):
    """Findings with and without tags, owners, slices, expiry dates and key lessons."""
    made = []
    for i in range(12):
        finding = Finding.objects.create(
            title=f"Finding {i} <b>&</b>",
            summary=("A long summary. " * 20) if i % 3 == 0 else f"Short {i}",
            ml_model=ml_model,
            dataset=dataset if i % 2 else None,
            severity=["low", "medium", "high", "critical"][i % 4],
            risk_category=["fairness", "other", "safety"][i % 3],
            slice=[{"feature": "age", "op": "<", "value": 22}] if i % 2 else [],
            owner=people["contributor"] if i % 3 else None,
            reporter=people["contributor"],
            is_key_lesson=i % 5 == 0,
        )
        if i % 4 == 0:
            Finding.objects.filter(pk=finding.pk).update(
                accepted_until=datetime.date(2031, 1, i + 1),
                created_at=timezone.now() - datetime.timedelta(days=i, hours=23, minutes=59),
            )
        if i % 2:
            finding.tags.set(
                Tag.from_names(["zeta", "Alpha", f"tag {i}", "ü-umlaut", "a/b"][: i % 5 + 1])
            )
        made.append(finding)
    return made


# -- the API's rows ------------------------------------------------------------------------


def test_a_list_of_findings_is_what_each_finding_serializes_to(findings):
    rows = list(Finding.objects.prefetch_related("tags").order_by("pk"))
    one_by_one = [FindingSerializer(f).data for f in rows]
    assert FindingSerializer(rows, many=True).data == one_by_one
    # Twice: the second list reads with the plan kept from the first.
    assert FindingSerializer(rows, many=True).data == one_by_one


def test_a_list_in_another_time_zone_shows_its_times_there(findings, settings):
    rows = list(Finding.objects.order_by("pk"))
    with timezone.override("America/New_York"):
        one_by_one = [FindingSerializer(f).data for f in rows]
        listed = FindingSerializer(rows, many=True).data
    assert listed == one_by_one
    assert not listed[0]["created_at"].endswith("Z")


def test_the_list_endpoint_answers_as_before_with_and_without_filters(findings, people):
    api = api_for(people["viewer"])
    everything = api.get("/api/v1/findings/").json()
    assert everything["count"] == len(findings)
    by_pk = {f.pk: f for f in Finding.objects.prefetch_related("tags")}
    assert everything["results"] == [
        FindingSerializer(by_pk[row["id"]]).data for row in everything["results"]
    ]
    high = api.get("/api/v1/findings/", {"severity": "high"}).json()
    assert {r["id"] for r in high["results"]} == {f.pk for f in findings if f.severity == "high"}
    assert api.get("/api/v1/findings/", {"severity": "bogus"}).status_code == 400
    paged = api.get("/api/v1/findings/", {"page_size": 5, "page": 2}).json()
    assert [r["id"] for r in paged["results"]] == [r["id"] for r in everything["results"][5:10]]


# -- tags attached to a page's findings ------------------------------------------------------


def test_attached_tags_are_the_prefetched_tags_without_a_query(findings):
    ids = [f.pk for f in findings]
    expected = {
        f.pk: [(t.pk, t.name, t.slug) for t in f.tags.all()]
        for f in Finding.objects.filter(pk__in=ids).prefetch_related("tags")
    }
    rows = list(Finding.objects.filter(pk__in=ids))
    with CaptureQueriesContext(connection) as attaching:
        attach_tags(rows)
    assert len(attaching.captured_queries) == 1
    with CaptureQueriesContext(connection) as reading:
        got = {f.pk: [(t.pk, t.name, t.slug) for t in f.tags.all()] for f in rows}
    assert got == expected
    assert not reading.captured_queries


# -- links, labels and snippets of the page --------------------------------------------------


def reference_link(params, *, keep_page=False, **changes):
    """The catalog's links as QueryDict builds them."""
    p = params.copy()
    if not keep_page:
        p.pop("page", None)
    for key, value in changes.items():
        if value is None:
            p.pop(key, None)
        elif isinstance(value, list):
            p.setlist(key, value)
        else:
            p[key] = value
    return p.urlencode()


@pytest.mark.parametrize(
    "query",
    [
        "",
        "q=calibration&page=3",
        "tag=a&tag=b%20c&severity=high&page=2&view=table",
        "q=%C3%BCber+%22a+phrase%22&cols=id,title&cols=tags&per_page=50",
        "ml_model=3&sort=-severity&tag=x%2Fy&q=a%26b%3Dc",
    ],
)
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"keep_page": True},
        {"severity": "low"},
        {"severity": None},
        {"tag": ["a", "new one"]},
        {"tag": []},
        {"view": "table", "keep_page": True},
        {"q": "did you mean"},
    ],
)
def test_links_are_what_querydict_builds(query, changes):
    params = QueryDict(query)
    assert table.link(params, **changes) == reference_link(params, **changes)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "short",
        "x" * 199,
        "x" * 200,
        "x" * 201,
        "word " * 60,
        "e\u0301" * 150,  # combining accents do not count
        "e\u0301" * 250,
        "\u212b" * 210,  # not NFC: normalised as the filter does
        "<b>&</b> " * 40,
    ],
)
def test_a_summary_snippet_is_truncatechars_200(text):
    assert table._snippet(text) == truncatechars(text, 200)
    assert unicodedata.is_normalized("NFC", table._snippet(text))


def test_what_a_card_shows_is_what_the_model_and_filters_give(findings):
    rows = list(Finding.objects.order_by("pk"))
    attach_tags(rows)
    with timezone.override("Asia/Kolkata"):
        table.decorate(rows)
        for f in rows:
            assert f.show["url"] == f.get_absolute_url()
            assert f.show["severity"] == f.get_severity_display()
            assert f.show["status"] == f.get_status_display()
            assert f.show["risk_category"] == f.get_risk_category_display()
            assert f.show["created"] == date_filter(timezone.localtime(f.created_at), "Y-m-d")
            assert f.show["updated"] == date_filter(timezone.localtime(f.updated_at), "Y-m-d")
            assert [name for name, _ in f.show["tags"]] == [t.name for t in f.tags.all()]


def test_the_catalog_pages_show_every_finding_and_its_tags(findings, people):
    client = client_for(people["viewer"])
    cards = client.get("/catalog/").content.decode()
    rows = client.get("/catalog/", {"view": "table"}).content.decode()
    for f in findings:
        for page in (cards, rows):
            assert f'href="{f.get_absolute_url()}"' in page
            assert f.get_severity_display() in page
    assert 'href="?tag=%C3%BC-umlaut"' in cards
    assert "tag=a/b" in cards
