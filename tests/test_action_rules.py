"""The rules around a remediation action and a finding's closing, as people meet them in the
API and the web (DESIGN.md, "Workflows"):

- "Separation of duties: whoever created an action may not approve, reject or verify it;
  whoever reported a finding may not resolve it or accept its risk; when an action names a
  `reviewer`, only that user approves or rejects it (a superuser may do everything)."

Every refusal is checked for what it leaves: the row as it was and no audit event. The
cast: bob (contributor, owns and proposed the action), carol (a contributor who owns
nothing), rita (reviewer), rex (a second reviewer), alice (viewer), admin (superuser).
"""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import Finding
from core.models import AuditEvent
from core.roles import CONTRIBUTOR, REVIEWER
from remediation.models import RemediationAction

from .factories import api_for, client_for, make_user

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate


@pytest.fixture
def cast(people):
    return {
        **people,
        "owner": people["contributor"],
        "superuser": people["admin"],
        "carol": make_user("carol", CONTRIBUTOR),
        "rex": make_user("rex", REVIEWER),
        "idle": make_user("idle", CONTRIBUTOR, is_active=False),
    }


def action_in(finding, status, cast, **fields):
    """An action proposed by bob, who owns it, put straight into a status."""
    fields.setdefault("created_by", cast["owner"])
    fields.setdefault("owner", cast["owner"])
    action = RemediationAction.objects.create(finding=finding, kind="retrain",
                                              title="Retrain with more data", **fields)
    RemediationAction.objects.filter(pk=action.pk).update(status=status)
    action.refresh_from_db()
    return action


def row(obj):
    fresh = type(obj).objects.get(pk=obj.pk)
    return {f.attname: getattr(fresh, f.attname) for f in type(obj)._meta.concrete_fields
            if f.name != "search_vector"}


def events(obj):
    return AuditEvent.objects.for_object(obj).count()


def transition_url(action):
    return f"/api/v1/actions/{action.pk}/transition/"


# --- Separation of duties, through the API and the web ---------------------------------------


@pytest.mark.parametrize(("status", "to"), [
    pytest.param("proposed", "approved", id="api:approve-what-you-proposed"),
    pytest.param("proposed", "rejected", id="api:reject-what-you-proposed"),
    pytest.param("implemented", "verified", id="api:verify-what-you-proposed"),
    pytest.param("implemented", "ineffective", id="api:find-what-you-proposed-ineffective"),
])
def test_whoever_proposed_an_action_may_not_review_it(status, to, cast, finding):
    action = action_in(finding, status, cast, created_by=cast["reviewer"])
    before, count = row(action), events(action)
    response = api_for(cast["reviewer"]).post(transition_url(action), {"to": to, "note": "ok"},
                                              format="json")
    assert response.status_code == 403
    assert "someone else" in response.json()["detail"]
    assert row(action) == before and events(action) == count


def test_an_action_proposed_through_the_api_is_not_approved_by_its_proposer(cast, finding):
    api = api_for(cast["superuser"])
    created = api_for(cast["owner"]).post("/api/v1/actions/", {
        "finding": finding.pk, "kind": "relabeling", "title": "Relabel"}, format="json").json()
    action = RemediationAction.objects.get(pk=created["id"])
    assert action.created_by == cast["owner"]
    # rita proposes one herself: she may not approve it; rex may.
    mine = api_for(cast["reviewer"])
    RemediationAction.objects.filter(pk=action.pk).update(created_by=cast["reviewer"])
    assert mine.post(transition_url(action), {"to": "approved"}).status_code == 403
    assert api_for(cast["rex"]).post(transition_url(action), {"to": "approved"}).status_code == 200
    assert api.get(f"/api/v1/actions/{action.pk}/").json()["status"] == "approved"


@pytest.mark.parametrize(("who", "code"), [
    pytest.param("rex", 200, id="api:the-named-reviewer-approves"),
    pytest.param("reviewer", 403, id="api:another-reviewer-may-not"),
    pytest.param("superuser", 200, id="api:a-superuser-may"),
])
def test_only_the_named_reviewer_approves(who, code, cast, finding):
    action = action_in(finding, "proposed", cast, reviewer=cast["rex"])
    before, count = row(action), events(action)
    response = api_for(cast[who]).post(transition_url(action), {"to": "approved"},
                                       format="json")
    assert response.status_code == code, response.content
    if code == 403:
        assert "rex" in response.json()["detail"]
        assert row(action) == before and events(action) == count
    else:
        action.refresh_from_db()
        assert action.status == "approved"


def test_a_superuser_may_approve_what_they_proposed(cast, finding):
    action = action_in(finding, "proposed", cast, created_by=cast["superuser"])
    action.transition_to("approved", by=cast["superuser"])
    assert action.status == "approved"


def test_the_system_verifies_whoever_proposed(cast, finding):
    from core.workflow import SYSTEM

    action = action_in(finding, "implemented", cast, created_by=cast["reviewer"])
    action.transition_to("verified", by=SYSTEM, note="held on v2")
    assert action.status == "verified"


@pytest.mark.parametrize(("status", "to", "body"), [
    pytest.param("remediating", "resolved", {}, id="api:resolve-what-you-reported"),
    pytest.param("open", "accepted_risk", {"note": "tolerable",
                                           "expires_on": "+30"}, id="api:accept-what-you-reported"),
])
def test_whoever_reported_a_finding_may_not_close_it(status, to, body, cast, finding):
    Finding.objects.filter(pk=finding.pk).update(status=status, reporter=cast["reviewer"])
    finding.refresh_from_db()
    body = dict(body)
    if body.get("expires_on") == "+30":
        body["expires_on"] = (TODAY() + datetime.timedelta(days=30)).isoformat()
    before, count = row(finding), events(finding)
    response = api_for(cast["reviewer"]).post(f"/api/v1/findings/{finding.pk}/transition/",
                                              {"to": to, **body}, format="json")
    assert response.status_code == 403
    assert "reported" in response.json()["detail"]
    assert row(finding) == before and events(finding) == count
    # Another reviewer may.
    response = api_for(cast["rex"]).post(f"/api/v1/findings/{finding.pk}/transition/",
                                         {"to": to, **body}, format="json")
    assert response.status_code == 200, response.content


def test_the_web_says_why_a_proposer_may_not_approve(cast, finding):
    action = action_in(finding, "proposed", cast, created_by=cast["reviewer"])
    response = client_for(cast["reviewer"]).post(
        reverse("remediation:action_transition", args=[action.pk]),
        {"to": "approved", "note": "n"}, follow=True)
    assert "someone else must approve it" in response.content.decode()
    action.refresh_from_db()
    assert action.status == "proposed"


def _offered(page, url):
    forms = re.findall(rf'<form method="post" action="{re.escape(url)}"[^>]*>(.*?)</form>',
                       page, flags=re.S)
    return {re.search(r'name="to" value="(\w+)"', form).group(1) for form in forms}


@pytest.mark.parametrize(("who", "buttons"), [
    pytest.param("reviewer", {"cancelled"}, id="buttons:proposer-reviewer"),
    pytest.param("rex", {"approved", "rejected", "cancelled"}, id="buttons:named-reviewer"),
    pytest.param("superuser", {"approved", "rejected", "cancelled"}, id="buttons:superuser"),
])
def test_the_buttons_follow_the_separation_of_duties(who, buttons, cast, finding):
    action = action_in(finding, "proposed", cast, created_by=cast["reviewer"],
                       reviewer=cast["rex"])
    page = client_for(cast[who]).get(finding.get_absolute_url()).content.decode()
    url = reverse("remediation:action_transition", args=[action.pk])
    assert _offered(page, url) == buttons


def test_the_reporter_is_not_offered_to_close_the_finding(cast, finding):
    Finding.objects.filter(pk=finding.pk).update(status="remediating",
                                                 reporter=cast["reviewer"])
    url = reverse("catalog:finding_transition", args=[finding.pk])
    page = client_for(cast["reviewer"]).get(finding.get_absolute_url()).content.decode()
    assert _offered(page, url) == set()
    page = client_for(cast["rex"]).get(finding.get_absolute_url()).content.decode()
    assert _offered(page, url) == {"resolved", "accepted_risk"}
