"""The admin keeps the domain's rules (DESIGN.md, Workflows, Probe kinds): a superuser
editing through the real admin pages cannot change a probe's definition once it has a run,
move a finding's or an action's status, change a settled action's fields, give an action to
someone without a role, or edit a run, an evaluation or an audit event. What the admin may
change is saved by the app's own operations and written to the audit trail."""

import pytest
from django.core.management import call_command
from django.forms import MultiWidget
from django.urls import reverse

from core.models import AuditEvent
from probes.models import Probe, ProbeRun, Rerun
from registry.models import Deployment
from remediation.models import Evaluation, RemediationAction

from .factories import client_for


def change_page(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def add_page(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")


def form_data(page):
    """What the admin form on `page` posts back unchanged: each field's shown value."""
    form = page.context["adminform"].form
    data = {"_save": "Save"}
    for name, field in form.fields.items():
        value = form[name].value()
        values = field.widget.decompress(value) if isinstance(field.widget, MultiWidget) else None
        if values is not None:
            data.update({f"{name}_{i}": v for i, v in enumerate(values) if v is not None})
            continue
        if value is None or value is False:
            continue
        data[name] = "on" if value is True else value
        if field.show_hidden_initial:
            data[f"initial-{name}"] = value
    return data


def edit_in_admin(client, obj, **changes):
    """Open the object's admin change page and save it with `changes`."""
    page = client.get(change_page(obj))
    assert page.status_code == 200
    return client.post(change_page(obj), {**form_data(page), **changes})


def events_of(obj):
    return AuditEvent.objects.for_object(obj)


@pytest.fixture
def admin(people):
    return client_for(people["admin"])


@pytest.fixture
def action(people, finding):
    return RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain with more young applicants",
        owner=people["contributor"],
        created_by=people["contributor"],
    )


@pytest.fixture
def verified_action(people, action, version):
    admin = people["admin"]
    action.transition_to("approved", by=admin)
    action.transition_to("in_progress", by=admin)
    action.transition_to("implemented", by=admin, fixed_in_version=version)
    action.transition_to("verified", by=admin, note="held on v1")
    return action


@pytest.fixture
def run(probe, version):
    rerun = Rerun.queue(version, trigger="manual", probes=[probe], dispatch=False)
    return ProbeRun.objects.get(rerun=rerun, probe=probe)


# --- Probes ---------------------------------------------------------------------------


def test_it_shows_a_probe_definition_read_only_once_it_has_a_run(admin, probe, run):
    page = admin.get(change_page(probe))
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert "threshold" not in form.fields
    assert "kind" not in form.fields
    before = events_of(probe).count()

    response = edit_in_admin(admin, probe, threshold="0.9", kind="slice_share")

    probe.refresh_from_db()
    assert probe.threshold == 0.2
    assert probe.kind == "slice_error_rate"
    assert response.status_code in (200, 302)
    assert events_of(probe).count() == before


def test_it_edits_a_probe_without_runs_through_probe_edit(admin, people, probe):
    response = edit_in_admin(admin, probe, threshold="0.25")

    assert response.status_code == 302
    probe.refresh_from_db()
    assert probe.threshold == 0.25
    event = events_of(probe).latest("pk")
    assert event.verb == AuditEvent.Verb.UPDATE
    assert event.actor == people["admin"]
    assert event.note == "Edited in the admin."
    call_command("verify_audit")


def test_it_refuses_to_move_a_probe_to_another_finding_with_the_models_message(
    admin, people, probe, finding
):
    other = type(finding).objects.create(
        title="Another finding", ml_model=finding.ml_model, reporter=people["contributor"]
    )
    before = events_of(probe).count()

    response = edit_in_admin(admin, probe, finding=str(other.pk))

    assert response.status_code == 200
    assert "A probe cannot move to another finding." in str(
        response.context["adminform"].form.errors
    )
    probe.refresh_from_db()
    assert probe.finding_id == finding.pk
    assert events_of(probe).count() == before


def test_it_never_switches_a_probe_off_in_the_admin(admin, probe):
    assert "active" not in admin.get(change_page(probe)).context["adminform"].form.fields

    edit_in_admin(admin, probe, active="")

    probe.refresh_from_db()
    assert probe.active is True


def test_a_probe_added_in_the_admin_starts_its_history_as_in_the_app(
    admin, people, finding, dataset, version
):
    page = admin.get(add_page(Probe))
    assert page.status_code == 200
    assert "active" not in page.context["adminform"].form.fields

    response = admin.post(
        add_page(Probe),
        {
            "_save": "Save",
            "finding": finding.pk,
            "dataset": dataset.pk,
            "kind": "slice_error_rate",
            "slice": '[{"feature": "x1", "op": ">", "value": 0.5}]',
            "params": "{}",
            "comparator": "<=",
            "threshold": "0.3",
            "tolerance": "0",
            "min_support": "30",
            "decide": "point",
        },
    )

    assert response.status_code == 302
    probe = Probe.objects.get(threshold=0.3)
    assert probe.created_by == people["admin"]
    assert probe.runs.filter(model_version=version).exists()
    assert events_of(probe).filter(verb=AuditEvent.Verb.CREATE, actor=people["admin"]).exists()


# --- Remediation actions ----------------------------------------------------------------


def test_it_does_not_move_an_action_status_in_the_admin(admin, action):
    assert "status" not in admin.get(change_page(action)).context["adminform"].form.fields

    response = edit_in_admin(admin, action, status="verified")

    assert response.status_code == 302
    action.refresh_from_db()
    assert action.status == "proposed"
    assert not events_of(action).filter(verb=AuditEvent.Verb.TRANSITION).exists()


def test_it_keeps_a_verified_actions_owner(admin, people, verified_action):
    page = admin.get(change_page(verified_action))
    assert set(page.context["adminform"].form.fields) == {"description"}
    before = events_of(verified_action).count()

    edit_in_admin(admin, verified_action, owner=str(people["reviewer"].pk), title="Renamed")

    verified_action.refresh_from_db()
    assert verified_action.owner == people["contributor"]
    assert verified_action.title == "Retrain with more young applicants"
    assert verified_action.status == "verified"
    assert events_of(verified_action).count() == before


def test_it_edits_a_verified_actions_description_with_an_audit_event(
    admin, people, verified_action
):
    response = edit_in_admin(admin, verified_action, description="Held on v1 and v2.")

    assert response.status_code == 302
    verified_action.refresh_from_db()
    assert verified_action.description == "Held on v1 and v2."
    event = events_of(verified_action).latest("pk")
    assert event.actor == people["admin"]
    assert event.verb == AuditEvent.Verb.UPDATE
    call_command("verify_audit")


def test_it_refuses_an_owner_without_a_role_with_the_models_message(admin, people, action):
    before = events_of(action).count()

    response = edit_in_admin(admin, action, owner=str(people["nobody"].pk))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "owner" in errors
    assert "nobody has no role" in str(errors["owner"])
    action.refresh_from_db()
    assert action.owner == people["contributor"]
    assert events_of(action).count() == before


def test_it_reassigns_an_action_through_its_edit(admin, people, action):
    response = edit_in_admin(admin, action, owner=str(people["reviewer"].pk))

    assert response.status_code == 302
    action.refresh_from_db()
    assert action.owner == people["reviewer"]
    event = events_of(action).latest("pk")
    assert event.actor == people["admin"]
    assert event.note == "Edited in the admin."
    call_command("verify_audit")


def test_it_proposes_a_new_action_as_the_app_does(admin, people, finding):
    page = admin.get(add_page(RemediationAction))
    assert "status" not in page.context["adminform"].form.fields

    response = admin.post(
        add_page(RemediationAction),
        {
            "_save": "Save",
            "finding": finding.pk,
            "kind": "relabeling",
            "title": "Relabel the young applicants",
            "status": "verified",
        },
    )

    assert response.status_code == 302
    created = RemediationAction.objects.get(title="Relabel the young applicants")
    assert created.status == "proposed"
    assert created.created_by == people["admin"]
    assert events_of(created).filter(verb=AuditEvent.Verb.CREATE).exists()


def test_it_refuses_a_new_action_for_someone_without_a_role(admin, people, finding):
    response = admin.post(
        add_page(RemediationAction),
        {
            "_save": "Save",
            "finding": finding.pk,
            "kind": "relabeling",
            "title": "Relabel the young applicants",
            "owner": people["nobody"].pk,
        },
    )

    assert response.status_code == 200
    assert "owner" in response.context["adminform"].form.errors
    assert not RemediationAction.objects.filter(title="Relabel the young applicants").exists()


# --- Findings ---------------------------------------------------------------------------


def test_it_does_not_move_a_finding_status_in_the_admin(admin, finding):
    form = admin.get(change_page(finding)).context["adminform"].form
    assert "status" not in form.fields
    assert "accepted_until" not in form.fields

    edit_in_admin(admin, finding, status="resolved", accepted_until="2099-01-01")

    finding.refresh_from_db()
    assert finding.status == "open"
    assert finding.accepted_until is None
    assert not events_of(finding).filter(verb=AuditEvent.Verb.TRANSITION).exists()


def test_an_allowed_finding_edit_is_audited_and_the_chain_holds(admin, people, finding):
    response = edit_in_admin(admin, finding, title="Rows with a high x1 are misjudged")

    assert response.status_code == 302
    finding.refresh_from_db()
    assert finding.title == "Rows with a high x1 are misjudged"
    event = events_of(finding).latest("pk")
    assert event.verb == AuditEvent.Verb.UPDATE
    assert event.actor == people["admin"]
    assert event.before["title"] == "Positive x1 rows are misjudged"
    assert event.after["title"] == finding.title
    call_command("verify_audit")


# --- Records the system writes -------------------------------------------------------------


def test_it_does_not_edit_a_probe_run(admin, run):
    assert admin.get(change_page(run)).status_code == 200  # shown
    response = admin.post(change_page(run), {"status": "passed", "value": "0.01", "support": "5"})

    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == "queued"
    assert run.value is None
    assert admin.get(add_page(ProbeRun)).status_code == 403


def test_it_does_not_edit_a_rerun_or_an_evaluation(admin, people, run, action, version):
    evaluation = Evaluation.objects.create(
        action=action, model_version=version, outcome="held", is_manual=True, notes="checked"
    )
    for obj, changes in (
        (run.rerun, {"trigger": "nightly"}),
        (evaluation, {"outcome": "regressed"}),
    ):
        assert admin.post(change_page(obj), changes).status_code == 403
        assert admin.get(add_page(type(obj))).status_code == 403
    evaluation.refresh_from_db()
    assert evaluation.outcome == "held"
    assert Rerun.objects.get(pk=run.rerun_id).trigger == "manual"


def test_it_does_not_edit_an_audit_event(admin, finding):
    event = events_of(finding).first()
    stored = (event.verb, event.note, event.hash)

    response = admin.post(change_page(event), {"verb": "update", "note": "rewritten"})

    assert response.status_code == 403
    event.refresh_from_db()
    assert (event.verb, event.note, event.hash) == stored
    assert admin.get(add_page(AuditEvent)).status_code == 403
    call_command("verify_audit")


# --- Deployments ------------------------------------------------------------------------


def test_a_deployment_added_in_the_admin_ends_the_one_it_replaces(admin, people, version):
    current = Deployment.record(
        model_version=version, environment="production", by=people["maintainer"]
    )

    response = admin.post(
        add_page(Deployment),
        {
            "_save": "Save",
            "model_version": version.pk,
            "environment": "production",
            "since_0": "2099-01-01",
            "since_1": "00:00:00",
            "note": "redeployed",
        },
    )

    assert response.status_code == 302
    current.refresh_from_db()
    assert current.until is not None
    latest = Deployment.objects.current().get(environment="production")
    assert latest.note == "redeployed"
    assert latest.recorded_by == people["admin"]
    assert events_of(latest).filter(verb=AuditEvent.Verb.CREATE).exists()


def test_a_deployment_that_starts_before_the_current_one_is_refused(admin, people, version):
    current = Deployment.record(
        model_version=version, environment="production", by=people["maintainer"]
    )

    response = admin.post(
        add_page(Deployment),
        {
            "_save": "Save",
            "model_version": version.pk,
            "environment": "production",
            "since_0": "2000-01-01",
            "since_1": "00:00:00",
        },
    )

    assert response.status_code == 200
    assert "cannot start earlier" in str(response.context["adminform"].form.errors["since"])
    current.refresh_from_db()
    assert current.until is None
    assert Deployment.objects.filter(environment="production").count() == 1
