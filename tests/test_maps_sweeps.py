"""Boundary maps across versions, stress sweeps and the moved-problem check of a fix."""

import numpy as np
import pytest

from catalog.models import Finding
from introspection.models import BoundaryMap, StressSweep
from introspection.tasks import check_moved_problem
from probes.models import Probe, ProbeRun
from registry.models import ModelVersion
from remediation.models import Evaluation, RemediationAction

from .factories import client_for, csv_upload, skops_upload
from .planted import REGION, clean_model, corner_model, planted_frame, store_planted

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(people, ml_model):
    """The planted dataset, two versions (v2's boundary shifted) and a finding on REGION."""
    dataset, versions = store_planted(people, ml_model, versions=2)
    finding = Finding.objects.create(
        title="Top-left corner",
        ml_model=ml_model,
        model_version=versions[0],
        dataset=dataset,
        slice=REGION,
        owner=people["contributor"],
        reporter=people["contributor"],
    )
    return {"dataset": dataset, "versions": versions, "finding": finding}


def _draw(client, finding, capture, **data):
    with capture(execute=True):
        return client.post(f"/findings/{finding.pk}/maps/", data)


# --- boundary maps --------------------------------------------------------------------------


def test_maps_are_drawn_per_version_and_compared(
    people, world, settings, django_capture_on_commit_callbacks
):
    finding, (v1, v2) = world["finding"], world["versions"]
    client = client_for(people["contributor"])
    response = _draw(
        client, finding, django_capture_on_commit_callbacks, feature_x="x1", feature_y="x2"
    )
    assert response.status_code == 302 and response["Location"].endswith("#boundary-maps")
    maps = {m.model_version_id: m for m in BoundaryMap.objects.all()}
    assert set(maps) == {v1.pk, v2.pk}
    for m in maps.values():
        assert m.status == "done", m.error
        assert m.image.name.startswith("maps/") and m.image.name.endswith(".png")
        with m.image.open("rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
        # The slice's box on the map: x1 below 0.3, x2 from 0.6 up to the axis's end.
        box = m.summary["slice_box"]
        assert box[1] == pytest.approx(0.3) and box[2] == pytest.approx(0.6)
        assert m.summary["slice_support"] == int(
            ((planted_frame().x1 < 0.3) & (planted_frame().x2 >= 0.6)).sum()
        )
        assert m.summary["points_shown"] is True
    page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    for m in maps.values():
        assert f'src="/maps/{m.pk}.png"' in page
    # v2 decides "1" only above x1 + x2 = 1.15: the band between the two lines changed.
    from introspection.scans import changed_share

    moved = changed_share(maps[v1.pk].summary, maps[v2.pk].summary)
    assert 0.08 < moved < 0.2
    assert f"{100 * moved:.1f}%" in page and "decides differently" in page


def test_map_images_are_served_to_readers_only(people, world, django_capture_on_commit_callbacks):
    finding = world["finding"]
    _draw(
        client_for(people["reviewer"]),
        finding,
        django_capture_on_commit_callbacks,
        feature_x="x1",
        feature_y="x2",
    )
    m = BoundaryMap.objects.first()
    url = f"/maps/{m.pk}.png"
    response = client_for(people["viewer"]).get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG") and "private" in response["Cache-Control"]
    assert client_for(people["nobody"]).get(url).status_code == 403
    anonymous = client_for(None).get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    # The stored file is not reachable as public media.
    assert client_for(people["viewer"]).get(f"/media/{m.image.name}").status_code == 404
    # A viewer may look but not draw.
    response = client_for(people["viewer"]).post(
        f"/findings/{finding.pk}/maps/", {"feature_x": "x1", "feature_y": "x2"}
    )
    assert response.status_code == 403
    m.image.storage.delete(m.image.name)
    assert client_for(people["viewer"]).get(url).status_code == 404


def test_maps_are_kept_redrawn_on_request_and_drawn_for_new_versions(
    people, world, ml_model, django_capture_on_commit_callbacks
):
    finding = world["finding"]
    client = client_for(people["contributor"])
    _draw(client, finding, django_capture_on_commit_callbacks, feature_x="x1", feature_y="x2")
    first = {m.pk: m.image.name for m in BoundaryMap.objects.all()}
    response = _draw(
        client, finding, django_capture_on_commit_callbacks, feature_x="x1", feature_y="x2"
    )
    assert "drawn already" in client.get(response["Location"]).content.decode()
    assert {m.pk: m.image.name for m in BoundaryMap.objects.all()} == first
    _draw(
        client,
        finding,
        django_capture_on_commit_callbacks,
        feature_x="x1",
        feature_y="x2",
        redraw="1",
    )
    redrawn = {m.pk: m.image.name for m in BoundaryMap.objects.all()}
    assert set(redrawn) == set(first) and not set(redrawn.values()) & set(first.values())
    storage = BoundaryMap.objects.first().image.storage
    assert not any(storage.exists(name) for name in first.values())  # old files removed
    ModelVersion.register(
        ml_model=ml_model,
        version="3",
        artifact=skops_upload(clean_model()),
        by=people["maintainer"],
    )
    page = client.get(finding.get_absolute_url()).content.decode()
    assert "Not drawn for this version." in page and "Draw for the 1 missing version" in page
    _draw(client, finding, django_capture_on_commit_callbacks, feature_x="x1", feature_y="x2")
    assert BoundaryMap.objects.filter(status="done").count() == 3


def test_map_axes_are_checked(people, world, django_capture_on_commit_callbacks):
    finding = world["finding"]
    client = client_for(people["contributor"])
    for data, message in [
        ({"feature_x": "x1", "feature_y": "color"}, "two numeric features"),
        ({"feature_x": "x1", "feature_y": "x1"}, "two different features"),
        ({"feature_x": "x1"}, "two numeric features"),
    ]:
        response = _draw(client, finding, django_capture_on_commit_callbacks, **data)
        assert message in client.get(response["Location"]).content.decode(), data
    assert BoundaryMap.objects.count() == 0
    # The finding page offers the slice's own features first.
    page = client.get(finding.get_absolute_url())
    assert b'<option value="x1" selected>' in page.content


def test_a_map_over_a_sensitive_axis_draws_no_points(
    people, world, django_capture_on_commit_callbacks
):
    finding = world["finding"]
    _draw(
        client_for(people["contributor"]),
        finding,
        django_capture_on_commit_callbacks,
        feature_x="x1",
        feature_y="salary",
    )
    for m in BoundaryMap.objects.all():
        assert m.status == "done" and m.summary["points_shown"] is False
        assert m.summary["n_plotted"] == 0
    page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert "an axis is a sensitive column" in page


# --- stress sweeps --------------------------------------------------------------------------


def _sweep(client, finding, capture, **data):
    with capture(execute=True):
        return client.post(f"/findings/{finding.pk}/sweeps/", data)


def test_noise_sweep_points_can_be_saved_as_probes(
    people, world, django_capture_on_commit_callbacks
):
    finding, (v1, _v2) = world["finding"], world["versions"]
    client = client_for(people["contributor"])
    response = _sweep(
        client, finding, django_capture_on_commit_callbacks, kind="noise", model_version=v1.pk
    )
    assert response.status_code == 302
    sweep = StressSweep.objects.get()
    assert sweep.status == "done", sweep.error
    scales = [p["scale"] for p in sweep.points]
    assert scales[0] == 0.01 and scales[-1] == 0.2 and scales == sorted(scales)
    rates = [p["flip_rate"] for p in sweep.points]
    assert rates[-1] > rates[0] and all(0 <= r <= 1 for r in rates)
    assert sweep.params["features"] == ["x1", "x2", "salary"]
    page = client.get(finding.get_absolute_url()).content.decode()
    assert f'id="sweep-{sweep.pk}"' in page and page.count("Save</button>") == len(scales)
    index = scales.index(0.1)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/sweeps/{sweep.pk}/points/{index}/probe/", {"threshold": ""})
    probe = Probe.objects.get()
    assert response["Location"].endswith(f"#probe-{probe.pk}")
    assert probe.kind == "perturbation_flip_rate" and probe.slice == REGION
    assert probe.params["scale"] == 0.1 and probe.params["repeats"] == 5
    assert probe.threshold == sweep.points[index]["suggested_threshold"]
    # The probe measures exactly the point it was saved from (same draws).
    run = ProbeRun.objects.get(probe=probe, model_version=v1)
    assert run.value == pytest.approx(sweep.points[index]["flip_rate"])


def test_counterfactual_sweep_values_are_right_on_a_known_boundary(
    people, world, django_capture_on_commit_callbacks
):
    finding, (v1, _v2) = world["finding"], world["versions"]
    client = client_for(people["reviewer"])  # reviewers may run sweeps
    _sweep(
        client,
        finding,
        django_capture_on_commit_callbacks,
        kind="counterfactual",
        model_version=v1.pk,
        feature="x2",
    )
    sweep = StressSweep.objects.get()
    assert sweep.status == "done", sweep.error
    values = [p["value"] for p in sweep.points]
    assert values[0] == pytest.approx(0.0, abs=0.01) and values[-1] == pytest.approx(1.0, abs=0.01)
    frame = planted_frame()
    rows = frame[(frame.x1 < 0.3) & (frame.x2 >= 0.6)]
    before = (rows.x1 + rows.x2 > 1).to_numpy()
    for point in sweep.points:
        # The model learnt x1 + x2 > 1: setting x2 = v flips the rows where that changes.
        expected = np.mean(before != (rows.x1 + point["value"] > 1).to_numpy())
        assert point["flip_rate"] == pytest.approx(expected, abs=0.04), point
    assert client.post(f"/sweeps/{sweep.pk}/points/0/probe/").status_code == 403
    contributor = client_for(people["contributor"])
    with django_capture_on_commit_callbacks(execute=True):
        contributor.post(f"/sweeps/{sweep.pk}/points/0/probe/", {"threshold": "0.2"})
    probe = Probe.objects.get()
    assert probe.kind == "counterfactual_flip_rate" and probe.threshold == 0.2
    assert probe.params["changes"] == {"x2": {"set": values[0]}}
    run = ProbeRun.objects.get(probe=probe, model_version=v1)
    assert run.value == pytest.approx(sweep.points[0]["flip_rate"])


def test_sweep_requests_are_checked(people, world, ml_model, django_capture_on_commit_callbacks):
    from registry.models import MLModel

    finding, (v1, _v2) = world["finding"], world["versions"]
    client = client_for(people["contributor"])
    response = _sweep(
        client,
        finding,
        django_capture_on_commit_callbacks,
        kind="counterfactual",
        model_version=v1.pk,
    )
    assert "Choose the feature to sweep" in client.get(response["Location"]).content.decode()
    other = MLModel.objects.create(name="other")
    foreign = ModelVersion.register(
        ml_model=other, version="1", artifact=skops_upload(clean_model()), by=people["maintainer"]
    )
    response = _sweep(
        client, finding, django_capture_on_commit_callbacks, kind="noise", model_version=foreign.pk
    )
    assert "Nothing queued" in client.get(response["Location"]).content.decode()
    assert StressSweep.objects.count() == 0
    assert (
        client_for(people["viewer"])
        .post(f"/findings/{finding.pk}/sweeps/", {"kind": "noise", "model_version": v1.pk})
        .status_code
        == 403
    )
    response = client.post("/sweeps/999/points/0/probe/")
    assert response.status_code == 404
    # An empty slice is an error on the sweep, with the reason.
    Finding.objects.filter(pk=finding.pk).update(slice=[{"feature": "x1", "op": ">", "value": 5}])
    finding.refresh_from_db()
    _sweep(client, finding, django_capture_on_commit_callbacks, kind="noise", model_version=v1.pk)
    sweep = StressSweep.objects.get()
    assert sweep.status == "error" and sweep.error == "slice is empty"
    response = client.post(f"/sweeps/{sweep.pk}/points/0/probe/", follow=True)
    assert "has not finished yet" in response.content.decode()
    assert Probe.objects.count() == 0


# --- the moved-problem check ------------------------------------------------------------------


def _fix_setup(people, ml_model, fix_x1_below):
    """v1 errs on REGION (labels flipped there); the fix v2 learnt the flip on
    x1 < fix_x1_below (0.45: it now errs in the band 0.3 <= x1 < 0.45 next door)."""
    from registry.models import Dataset

    dataset = Dataset.create_from_upload(
        csv_upload(planted_frame(region_flip=1.0, noise=0.08)),
        name="corner-eval",
        target_column="y",
        sensitive_columns=["zone"],
        by=people["contributor"],
    )
    v1 = ModelVersion.register(
        ml_model=ml_model,
        version="1",
        artifact=skops_upload(corner_model(0.0)),
        by=people["maintainer"],
    )
    finding = Finding.objects.create(
        title="Top-left corner refused",
        ml_model=ml_model,
        model_version=v1,
        dataset=dataset,
        slice=REGION,
        owner=people["contributor"],
        reporter=people["contributor"],
    )
    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind="slice_error_rate",
        slice=REGION,
        threshold=0.3,
        created_by=people["contributor"],
    )
    probe.full_clean()
    probe.save()
    v2 = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        artifact=skops_upload(corner_model(fix_x1_below)),
        by=people["maintainer"],
    )
    action = RemediationAction.objects.create(
        finding=finding,
        kind="relabeling",
        title="Relabel the corner",
        owner=people["contributor"],
        reviewer=people["reviewer"],
        created_by=people["contributor"],
    )
    action.transition_to("approved", by=people["reviewer"])
    action.transition_to("in_progress", by=people["contributor"])
    return finding, action, v1, v2


@pytest.mark.django_db(transaction=True)
def test_a_fix_that_moves_the_errors_next_door_is_reported(people, ml_model):
    finding, action, _v1, v2 = _fix_setup(people, ml_model, 0.45)
    client = client_for(people["contributor"])
    response = client.post(
        f"/actions/{action.pk}/transition/",
        {"to": "implemented", "fixed_in_version": v2.pk, "from": "in_progress"},
    )
    assert response.status_code == 302
    evaluation = Evaluation.objects.get(action=action, model_version=v2)
    # The probe on the slice itself passes, but the errors moved: not held (DESIGN.md).
    assert evaluation.outcome == "inconclusive"
    assert "moved next to the slice" in evaluation.details["reason"]
    action.refresh_from_db()
    assert action.status == "implemented"  # left for a reviewer: "needs review"
    check = evaluation.details["moved_problem"]
    assert check["verdict"] == "moved" and check["moved"] is True  # ...but the errors moved
    assert check["neighbour_error_rate"] > 0.8 and check["slice_error_rate"] < 0.1
    assert {p["feature"] for p in check["neighbour_slice"]} == {"x1", "x2"}
    assert check["artifact_sha256"] == v2.artifact_sha256
    page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert "Moved problem" in page and "The errors moved next door" in page


@pytest.mark.django_db(transaction=True)
def test_a_clean_fix_is_reported_clear(people, ml_model):
    finding, action, _v1, v2 = _fix_setup(people, ml_model, 0.3)
    action.transition_to("implemented", by=people["contributor"], fixed_in_version=v2)
    evaluation = Evaluation.objects.get(action=action, model_version=v2)
    assert evaluation.details["moved_problem"]["verdict"] == "clear"
    assert "run_counts" in evaluation.details  # the evaluation's own details are kept
    page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert "No moved problem" in page


def test_the_web_process_queues_the_check_instead_of_loading_the_model(
    people, ml_model, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    from boundary import artifacts
    from probes.choices import Trigger
    from probes.models import Rerun
    from probes.tasks import run_rerun

    finding, action, _v1, v2 = _fix_setup(people, ml_model, 0.45)
    rerun = Rerun.queue(v2, trigger=Trigger.MANUAL, dispatch=False)
    run_rerun(rerun.pk)  # v2's runs exist: marking the fix evaluates from stored runs
    real_load = artifacts.load_model

    def refuse(*args, **kwargs):
        raise AssertionError("the web process loaded an artifact")

    monkeypatch.setattr(artifacts, "load_model", refuse)
    settings.TASKS_SYNC = False
    with django_capture_on_commit_callbacks(execute=True):
        client_for(people["contributor"]).post(
            f"/actions/{action.pk}/transition/",
            {"to": "implemented", "fixed_in_version": v2.pk, "from": "in_progress"},
        )
    evaluation = Evaluation.objects.get(action=action, model_version=v2)
    assert "moved_problem" not in evaluation.details
    queued = [q.task for q in OrmQ.objects.all()]
    assert [(t["func"], t["args"]) for t in queued] == [
        ("introspection.tasks.check_moved_problem", (evaluation.pk,))
    ]
    monkeypatch.setattr(artifacts, "load_model", real_load)
    assert check_moved_problem(evaluation.pk) == "moved"  # what the worker then does
    evaluation.refresh_from_db()
    assert evaluation.details["moved_problem"]["moved"] is True


def test_no_check_for_evaluations_before_the_fix_or_without_a_slice(people, ml_model, settings):
    from introspection.tasks import queue_moved_problem_check

    finding, action, v1, v2 = _fix_setup(people, ml_model, 0.45)
    action.fixed_in_version = v2
    early = Evaluation(action=action, model_version=v1, outcome="regressed")
    assert queue_moved_problem_check(early) is False
    assert (
        queue_moved_problem_check(Evaluation(action=action, model_version=v2, outcome="held"))
        is True
    )
    finding.slice = []
    assert (
        queue_moved_problem_check(Evaluation(action=action, model_version=v2, outcome="held"))
        is False
    )


def test_errors_next_door_that_were_there_before_are_not_a_moved_problem(people, ml_model):
    from introspection.scans import moved_problem_check

    finding, _action, v1, v2 = _fix_setup(people, ml_model, 0.45)
    twin = ModelVersion.register(
        ml_model=ml_model,
        version="2-twin",
        artifact=skops_upload(corner_model(0.45)),
        by=people["maintainer"],
    )
    moved = moved_problem_check(v2, finding.dataset, REGION, baseline=v1)
    assert moved["verdict"] == "moved" and moved["baseline"]["version"] == str(v1)
    assert moved["baseline"]["neighbour_error_rate"] < 0.2 < moved["neighbour_error_rate"]
    nearby = moved_problem_check(v2, finding.dataset, REGION, baseline=twin)
    assert nearby["verdict"] == "nearby" and not nearby["moved"]
    assert nearby["baseline"]["neighbour_error_rate"] == pytest.approx(
        nearby["neighbour_error_rate"]
    )
    assert "not one the fix created" in nearby["text"]
