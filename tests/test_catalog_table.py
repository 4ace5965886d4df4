"""The catalog as a table: chosen columns, sorting by any column both ways, relevance first
for a search, bulk owner and tag changes through the edit rule, the state kept in the URL."""

import datetime
import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import Finding, Tag
from core.models import AuditEvent
from probes.models import Probe
from registry.models import MLModel
from remediation.models import RemediationAction

from .factories import client_for

DAY = datetime.timedelta(days=1)
TABLE = '<table class="table compact catalog-table">'
BASE = timezone.make_aware(datetime.datetime(2025, 3, 1, 12, 0))


def make(ml_model, title, **fields):
    tags = fields.pop("tags", ())
    created, updated = fields.pop("created"), fields.pop("updated")
    finding = Finding.objects.create(title=title, ml_model=ml_model, created_at=created, **fields)
    if tags:
        finding.tags.set(Tag.from_names(tags))
    Finding.objects.filter(pk=finding.pk).update(updated_at=updated)
    return finding


def probe_on(finding, dataset, people):
    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind="slice_error_rate",
        slice=[],
        threshold=0.2,
        created_by=people["contributor"],
    )
    probe.save()
    return probe


def action_on(finding, status):
    return RemediationAction.objects.create(
        finding=finding, kind="retrain", title=f"Retrain ({status})", status=status
    )


@pytest.fixture
def table(people, dataset):
    """Three findings that each column orders differently (created c, a, b: ids c < a < b)."""
    anti = MLModel.objects.create(name="anti-fraud", task="binary")
    credit = MLModel.objects.create(name="credit-risk", task="binary")
    loan = MLModel.objects.create(name="loan-approval", task="binary")
    c = make(
        credit,
        "Charlie: thin files misjudged",
        severity="medium",
        status="resolved",
        risk_category="fairness",
        owner=people["reviewer"],
        created=BASE + 2 * DAY,
        updated=BASE + 4 * DAY,
        tags=["thin-files"],
    )
    a = make(
        loan,
        "Alpha: young applicants refused",
        severity="low",
        status="remediating",
        risk_category="safety",
        owner=people["contributor"],
        created=BASE + 3 * DAY,
        updated=BASE + 5 * DAY,
        tags=["young-applicants", "fairness"],
    )
    b = make(
        anti,
        "Bravo: scores overconfident near the threshold",
        severity="critical",
        status="open",
        risk_category="privacy",
        owner=None,
        created=BASE + 1 * DAY,
        updated=BASE + 6 * DAY,
    )
    probe_on(a, dataset, people)
    probe_on(b, dataset, people)
    probe_on(b, dataset, people)
    retired = probe_on(c, dataset, people)
    Probe.objects.filter(pk=retired.pk).update(active=False)
    action_on(a, "cancelled")
    action_on(b, "proposed")
    action_on(b, "verified")
    action_on(c, "approved")
    action_on(c, "in_progress")
    # the probes and actions touched updated_at through the search document: set it again
    for finding, day in ((a, 5), (b, 6), (c, 4)):
        Finding.objects.filter(pk=finding.pk).update(updated_at=BASE + day * DAY)
    return {"a": a, "b": b, "c": c}


def rows(html):
    """The findings of a table page, in order, by their title's first word."""
    ids = [
        int(pk) for pk in re.findall(r'class="col-title"><a href="/catalog/findings/(\d+)/"', html)
    ]
    titles = dict(Finding.objects.filter(pk__in=ids).values_list("pk", "title"))
    return [titles[pk].split(":")[0].lower() for pk in ids]


def cards(html):
    """The findings of a cards page, in order, by their title's first word."""
    return [t.split(":")[0].lower() for t in re.findall(r'<h3><a href="[^"]+">([^<]+)</a>', html)]


def headers(html):
    return re.findall(r'<th scope="col" class="col-([a-z_]+)"', html)


def selected_sort(html):
    menu = re.search(r'<select name="sort"[^>]*>(.*?)</select>', html, re.S).group(1)
    return re.findall(r'<option value="([^"]*)" selected>([^<]*)</option>', menu)


def sort_values(html):
    menu = re.search(r'<select name="sort"[^>]*>(.*?)</select>', html, re.S).group(1)
    return re.findall(r'<option value="([^"]*)"', menu)


def get(client, **params):
    response = client.get("/catalog/", params)
    assert response.status_code == 200
    return response.content.decode()


# -- the table ---------------------------------------------------------------------------


def test_cards_stay_the_default_and_the_toggle_keeps_the_state(table, people):
    client = client_for(people["viewer"])
    html = get(client, severity="critical", per_page="10", page="1")
    assert 'class="result-list"' in html and TABLE not in html
    link = re.search(r'<a href="\?([^"]*)">Table</a>', html).group(1).replace("&amp;", "&")
    assert parse_qs(link) == {
        "severity": ["critical"],
        "per_page": ["10"],
        "page": ["1"],
        "view": ["table"],
    }
    html = get(client, **{k: v[0] for k, v in parse_qs(link).items()})
    assert TABLE in html and rows(html) == ["bravo"]
    back = re.search(r'<a href="\?([^"]*)">Cards</a>', html).group(1).replace("&amp;", "&")
    assert parse_qs(back) == {"severity": ["critical"], "per_page": ["10"], "page": ["1"]}


def test_the_table_shows_the_default_columns(table, people):
    html = get(client_for(people["viewer"]), view="table")
    assert headers(html) == [
        "id",
        "title",
        "ml_model",
        "severity",
        "status",
        "owner",
        "tags",
        "updated",
    ]


DEFAULT_HEADERS = ["id", "title", "ml_model", "severity", "status", "owner", "tags", "updated"]


@pytest.mark.parametrize(
    ("cols", "shown"),
    [
        (["id", "probes", "open_actions"], ["id", "title", "probes", "open_actions"]),
        (["created,risk_category"], ["title", "risk_category", "created"]),
        (["title", "nonsense"], ["title"]),
        (
            ["nonsense"],
            ["id", "title", "ml_model", "severity", "status", "owner", "tags", "updated"],
        ),
    ],
    ids=["repeated", "comma-separated", "unknown-ignored", "none-known-gives-default"],
)
def test_the_table_shows_the_chosen_columns(table, people, cols, shown):
    client = client_for(people["viewer"])
    response = client.get("/catalog/", {"view": "table", "cols": cols})
    assert headers(response.content.decode()) == shown


def test_the_chosen_columns_show_their_values(table, people):
    html = get(
        client_for(people["viewer"]),
        view="table",
        cols="id,ml_model,severity,status,risk_category,owner,tags,created,updated,probes,open_actions",
        sort="title",
    )
    first = re.search(r"<tbody>\s*<tr>(.*?)</tr>", html, re.S).group(1)
    a = table["a"]
    assert f'<td class="col-id num">{a.pk}</td>' in first
    assert '<td class="col-ml_model">loan-approval</td>' in first
    assert ">Low</span>" in first and ">Remediating</span>" in first
    assert '<td class="col-risk_category">Safety</td>' in first
    assert '<td class="col-owner">bob</td>' in first
    assert ">young-applicants</a>" in first and ">fairness</a>" in first
    assert ">2025-03-04</time>" in first and ">2025-03-06</time>" in first
    assert '<td class="col-probes num">1</td>' in first
    assert '<td class="col-open_actions num">0</td>' in first


def test_the_column_picker_submits_get_and_keeps_the_rest_of_the_state(table, people):
    html = get(client_for(people["viewer"]), view="table", q="young", sort="-title", page="1")
    form = re.search(r'<form method="get" class="column-form">(.*?)</form>', html, re.S).group(1)
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
    assert hidden == {"view": "table", "q": "young", "sort": "-title", "cols": "title"}
    assert 'name="cols" value="probes"' in form


# Expected orders, ascending then descending, written out from the fixture.
SORTS = [
    ("id", "id", "-id", ["c", "a", "b"], ["b", "a", "c"]),
    ("title", "title", "-title", ["a", "b", "c"], ["c", "b", "a"]),
    ("ml_model", "ml_model", "-ml_model", ["b", "c", "a"], ["a", "c", "b"]),
    ("severity", "severity", "-severity", ["a", "c", "b"], ["b", "c", "a"]),
    ("status", "status", "-status", ["b", "a", "c"], ["c", "a", "b"]),
    ("risk_category", "risk_category", "-risk_category", ["c", "b", "a"], ["a", "b", "c"]),
    # findings without an owner come last either way
    ("owner", "owner", "-owner", ["a", "c", "b"], ["c", "a", "b"]),
    ("created", "oldest", "newest", ["b", "c", "a"], ["a", "c", "b"]),
    ("updated", "updated", "-updated", ["c", "a", "b"], ["b", "a", "c"]),
    # live probes only (c's probe is retired)
    ("probes", "probes", "-probes", ["c", "a", "b"], ["b", "a", "c"]),
    # open actions only (a's is cancelled, b's second verified)
    ("open_actions", "open_actions", "-open_actions", ["a", "b", "c"], ["c", "b", "a"]),
]
NAMES = {"a": "alpha", "b": "bravo", "c": "charlie"}


@pytest.mark.parametrize(
    ("column", "ascending", "descending", "up", "down"), SORTS, ids=[s[0] for s in SORTS]
)
def test_each_column_sorts_both_ways(table, people, column, ascending, descending, up, down):
    client = client_for(people["viewer"])
    html = get(client, view="table", sort=ascending, cols=column)
    assert rows(html) == [NAMES[x] for x in up]
    assert re.search(rf'class="col-{column}" aria-sort="ascending"', html)
    # the header's link turns the order round, keeping the rest of the state
    link = re.search(rf'class="col-{column}"[^>]*><a href="\?([^"]*)"', html).group(1)
    params = parse_qs(link.replace("&amp;", "&"))
    assert params == {"view": ["table"], "sort": [descending], "cols": [column]}
    html = get(client, view="table", sort=descending, cols=column)
    assert rows(html) == [NAMES[x] for x in down]
    assert re.search(rf'class="col-{column}" aria-sort="descending"', html)


def test_the_tags_column_does_not_sort(table, people):
    html = get(client_for(people["viewer"]), view="table", cols="tags")
    assert '<th scope="col" class="col-tags">Tags</th>' in html


def test_a_header_sort_works_on_the_cards_too_and_the_menu_names_it(table, people):
    html = get(client_for(people["viewer"]), sort="-severity")
    assert cards(html) == ["bravo", "charlie", "alpha"]
    assert selected_sort(html) == [("-severity", "Severity, descending")]


# -- relevance first for a search --------------------------------------------------------


@pytest.fixture
def ranked(people, ml_model):
    """An old finding about calibration in its title, a newer one that mentions it in passing:
    relevance puts the old one first, newest the new one."""
    old = make(
        ml_model,
        "Calibration drifts after every retrain",
        description="Recalibrate.",
        created=BASE,
        updated=BASE,
    )
    new = make(
        ml_model,
        "Thin files misjudged",
        description="Unrelated to calibration.",
        created=BASE + 5 * DAY,
        updated=BASE + 5 * DAY,
    )
    return {"old": old, "new": new}


def test_a_search_is_ranked_by_relevance_and_the_menu_says_so(ranked, people):
    html = get(client_for(people["viewer"]), q="calibration")
    assert cards(html) == ["calibration drifts after every retrain", "thin files misjudged"]
    assert selected_sort(html) == [("", "Relevance")]


def test_a_search_from_the_catalog_page_is_ranked_by_relevance(ranked, people):
    """The defect: the menu on the catalog page used to send sort=newest with the query."""
    client = client_for(people["viewer"])
    html = get(client)
    # without a query the menu's default is newest, sent as "no choice"; relevance is absent
    assert selected_sort(html) == [("", "Newest")]
    assert sort_values(html) == ["", "oldest"]
    html = get(client, q="calibration", sort="", per_page="25")
    assert cards(html) == ["calibration drifts after every retrain", "thin files misjudged"]
    assert selected_sort(html) == [("", "Relevance")]
    assert sort_values(html) == ["", "newest", "oldest"]


@pytest.mark.parametrize("view", ["cards", "table"])
def test_an_explicit_sort_is_honoured_with_a_query(ranked, people, view):
    html = get(client_for(people["viewer"]), q="calibration", sort="newest", view=view)
    order = rows(html) if view == "table" else cards(html)
    assert order[0] == "thin files misjudged"
    assert selected_sort(html) == [("newest", "Newest")]


def test_relevance_without_a_query_means_newest(ranked, people):
    html = get(client_for(people["viewer"]), sort="relevance")
    assert cards(html) == ["thin files misjudged", "calibration drifts after every retrain"]
    assert selected_sort(html) == [("", "Newest")]


def test_an_unknown_sort_is_no_choice(ranked, people):
    html = get(client_for(people["viewer"]), q="calibration", sort="'; drop table")
    assert cards(html)[0] == "calibration drifts after every retrain"
    assert selected_sort(html) == [("", "Relevance")]


# -- bulk changes ------------------------------------------------------------------------

STATE = "q=&view=table&sort=-title&cols=id&cols=owner&per_page=10&page=1"


def bulk(client, **data):
    data.setdefault("state", STATE)
    return client.post("/catalog/bulk/", data)


def assert_back_at_the_same_list(response):
    assert response.status_code == 302
    url = urlparse(response["Location"])
    assert url.path == "/catalog/"
    assert parse_qs(url.query, keep_blank_values=True) == parse_qs(STATE, keep_blank_values=True)


def test_it_adds_a_tag_to_the_ticked_findings_with_audit_events(table, people):
    a, b, c = table["a"], table["b"], table["c"]
    response = bulk(
        client_for(people["contributor"]), action="tag", tag=" Needs-Review ", ids=[a.pk, b.pk]
    )
    assert_back_at_the_same_list(response)
    assert sorted(a.tags.values_list("name", flat=True)) == [
        "fairness",
        "needs-review",
        "young-applicants",
    ]
    assert list(b.tags.values_list("name", flat=True)) == ["needs-review"]
    assert list(c.tags.values_list("name", flat=True)) == ["thin-files"]
    for finding, before in ((a, ["fairness", "young-applicants"]), (b, [])):
        event = AuditEvent.objects.for_object(finding).latest("pk")
        assert event.verb == "update" and event.actor == people["contributor"]
        assert event.before == {"tags": before}
        assert event.after == {"tags": sorted([*before, "needs-review"])}
        finding.refresh_from_db()
        assert finding.updated_at > BASE + 6 * DAY
    assert not AuditEvent.objects.for_object(c).filter(actor=people["contributor"]).exists()


def test_it_assigns_an_owner_with_audit_events_and_says_so(table, people):
    a, b = table["a"], table["b"]
    client = client_for(people["contributor"])
    response = bulk(client, action="assign", owner=people["reviewer"].pk, ids=[a.pk, b.pk])
    assert_back_at_the_same_list(response)
    for finding, before in ((a, people["contributor"].pk), (b, None)):
        finding.refresh_from_db()
        assert finding.owner == people["reviewer"]
        event = AuditEvent.objects.for_object(finding).latest("pk")
        assert event.verb == "update" and event.actor == people["contributor"]
        assert event.before["owner_id"] == before
        assert event.after["owner_id"] == people["reviewer"].pk
    html = client.get(response["Location"]).content.decode()
    assert "rita now owns 2 findings." in html
    assert TABLE in html and headers(html) == ["id", "title", "owner"]


def test_a_finding_that_already_has_it_is_left_alone(table, people):
    c = table["c"]
    events = AuditEvent.objects.count()
    client = client_for(people["contributor"])
    response = bulk(client, action="assign", owner=people["reviewer"].pk, ids=[c.pk])
    assert "1 finding already had it." in client.get(response["Location"]).content.decode()
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("who", ["viewer", "reviewer"])
def test_it_refuses_findings_the_user_may_not_edit_by_title_with_the_reason(table, people, who):
    a, b = table["a"], table["b"]
    events = AuditEvent.objects.count()
    client = client_for(people[who])
    response = bulk(client, action="tag", tag="needs-review", ids=[a.pk, b.pk])
    assert_back_at_the_same_list(response)
    html = client.get(response["Location"]).content.decode()
    for finding in (a, b):
        assert (
            f"“{finding.title}” was not changed: your role does not let you edit findings" in html
        )
    assert not Tag.objects.filter(name="needs-review").exists()
    assert AuditEvent.objects.count() == events
    response = bulk(client, action="assign", owner=people["reviewer"].pk, ids=[a.pk])
    a.refresh_from_db()
    assert a.owner == people["contributor"]
    assert AuditEvent.objects.count() == events


def test_a_finding_that_is_gone_is_listed_and_the_others_are_changed(table, people):
    a = table["a"]
    client = client_for(people["contributor"])
    response = bulk(client, action="tag", tag="needs-review", ids=[a.pk, 987654])
    html = client.get(response["Location"]).content.decode()
    assert "“#987654” was not changed: no such finding" in html
    assert "Tag “needs-review” added to 1 finding." in html
    assert a.tags.filter(name="needs-review").exists()


@pytest.mark.parametrize(
    "data",
    [
        {"action": "tag", "tag": "x", "ids": ["1", "abc"]},
        {"action": "tag", "tag": "x", "ids": ["1.5"]},
        {"action": "tag", "tag": "x", "ids": ["9" * 40]},
        {"action": "assign", "owner": "rita", "ids": ["1"]},
    ],
    ids=["word", "decimal", "too-large", "owner-by-name"],
)
def test_ids_that_are_not_whole_numbers_are_a_400_and_change_nothing(table, people, data):
    data["ids"] = [str(table["a"].pk) if v == "1" else v for v in data["ids"]]
    events, tags = AuditEvent.objects.count(), Tag.objects.count()
    response = bulk(client_for(people["contributor"]), **data)
    assert response.status_code == 400
    text = response.content.decode()
    field = "owner" if data["action"] == "assign" else "ids"
    assert f"{field}: " in text and ("is not an id" in text or "too large" in text)
    assert AuditEvent.objects.count() == events and Tag.objects.count() == tags
    table["a"].refresh_from_db()
    assert table["a"].owner == people["contributor"]


def test_an_owner_who_may_not_own_findings_is_a_400(table, people):
    people["viewer"].is_active = False
    people["viewer"].save()
    response = bulk(
        client_for(people["contributor"]),
        action="assign",
        owner=people["viewer"].pk,
        ids=[table["a"].pk],
    )
    assert response.status_code == 400
    assert "is not an active user who may own findings" in response.content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "tag", "tag": "x"}, "Tick the findings to change first."),
        ({"action": "tag", "tag": "  ", "ids": ["A"]}, "Type the tag to add."),
        ({"action": "assign", "owner": "", "ids": ["A"]}, "Choose the owner to assign."),
    ],
    ids=["no-findings", "no-tag", "no-owner"],
)
def test_an_incomplete_form_says_what_is_missing(table, people, data, message):
    if "ids" in data:
        data["ids"] = [table["a"].pk]
    client = client_for(people["contributor"])
    response = bulk(client, **data)
    assert_back_at_the_same_list(response)
    assert message in client.get(response["Location"]).content.decode()


def test_the_state_posted_back_cannot_leave_the_catalog(table, people):
    response = bulk(
        client_for(people["contributor"]),
        action="tag",
        tag="x",
        ids=[table["a"].pk],
        state="//evil.example/?q=1",
    )
    assert response["Location"].startswith("/catalog/?")


def test_only_people_who_may_edit_see_the_bulk_form(table, people):
    assert 'name="ids"' not in get(client_for(people["viewer"]), view="table")
    html = get(client_for(people["contributor"]), view="table")
    assert html.count('name="ids"') == 3 and 'value="assign"' in html
    assert '<input type="hidden" name="state" value="view=table">' in html


# -- cost ----------------------------------------------------------------------------------


def test_a_table_page_costs_the_same_queries_whatever_its_rows(
    table, people, dataset, django_assert_max_num_queries
):
    client = client_for(people["contributor"])
    params = {
        "view": "table",
        "per_page": "100",
        "cols": list(SORTS_COLUMNS),
        "sort": "-open_actions",
    }
    with CaptureQueriesContext(connection) as few:
        assert client.get("/catalog/", params).status_code == 200
    ml_model = table["a"].ml_model
    for n in range(30):
        finding = make(
            ml_model,
            f"Extra {n}",
            owner=people["contributor"] if n % 2 else people["reviewer"],
            created=BASE + n * DAY,
            updated=BASE,
            tags=[f"tag-{n}", "extra"],
        )
        probe_on(finding, dataset, people)
        action_on(finding, "proposed")
    with django_assert_max_num_queries(len(few)):
        response = client.get("/catalog/", params)
    assert len(rows(response.content.decode())) == 33


SORTS_COLUMNS = [
    "id",
    "title",
    "ml_model",
    "severity",
    "status",
    "risk_category",
    "owner",
    "tags",
    "created",
    "updated",
    "probes",
    "open_actions",
]
