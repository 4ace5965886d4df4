"""Pages of the findings API kept per process until the catalog changes (catalog.freshness).

A kept page must never outlive what it shows: every way of writing to the findings, the
tags or their links moves the catalog's version (database triggers), so the next request
recomputes. These tests run outside a test transaction (the version is not read inside
one) against the real database, SQLite and PostgreSQL alike.
"""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from catalog import freshness
from catalog.api.views import FindingViewSet
from catalog.models import Finding, Tag

from .factories import api_for, client_for

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/findings/"


@pytest.fixture(autouse=True)
def _no_pages_kept_before():
    FindingViewSet.pages.clear()
    yield
    FindingViewSet.pages.clear()


@pytest.fixture
def findings(people, ml_model, dataset):
    made = []
    for i in range(3):
        finding = Finding.objects.create(
            title=f"Boundary problem {i}",
            summary="The model errs near the boundary.",
            ml_model=ml_model,
            dataset=dataset,
            severity="high",
            risk_category="reliability",
            owner=people["contributor"],
            reporter=people["contributor"],
        )
        made.append(finding)
    Finding.objects.all().refresh_search_vectors()
    return made


def fetch(client, url=URL, **headers):
    """(response, whether it read the findings table)."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **headers)
    read = any('"catalog_finding"' in q["sql"] for q in queries.captured_queries)
    return response, read


def titles(response):
    return [row["title"] for row in response.json()["results"]]


def test_a_page_asked_again_is_answered_without_searching(people, findings):
    client = api_for(people["viewer"])
    first, read = fetch(client)
    assert first.status_code == 200 and read
    again, read = fetch(client)
    assert again.status_code == 200 and not read
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"] == "application/json"
    assert again["ETag"] == first["ETag"]


def test_a_matching_entity_tag_gets_not_modified(people, findings):
    client = api_for(people["viewer"])
    first, _ = fetch(client)
    unchanged = client.get(URL, HTTP_IF_NONE_MATCH=first["ETag"])
    assert unchanged.status_code == 304 and unchanged.content == b""
    other = client.get(URL, HTTP_IF_NONE_MATCH='"something else"')
    assert other.status_code == 200 and other.content == first.content
    Finding.objects.filter(pk=findings[0].pk).update(title="Renamed")
    changed = client.get(URL, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and "Renamed" in titles(changed)
    assert changed["ETag"] != first["ETag"]


def _orm_update(findings, **_):
    findings[0].title = "Written through save"
    findings[0].save()
    return "Written through save"


def _bulk_update(findings, **_):
    Finding.objects.filter(pk=findings[1].pk).update(title="Written in bulk")
    return "Written in bulk"


def _raw_sql(findings, **_):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE catalog_finding SET title = %s WHERE id = %s",
            ["Written in SQL", findings[2].pk],
        )
    return "Written in SQL"


def _new_finding(findings, people, **_):
    first = findings[0]
    Finding.objects.create(
        title="A new one",
        ml_model=first.ml_model,
        dataset=first.dataset,
        severity="low",
        risk_category="other",
        owner=people["contributor"],
        reporter=people["contributor"],
    )
    return "A new one"


def _transition(findings, people, **_):
    findings[0].transition_to("remediating", by=people["contributor"], note="on it")
    return "remediating"


@pytest.mark.parametrize(
    "write",
    [_orm_update, _bulk_update, _raw_sql, _new_finding, _transition],
    ids=lambda write: write.__name__.strip("_"),
)
def test_every_write_to_a_finding_shows_at_once(people, findings, write):
    client = api_for(people["viewer"])
    fetch(client)
    expected = write(findings, people=people)
    response, read = fetch(client)
    assert read
    assert expected in response.content.decode()


def test_tags_linked_unlinked_and_renamed_show_at_once(people, findings):
    client = api_for(people["viewer"])
    fetch(client)
    tag = Tag.objects.create(name="calibration", slug="calibration")
    findings[0].tags.add(tag)
    response, read = fetch(client)
    assert read and ["calibration"] in [row["tags"] for row in response.json()["results"]]

    Tag.objects.filter(pk=tag.pk).update(name="calibrated")  # the link is unchanged
    response, read = fetch(client)
    assert read and ["calibrated"] in [row["tags"] for row in response.json()["results"]]

    findings[0].tags.remove(tag)
    response, read = fetch(client)
    assert read and all(row["tags"] == [] for row in response.json()["results"])


def test_a_write_that_is_rolled_back_leaves_the_page_as_it_was(people, findings):
    client = api_for(people["viewer"])
    first, _ = fetch(client)
    with pytest.raises(RuntimeError), transaction.atomic():
        Finding.objects.filter(pk=findings[0].pk).update(title="Never committed")
        raise RuntimeError
    again, read = fetch(client)
    assert not read and again.content == first.content
    assert "Never committed" not in again.content.decode()


def test_nothing_is_kept_or_served_inside_a_transaction(people, findings):
    client = api_for(people["viewer"])
    fetch(client)
    with transaction.atomic():
        assert freshness.version() is None
        Finding.objects.filter(pk=findings[0].pk).update(title="Seen by its own transaction")
        response, read = fetch(client)
        assert read and "Seen by its own transaction" in titles(response)
        transaction.set_rollback(True)
    response, read = fetch(client)
    assert "Seen by its own transaction" not in titles(response)


def test_an_emptied_catalog_draws_a_new_epoch(people, findings):
    client = api_for(people["viewer"])
    fetch(client)
    epoch, _ = freshness.version()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM catalog_catalogversion")
    assert freshness.version() is None
    response, read = fetch(client)  # no version: computed, not kept
    assert read and response.status_code == 200
    Finding.objects.filter(pk=findings[0].pk).update(title="After the reset")
    new_epoch, number = freshness.version()
    assert new_epoch != epoch and number == 1
    response, read = fetch(client)
    assert read and "After the reset" in titles(response)


@pytest.mark.parametrize(
    "query, kept",
    [
        ("?page=1", True),
        ("?search=boundary", True),
        ("?ordering=-created_at", True),
        ("?tag=calibration&severity=high", True),
        ("?status=open&is_key_lesson=false", True),
        ("?ml_model={ml_model}", True),
        ("?ml_model_slug=toy-risk", True),
        ("?owner={owner}", False),  # looks up the user
        ("?dataset={dataset}", False),
        ("?unknown=1", False),
    ],
)
def test_only_pages_the_catalog_alone_decides_are_kept(
    people, findings, ml_model, dataset, query, kept
):
    client = api_for(people["viewer"])
    url = URL + query.format(
        ml_model=ml_model.pk, owner=people["contributor"].pk, dataset=dataset.pk
    )
    first, _ = fetch(client, url)
    assert first.status_code == 200
    again, read = fetch(client, url)
    assert read is not kept
    assert again.content == first.content


def test_a_model_renamed_does_not_leave_its_slug_filter_stale(people, findings, ml_model):
    client = api_for(people["viewer"])
    url = URL + "?ml_model_slug=toy-risk"
    assert len(titles(fetch(client, url)[0])) == 3
    type(ml_model).objects.filter(pk=ml_model.pk).update(slug="renamed")
    assert titles(fetch(client, url)[0]) == []


def test_a_kept_page_is_still_refused_to_whoever_may_not_read_it(people, findings):
    fetch(api_for(people["viewer"]))
    assert api_for(None).get(URL).status_code in (401, 403)
    assert api_for(people["nobody"]).get(URL).status_code == 403


def test_errors_are_not_kept(people, findings):
    client = api_for(people["viewer"])
    bad = client.get(URL + "?severity=enormous")
    assert bad.status_code == 400
    assert len(FindingViewSet.pages._pages) == 0


def test_the_pages_kept_are_bounded(settings):
    pages = freshness.ListPages(2)
    at = ("e", 1)
    for i in range(5):
        pages.put(("k", i), at, freshness.Page(b"%d" % i, "application/json"))
    assert pages.get(("k", 0), at) is None
    assert pages.get(("k", 4), at).content == b"4"
    assert pages.get(("k", 4), ("e", 2)) is None  # another version
    assert len(pages._pages) == 2


# The catalog page's body (search form, facets, cards) is kept the same way
# (catalog.views.BODIES).

CATALOG = "/catalog/"


@pytest.fixture
def cards_cleared():
    from catalog.views import BODIES

    BODIES.clear()
    yield BODIES
    BODIES.clear()


def test_the_catalog_cards_are_rendered_once_per_version(people, findings, cards_cleared):
    viewer, contributor = client_for(people["viewer"]), client_for(people["contributor"])
    first, read = fetch(viewer, CATALOG)
    assert first.status_code == 200 and read
    again, read = fetch(contributor, CATALOG)  # another user: the same cards, own header
    assert again.status_code == 200 and not read
    page = again.content.decode()
    assert "Boundary problem 2" in page and "bob" in page and "Log a finding" in page
    assert "Log a finding" not in first.content.decode()  # viewers log nothing
    Finding.objects.filter(pk=findings[0].pk).update(title="Retitled in bulk")
    changed, read = fetch(viewer, CATALOG)
    assert read and "Retitled in bulk" in changed.content.decode()


def test_a_renamed_ml_model_shows_on_kept_cards(people, findings, ml_model, cards_cleared):
    client = client_for(people["viewer"])
    assert "toy-risk" in fetch(client, CATALOG)[0].content.decode()
    type(ml_model).objects.filter(pk=ml_model.pk).update(name="renamed-model")
    response, read = fetch(client, CATALOG)
    assert read and "renamed-model" in response.content.decode()


@pytest.mark.parametrize(
    "query, kept",
    [
        ("", True),
        ("?q=boundary", True),
        ("?sort=title&per_page=10", True),
        ("?severity=high&tag=x", True),
        ("?view=table", False),  # per-user bulk forms
        ("?sort=probes", False),  # counts probes
        ("?sort=-open_actions", False),
        ("?sort=owner", False),
        ("?owner={owner}", False),
        ("?q=zzqqxx", False),  # nothing found: the suggestion reads the word list
    ],
)
def test_only_cards_the_catalog_alone_decides_are_kept(
    people, findings, cards_cleared, query, kept
):
    client = client_for(people["viewer"])
    url = CATALOG + query.format(owner=people["contributor"].pk)
    assert fetch(client, url)[0].status_code == 200
    response, read = fetch(client, url)
    assert response.status_code == 200 and read is not kept


def test_a_new_ml_model_shows_in_the_kept_search_form(people, findings, cards_cleared):
    from registry.models import MLModel

    client = client_for(people["viewer"])
    fetch(client, CATALOG)
    assert not fetch(client, CATALOG)[1]  # kept
    MLModel.objects.create(name="fresh-model", task="binary")
    response, read = fetch(client, CATALOG)
    assert read and '">fresh-model</option>' in response.content.decode()


def test_a_filter_on_a_missing_ml_model_is_reported_on_kept_pages(people, findings, cards_cleared):
    client = client_for(people["viewer"])
    url = CATALOG + "?ml_model=987654"
    first, _ = fetch(client, url)
    again, read = fetch(client, url)
    assert not read and "this filter was ignored" in again.content.decode()
    assert again.content.decode().count("Boundary problem") == 3


def test_writers_of_different_findings_never_wait_on_each_other_for_the_version(findings):
    """On PostgreSQL the version moves when a transaction commits, after every other lock
    it takes: a transaction that holds one finding and waits for another never holds the
    version's row meanwhile (which a writer of that other finding would wait for: a
    deadlock)."""
    import threading

    from django.db import connections

    if connection.vendor != "postgresql":
        pytest.skip("SQLite writes one transaction at a time")
    first, second = findings[0].pk, findings[1].pk
    a_holds_first, b_holds_second = threading.Event(), threading.Event()
    errors = []

    def writer_a():
        try:
            with transaction.atomic():
                Finding.objects.filter(pk=first).update(title="A wrote the first")
                a_holds_first.set()
                b_holds_second.wait(timeout=30)
                Finding.objects.filter(pk=second).update(title="A wrote the second")
        except Exception as exc:  # a deadlock, reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def writer_b():
        try:
            a_holds_first.wait(timeout=30)
            with transaction.atomic():
                Finding.objects.filter(pk=second).update(title="B wrote the second")
                b_holds_second.set()
        except Exception as exc:
            errors.append(exc)
        finally:
            b_holds_second.set()
            connections.close_all()

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    before = freshness.version()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert Finding.objects.get(pk=second).title == "A wrote the second"
    assert freshness.version()[1] == before[1] + 2  # once per transaction
