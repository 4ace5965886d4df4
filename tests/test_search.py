"""Search semantics on a small fixed corpus, on SQLite and on PostgreSQL (the same tests run
against both in CI), plus the vector's upkeep, facets, suggestions and query counts."""

import datetime

import pytest
from django.db import connection, transaction
from django.db.models import ProtectedError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import Finding, SearchWord, Tag
from catalog.search import headline_markup
from registry.models import MLModel
from remediation.models import RemediationAction

from .factories import api_for, client_for

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL full-text search"
)


def make(ml_model, title, *, days_ago=0, tags=(), **fields):
    fields.setdefault("severity", "medium")
    finding = Finding.objects.create(
        title=title,
        ml_model=ml_model,
        created_at=timezone.now() - datetime.timedelta(days=days_ago),
        **fields,
    )
    if tags:
        finding.tags.set(Tag.from_names(tags))
    return finding


@pytest.fixture
def corpus(people, ml_model):
    """Each finding mentions "calibration" in one place only, so the weight decides.

    The tag match is the newest and the title match the oldest: recency cannot explain
    a correct ranking."""
    other = MLModel.objects.create(name="loan-approval", task="binary")
    return {
        "title": make(
            ml_model,
            "Calibration drifts for young applicants",
            days_ago=9,
            severity="high",
            summary="Scores are too confident.",
        ),
        "summary": make(
            ml_model,
            "Scores too confident near the cut-off",
            days_ago=8,
            summary="Poor calibration close to the threshold.",
        ),
        "description": make(
            other,
            "Borderline refusals",
            days_ago=7,
            severity="high",
            description="We traced the refusals to calibration of the second stage.",
        ),
        "tag": make(other, "Overconfident ensemble", days_ago=6, tags=["calibration"]),
        "phrase": make(
            ml_model,
            "Sharp decision boundary around income 20k",
            days_ago=5,
            description="The decision boundary flips for incomes near 20,000.",
        ),
        "apart": make(
            other,
            "Boundary of the approval region",
            days_ago=4,
            description="A decision made on the boundary of two regions.",
        ),
        "stemmed": make(
            ml_model,
            "Misjudged applicants with thin files",
            days_ago=3,
            lesson="Thin credit files are misjudged; collect more data.",
        ),
    }


def ids(qs):
    return [f.pk for f in qs]


def titles_for(q, queryset=None):
    results = (queryset if queryset is not None else Finding.objects.all()).find(q)
    return [f.title for f in results.page(1, 50)]


# -- semantics ----------------------------------------------------------------------------


def test_ranking_follows_the_weights_not_the_dates(corpus):
    assert titles_for("calibration") == [
        corpus["title"].title,
        corpus["summary"].title,
        corpus["description"].title,
        corpus["tag"].title,
    ]


def test_all_words_must_match(corpus):
    assert titles_for("calibration young") == [corpus["title"].title]
    assert titles_for("calibration zebra") == []


def test_words_are_stemmed_like_postgresql(corpus):
    assert titles_for("misjudging applicant") == [corpus["stemmed"].title]
    assert titles_for("MISJUDGED") == [corpus["stemmed"].title]


def test_stop_words_do_not_count(corpus):
    assert titles_for("the calibration of") == titles_for("calibration")


def test_quoted_phrase_needs_the_words_together(corpus):
    both = set(titles_for("decision boundary"))
    assert both == {corpus["phrase"].title, corpus["apart"].title}
    assert titles_for('"decision boundary"') == [corpus["phrase"].title]


def test_excluded_words_and_phrases(corpus):
    assert corpus["title"].title not in titles_for("calibration -young")
    assert len(titles_for("calibration -young")) == 3
    assert titles_for('boundary -"decision boundary"') == [corpus["apart"].title]


def test_or_between_alternatives(corpus):
    assert set(titles_for("misjudged or overconfident")) == {
        corpus["stemmed"].title,
        corpus["tag"].title,
    }


def test_ml_model_name_and_tags_are_searched(corpus):
    assert set(titles_for("loan approval calibration")) == {
        corpus["description"].title,
        corpus["tag"].title,
    }


def test_filters_combine_with_search(corpus):
    high = Finding.objects.filter(severity="high")
    assert titles_for("calibration", high) == [corpus["title"].title, corpus["description"].title]


def test_api_search_uses_the_same_ranking_and_filters(corpus, people):
    api = api_for(people["viewer"])
    body = api.get("/api/v1/findings/?search=calibration").json()
    assert [f["id"] for f in body["results"]] == [
        corpus[k].pk for k in ("title", "summary", "description", "tag")
    ]
    assert body["count"] == 4 and body["count_capped"] is False
    body = api.get("/api/v1/findings/?search=calibration&severity=high&tag=").json()
    assert [f["id"] for f in body["results"]] == [corpus["title"].pk, corpus["description"].pk]
    body = api.get('/api/v1/findings/?search="decision boundary"').json()
    assert [f["id"] for f in body["results"]] == [corpus["phrase"].pk]
    body = api.get("/api/v1/findings/?search=calibration&ordering=created_at").json()
    assert [f["id"] for f in body["results"]] == [
        corpus[k].pk for k in ("title", "summary", "description", "tag")
    ]


def test_a_query_of_stop_words_matches_nothing(corpus):
    assert titles_for("the of and") == []


# -- keeping the vector current ----------------------------------------------------------


def test_vector_follows_tag_edits(corpus):
    finding = corpus["stemmed"]
    assert titles_for("zebra") == []
    finding.tags.add(*Tag.from_names(["zebra"]))
    assert titles_for("zebra") == [finding.title]
    tag = Tag.objects.get(name="zebra")
    tag.name = "okapi"
    tag.save()
    assert titles_for("zebra") == [] and titles_for("okapi") == [finding.title]
    tag.findings.remove(finding)
    assert titles_for("okapi") == []
    finding.tags.add(tag)
    tag.delete()
    assert titles_for("okapi") == []


def test_vector_follows_tag_edits_through_the_form(corpus, people):
    finding = corpus["apart"]
    client = client_for(people["contributor"])
    data = {
        "title": finding.title,
        "ml_model": finding.ml_model_id,
        "severity": "medium",
        "risk_category": "reliability",
        "slice": "",
        "evidence": "",
        "tag_names": "giraffe, boundary-care",
        "description": finding.description,
    }
    response = client.post(f"/catalog/findings/{finding.pk}/edit/", data)
    assert response.status_code == 302, response.content
    assert titles_for("giraffe") == [finding.title]
    data["tag_names"] = "boundary-care"
    client.post(f"/catalog/findings/{finding.pk}/edit/", data)
    assert titles_for("giraffe") == []


def test_vector_follows_actions(corpus, people):
    finding = corpus["phrase"]
    assert titles_for("isotonic") == []
    action = RemediationAction.objects.create(
        finding=finding,
        kind="recalibration",
        title="Isotonic recalibration of the scores",
    )
    assert titles_for("isotonic") == [finding.title]
    action.title = "Platt scaling"
    action.save()
    assert titles_for("isotonic") == [] and titles_for("platt") == [finding.title]
    with pytest.raises(ProtectedError), transaction.atomic():  # actions have history
        action.delete()
    assert titles_for("platt") == [finding.title]


def test_vector_follows_finding_edits_and_model_renames(corpus):
    finding = corpus["summary"]
    finding.lesson = "Temperature scaling fixed it."
    finding.save()
    assert titles_for("temperature") == [finding.title]
    model = finding.ml_model
    model.name = "scorecard"
    model.save()
    assert finding.title in titles_for("scorecard")


def test_refresh_rebuilds_every_document(corpus):
    Finding.objects.update(search_vector=None)
    assert titles_for("calibration") == []
    Finding.objects.refresh_search_vectors()
    assert len(titles_for("calibration")) == 4


# -- results, facets, suggestions --------------------------------------------------------


def test_counts_are_capped_and_pages_stay_within_the_candidates(corpus):
    results = Finding.objects.all().find("calibration", limit=3)
    assert results.count == 3 and results.capped
    page = results.page(1, 2)
    assert page.has_next() and len(page) == 2
    assert len(results.page(2, 2)) == 1 and not results.page(2, 2).has_next()


def test_browsing_pages_past_the_cap(corpus):
    results = Finding.objects.all().find("", limit=3)
    assert results.capped and results.count == 3
    page4 = results.page(4, 2)
    assert len(page4) == 1 and not page4.has_next()
    assert page4.num_pages is None


def test_facets_count_the_matches(corpus):
    results = Finding.objects.all().find("calibration")
    facets = results.facet_counts()
    assert facets["severity"] == {"high": 2, "medium": 2}
    assert facets["ml_model_id"] == {corpus["title"].ml_model_id: 2, corpus["tag"].ml_model_id: 2}
    assert results.tag_counts() == [("calibration", 1)]


def test_did_you_mean(corpus):
    results = Finding.objects.all().find("calbration young")
    assert results.count == 0
    assert results.suggestion() == "calibration young"
    assert Finding.objects.all().find("calibration").suggestion() is None
    assert Finding.objects.all().find("qwxyz").suggestion() is None


def test_word_list_is_built_from_the_documents(corpus):
    assert SearchWord.objects.filter(word="calibration").exists()
    assert not SearchWord.objects.filter(word="the").exists()


def test_headline_marks_the_words_and_escapes_the_text(people, ml_model):
    make(ml_model, "Unsafe text", description="Its <b onclick=x>calibration</b> slips")
    page = Finding.objects.all().find("calibration").page(1, 10, headline=True)
    html = str(page.object_list[0].headline)
    assert "<mark>calibration</mark>" in html
    assert "<b" not in html and "onclick=x>" not in html
    # PostgreSQL's ts_headline marks words with sentinels; everything else is escaped.
    raw = "a \x02calibration\x03 <script>x</script>"
    assert str(headline_markup(raw)) == "a <mark>calibration</mark> &lt;script&gt;x&lt;/script&gt;"


@postgres_only
def test_postgres_uses_the_stored_vector(corpus):
    sql = str(Finding.objects.search("calibration").query)
    assert "search_vector" in sql and "websearch_to_tsquery" in sql
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'finding_search_gin'")
        assert "gin" in cursor.fetchone()[0].lower()


@postgres_only
@pytest.mark.parametrize("q", ["calibration", '"decision boundary"', "boundary -sharp"])
def test_postgres_walk_and_index_paths_find_the_same_candidates(corpus, monkeypatch, q):
    from catalog.search import SearchResults

    found = {}
    for walk in (True, False):
        monkeypatch.setattr(SearchResults, "_walk_created_at", lambda *args, w=walk: w)
        results = Finding.objects.all().find(q, limit=2)
        found[walk] = [(c.pk, round(c.rank, 6)) for c in results.candidates]
    assert found[True] == found[False] and found[True]


# -- query counts ------------------------------------------------------------------------


def _count_queries(fn):
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


@pytest.fixture
def many(people, ml_model):
    for i in range(30):
        make(ml_model, f"Calibration finding {i}", days_ago=i, tags=[f"t{i % 4}", "shared"])


@pytest.mark.parametrize("q", ["", "calibration"])
def test_catalog_page_queries_do_not_grow_with_the_page_size(many, people, q):
    client = client_for(people["viewer"])
    client.get("/catalog/")  # warm the session and permission caches alike for both runs
    small = _count_queries(lambda: client.get(f"/catalog/?q={q}&per_page=10"))
    large = _count_queries(lambda: client.get(f"/catalog/?q={q}&per_page=100"))
    assert small == large
    assert large <= 12


@pytest.mark.parametrize("q", ["", "calibration"])
def test_api_list_queries_do_not_grow_with_the_page_size(many, people, q):
    api = api_for(people["viewer"])
    api.get("/api/v1/findings/")  # the first request loads the user's permissions
    small = _count_queries(lambda: api.get(f"/api/v1/findings/?search={q}&page_size=2"))
    large = _count_queries(lambda: api.get(f"/api/v1/findings/?search={q}&page_size=30"))
    assert small == large
    assert large <= 8
