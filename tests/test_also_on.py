"""A probe runs on its dataset and on its `also_on` datasets (DESIGN.md, "Probe kinds" and
"Workflows"): one run per dataset, each recording it; the latest run is per dataset; a fix
that holds on the probe's own dataset but fails on another is `narrow` and waits for a
reviewer on the board's "needs review" lane."""

import pytest
from django.core.exceptions import ValidationError

from probes.models import Probe, ProbeRun, Rerun
from registry.models import Dataset
from remediation.models import Evaluation, RemediationAction
from remediation.reports import NEEDS_REVIEW, board_lane

from .factories import api_for, client_for, csv_upload, toy_frame

HIGH_X1 = [{"feature": "x1", "op": ">", "value": 0.5}]


def upload(people, name, frame):
    return Dataset.create_from_upload(
        csv_upload(frame), name=name, target_column="y", by=people["contributor"]
    )


def flipped(seed):
    """A later window where the label turned for high x1: the model errs there."""
    frame = toy_frame(seed=seed)
    high = frame["x1"] > 0.5
    frame.loc[high, "y"] = 1 - frame.loc[high, "y"]
    return frame


@pytest.fixture
def holdout(people):
    return upload(people, "toy-holdout", toy_frame(seed=7))


@pytest.fixture
def shifted(people):
    return upload(people, "toy-later-window", flipped(seed=8))


def new_probe(finding, dataset, people, also_on=()):
    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind="slice_error_rate",
        slice=HIGH_X1,
        threshold=0.2,
        min_support=5,
        created_by=people["contributor"],
    )
    probe.full_clean()
    probe.check_also_on(list(also_on))
    probe.save()
    probe.also_on.set(also_on)
    return probe


# ----------------------------------------------------------------------------- saving


@pytest.mark.django_db
def test_also_on_datasets_the_probe_could_never_run_on_are_refused_by_name(
    people, finding, dataset, holdout
):
    other_schema = upload(people, "toy-with-x3", toy_frame(seed=2).assign(x3=1.0))
    no_color = upload(people, "toy-without-color", toy_frame(seed=3).drop(columns="color"))
    probe = Probe(finding=finding, dataset=dataset, kind="slice_error_rate", threshold=0.2)
    cases = [
        ([dataset], "the probe's own dataset"),
        ([other_schema], "also has x3"),
        ([no_color], "color"),
    ]
    for also_on, message in cases:
        with pytest.raises(ValidationError) as refused:
            probe.check_also_on(also_on)
        assert list(refused.value.message_dict) == ["also_on"], also_on
        assert message in " ".join(refused.value.message_dict["also_on"]), also_on
    probe.check_also_on([holdout])  # same schema, one of the ML model's datasets


@pytest.mark.django_db
def test_the_api_takes_also_on_and_refuses_a_bad_one_at_the_field_saving_nothing(
    people, finding, dataset, holdout
):
    api = api_for(people["contributor"])
    other_schema = upload(people, "toy-with-x3", toy_frame(seed=2).assign(x3=1.0))
    body = {
        "finding": finding.pk,
        "dataset": dataset.pk,
        "kind": "slice_error_rate",
        "slice_text": "x1 > 0.5",
        "threshold": 0.2,
    }
    refused = api.post("/api/v1/probes/", {**body, "also_on": [other_schema.pk]}, format="json")
    assert refused.status_code == 400, refused.content
    assert "also_on" in refused.json() and "x3" in refused.json()["also_on"][0]
    assert not Probe.objects.exists()

    made = api.post("/api/v1/probes/", {**body, "also_on": [holdout.pk]}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["also_on"] == [holdout.pk]
    probe = Probe.objects.get()
    # Its first runs: one per dataset, each naming it.
    runs = ProbeRun.objects.filter(probe=probe)
    assert sorted(runs.values_list("dataset_id", flat=True)) == sorted([dataset.pk, holdout.pk])
    listed = api.get(f"/api/v1/probe-runs/?probe={probe.pk}").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert {row["dataset"] for row in rows} == {dataset.pk, holdout.pk}


@pytest.mark.django_db
def test_the_probe_form_offers_and_checks_also_on(people, finding, dataset, holdout):
    client = client_for(people["contributor"])
    other_schema = upload(people, "toy-with-x3", toy_frame(seed=2).assign(x3=1.0))
    url = f"/findings/{finding.pk}/probes/new/"
    page = client.get(url).content.decode()
    assert "Also run on" in page and "toy-holdout" in page
    form = {
        "kind": "slice_error_rate",
        "dataset": dataset.pk,
        "slice": "x1 > 0.5",
        "params": "",
        "comparator": "<=",
        "threshold": "0.2",
        "tolerance": "0",
        "min_support": "30",
        "decide": "point",
        "active": "on",
    }
    refused = client.post(url, {**form, "also_on": [other_schema.pk]})
    assert refused.status_code == 200
    assert "also has x3" in refused.content.decode()
    assert not Probe.objects.exists()
    saved = client.post(url, {**form, "also_on": [holdout.pk]})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert list(Probe.objects.get().also_on.all()) == [holdout]


@pytest.mark.django_db
def test_also_on_is_part_of_the_definition_and_changes_by_revision(
    people, finding, dataset, holdout, shifted, version, django_capture_on_commit_callbacks
):
    probe = new_probe(finding, dataset, people, [holdout])
    with django_capture_on_commit_callbacks(execute=True):
        Rerun.queue(version, trigger="manual", probes=[probe])
    api = api_for(people["contributor"])
    edit = api.patch(f"/api/v1/probes/{probe.pk}/", {"also_on": [shifted.pk]}, format="json")
    assert edit.status_code == 409 and "revise" in edit.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        revised = api.post(
            f"/api/v1/probes/{probe.pk}/revise/",
            {"also_on": [holdout.pk, shifted.pk], "note": "a later window too"},
            format="json",
        )
    assert revised.status_code == 201, revised.content
    new = Probe.objects.get(supersedes=probe)
    assert sorted(new.also_on.values_list("pk", flat=True)) == sorted([holdout.pk, shifted.pk])
    assert list(probe.also_on.all()) == [holdout]  # the retired one keeps its definition
    run = ProbeRun.objects.filter(probe=new, dataset=shifted).first()
    assert run is not None and run.lineage["dataset"] == shifted.pk
    assert run.lineage["probe"]["also_on"] == sorted([holdout.pk, shifted.pk])


# ------------------------------------------------------------------------ runs, latest


@pytest.mark.django_db
def test_latest_runs_are_per_dataset_and_the_own_dataset_names_the_run(
    people, finding, dataset, shifted, version, django_capture_on_commit_callbacks
):
    probe = new_probe(finding, dataset, people, [shifted])
    with django_capture_on_commit_callbacks(execute=True):
        Rerun.queue(version, trigger="manual", probes=[probe])
        Rerun.queue(version, trigger="manual", probes=[probe])
    assert ProbeRun.objects.filter(probe=probe).count() == 4
    own = ProbeRun.objects.latest_runs(probes=[probe])
    assert [(r.dataset_id, r.status) for r in own] == [(dataset.pk, "passed")]
    everywhere = ProbeRun.objects.latest_runs(probes=[probe], everywhere=True)
    assert sorted(r.dataset_id for r in everywhere) == sorted([dataset.pk, shifted.pk])
    newest = ProbeRun.objects.filter(probe=probe).order_by("-finished_at", "-pk")
    assert {r.pk for r in everywhere} == {
        newest.filter(dataset=dataset)[0].pk,
        newest.filter(dataset=shifted)[0].pk,
    }
    also = ProbeRun.objects.also_matrix([probe], [version])
    (run,) = also[(probe.pk, version.pk)]
    assert run.dataset == shifted and run.status == "failed"


# -------------------------------------------------------------------------- the verdict


def implement(action_owner, finding, version):
    action = RemediationAction.objects.create(
        finding=finding, kind="retrain", title="Retrain on fresh labels", owner=action_owner
    )
    RemediationAction.objects.filter(pk=action.pk).update(status="in_progress")
    action.refresh_from_db()
    action.transition_to("implemented", by=action_owner, fixed_in_version=version)
    action.refresh_from_db()
    return action


@pytest.mark.django_db(transaction=True)
def test_a_fix_that_fails_only_on_another_dataset_is_narrow_and_needs_review(
    people, finding, dataset, holdout, shifted, version
):
    new_probe(finding, dataset, people, [holdout, shifted])
    action = implement(people["contributor"], finding, version)
    evaluation = Evaluation.objects.get(action=action, model_version=version, is_manual=False)
    assert evaluation.outcome == "narrow", evaluation.details
    assert "toy-later-window" in evaluation.details["reason"]
    assert action.status == "implemented"  # a reviewer decides
    assert board_lane(action, evaluation, set()) == NEEDS_REVIEW
    judged = set(evaluation.probe_runs.values_list("dataset_id", flat=True))
    assert judged == {dataset.pk, holdout.pk, shifted.pk}
    reviewer = client_for(people["reviewer"])
    board = reviewer.get("/review/").content.decode()
    assert "toy-later-window" in board  # the needs-review card gives the reason
    # The finding page: a row per also_on dataset under the probe's own, each run linked.
    probe = finding.probes.get()
    failing = ProbeRun.objects.get(probe=probe, dataset=shifted, model_version=version)
    page = reviewer.get(finding.get_absolute_url()).content.decode()
    row = page.split(f'id="probe-{probe.pk}-on-{shifted.pk}"')[1].split("</tr>")[0]
    assert "toy-later-window" in row and "run-failed" in row and f"run #{failing.pk}" in row
    assert f'id="probe-{probe.pk}-on-{holdout.pk}"' in page
    # The probe page: its latest run on every dataset, per version.
    page = reviewer.get(probe.get_absolute_url()).content.decode()
    table = page.split('id="everywhere"')[1].split("</table>")[0]
    assert "toy-holdout" in table and "toy-later-window" in table
    assert f'href="#run-{failing.pk}"' in table and "run-failed" in table
    assert "Also runs on" in page


@pytest.mark.django_db(transaction=True)
def test_a_fix_that_holds_on_every_dataset_is_held(people, finding, dataset, holdout, version):
    new_probe(finding, dataset, people, [holdout])
    action = implement(people["contributor"], finding, version)
    evaluation = Evaluation.objects.get(action=action, model_version=version, is_manual=False)
    assert evaluation.outcome == "held", evaluation.details
    assert "on every dataset" in evaluation.details["reason"]
    assert action.status == "verified"


@pytest.mark.django_db(transaction=True)
def test_a_failure_on_the_own_dataset_is_a_regression_whatever_the_others_say(
    people, ml_model, finding, holdout, shifted
):
    # The probe's own dataset is the shifted one: the fix fails where it was designed.
    from .test_remediation import register

    bad = register(ml_model, people["maintainer"], "2", flip_above=0.5)
    new_probe(finding, holdout, people, [shifted])
    action = implement(people["contributor"], finding, bad)
    evaluation = Evaluation.objects.get(action=action, model_version=bad, is_manual=False)
    assert evaluation.outcome == "regressed"
    assert action.status == "ineffective"


@pytest.mark.django_db
def test_the_verdict_reads_also_on_runs_that_did_not_pass_as_inconclusive(
    people, finding, dataset, holdout, version, django_capture_on_commit_callbacks
):
    from remediation import followup

    probe = new_probe(finding, dataset, people, [holdout])
    with django_capture_on_commit_callbacks(execute=True):
        Rerun.queue(version, trigger="manual", probes=[probe])
    own = followup.standing_on(finding, version)
    elsewhere = followup.standing_elsewhere(finding, version)
    assert [r.dataset_id for r in elsewhere] == [holdout.pk]
    assert followup.verdict(finding, own, {}, elsewhere=elsewhere)[0] == "held"
    # No run on the holdout (yet): not held.
    outcome, reason = followup.verdict(finding, own, {}, elsewhere=[])
    assert outcome == "inconclusive" and "no run" in reason
    ProbeRun.objects.filter(pk=elsewhere[0].pk).update(status="error")
    elsewhere = followup.standing_elsewhere(finding, version)
    outcome, reason = followup.verdict(finding, own, {}, elsewhere=elsewhere)
    assert outcome == "inconclusive" and "toy-holdout" in reason
