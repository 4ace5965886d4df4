"""The catalog as a newcomer reads it: the search page with facets, Start here, key lessons,
a finding's timeline and similar findings, an ML model's history, the risk heatmap."""

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse

from catalog.models import Finding, Tag
from core.models import AuditEvent
from registry.models import MLModel
from remediation.models import Evaluation, RemediationAction

from .factories import api_for, client_for


def make(ml_model, title, **fields):
    tags = fields.pop("tags", ())
    finding = Finding.objects.create(title=title, ml_model=ml_model, **fields)
    if tags:
        finding.tags.set(Tag.from_names(tags))
    return finding


@pytest.fixture
def catalog(people, ml_model):
    other = MLModel.objects.create(name="loan-approval", task="binary")
    return {
        "young": make(
            ml_model,
            "Young applicants refused despite repaying",
            severity="high",
            risk_category="fairness",
            tags=["young-applicants", "fairness"],
            lesson="Add the age x income interaction; a linear model cannot see it.",
            slice=[],
        ),
        "calib": make(
            ml_model,
            "Scores overconfident near the threshold",
            severity="medium",
            risk_category="reliability",
            status="resolved",
            lesson="Recalibrate after every retrain.",
            tags=["calibration"],
        ),
        "other": make(
            other,
            "Young applicants with thin files misjudged",
            severity="critical",
            risk_category="fairness",
            tags=["young-applicants"],
            lesson="Thin files need a fallback rule.",
        ),
        "plain": make(other, "Wine acidity outliers", severity="low", risk_category="other"),
    }


# -- the search page --------------------------------------------------------------------


def test_catalog_page_shows_ranked_results_with_highlights_and_facets(catalog, people):
    response = client_for(people["viewer"]).get("/catalog/?q=young+applicants")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index(catalog["young"].title) < html.index("Wine") if "Wine" in html else True
    assert "<mark>" in html or catalog["young"].title in html
    assert "2 findings" in html
    # facets: severity, ML model and tags of the two matches, each a link keeping the query
    facets = html[html.index('class="facets"') : html.index('class="results"')]
    assert "High" in facets and "Critical" in facets and "Low" not in facets
    assert "loan-approval" in facets and "young-applicants" in facets
    link = re.search(r'href="\?([^"]*severity=critical[^"]*)"', facets).group(1)
    params = parse_qs(link.replace("&amp;", "&"))
    assert params["q"] == ["young applicants"] and params["severity"] == ["critical"]


def test_the_url_holds_the_whole_state(catalog, people):
    client = client_for(people["viewer"])
    response = client.get(
        "/catalog/",
        {
            "q": "young",
            "severity": "critical",
            "sort": "newest",
            "per_page": "10",
            "tag": "young-applicants",
        },
    )
    html = response.content.decode()
    assert catalog["other"].title in html and catalog["young"].title not in html
    assert 'value="young"' in html and 'name="tag" value="young-applicants"' in html
    assert '<option value="newest" selected>' in html
    assert '<option value="10" selected>' in html


def test_several_tags_must_all_match(catalog, people):
    client = client_for(people["viewer"])
    html = client.get("/catalog/?tag=young-applicants&tag=fairness").content.decode()
    assert catalog["young"].title in html and catalog["other"].title not in html


def test_did_you_mean_offers_a_working_correction(catalog, people):
    html = client_for(people["viewer"]).get("/catalog/?q=overconfidnt").content.decode()
    assert "Did you mean" in html and "q=overconfident" in html


def test_export_of_a_search_result(catalog, people):
    client = client_for(people["viewer"])
    response = client.get("/catalog/export.csv?q=young&severity=critical")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().strip().splitlines()
    assert len(lines) == 2 and catalog["other"].title in lines[1]
    body = client.get("/catalog/export.json?q=young").json()
    assert {row["title"] for row in body} == {catalog["young"].title, catalog["other"].title}
    assert body[0]["tags"] and body[0]["ml_model"] in ("toy-risk", "loan-approval")


def test_export_defuses_spreadsheet_formulas(people, ml_model):
    make(ml_model, '=HYPERLINK("http://evil")', summary="+cmd")
    text = client_for(people["viewer"]).get("/catalog/export.csv").content.decode()
    assert "'=HYPERLINK" in text and "'+cmd" in text


# -- key lessons and Start here ----------------------------------------------------------


def test_reviewers_mark_key_lessons_on_the_page_and_newcomers_see_them(catalog, people):
    finding = catalog["young"]
    url = reverse("catalog:finding_key_lesson", args=[finding.pk])
    assert client_for(people["contributor"]).post(url, {"is_key_lesson": "1"}).status_code == 403
    page = client_for(people["reviewer"]).get(finding.get_absolute_url()).content.decode()
    assert "Mark as key lesson" in page
    response = client_for(people["reviewer"]).post(url, {"is_key_lesson": "1"})
    assert response.status_code == 302
    finding.refresh_from_db()
    assert finding.is_key_lesson
    event = AuditEvent.objects.for_object(finding).filter(verb="update").latest("pk")
    assert event.actor == people["reviewer"] and event.after["is_key_lesson"] is True
    start = client_for(people["viewer"]).get(reverse("ledger:start_here")).content.decode()
    key = start[start.index("Key lessons") : start.index("A reading path")]
    assert finding.title in key and catalog["other"].title not in key
    client_for(people["reviewer"]).post(url, {"is_key_lesson": "0"})
    finding.refresh_from_db()
    assert not finding.is_key_lesson


def test_key_lesson_api(catalog, people):
    finding = catalog["calib"]
    url = f"/api/v1/findings/{finding.pk}/key-lesson/"
    assert api_for(people["contributor"]).post(url, {}, format="json").status_code == 403
    response = api_for(people["reviewer"]).post(url, {}, format="json")
    assert response.status_code == 200 and response.json()["is_key_lesson"] is True
    response = api_for(people["reviewer"]).post(url, {"is_key_lesson": False}, format="json")
    assert response.json()["is_key_lesson"] is False
    bad = api_for(people["reviewer"]).post(url, {"is_key_lesson": "perhaps"}, format="json")
    assert bad.status_code == 400 and "is_key_lesson" in bad.json()


def test_start_here_has_a_reading_path_per_model_a_glossary_and_a_search(catalog, people):
    html = client_for(people["viewer"]).get(reverse("ledger:start_here")).content.decode()
    paths = html[html.index("A reading path") : html.index("Glossary")]
    assert "toy-risk" in paths and "loan-approval" in paths
    assert catalog["young"].title in paths and catalog["other"].title in paths
    assert catalog["plain"].title not in paths  # no lesson written: not on the path
    toy = paths[paths.index(">toy-risk<") :]  # models in name order: loan-approval first
    assert toy.index(catalog["young"].title) < toy.index(catalog["calib"].title)  # severe first
    for word in ("Finding", "Slice", "Probe", "Evaluation", "Regression"):
        assert f"<dt>{word}</dt>" in html
    assert 'action="/catalog/"' in html and 'name="q"' in html
    nav = client_for(people["viewer"]).get("/").content.decode()
    assert 'href="/catalog/start/"' in nav


def test_from_start_here_to_a_past_lesson_in_a_few_clicks(catalog, people):
    client = client_for(people["viewer"])
    start = client.get(reverse("ledger:start_here")).content.decode()
    action = re.search(r'<form method="get" action="([^"]+)"', start).group(1)
    results = client.get(action, {"q": "thin files"}).content.decode()
    link = re.search(r'<h3><a href="(/catalog/findings/\d+/)">', results).group(1)
    page = client.get(link).content.decode()
    assert "Thin files need a fallback rule." in page


# -- the finding page as a lesson --------------------------------------------------------


def test_timeline_tells_the_story(people, finding, version):
    from core.workflow import SYSTEM

    action = RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain with relabelled x1 rows",
        owner=people["contributor"],
        created_by=people["contributor"],
    )
    finding.transition_to("remediating", by=people["contributor"], note="working on it")
    action.transition_to("approved", by=people["reviewer"], note="go ahead")
    Evaluation.objects.create(
        action=action,
        model_version=version,
        outcome="regressed",
        notes="x1 slice still fails",
        is_manual=True,
    )
    finding.remaining_gaps = "Rows with x1 > 2 were never labelled."
    finding.save()
    assert SYSTEM == "system"
    html = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    story = html[html.index('id="timeline"') : html.index('id="similar"')]
    order = [
        "Discovered",
        "Action proposed: Retrain",
        "go ahead",
        f"Evaluated on {version}",
        "Where it stands",
    ]
    positions = [story.index(text) for text in order]
    assert positions == sorted(positions)
    assert "toy-risk v1" in story and "x1 &gt; 0.5" in story
    assert "did not hold" in story and "Rows with x1 &gt; 2 were never labelled." in story
    assert "Moved from open to remediating by bob" in story


def test_where_it_stands_counts_each_probe_once_per_version(people, finding, probe, version):
    """A probe that ran at registration and again at night is one probe, counted by its
    latest run: "1 of 1 pass", not "2 passed"."""
    from django.utils import timezone

    from probes.models import ProbeRun, Rerun

    def run(trigger, status, minutes):
        rerun = Rerun.objects.create(model_version=version, trigger=trigger)
        ProbeRun.objects.create(
            probe=probe,
            model_version=version,
            rerun=rerun,
            trigger=trigger,
            status=status,
            finished_at=timezone.now() + timezone.timedelta(minutes=minutes),
        )

    run("registration", "failed", 0)
    run("schedule", "passed", 5)
    html = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    story = html[html.index('id="timeline"') : html.index('id="similar"')]
    assert f"Its probes so far: on {version}, 1 of 1 pass." in story


def test_similar_findings_cross_ml_models(catalog, people):
    html = client_for(people["viewer"]).get(catalog["young"].get_absolute_url()).content.decode()
    panel = html[html.index('id="similar"') :]
    panel = panel[: panel.index("</section>")]
    assert catalog["other"].title in panel and "loan-approval" in panel
    assert catalog["plain"].title not in panel


def test_finding_page_queries_stay_bounded(catalog, people):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(people["viewer"])
    url = catalog["young"].get_absolute_url()
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    assert len(ctx.captured_queries) < 40


# -- an ML model's history ----------------------------------------------------------------


def test_ml_model_page_tells_its_history(catalog, people, ml_model):
    young = catalog["young"]
    AuditEvent.record(
        young,
        verb="transition",
        from_status="resolved",
        to_status="regressed",
        note="probe failed on v2",
    )
    html = client_for(people["viewer"]).get(ml_model.get_absolute_url()).content.decode()
    story = html[html.index('id="history-story"') :]
    assert "History of toy-risk" in story
    assert f"?ml_model={ml_model.pk}&amp;status=resolved" in story
    assert "Resolved 1" in story and "Open 1" in story
    assert young.title in story[story.index("Regressions") : story.index("Lessons")]
    lessons = story[story.index("Lessons") :]
    assert "Add the age x income interaction" in lessons
    # severe lessons come before the others
    assert lessons.index("Add the age x income") < lessons.index("Recalibrate after every")


# -- the heatmap --------------------------------------------------------------------------


def test_heatmap_counts_and_every_cell_links_to_its_findings(catalog, people, ml_model):
    make(ml_model, "Second fairness problem", severity="high", risk_category="fairness")
    client = client_for(people["viewer"])
    html = client.get(reverse("ledger:heatmap")).content.decode()
    cells = re.findall(
        r'<td class="(heat-\d)"><a href="([^"]+)" title="([^"]+)">(\d+)</a></td>', html
    )
    assert len(cells) == 4 * 7 + 2 * 5  # severities x risks + models x statuses
    # the busiest cell is the darkest; one finding against a peak of two is mid-way
    assert '<td class="heat-5"><a href="/catalog/?severity=high&amp;risk_category=fairness"' in html
    assert (
        '<td class="heat-3"><a href="/catalog/?severity=critical&amp;risk_category=fairness"'
        in html
    )
    counted = 0
    for shade, link, title, n in cells:
        n = int(n)
        assert (shade == "heat-0") == (n == 0)
        listed = client.get(link.replace("&amp;", "&") + "&per_page=100").content.decode()
        found = len(re.findall(r'<li class="result">', listed))
        assert found == n, (title, link, n, found)
        counted += n
    assert counted == 2 * Finding.objects.count()


def test_heatmap_keeps_the_ml_model_filter_in_its_links(catalog, people, ml_model):
    html = (
        client_for(people["viewer"])
        .get(reverse("ledger:heatmap"), {"ml_model": ml_model.pk})
        .content.decode()
    )
    links = re.findall(r'<td class="heat-\d"><a href="([^"]+)"', html)
    assert links and all(f"ml_model={ml_model.pk}" in link for link in links)
    query = parse_qs(urlparse(links[0].replace("&amp;", "&")).query)
    assert query["ml_model"] == [str(ml_model.pk)]
