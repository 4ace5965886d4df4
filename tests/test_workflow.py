"""The finding and action workflows: every allowed and refused transition, per role."""

import pytest

from core.models import AuditEvent
from core.workflow import SYSTEM, TransitionConflict, TransitionError, TransitionForbidden
from remediation.models import ACTION_TRANSITIONS, RemediationAction

from .factories import api_for, client_for

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "contributor", "reviewer", "maintainer", "admin"]


def make_action(finding, status, owner):
    action = RemediationAction.objects.create(finding=finding, kind="retrain", title="Fix",
                                              owner=owner)
    RemediationAction.objects.filter(pk=action.pk).update(status=status)
    action.refresh_from_db()
    return action


def expected_actor(who, role, people):
    kinds = (who,) if isinstance(who, str) else who
    if role == "admin":
        return any(k != SYSTEM for k in kinds)
    if "owner" in kinds and role == "contributor":  # bob owns the actions below
        return True
    return role in kinds


def test_every_action_transition_for_every_role(people, finding, version):
    statuses = [s for s, _ in RemediationAction._meta.get_field("status").choices]
    for frm in statuses:
        for to in statuses:
            for role in ROLES:
                action = make_action(finding, frm, people["contributor"])
                events = AuditEvent.objects.count()
                who = ACTION_TRANSITIONS.get((frm, to))
                kwargs = {"fixed_in_version": version} if to == "implemented" else {}
                if who is not None and expected_actor(who, role, people):
                    action.transition_to(to, by=people[role], note="ok", **kwargs)
                    action.refresh_from_db()
                    assert action.status == to
                    assert AuditEvent.objects.count() == events + 1
                else:
                    error = TransitionForbidden if who is not None else TransitionError
                    with pytest.raises(error):
                        action.transition_to(to, by=people[role], **kwargs)
                    action.refresh_from_db()
                    assert action.status == frm, (frm, to, role)
                    assert AuditEvent.objects.count() == events


def test_implemented_needs_the_fix_version(people, finding):
    action = make_action(finding, "in_progress", people["contributor"])
    with pytest.raises(TransitionError, match="fixed_in_version"):
        action.transition_to("implemented", by=people["contributor"])
    action.refresh_from_db()
    assert action.status == "in_progress"


def test_finding_transitions(people, finding):
    with pytest.raises(TransitionForbidden):
        finding.transition_to("remediating", by=people["viewer"])
    finding.transition_to("remediating", by=people["contributor"])
    with pytest.raises(TransitionForbidden):
        finding.transition_to("resolved", by=people["contributor"])
    finding.transition_to("resolved", by=people["reviewer"], note="held on v2")
    with pytest.raises(TransitionForbidden):  # only the system may reopen a fix
        finding.transition_to("regressed", by=people["admin"])
    finding.transition_to("regressed", by=SYSTEM, note="probe failed")
    event = AuditEvent.objects.for_object(finding).filter(to_status="regressed").get()
    assert event.actor is None and event.actor_label == "system"
    with pytest.raises(TransitionError, match="justification"):
        finding.transition_to("accepted_risk", by=people["reviewer"], note="  ")
    finding.refresh_from_db()
    assert finding.status == "regressed"
    finding.transition_to("accepted_risk", by=people["reviewer"], note="Within tolerance.")
    assert finding.status_note == "Within tolerance."


def test_a_stale_view_is_a_conflict(people, finding):
    action = make_action(finding, "proposed", people["contributor"])
    stale = RemediationAction.objects.get(pk=action.pk)
    action.transition_to("approved", by=people["reviewer"])
    with pytest.raises(TransitionConflict):
        stale.transition_to("rejected", by=people["reviewer"])
    action.refresh_from_db()
    assert action.status == "approved"
    assert AuditEvent.objects.for_object(action).filter(verb="transition").count() == 1


def test_api_transition_codes(people, finding, version):
    action = make_action(finding, "proposed", people["contributor"])
    url = f"/api/v1/actions/{action.pk}/transition/"
    assert api_for(people["viewer"]).post(url, {"to": "approved"}).status_code == 403
    bad = api_for(people["reviewer"]).post(url, {"to": "verified"})
    assert bad.status_code == 400 and "cannot move from 'proposed' to 'verified'" in bad.json()[
        "detail"]
    assert api_for(people["reviewer"]).post(url, {"to": "nonsense"}).status_code == 400
    ok = api_for(people["reviewer"]).post(url, {"to": "approved", "note": "go"})
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    url_f = f"/api/v1/findings/{finding.pk}/transition/"
    assert api_for(people["contributor"]).post(url_f, {"to": "remediating"}).status_code == 200
    assert api_for(people["contributor"]).post(url_f, {"to": "resolved"}).status_code == 403


def test_web_transition_shows_a_clear_message(people, finding):
    action = make_action(finding, "proposed", people["contributor"])
    client = client_for(people["contributor"])
    response = client.post(f"/actions/{action.pk}/transition/", {"to": "approved"}, follow=True)
    assert "You may not move this remediation action" in response.content.decode()
    action.refresh_from_db()
    assert action.status == "proposed"
    response = client_for(people["reviewer"]).post(
        f"/actions/{action.pk}/transition/", {"to": "approved"}, follow=True
    )
    assert "is now Approved" in response.content.decode()


def test_only_offered_transitions_appear_as_buttons(people, finding):
    make_action(finding, "proposed", people["contributor"])
    page = client_for(people["reviewer"]).get(finding.get_absolute_url()).content.decode()
    assert 'value="approved"' in page and 'value="rejected"' in page
    page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert 'value="approved"' not in page


def test_every_finding_transition_for_every_role(people, finding):
    from catalog.models import FINDING_TRANSITIONS, Finding

    statuses = [s for s, _ in Finding._meta.get_field("status").choices]
    for frm in statuses:
        for to in statuses:
            for role in ROLES + [SYSTEM]:
                Finding.objects.filter(pk=finding.pk).update(status=frm)
                finding.refresh_from_db()
                who = FINDING_TRANSITIONS.get((frm, to))
                kinds = () if who is None else ((who,) if isinstance(who, str) else who)
                actor = SYSTEM if role == SYSTEM else people[role]
                allowed = who is not None and (
                    role in kinds or (role == "admin" and any(k != SYSTEM for k in kinds))
                )
                if allowed:
                    finding.transition_to(to, by=actor, note="because")
                    finding.refresh_from_db()
                    assert finding.status == to
                else:
                    with pytest.raises(TransitionError):
                        finding.transition_to(to, by=actor, note="because")
                    finding.refresh_from_db()
                    assert finding.status == frm, (frm, to, role)
