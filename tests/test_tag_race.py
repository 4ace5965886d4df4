"""Two findings tagged at the same moment with tags that slugify alike ("a b" and "a-b") or
are the same: both are saved, each tag once, never a server error. PostgreSQL only: two
real connections, each in its own thread and transaction, made to choose a slug at the
same moment."""

import threading

import pytest
from django.db import connection, connections, transaction

from catalog.models import Finding, Tag

from .factories import api_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif("connection.vendor != 'postgresql'"),
    pytest.mark.django_db(transaction=True),
]


def tag_at_the_same_moment(monkeypatch, finding_per_name):
    """Each thread tags its finding in its own transaction, as a request does; both look
    for a free slug before either saves its tag. Returns what each thread raised (None
    when nothing)."""
    barrier = threading.Barrier(len(finding_per_name))
    chosen = threading.local()
    real_free_slug = Tag._free_slug

    def free_slug_together(tag):
        slug = real_free_slug(tag)
        if not getattr(chosen, "once", False):  # only the first choice waits for the other
            chosen.once = True
            barrier.wait(timeout=10)
        return slug

    monkeypatch.setattr(Tag, "_free_slug", free_slug_together)
    raised = {}

    def tag(name, finding_pk):
        raised[name] = None
        try:
            with transaction.atomic():
                finding = Finding.objects.get(pk=finding_pk)
                finding.tags.set(Tag.from_names([name]))
        except Exception as exc:  # the test reports it
            raised[name] = repr(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=tag, args=(name, finding.pk))
        for name, finding in finding_per_name.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return raised


def two_findings(people, ml_model):
    return [
        Finding.objects.create(
            title=title, ml_model=ml_model, reporter=people["contributor"], severity="low"
        )
        for title in ("first", "second")
    ]


def test_tags_that_slugify_alike_are_both_saved(monkeypatch, people, ml_model):
    first, second = two_findings(people, ml_model)
    raised = tag_at_the_same_moment(monkeypatch, {"a b": first, "a-b": second})
    assert raised == {"a b": None, "a-b": None}
    # Whichever thread saved first has the plain slug; the other is numbered.
    assert sorted(Tag.objects.values_list("slug", flat=True)) == ["a-b", "a-b-2"]
    assert [t.name for t in first.tags.all()] == ["a b"]
    assert [t.name for t in second.tags.all()] == ["a-b"]
    assert connection.vendor == "postgresql"


def test_the_same_new_tag_twice_is_one_tag(monkeypatch, people, ml_model):
    first, second = two_findings(people, ml_model)
    raised = tag_at_the_same_moment(
        monkeypatch, {"young applicants": first, "Young Applicants ": second}
    )
    assert list(raised.values()) == [None, None]
    tag = Tag.objects.get()
    assert (tag.name, tag.slug) == ("young applicants", "young-applicants")
    assert sorted(Finding.objects.filter(tags=tag).values_list("title", flat=True)) == [
        "first",
        "second",
    ]


def test_a_tag_posted_with_findings_at_the_same_moment_is_no_server_error(people, ml_model):
    """Through the API, without forcing the moment: each request gets its 201."""
    statuses = []

    def post(name):
        try:
            response = api_for(people["contributor"]).post(
                "/api/v1/findings/",
                {"title": f"tagged {name}", "ml_model": ml_model.pk, "tags": [name, "shared"]},
                format="json",
            )
            statuses.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(n,)) for n in ("a b", "a-b", "A B", "a_b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [201] * 4
    assert Tag.objects.filter(name="shared").count() == 1
