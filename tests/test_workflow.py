"""The finding and action workflows as people meet them: the API's answers, the web page's
messages and buttons, and a stale view.

DESIGN.md ("Workflows"): "Every transition is an audit event: who, when, from, to, note.
Illegal transitions are refused with a clear error in the UI and a 4xx in the API, and
change nothing." Every (from, to, actor) of both workflows is in test_workflow_table.py;
here each test id is one request a person makes.
"""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from core.roles import CONTRIBUTOR
from core.workflow import TransitionConflict
from remediation.models import RemediationAction

from .factories import api_for, client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(people):
    """The conftest people, plus: owner = bob (owns the actions below), carol (a contributor
    who owns nothing), superuser = admin."""
    return {
        **people,
        "superuser": people["admin"],
        "owner": people["contributor"],
        "carol": make_user("carol", CONTRIBUTOR),
    }


def action_in(finding, status, person):
    """An action proposed by bob, who owns it, put straight into a status."""
    action = RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain with more data",
        owner=person["owner"],
        created_by=person["owner"],
    )
    RemediationAction.objects.filter(pk=action.pk).update(status=status)
    action.refresh_from_db()
    return action


def finding_in(finding, status):
    type(finding).objects.filter(pk=finding.pk).update(status=status)
    finding.refresh_from_db()
    return finding


def events(obj):
    return AuditEvent.objects.for_object(obj).filter(verb="transition").count()


# --- The API: "a 4xx in the API, and change nothing" ----------------------------------------
# The codes are the house's: 403 when the role is missing, 400 for an illegal move or a
# missing field, 409 when the status the caller saw is stale (STYLE.md, `transition()`).

API_CASES = [
    # (object, status now, request body, who, expected code, status afterwards)
    pytest.param(
        "action",
        "proposed",
        {"to": "approved", "note": "go"},
        "reviewer",
        200,
        "approved",
        id="api:action:proposed->approved:reviewer",
    ),
    pytest.param(
        "action",
        "proposed",
        {"to": "approved"},
        "viewer",
        403,
        "proposed",
        id="api:action:proposed->approved:viewer",
    ),
    pytest.param(
        "action",
        "proposed",
        {"to": "verified"},
        "reviewer",
        400,
        "proposed",
        id="api:action:proposed->verified:reviewer",
    ),
    pytest.param(
        "action",
        "proposed",
        {"to": "nonsense"},
        "reviewer",
        400,
        "proposed",
        id="api:action:proposed->nonsense:reviewer",
    ),
    pytest.param(
        "action",
        "approved",
        {"to": "rejected", "from": "proposed"},
        "reviewer",
        409,
        "approved",
        id="api:action:proposed->rejected:reviewer-seeing-a-stale-status",
    ),
    pytest.param(
        "action",
        "in_progress",
        {"to": "implemented", "fixed_in_version": "v"},
        "owner",
        200,
        "implemented",
        id="api:action:in_progress->implemented:owner",
    ),
    pytest.param(
        "action",
        "in_progress",
        {"to": "implemented"},
        "owner",
        400,
        "in_progress",
        id="api:action:in_progress->implemented:owner-naming-no-version",
    ),
    pytest.param(
        "finding",
        "open",
        {"to": "remediating"},
        "contributor",
        200,
        "remediating",
        id="api:finding:open->remediating:contributor",
    ),
    pytest.param(
        "finding",
        "remediating",
        {"to": "resolved"},
        "contributor",
        403,
        "remediating",
        id="api:finding:remediating->resolved:contributor",
    ),
    pytest.param(
        "finding",
        "remediating",
        {"to": "resolved", "note": "held on v2"},
        "reviewer",
        200,
        "resolved",
        id="api:finding:remediating->resolved:reviewer",
    ),
    pytest.param(
        "finding",
        "open",
        {"to": "resolved"},
        "reviewer",
        400,
        "open",
        id="api:finding:open->resolved:reviewer",
    ),
    pytest.param(
        "finding",
        "resolved",
        {"to": "regressed"},
        "superuser",
        403,
        "resolved",
        id="api:finding:resolved->regressed:superuser",
    ),
]


@pytest.mark.parametrize(("kind", "now", "body", "who", "code", "after"), API_CASES)
def test_an_api_transition(kind, now, body, who, code, after, person, finding, version):
    obj = action_in(finding, now, person) if kind == "action" else finding_in(finding, now)
    body = dict(body)
    if body.get("fixed_in_version") == "v":
        body["fixed_in_version"] = version.pk
    before = events(obj)
    path = "actions" if kind == "action" else "findings"
    response = api_for(person[who]).post(
        f"/api/v1/{path}/{obj.pk}/transition/", body, format="json"
    )
    assert response.status_code == code, response.content
    obj.refresh_from_db()
    assert obj.status == after
    assert events(obj) == before + (1 if code == 200 else 0)
    if code == 200:
        assert response.json()["status"] == after


def test_an_illegal_api_transition_says_which_moves_are_open(person, finding):
    action = action_in(finding, "proposed", person)
    response = api_for(person["reviewer"]).post(
        f"/api/v1/actions/{action.pk}/transition/", {"to": "verified"}, format="json"
    )
    assert response.status_code == 400
    assert "cannot move from 'proposed' to 'verified'" in response.json()["detail"]


def test_accepting_a_risk_through_the_api_keeps_its_expiry(person, finding):
    expires = timezone.localdate() + datetime.timedelta(days=90)
    response = api_for(person["reviewer"]).post(
        f"/api/v1/findings/{finding.pk}/transition/",
        {"to": "accepted_risk", "note": "Within tolerance.", "expires_on": expires.isoformat()},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["accepted_until"] == expires.isoformat()


# --- A stale view: the other writer won -----------------------------------------------------


def test_a_stale_view_is_a_conflict_and_changes_nothing(person, finding):
    action = action_in(finding, "proposed", person)
    stale = RemediationAction.objects.get(pk=action.pk)
    action.transition_to("approved", by=person["reviewer"])
    with pytest.raises(TransitionConflict):
        stale.transition_to("rejected", by=person["reviewer"])
    action.refresh_from_db()
    assert action.status == "approved"
    assert events(action) == 1


# --- The web: "a clear error in the UI" -----------------------------------------------------

WEB_CASES = [
    # (object, status now, to, who, message shown, status afterwards)
    pytest.param(
        "action",
        "proposed",
        "approved",
        "contributor",
        "You may not move this remediation action",
        "proposed",
        id="web:action:proposed->approved:contributor",
    ),
    pytest.param(
        "action",
        "proposed",
        "approved",
        "reviewer",
        "is now Approved",
        "approved",
        id="web:action:proposed->approved:reviewer",
    ),
    pytest.param(
        "finding",
        "remediating",
        "resolved",
        "contributor",
        "You may not move this finding",
        "remediating",
        id="web:finding:remediating->resolved:contributor",
    ),
    pytest.param(
        "finding",
        "remediating",
        "resolved",
        "reviewer",
        "Finding moved to Resolved",
        "resolved",
        id="web:finding:remediating->resolved:reviewer",
    ),
]


@pytest.mark.parametrize(("kind", "now", "to", "who", "message", "after"), WEB_CASES)
def test_a_web_transition_says_what_happened(kind, now, to, who, message, after, person, finding):
    obj = action_in(finding, now, person) if kind == "action" else finding_in(finding, now)
    url = (
        reverse("remediation:action_transition", args=[obj.pk])
        if kind == "action"
        else reverse("catalog:finding_transition", args=[obj.pk])
    )
    response = client_for(person[who]).post(url, {"to": to, "note": "n"}, follow=True)
    assert message in response.content.decode()
    obj.refresh_from_db()
    assert obj.status == after


# --- The web: only the moves a person may take are offered as buttons -----------------------


def offered(page, form_url):
    forms = re.findall(
        rf'<form method="post" action="{re.escape(form_url)}"[^>]*>(.*?)</form>', page, flags=re.S
    )
    return {re.search(r'name="to" value="(\w+)"', form).group(1) for form in forms}


# A proposed action owned by bob: DESIGN.md's table read for "proposed". Here "contributor"
# is carol, a contributor who does not own the action.
ACTION_BUTTONS = {
    "viewer": set(),
    "contributor": set(),
    "owner": {"cancelled"},
    "reviewer": {"approved", "rejected", "cancelled"},
    "maintainer": set(),
    "superuser": {"approved", "rejected", "cancelled"},
}

# An open finding: DESIGN.md's table read for "open".
FINDING_BUTTONS = {
    "viewer": set(),
    "contributor": {"remediating"},
    "reviewer": {"remediating", "accepted_risk"},
    "maintainer": set(),
    "superuser": {"remediating", "accepted_risk"},
}


@pytest.mark.parametrize(
    ("who", "buttons"),
    [
        pytest.param(who, buttons, id=f"buttons:action:proposed:{who}")
        for who, buttons in ACTION_BUTTONS.items()
    ],
)
def test_the_action_buttons_offered(who, buttons, person, finding):
    action = action_in(finding, "proposed", person)
    user = person["carol"] if who == "contributor" else person[who]
    page = client_for(user).get(finding.get_absolute_url()).content.decode()
    assert offered(page, reverse("remediation:action_transition", args=[action.pk])) == buttons


@pytest.mark.parametrize(
    ("who", "buttons"),
    [
        pytest.param(who, buttons, id=f"buttons:finding:open:{who}")
        for who, buttons in FINDING_BUTTONS.items()
    ],
)
def test_the_finding_buttons_offered(who, buttons, person, finding):
    page = client_for(person[who]).get(finding.get_absolute_url()).content.decode()
    assert offered(page, reverse("catalog:finding_transition", args=[finding.pk])) == buttons
