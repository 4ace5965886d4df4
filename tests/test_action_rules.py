"""The rules around a remediation action and a finding's closing, as people meet them in the
API and the web (DESIGN.md, "Workflows"):

- "Separation of duties: whoever created an action may not approve, reject or verify it;
  whoever reported a finding may not resolve it or accept its risk; when an action names a
  `reviewer`, only that user approves or rejects it (a superuser may do everything)."
- "Only the owner, the named reviewer or a reviewer may edit an action; owners and reviewers
  are active users with a role; a verified, ineffective, rejected or cancelled action's
  fields are frozen (notes aside)."
- "Due dates default from severity (critical 7 days, high 30, medium 90, low 180; settings)."
- "open|remediating|regressed -> accepted_risk by a reviewer, with a justification and an
  expiry date (`expires_on`, at most `RISK_ACCEPTANCE_MAX_DAYS`, default 180); at expiry the
  system moves it back to `open` and notifies."
- Evaluations: one automatic per action and version; manual ones are free.

Every refusal is checked for what it leaves: the row as it was and no audit event. The
cast: bob (contributor, owns and proposed the action), carol (a contributor who owns
nothing), rita (reviewer), rex (a second reviewer), alice (viewer), admin (superuser).
"""

import datetime
import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from catalog.models import Finding
from core.models import AuditEvent
from core.roles import CONTRIBUTOR, REVIEWER
from core.workflow import TransitionConflict, TransitionForbidden
from remediation.models import Evaluation, Notification, RemediationAction

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
    action = RemediationAction.objects.create(
        finding=finding, kind="retrain", title="Retrain with more data", **fields
    )
    RemediationAction.objects.filter(pk=action.pk).update(status=status)
    action.refresh_from_db()
    return action


def row(obj):
    fresh = type(obj).objects.get(pk=obj.pk)
    return {
        f.attname: getattr(fresh, f.attname)
        for f in type(obj)._meta.concrete_fields
        if f.name != "search_vector"
    }


def events(obj):
    return AuditEvent.objects.for_object(obj).count()


def transition_url(action):
    return f"/api/v1/actions/{action.pk}/transition/"


# --- Separation of duties, through the API and the web ---------------------------------------


@pytest.mark.parametrize(
    ("status", "to"),
    [
        pytest.param("proposed", "approved", id="api:approve-what-you-proposed"),
        pytest.param("proposed", "rejected", id="api:reject-what-you-proposed"),
        pytest.param("implemented", "verified", id="api:verify-what-you-proposed"),
        pytest.param("implemented", "ineffective", id="api:find-what-you-proposed-ineffective"),
    ],
)
def test_whoever_proposed_an_action_may_not_review_it(status, to, cast, finding):
    action = action_in(finding, status, cast, created_by=cast["reviewer"])
    before, count = row(action), events(action)
    response = api_for(cast["reviewer"]).post(
        transition_url(action), {"to": to, "note": "ok"}, format="json"
    )
    assert response.status_code == 403
    assert "someone else" in response.json()["detail"]
    assert row(action) == before and events(action) == count


def test_an_action_proposed_through_the_api_is_not_approved_by_its_proposer(cast, finding):
    api = api_for(cast["superuser"])
    created = (
        api_for(cast["owner"])
        .post(
            "/api/v1/actions/",
            {"finding": finding.pk, "kind": "relabeling", "title": "Relabel"},
            format="json",
        )
        .json()
    )
    action = RemediationAction.objects.get(pk=created["id"])
    assert action.created_by == cast["owner"]
    # rita proposes one herself: she may not approve it; rex may.
    mine = api_for(cast["reviewer"])
    RemediationAction.objects.filter(pk=action.pk).update(created_by=cast["reviewer"])
    assert mine.post(transition_url(action), {"to": "approved"}).status_code == 403
    assert api_for(cast["rex"]).post(transition_url(action), {"to": "approved"}).status_code == 200
    assert api.get(f"/api/v1/actions/{action.pk}/").json()["status"] == "approved"


@pytest.mark.parametrize(
    ("who", "code"),
    [
        pytest.param("rex", 200, id="api:the-named-reviewer-approves"),
        pytest.param("reviewer", 403, id="api:another-reviewer-may-not"),
        pytest.param("superuser", 200, id="api:a-superuser-may"),
    ],
)
def test_only_the_named_reviewer_approves(who, code, cast, finding):
    action = action_in(finding, "proposed", cast, reviewer=cast["rex"])
    before, count = row(action), events(action)
    response = api_for(cast[who]).post(transition_url(action), {"to": "approved"}, format="json")
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


@pytest.mark.parametrize(
    ("status", "to", "body"),
    [
        pytest.param("remediating", "resolved", {}, id="api:resolve-what-you-reported"),
        pytest.param(
            "open",
            "accepted_risk",
            {"note": "tolerable", "expires_on": "+30"},
            id="api:accept-what-you-reported",
        ),
    ],
)
def test_whoever_reported_a_finding_may_not_close_it(status, to, body, cast, finding):
    Finding.objects.filter(pk=finding.pk).update(status=status, reporter=cast["reviewer"])
    finding.refresh_from_db()
    body = dict(body)
    if body.get("expires_on") == "+30":
        body["expires_on"] = (TODAY() + datetime.timedelta(days=30)).isoformat()
    before, count = row(finding), events(finding)
    response = api_for(cast["reviewer"]).post(
        f"/api/v1/findings/{finding.pk}/transition/", {"to": to, **body}, format="json"
    )
    assert response.status_code == 403
    assert "reported" in response.json()["detail"]
    assert row(finding) == before and events(finding) == count
    # Another reviewer may.
    response = api_for(cast["rex"]).post(
        f"/api/v1/findings/{finding.pk}/transition/", {"to": to, **body}, format="json"
    )
    assert response.status_code == 200, response.content


def test_the_web_says_why_a_proposer_may_not_approve(cast, finding):
    action = action_in(finding, "proposed", cast, created_by=cast["reviewer"])
    response = client_for(cast["reviewer"]).post(
        reverse("remediation:action_transition", args=[action.pk]),
        {"to": "approved", "note": "n"},
        follow=True,
    )
    assert "someone else must approve it" in response.content.decode()
    action.refresh_from_db()
    assert action.status == "proposed"


def _offered(page, url):
    forms = re.findall(
        rf'<form method="post" action="{re.escape(url)}"[^>]*>(.*?)</form>', page, flags=re.S
    )
    return {re.search(r'name="to" value="(\w+)"', form).group(1) for form in forms}


@pytest.mark.parametrize(
    ("who", "buttons"),
    [
        pytest.param("reviewer", {"cancelled"}, id="buttons:proposer-reviewer"),
        pytest.param("rex", {"approved", "rejected", "cancelled"}, id="buttons:named-reviewer"),
        pytest.param("superuser", {"approved", "rejected", "cancelled"}, id="buttons:superuser"),
    ],
)
def test_the_buttons_follow_the_separation_of_duties(who, buttons, cast, finding):
    action = action_in(finding, "proposed", cast, created_by=cast["reviewer"], reviewer=cast["rex"])
    page = client_for(cast[who]).get(finding.get_absolute_url()).content.decode()
    url = reverse("remediation:action_transition", args=[action.pk])
    assert _offered(page, url) == buttons


def test_the_reporter_is_not_offered_to_close_the_finding(cast, finding):
    Finding.objects.filter(pk=finding.pk).update(status="remediating", reporter=cast["reviewer"])
    url = reverse("catalog:finding_transition", args=[finding.pk])
    page = client_for(cast["reviewer"]).get(finding.get_absolute_url()).content.decode()
    assert _offered(page, url) == set()
    page = client_for(cast["rex"]).get(finding.get_absolute_url()).content.decode()
    assert _offered(page, url) == {"resolved", "accepted_risk"}


# --- Who may edit an action: "the owner, the named reviewer or a reviewer" -------------------

EDITORS = {
    "owner": True,  # bob owns it
    "named": True,  # carol, named as its reviewer
    "reviewer": True,  # rita, a reviewer
    "superuser": True,
    "contributor": False,  # carol, when she is neither owner nor named
    "viewer": False,
    "maintainer": False,
}


def _editor(cast, who):
    return cast["carol"] if who in ("named", "contributor") else cast[who]


@pytest.mark.parametrize(
    ("who", "may"), [pytest.param(who, may, id=f"api:edit:{who}") for who, may in EDITORS.items()]
)
def test_who_may_edit_an_action_through_the_api(who, may, cast, finding):
    action = action_in(
        finding, "approved", cast, reviewer=cast["carol"] if who == "named" else None
    )
    before, count = row(action), events(action)
    response = api_for(_editor(cast, who)).patch(
        f"/api/v1/actions/{action.pk}/", {"title": "Retrain on 2026 data"}, format="json"
    )
    if may:
        assert response.status_code == 200, response.content
        action.refresh_from_db()
        assert action.title == "Retrain on 2026 data"
        event = AuditEvent.objects.for_object(action).latest("pk")
        assert event.verb == "update" and event.actor == _editor(cast, who)
        assert event.before["title"] == "Retrain with more data"
        assert event.after["title"] == "Retrain on 2026 data"
    else:
        assert response.status_code == 403, response.content
        assert row(action) == before and events(action) == count


@pytest.mark.parametrize(
    ("who", "may"), [pytest.param(who, may, id=f"web:edit:{who}") for who, may in EDITORS.items()]
)
def test_who_may_edit_an_action_through_the_web(who, may, cast, finding):
    action = action_in(
        finding, "approved", cast, reviewer=cast["carol"] if who == "named" else None
    )
    before, count = row(action), events(action)
    url = reverse("remediation:action_edit", args=[action.pk])
    response = client_for(_editor(cast, who)).post(
        url,
        {
            "kind": "retrain",
            "title": "Retrain on 2026 data",
            "description": "",
            "owner": action.owner_id,
            "reviewer": action.reviewer_id or "",
            "due_date": action.due_date.isoformat(),
        },
        follow=True,
    )
    action.refresh_from_db()
    if may:
        assert action.title == "Retrain on 2026 data"
        assert events(action) == count + 1
    else:
        assert "its named reviewer or a reviewer may edit" in (response.content.decode())
        assert row(action) == before and events(action) == count


@pytest.mark.parametrize("field", ["owner", "reviewer"])
def test_a_contributor_cannot_take_over_another_users_action(field, cast, finding):
    action = action_in(finding, "proposed", cast)
    before, count = row(action), events(action)
    response = api_for(cast["carol"]).patch(
        f"/api/v1/actions/{action.pk}/", {field: cast["carol"].pk}, format="json"
    )
    assert response.status_code == 403
    assert row(action) == before and events(action) == count


def test_the_edit_link_is_shown_to_editors_only(cast, finding):
    action = action_in(finding, "proposed", cast)
    url = reverse("remediation:action_edit", args=[action.pk])
    assert url in client_for(cast["owner"]).get(finding.get_absolute_url()).content.decode()
    assert url in client_for(cast["reviewer"]).get(finding.get_absolute_url()).content.decode()
    assert url not in client_for(cast["carol"]).get(finding.get_absolute_url()).content.decode()
    assert url not in client_for(cast["viewer"]).get(finding.get_absolute_url()).content.decode()


# --- "owners and reviewers are active users with a role" -------------------------------------


@pytest.fixture
def nobody(people):
    return people["nobody"]  # active, no role


@pytest.mark.parametrize("field", ["owner", "reviewer"])
@pytest.mark.parametrize("person", ["idle", "nobody"], ids=["inactive", "without-a-role"])
def test_an_action_is_not_given_to_an_inactive_user_or_one_without_a_role(
    field, person, cast, finding
):
    user = cast[person]
    api = api_for(cast["owner"])
    response = api.post(
        "/api/v1/actions/",
        {"finding": finding.pk, "kind": "retrain", "title": "t", field: user.pk},
        format="json",
    )
    assert response.status_code == 400
    assert field in response.json() and user.username in response.json()[field][0]
    assert not RemediationAction.objects.exists()
    action = action_in(finding, "proposed", cast)
    before, count = row(action), events(action)
    response = api.patch(f"/api/v1/actions/{action.pk}/", {field: user.pk}, format="json")
    assert response.status_code == 400 and field in response.json()
    assert row(action) == before and events(action) == count


@pytest.mark.parametrize("person", ["idle", "nobody"], ids=["inactive", "without-a-role"])
def test_the_web_form_refuses_them_at_the_field(person, cast, finding):
    response = client_for(cast["owner"]).post(
        reverse("remediation:action_create", args=[finding.pk]),
        {"kind": "retrain", "title": "t", "owner": cast["owner"].pk, "reviewer": cast[person].pk},
        follow=True,
    )
    assert "reviewer:" in response.content.decode()
    assert cast[person].username in response.content.decode()
    assert not RemediationAction.objects.exists()


def test_the_web_form_offers_only_active_users_with_a_role(cast, finding):
    page = client_for(cast["owner"]).get(finding.get_absolute_url()).content.decode()
    form = page.split('id="id_owner"', 1)[1].split("</select>", 1)[0]
    assert ">rita<" in form and ">bob<" in form
    assert ">idle<" not in form and ">nobody<" not in form


def test_an_owner_who_left_does_not_block_editing_the_rest(cast, finding):
    action = action_in(finding, "approved", cast)
    type(cast["owner"]).objects.filter(pk=cast["owner"].pk).update(is_active=False)
    response = api_for(cast["reviewer"]).patch(
        f"/api/v1/actions/{action.pk}/", {"title": "New title"}, format="json"
    )
    assert response.status_code == 200, response.content


# --- Frozen: "a verified, ineffective, rejected or cancelled action's fields are frozen (notes
# aside)" --------------------------------------------------------------------------------------

FROZEN = ["verified", "ineffective", "rejected", "cancelled"]
LIVE = ["proposed", "approved", "in_progress", "implemented"]


@pytest.mark.parametrize("status", FROZEN)
@pytest.mark.parametrize(
    "change",
    [
        {"title": "Another title"},
        {"kind": "relabeling"},
        {"due_date": "2031-01-01"},
        {"owner": "rita"},
        {"reviewer": "rita"},
    ],
    ids=["title", "kind", "due_date", "owner", "reviewer"],
)
def test_a_settled_actions_fields_are_frozen(status, change, cast, finding):
    action = action_in(finding, status, cast)
    change = {k: cast["reviewer"].pk if v == "rita" else v for k, v in change.items()}
    before, count = row(action), events(action)
    response = api_for(cast["owner"]).patch(f"/api/v1/actions/{action.pk}/", change, format="json")
    assert response.status_code == 409, response.content
    assert "frozen" in response.json()["detail"]
    assert row(action) == before and events(action) == count


@pytest.mark.parametrize("status", FROZEN)
def test_a_settled_actions_description_may_still_change(status, cast, finding):
    action = action_in(finding, status, cast)
    response = api_for(cast["owner"]).patch(
        f"/api/v1/actions/{action.pk}/", {"description": "Lessons: label drift."}, format="json"
    )
    assert response.status_code == 200, response.content
    action.refresh_from_db()
    assert action.description == "Lessons: label drift."


@pytest.mark.parametrize("status", LIVE)
def test_a_live_actions_fields_may_change(status, cast, finding):
    action = action_in(finding, status, cast)
    response = api_for(cast["owner"]).patch(
        f"/api/v1/actions/{action.pk}/", {"title": "Another title"}, format="json"
    )
    assert response.status_code == 200, response.content


def test_the_model_refuses_a_frozen_field(cast, finding):
    action = action_in(finding, "verified", cast)
    with pytest.raises(TransitionConflict, match="frozen"):
        action.edit({"title": "x"}, by=cast["owner"])
    with pytest.raises(TransitionForbidden):
        action.edit({"description": "x"}, by=cast["carol"])


def test_the_web_edit_of_a_settled_action_changes_its_description_only(cast, finding):
    action = action_in(finding, "cancelled", cast)
    url = reverse("remediation:action_edit", args=[action.pk])
    page = client_for(cast["owner"]).get(url)
    assert page.context["form"].fields["title"].disabled
    assert not page.context["form"].fields["description"].disabled
    client_for(cast["owner"]).post(
        url, {"title": "Sneaky", "kind": "other", "description": "Dropped: data unavailable."}
    )
    action.refresh_from_db()
    assert action.title == "Retrain with more data" and action.kind == "retrain"
    assert action.description == "Dropped: data unavailable."


# --- Due dates: "default from severity (critical 7 days, high 30, medium 90, low 180)" ------

DUE_DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180}


@pytest.mark.parametrize(
    ("severity", "days"), list(DUE_DAYS.items()), ids=[f"api:{s}" for s in DUE_DAYS]
)
def test_the_due_date_defaults_from_the_severity(severity, days, cast, finding):
    Finding.objects.filter(pk=finding.pk).update(severity=severity)
    response = api_for(cast["owner"]).post(
        "/api/v1/actions/", {"finding": finding.pk, "kind": "retrain", "title": "t"}, format="json"
    )
    assert response.status_code == 201, response.content
    expected = TODAY() + datetime.timedelta(days=days)
    assert response.json()["due_date"] == expected.isoformat()


def test_a_due_date_given_is_kept(cast, finding):
    response = api_for(cast["owner"]).post(
        "/api/v1/actions/",
        {"finding": finding.pk, "kind": "retrain", "title": "t", "due_date": "2031-05-01"},
        format="json",
    )
    assert response.json()["due_date"] == "2031-05-01"


def test_the_due_days_come_from_the_settings(cast, finding, settings):
    settings.DUE_DAYS_BY_SEVERITY = {"high": 14}
    response = api_for(cast["owner"]).post(
        "/api/v1/actions/", {"finding": finding.pk, "kind": "retrain", "title": "t"}, format="json"
    )
    assert response.json()["due_date"] == (TODAY() + datetime.timedelta(days=14)).isoformat()


def test_the_web_form_proposes_the_default_due_date(cast, finding):
    page = client_for(cast["owner"]).get(finding.get_absolute_url()).content.decode()
    expected = (TODAY() + datetime.timedelta(days=30)).isoformat()  # the finding is high
    field = re.search(r'<input[^>]*id="id_due_date"[^>]*>', page).group(0)
    assert f'value="{expected}"' in field
    client_for(cast["owner"]).post(
        reverse("remediation:action_create", args=[finding.pk]),
        {"kind": "retrain", "title": "t", "owner": cast["owner"].pk},
    )
    assert RemediationAction.objects.get().due_date == TODAY() + datetime.timedelta(days=30)


# --- Evaluations: "one automatic per action and version; manual ones are free" ---------------


def test_a_manual_evaluation_is_recorded_beside_an_automatic_one(cast, finding, version):
    action = action_in(finding, "verified", cast)
    Evaluation.objects.create(action=action, model_version=version, outcome="held")
    api = api_for(cast["reviewer"])
    for notes in ("User study, 12 people.", "Second study."):
        response = api.post(
            "/api/v1/evaluations/",
            {
                "action": action.pk,
                "model_version": version.pk,
                "outcome": "inconclusive",
                "notes": notes,
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        assert response.json()["is_manual"] is True
    client_for(cast["reviewer"]).post(
        reverse("remediation:evaluation_create", args=[action.pk]),
        {"model_version": version.pk, "outcome": "held", "notes": "Third."},
    )
    assert Evaluation.objects.filter(action=action, model_version=version).count() == 4
    assert Evaluation.objects.filter(action=action, is_manual=False).count() == 1


# --- Accepting a risk: a justification and an expiry date ------------------------------------


def _accept(api, finding, **body):
    return api.post(
        f"/api/v1/findings/{finding.pk}/transition/", {"to": "accepted_risk", **body}, format="json"
    )


def test_accepting_a_risk_keeps_its_expiry(cast, finding):
    expires = TODAY() + datetime.timedelta(days=60)
    response = _accept(
        api_for(cast["reviewer"]), finding, note="Within tolerance.", expires_on=expires.isoformat()
    )
    assert response.status_code == 200, response.content
    assert response.json()["accepted_until"] == expires.isoformat()
    finding.refresh_from_db()
    assert finding.accepted_until == expires and finding.status == "accepted_risk"


@pytest.mark.parametrize(
    "expires_on",
    [None, "", "soon", "today", "yesterday", "181"],
    ids=["missing", "blank", "not-a-date", "today", "past", "too-far"],
)
def test_a_bad_expiry_is_refused(expires_on, cast, finding):
    days = {"today": 0, "yesterday": -1, "181": 181}
    body = {"note": "Within tolerance."}
    if expires_on in days:
        body["expires_on"] = (TODAY() + datetime.timedelta(days=days[expires_on])).isoformat()
    elif expires_on is not None:
        body["expires_on"] = expires_on
    before, count = row(finding), events(finding)
    response = _accept(api_for(cast["reviewer"]), finding, **body)
    assert response.status_code == 400, response.content
    assert row(finding) == before and events(finding) == count


def test_the_longest_acceptance_comes_from_the_settings(cast, finding, settings):
    settings.RISK_ACCEPTANCE_MAX_DAYS = 30
    api = api_for(cast["reviewer"])
    too_far = (TODAY() + datetime.timedelta(days=31)).isoformat()
    assert _accept(api, finding, note="ok", expires_on=too_far).status_code == 400
    just = (TODAY() + datetime.timedelta(days=30)).isoformat()
    assert _accept(api, finding, note="ok", expires_on=just).status_code == 200


def test_accepting_a_risk_through_the_web(cast, finding):
    expires = TODAY() + datetime.timedelta(days=45)
    page = client_for(cast["reviewer"]).get(finding.get_absolute_url()).content.decode()
    assert 'name="expires_on"' in page
    response = client_for(cast["reviewer"]).post(
        reverse("catalog:finding_transition", args=[finding.pk]),
        {
            "to": "accepted_risk",
            "from": "open",
            "note": "Within tolerance.",
            "expires_on": expires.isoformat(),
        },
        follow=True,
    )
    assert f"until {expires.isoformat()}" in response.content.decode()
    finding.refresh_from_db()
    assert finding.status == "accepted_risk" and finding.accepted_until == expires


def test_the_web_refuses_an_acceptance_without_an_expiry(cast, finding):
    response = client_for(cast["reviewer"]).post(
        reverse("catalog:finding_transition", args=[finding.pk]),
        {"to": "accepted_risk", "note": "Within tolerance."},
        follow=True,
    )
    assert "needs an expiry date" in response.content.decode()
    finding.refresh_from_db()
    assert finding.status == "open"


# --- "at expiry the system moves it back to open and notifies" -------------------------------


def _accepted(finding, cast, days):
    finding.transition_to(
        "accepted_risk",
        by=cast["reviewer"],
        note="Within tolerance.",
        expires_on=TODAY() + datetime.timedelta(days=days),
    )
    return finding


def test_an_expired_acceptance_reopens_the_finding_and_notifies(cast, finding):
    from remediation.tasks import expire_accepted_risks

    _accepted(finding, cast, 10)
    later = TODAY() + datetime.timedelta(days=10)
    assert expire_accepted_risks(today=later) == [finding.pk]
    finding.refresh_from_db()
    assert finding.status == "open" and finding.accepted_until is None
    event = AuditEvent.objects.for_object(finding).latest("pk")
    assert (event.verb, event.from_status, event.to_status, event.actor) == (
        "transition",
        "accepted_risk",
        "open",
        None,
    )
    assert "expired" in event.note
    told = set(
        Notification.objects.filter(finding=finding).values_list("recipient__username", flat=True)
    )
    assert {"bob", "rita", "rex"} <= told  # owner and reporter; the reviewers
    assert all("expired" in n.subject for n in Notification.objects.filter(finding=finding))
    assert {m.to[0] for m in mail.outbox} >= {"bob@example.com", "rita@example.com"}


def test_an_acceptance_holds_until_its_expiry(cast, finding):
    from remediation.tasks import expire_accepted_risks

    _accepted(finding, cast, 10)
    assert expire_accepted_risks(today=TODAY() + datetime.timedelta(days=9)) == []
    finding.refresh_from_db()
    assert finding.status == "accepted_risk"
    assert not Notification.objects.exists()


def test_the_expiry_runs_daily_from_a_stored_schedule(db):
    from django_q.models import Schedule

    from remediation.tasks import expire_accepted_risks

    schedule = Schedule.objects.get(name="risk-expiry")
    assert schedule.func == "remediation.tasks.expire_accepted_risks"
    assert schedule.schedule_type == Schedule.DAILY and schedule.repeats == -1
    assert schedule.next_run > timezone.now()  # not the moment the first worker starts
    assert expire_accepted_risks() == []
