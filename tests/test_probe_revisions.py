"""A probe's definition is immutable once it has a run: it changes by a revision, which
supersedes it, and a probe leaves by being retired (DESIGN.md, "Probe kinds": "A probe's
definition (finding, dataset, also_on, kind, slice, params, comparator, threshold,
tolerance, min_support, decide) is immutable once it has a run: change it with `revise` (a
new probe that `supersedes` the old, which is retired with its runs kept); `retire`
deactivates it with a note. On a finding that is resolved, regressed or an accepted risk,
revising or retiring needs the reviewer role."; "Public API": "a PATCH of a definition field
on a probe with runs -> 409 naming `revise`").

The cast: bob (contributor, logs the probe), rita (reviewer), alice (viewer), admin.
Every refusal is checked for what it leaves: the probe as it was and no audit event.
"""

import pytest

from catalog.models import Finding
from core.models import AuditEvent
from core.workflow import TransitionConflict, TransitionError, TransitionForbidden
from probes.models import Probe, ProbeRun, Rerun
from registry.models import Dataset

from .factories import api_for, client_for, csv_upload, toy_frame

pytestmark = pytest.mark.django_db

SETTLED = ["resolved", "regressed", "accepted_risk"]
UNSETTLED = ["open", "remediating"]


# --- Helpers --------------------------------------------------------------------------------


def with_a_run(probe, version, *, status="queued", value=None):
    """The probe with one run on `version` (queued unless told)."""
    rerun = Rerun.queue(version, trigger="manual", probes=[probe], dispatch=False)
    if status != "queued":
        ProbeRun.objects.filter(rerun=rerun).update(
            status=status,
            value=value,
            passed=status == "passed",
            support=120,
            finished_at=rerun.created_at,
        )
    return ProbeRun.objects.get(rerun=rerun)


def settle(finding, status):
    Finding.objects.filter(pk=finding.pk).update(status=status)
    finding.refresh_from_db()


def row(probe):
    fresh = Probe.objects.get(pk=probe.pk)
    return {f.attname: getattr(fresh, f.attname) for f in Probe._meta.concrete_fields}


def events(obj):
    return AuditEvent.objects.for_object(obj).count()


def assert_unchanged(probe, before, count):
    assert row(probe) == before
    assert events(probe) == count
    assert Probe.objects.filter(supersedes=probe).count() == 0


@pytest.fixture
def other_dataset(people):
    return Dataset.create_from_upload(
        csv_upload(toy_frame(seed=1)), name="toy-later", target_column="y", by=people["contributor"]
    )


@pytest.fixture
def other_finding(people, ml_model, version, dataset):
    return Finding.objects.create(
        title="Another problem",
        ml_model=ml_model,
        model_version=version,
        dataset=dataset,
        reporter=people["contributor"],
    )


# --- PATCH and PUT: "a PATCH of a definition field on a probe with runs -> 409 naming revise"


def _other_value(name, other_dataset, other_finding):
    return {
        "finding": other_finding.pk,
        "dataset": other_dataset.pk,
        "kind": "margin_density",
        "slice": [{"feature": "x1", "op": ">", "value": 0.9}],
        "params": {"margin": 0.3},
        "comparator": ">=",
        "threshold": 0.35,
        "tolerance": 0.05,
        "min_support": 10,
    }[name]


DEFINITION = [
    "finding",
    "dataset",
    "kind",
    "slice",
    "params",
    "comparator",
    "threshold",
    "tolerance",
    "min_support",
]


@pytest.mark.parametrize("name", DEFINITION, ids=[f"patch:{n}" for n in DEFINITION])
def test_a_patch_of_a_definition_field_on_a_probe_with_runs_is_a_conflict_naming_revise(
    name, people, probe, version, other_dataset, other_finding
):
    with_a_run(probe, version)
    before, count = row(probe), events(probe)
    response = api_for(people["contributor"]).patch(
        f"/api/v1/probes/{probe.pk}/",
        {name: _other_value(name, other_dataset, other_finding)},
        format="json",
    )
    assert response.status_code == 409, response.content
    assert "revise" in response.json()["detail"]
    assert_unchanged(probe, before, count)


def test_a_put_that_changes_the_definition_of_a_probe_with_runs_is_a_conflict(
    people, probe, version
):
    with_a_run(probe, version)
    api = api_for(people["contributor"])
    body = api.get(f"/api/v1/probes/{probe.pk}/").json()
    before, count = row(probe), events(probe)
    response = api.put(f"/api/v1/probes/{probe.pk}/", {**body, "threshold": 0.5}, format="json")
    assert response.status_code == 409
    assert "revise" in response.json()["detail"]
    assert_unchanged(probe, before, count)


def test_a_put_that_changes_nothing_is_answered_with_the_probe(people, probe, version):
    with_a_run(probe, version)
    api = api_for(people["contributor"])
    body = api.get(f"/api/v1/probes/{probe.pk}/").json()
    response = api.put(f"/api/v1/probes/{probe.pk}/", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["threshold"] == probe.threshold


def test_a_probe_without_runs_may_still_be_corrected(people, probe):
    assert not probe.runs.exists()
    response = api_for(people["contributor"]).patch(
        f"/api/v1/probes/{probe.pk}/", {"threshold": 0.3}, format="json"
    )
    assert response.status_code == 200, response.content
    probe.refresh_from_db()
    assert probe.threshold == 0.3
    event = AuditEvent.objects.for_object(probe).latest("pk")
    assert event.verb == "update" and event.actor == people["contributor"]


def test_a_probe_without_runs_never_moves_to_another_finding(people, probe, other_finding):
    before, count = row(probe), events(probe)
    response = api_for(people["contributor"]).patch(
        f"/api/v1/probes/{probe.pk}/", {"finding": other_finding.pk}, format="json"
    )
    assert response.status_code == 400
    assert_unchanged(probe, before, count)


def test_a_patch_does_not_switch_a_probe_off_it_names_retire(people, probe, version):
    with_a_run(probe, version)
    before, count = row(probe), events(probe)
    response = api_for(people["contributor"]).patch(
        f"/api/v1/probes/{probe.pk}/", {"active": False}, format="json"
    )
    assert response.status_code == 409
    assert "retire" in response.json()["detail"]
    assert_unchanged(probe, before, count)


def test_a_patch_does_not_switch_off_a_probe_without_runs_either(people, probe):
    response = api_for(people["contributor"]).patch(
        f"/api/v1/probes/{probe.pk}/", {"active": False}, format="json"
    )
    assert response.status_code == 409
    probe.refresh_from_db()
    assert probe.active


# --- Revise: "a new probe that supersedes the old, which is retired with its runs kept" ----


def test_a_revision_supersedes_the_probe_which_is_retired_with_its_runs(people, probe, version):
    run = with_a_run(probe, version, status="failed", value=0.4)
    response = api_for(people["contributor"]).post(
        f"/api/v1/probes/{probe.pk}/revise/",
        {"threshold": 0.45, "note": "0.2 was stricter than the policy asks"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["supersedes"] == probe.pk and body["active"] is True
    assert body["threshold"] == 0.45
    revision = Probe.objects.get(pk=body["id"])
    # The rest of the definition is the old probe's.
    for name in (
        "finding_id",
        "dataset_id",
        "kind",
        "slice",
        "params",
        "comparator",
        "tolerance",
        "min_support",
    ):
        assert getattr(revision, name) == getattr(probe, name), name
    assert revision.created_by == people["contributor"]
    probe.refresh_from_db()
    assert probe.active is False
    assert probe.retired_by == people["contributor"] and probe.retired_at is not None
    assert f"#{revision.pk}" in probe.retire_note
    assert list(probe.runs.all()) == [run]
    run.refresh_from_db()
    assert (run.status, run.value) == ("failed", 0.4)
    assert probe.superseded_by == revision


def test_a_revision_is_two_audit_events_with_the_note(people, probe, version):
    with_a_run(probe, version)
    before = events(probe)
    body = (
        api_for(people["contributor"])
        .post(
            f"/api/v1/probes/{probe.pk}/revise/",
            {
                "kind": "margin_density",
                "params": {"margin": 0.2},
                "threshold": 0.5,
                "note": "low confidence is the better signal",
            },
            format="json",
        )
        .json()
    )
    revision = Probe.objects.get(pk=body["id"])
    retired = (
        AuditEvent.objects.for_object(probe)
        .exclude(pk__in=AuditEvent.objects.for_object(probe).order_by("pk")[:before])
        .get()
    )
    assert (retired.verb, retired.from_status, retired.to_status) == (
        "transition",
        "active",
        "retired",
    )
    assert retired.actor == people["contributor"]
    assert "low confidence is the better signal" in retired.note
    assert retired.before["active"] is True and retired.after["active"] is False
    created = AuditEvent.objects.for_object(revision).get()
    assert created.verb == "create" and created.actor == people["contributor"]
    assert f"#{probe.pk}" in created.note and "low confidence" in created.note


def test_a_revision_starts_its_own_history(people, probe, version):
    with_a_run(probe, version)
    body = (
        api_for(people["contributor"])
        .post(
            f"/api/v1/probes/{probe.pk}/revise/",
            {"threshold": 0.3, "note": "looser"},
            format="json",
        )
        .json()
    )
    assert ProbeRun.objects.filter(probe_id=body["id"], model_version=version).exists()


def test_a_revision_may_move_to_another_dataset_but_not_to_another_finding(
    people, probe, version, other_dataset, other_finding
):
    with_a_run(probe, version)
    api = api_for(people["contributor"])
    before, count = row(probe), events(probe)
    response = api.post(
        f"/api/v1/probes/{probe.pk}/revise/",
        {"finding": other_finding.pk, "note": "belongs elsewhere"},
        format="json",
    )
    assert response.status_code == 400
    assert_unchanged(probe, before, count)
    response = api.post(
        f"/api/v1/probes/{probe.pk}/revise/",
        {"dataset": other_dataset.pk, "note": "the newer sample"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["dataset"] == other_dataset.pk


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({"threshold": 0.3}, 400, id="without-a-note"),
        pytest.param({"threshold": 0.3, "note": "  "}, 400, id="with-a-blank-note"),
        pytest.param({"note": "nothing really"}, 400, id="changing-nothing"),
        pytest.param(
            {"threshold": 0.2, "note": "the same value"}, 400, id="changing-nothing-by-value"
        ),
        pytest.param({"tolerance": -0.1, "note": "negative"}, 400, id="with-a-negative-tolerance"),
        pytest.param(
            {"slice": [{"feature": "salary", "op": ">", "value": 1}], "note": "x"},
            400,
            id="with-a-column-the-dataset-lacks",
        ),
    ],
)
def test_a_bad_revision_is_refused_and_changes_nothing(body, code, people, probe, version):
    with_a_run(probe, version)
    before, count = row(probe), events(probe)
    response = api_for(people["contributor"]).post(
        f"/api/v1/probes/{probe.pk}/revise/", body, format="json"
    )
    assert response.status_code == code, response.content
    assert_unchanged(probe, before, count)


def test_a_retired_probe_is_not_revised_again(people, probe, version):
    with_a_run(probe, version)
    api = api_for(people["contributor"])
    first = api.post(
        f"/api/v1/probes/{probe.pk}/revise/", {"threshold": 0.3, "note": "a"}, format="json"
    ).json()
    before, count = row(probe), events(probe)
    response = api.post(
        f"/api/v1/probes/{probe.pk}/revise/", {"threshold": 0.4, "note": "b"}, format="json"
    )
    assert response.status_code == 409
    assert f"#{first['id']}" in response.json()["detail"]
    assert row(probe) == before and events(probe) == count
    assert Probe.objects.filter(supersedes=probe).count() == 1


# --- Retire: "deactivates it with a note" ---------------------------------------------------


def test_retiring_deactivates_the_probe_with_a_note_and_keeps_its_runs(people, probe, version):
    run = with_a_run(probe, version, status="passed", value=0.1)
    response = api_for(people["contributor"]).post(
        f"/api/v1/probes/{probe.pk}/retire/", {"note": "the feature was removed"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["active"] is False
    probe.refresh_from_db()
    assert probe.active is False and probe.retire_note == "the feature was removed"
    assert probe.retired_by == people["contributor"] and probe.retired_at is not None
    assert list(probe.runs.all()) == [run]
    event = AuditEvent.objects.for_object(probe).latest("pk")
    assert (event.verb, event.from_status, event.to_status, event.note, event.actor) == (
        "transition",
        "active",
        "retired",
        "the feature was removed",
        people["contributor"],
    )


def test_a_retired_probe_no_longer_runs_on_new_versions(people, probe, version):
    probe.retire(by=people["contributor"], note="obsolete")
    rerun = Rerun.queue(version, trigger="manual", dispatch=False)
    assert not rerun.runs.filter(probe=probe).exists()


@pytest.mark.parametrize("body", [{}, {"note": ""}], ids=["no-note", "blank-note"])
def test_retiring_needs_a_note(body, people, probe):
    before, count = row(probe), events(probe)
    response = api_for(people["contributor"]).post(
        f"/api/v1/probes/{probe.pk}/retire/", body, format="json"
    )
    assert response.status_code == 400
    assert_unchanged(probe, before, count)


def test_retiring_twice_is_a_conflict(people, probe):
    api = api_for(people["contributor"])
    assert (
        api.post(f"/api/v1/probes/{probe.pk}/retire/", {"note": "a"}, format="json").status_code
        == 200
    )
    before, count = row(probe), events(probe)
    response = api.post(f"/api/v1/probes/{probe.pk}/retire/", {"note": "b"}, format="json")
    assert response.status_code == 409
    assert row(probe) == before and events(probe) == count


# --- Who: "On a finding that is resolved, regressed or an accepted risk, revising or retiring
# needs the reviewer role" ------------------------------------------------------------------

# (finding status, person) -> may revise and retire. Written out from DESIGN.md: a
# contributor (who logs probes) changes the probes of a finding still being worked on; once
# the finding is resolved, regressed or an accepted risk, only a reviewer (or a superuser).
WHO_MAY = {
    **{(status, "contributor"): True for status in UNSETTLED},
    **{(status, "contributor"): False for status in SETTLED},
    **{(status, "reviewer"): True for status in UNSETTLED + SETTLED},
    **{(status, "superuser"): True for status in UNSETTLED + SETTLED},
    **{(status, "viewer"): False for status in UNSETTLED + SETTLED},
    **{(status, "maintainer"): False for status in UNSETTLED + SETTLED},
}


def _person(people, who):
    return people["admin"] if who == "superuser" else people[who]


@pytest.mark.parametrize(
    ("status", "who", "may"),
    [
        pytest.param(status, who, may, id=f"revise:{status}:{who}")
        for (status, who), may in WHO_MAY.items()
    ],
)
def test_who_may_revise(status, who, may, people, finding, probe, version):
    with_a_run(probe, version)
    settle(finding, status)
    before, count = row(probe), events(probe)
    response = api_for(_person(people, who)).post(
        f"/api/v1/probes/{probe.pk}/revise/", {"threshold": 0.3, "note": "looser"}, format="json"
    )
    if may:
        assert response.status_code == 201, response.content
        assert Probe.objects.get(pk=response.json()["id"]).supersedes == probe
    else:
        assert response.status_code == 403, response.content
        assert_unchanged(probe, before, count)


@pytest.mark.parametrize(
    ("status", "who", "may"),
    [
        pytest.param(status, who, may, id=f"retire:{status}:{who}")
        for (status, who), may in WHO_MAY.items()
    ],
)
def test_who_may_retire(status, who, may, people, finding, probe, version):
    with_a_run(probe, version)
    settle(finding, status)
    before, count = row(probe), events(probe)
    response = api_for(_person(people, who)).post(
        f"/api/v1/probes/{probe.pk}/retire/", {"note": "obsolete"}, format="json"
    )
    if may:
        assert response.status_code == 200, response.content
        probe.refresh_from_db()
        assert not probe.active
    else:
        assert response.status_code == 403, response.content
        assert_unchanged(probe, before, count)


def test_a_refused_revision_says_the_reviewer_role_is_needed(people, finding, probe):
    settle(finding, "resolved")
    with pytest.raises(TransitionForbidden, match="reviewer role"):
        probe.revise({"threshold": 0.3}, by=people["contributor"], note="looser")


def test_the_model_refuses_what_the_api_refuses(people, probe, version):
    with_a_run(probe, version)
    with pytest.raises(TransitionConflict, match="revise"):
        probe.edit({"threshold": 0.9}, by=people["contributor"])
    with pytest.raises(TransitionConflict, match="retire"):
        probe.edit({"active": False}, by=people["contributor"])
    with pytest.raises(TransitionError, match="note"):
        probe.retire(by=people["contributor"], note="")


# --- Negative tolerance ---------------------------------------------------------------------


def test_a_negative_tolerance_is_refused_when_a_probe_is_logged(people, finding, dataset):
    response = api_for(people["contributor"]).post(
        "/api/v1/probes/",
        {
            "finding": finding.pk,
            "dataset": dataset.pk,
            "kind": "slice_error_rate",
            "comparator": "no_worse_than_baseline",
            "tolerance": -0.01,
        },
        format="json",
    )
    assert response.status_code == 400
    assert "tolerance" in response.json()
    assert not Probe.objects.exists()


def test_a_negative_tolerance_is_refused_by_the_web_form(people, finding, dataset):
    response = client_for(people["contributor"]).post(
        f"/findings/{finding.pk}/probes/new/",
        {
            "kind": "slice_error_rate",
            "dataset": dataset.pk,
            "comparator": "<=",
            "threshold": "0.2",
            "min_support": "30",
            "tolerance": "-0.5",
            "active": "on",
            "slice": "[]",
            "params": "{}",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["tolerance"]
    assert not Probe.objects.exists()


# --- The web UI: Revise and Retire on the finding's probes table ----------------------------


def test_the_revise_page_is_prefilled_with_the_definition(people, probe, version):
    with_a_run(probe, version)
    page = client_for(people["contributor"]).get(f"/probes/{probe.pk}/revise/")
    assert page.status_code == 200
    form = page.context["form"]
    assert form["threshold"].value() == 0.2
    assert form["kind"].value() == "slice_error_rate"
    assert form["dataset"].value() == probe.dataset_id
    assert "x1" in form["slice"].value()
    assert "Revise probe #" in page.content.decode()


def test_a_revision_through_the_web(people, finding, probe, version, dataset):
    with_a_run(probe, version)
    response = client_for(people["contributor"]).post(
        f"/probes/{probe.pk}/revise/",
        {
            "kind": "slice_error_rate",
            "dataset": dataset.pk,
            "comparator": "<=",
            "threshold": "0.35",
            "min_support": "30",
            "tolerance": "0",
            "slice": '[{"feature": "x1", "op": ">", "value": 0.5}]',
            "params": "{}",
            "note": "the policy allows 35%",
        },
    )
    assert response.status_code == 302
    revision = Probe.objects.get(supersedes=probe)
    assert revision.threshold == 0.35 and revision.active
    probe.refresh_from_db()
    assert not probe.active and "the policy allows 35%" in probe.retire_note


def test_a_web_revision_without_a_note_is_refused(people, probe, version, dataset):
    with_a_run(probe, version)
    before, count = row(probe), events(probe)
    response = client_for(people["contributor"]).post(
        f"/probes/{probe.pk}/revise/",
        {
            "kind": "slice_error_rate",
            "dataset": dataset.pk,
            "comparator": "<=",
            "threshold": "0.35",
            "min_support": "30",
            "tolerance": "0",
            "slice": "[]",
            "params": "{}",
            "note": "",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["note"]
    assert_unchanged(probe, before, count)


def test_retiring_through_the_web(people, probe, finding):
    response = client_for(people["contributor"]).post(
        f"/probes/{probe.pk}/retire/", {"note": "superseded by a scan"}, follow=True
    )
    assert f"Probe #{probe.pk} is retired" in response.content.decode()
    probe.refresh_from_db()
    assert not probe.active and probe.retire_note == "superseded by a scan"


@pytest.mark.parametrize(
    "url", ["/probes/{pk}/retire/", "/probes/{pk}/revise/"], ids=["retire", "revise"]
)
def test_a_contributor_is_refused_on_a_resolved_finding_in_the_web(
    url, people, finding, probe, version, dataset
):
    with_a_run(probe, version)
    settle(finding, "resolved")
    before, count = row(probe), events(probe)
    response = client_for(people["contributor"]).post(
        url.format(pk=probe.pk),
        {
            "note": "x",
            "kind": "slice_error_rate",
            "dataset": dataset.pk,
            "comparator": "<=",
            "threshold": "0.35",
            "min_support": "30",
            "tolerance": "0",
            "slice": "[]",
            "params": "{}",
        },
        follow=True,
    )
    assert "needs the reviewer role" in response.content.decode()
    assert_unchanged(probe, before, count)


def _probes_section(page):
    return page.split('id="probes"', 1)[1].split("</section>", 1)[0]


@pytest.mark.parametrize(
    ("status", "who", "offered"),
    [
        pytest.param("open", "contributor", True, id="buttons:open:contributor"),
        pytest.param("open", "viewer", False, id="buttons:open:viewer"),
        pytest.param("resolved", "contributor", False, id="buttons:resolved:contributor"),
        pytest.param("resolved", "reviewer", True, id="buttons:resolved:reviewer"),
        pytest.param("accepted_risk", "superuser", True, id="buttons:accepted_risk:superuser"),
    ],
)
def test_revise_and_retire_are_offered_to_who_may(
    status, who, offered, people, finding, probe, version
):
    with_a_run(probe, version)
    settle(finding, status)
    page = client_for(_person(people, who)).get(finding.get_absolute_url()).content.decode()
    section = _probes_section(page)
    assert (f"/probes/{probe.pk}/revise/" in section) is offered
    assert (f"/probes/{probe.pk}/retire/" in section) is offered


def test_a_retired_probe_keeps_its_runs_on_the_finding_page(people, finding, probe, version):
    with_a_run(probe, version, status="failed", value=0.4321)
    revision = probe.revise({"threshold": 0.5}, by=people["contributor"], note="looser")
    section = _probes_section(
        client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    )
    assert f'id="probe-{probe.pk}"' in section and f'id="probe-{revision.pk}"' in section
    retired_row = section.split(f'id="probe-{probe.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "retired" in retired_row and "superseded by" in retired_row
    assert "0.4321" in retired_row and "failed" in retired_row
    # No Revise or Retire for a retired probe, even for who may change probes.
    section = _probes_section(
        client_for(people["contributor"]).get(finding.get_absolute_url()).content.decode()
    )
    assert f"/probes/{probe.pk}/revise/" not in section
    assert f"/probes/{revision.pk}/revise/" in section
