"""Registering a version reruns the stored probes (inline here; real workers elsewhere)."""

import io

import pytest
from django.core.management import CommandError, call_command

from probes.models import ProbeRun, Rerun
from probes.tasks import run_rerun
from registry.models import ModelVersion

from .factories import api_for, fitted_model, skops_upload

pytestmark = pytest.mark.django_db(transaction=True)


def register(ml_model, user, version="2", **kwargs):
    return ModelVersion.register(
        ml_model=ml_model, version=version, artifact=skops_upload(fitted_model(**kwargs)), by=user
    )


def test_registration_through_the_api_stores_runs(people, ml_model, probe):
    response = api_for(people["maintainer"]).post(
        "/api/v1/model-versions/",
        {"ml_model": ml_model.pk, "version": "2", "artifact": skops_upload(fitted_model())},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    run = ProbeRun.objects.get(model_version_id=response.json()["id"])
    assert run.status == "passed" and run.trigger == "registration"
    assert run.support == 400 - 0 or run.support > 0
    assert run.lineage["artifact_sha256"] == response.json()["artifact_sha256"]
    assert run.lineage["dataset_sha256"] == probe.dataset.sha256
    assert run.lineage["probe"]["kind"] == "slice_error_rate"
    assert {"python", "scikit-learn", "numpy", "pandas"} <= set(run.lineage)
    listed = (
        api_for(people["viewer"])
        .get(f"/api/v1/probe-runs/?probe={probe.pk}&model_version={run.model_version_id}")
        .json()
    )
    assert [r["id"] for r in listed["results"]] == [run.pk]


def test_a_model_that_is_wrong_in_the_slice_fails_the_probe(people, ml_model, probe):
    bad = register(ml_model, people["maintainer"], flip_above=0.5)
    run = ProbeRun.objects.get(model_version=bad)
    assert run.status == "failed" and run.passed is False and run.value > 0.5


def test_a_retried_rerun_never_duplicates_runs(people, ml_model, probe):
    v2 = register(ml_model, people["maintainer"])
    rerun = Rerun.objects.get(model_version=v2)
    first = list(ProbeRun.objects.filter(rerun=rerun).values_list("pk", "value"))
    run_rerun(rerun.pk)
    # A worker that died mid-run leaves a run "running"; the retry finishes that same row.
    ProbeRun.objects.filter(rerun=rerun).update(status="running", value=None)
    run_rerun(rerun.pk)
    assert list(ProbeRun.objects.filter(rerun=rerun).values_list("pk", "value")) == first
    assert ProbeRun.objects.filter(probe=probe, model_version=v2).count() == 1


def test_an_altered_artifact_is_an_error_on_the_run_not_a_load(people, ml_model, probe, version):
    with open(version.artifact.path, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(CommandError, match="1 of 1 probe") as refused:
        call_command("run_probes", "--model-version", str(version.pk), "--sync")
    assert refused.value.returncode == 1
    run = ProbeRun.objects.filter(model_version=version).latest("pk")
    assert run.status == "error" and "sha256 mismatch" in run.error


def test_run_probes_sync_exits_by_the_result(people, ml_model, probe, version):
    """A pipeline reads the exit status: 0 when every probe passed (or was inconclusive),
    1 when one failed, with the failing run named on stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command("run_probes", "--model-version", str(version.pk), "--sync", stdout=out)
    assert "passed: 1" in out.getvalue()
    bad = register(ml_model, people["maintainer"], flip_above=0.5)
    with pytest.raises(CommandError) as refused:
        call_command("run_probes", "--model-version", str(bad.pk), "--sync", stderr=err)
    assert refused.value.returncode == 1
    assert f"probe #{probe.pk} (Slice error rate) failed on {bad}" in err.getvalue()


def test_a_model_expecting_other_columns_is_an_error(people, ml_model, probe, dataset):
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": [0.0, 1.0, 0.2, 0.9], "b": [1, 0, 1, 0]})
    other = LogisticRegression().fit(frame[["a"]], frame["b"])
    v = ModelVersion.register(
        ml_model=ml_model, version="odd", artifact=skops_upload(other), by=people["maintainer"]
    )
    run = ProbeRun.objects.get(model_version=v)
    assert run.status == "error" and "a" in run.error


def test_a_model_fitted_on_some_of_the_columns_is_given_those(people, ml_model, probe, dataset):
    """DESIGN.md: the feature columns are the model's `feature_names_in_`; the dataset's
    other columns (here `color`) are passed over, and the result is the model's own."""
    from sklearn.linear_model import LogisticRegression

    from .factories import toy_frame

    frame = toy_frame()
    subset = LogisticRegression().fit(frame[["x1", "x2"]], frame["y"])
    v = ModelVersion.register(
        ml_model=ml_model, version="subset", artifact=skops_upload(subset), by=people["maintainer"]
    )
    run = ProbeRun.objects.get(model_version=v)
    assert run.status in ("passed", "failed"), run.error
    in_slice = frame[frame["x1"] > 0.5]
    expected = (subset.predict(in_slice[["x1", "x2"]]) != in_slice["y"]).mean()
    assert run.value == pytest.approx(expected, abs=1e-15)


def test_run_now_for_one_probe_answers_202(people, ml_model, probe, version):
    response = api_for(people["contributor"]).post(
        f"/api/v1/probes/{probe.pk}/run/", {"model_version": version.pk}, format="json"
    )
    assert response.status_code == 202, response.content
    run = ProbeRun.objects.get(pk=response.json()["id"])
    assert run.trigger == "manual" and run.status == "passed"
    assert (
        api_for(people["viewer"])
        .post(f"/api/v1/probes/{probe.pk}/run/", {"model_version": version.pk}, format="json")
        .status_code
        == 403
    )


def test_nightly_schedule_reruns_the_latest_version(people, ml_model, probe, version):
    from probes.tasks import nightly_rerun

    v2 = register(ml_model, people["maintainer"])
    nightly_rerun()
    assert ProbeRun.objects.filter(model_version=v2, trigger="schedule").count() == 1
    assert not ProbeRun.objects.filter(model_version=version, trigger="schedule").exists()


def test_the_nightly_schedule_runs_at_night_not_when_the_first_worker_starts(db):
    import importlib
    from datetime import datetime

    from django.apps import apps
    from django.utils import timezone
    from django_q.models import Schedule

    schedules = importlib.import_module("probes.migrations.0002_nightly_schedule")
    at_night = importlib.import_module("probes.migrations.0005_nightly_at_night")
    # A transactional test before this one may have emptied the table: set it up again as
    # a fresh database's migrations do.
    Schedule.objects.filter(name="nightly-rerun").delete()
    schedules.create_schedule(apps, None)
    at_night.schedule_at_night(apps, None)
    nightly = Schedule.objects.get(name="nightly-rerun")
    assert nightly.schedule_type == Schedule.DAILY
    first = timezone.localtime(nightly.next_run)
    assert first > timezone.now()
    assert (first.hour, first.minute) == (2, 0)
    next_night = at_night.next_night
    evening = timezone.make_aware(datetime(2026, 3, 1, 23, 30))
    early = timezone.make_aware(datetime(2026, 3, 1, 1, 15))
    assert next_night(evening) == timezone.make_aware(datetime(2026, 3, 2, 2, 0))
    assert next_night(early) == timezone.make_aware(datetime(2026, 3, 1, 2, 0))


def test_predict_proba_once_per_version_and_dataset(
    people, ml_model, finding, dataset, monkeypatch
):
    """Several probes on one dataset share a single predict_proba call."""
    from boundary import artifacts
    from probes import evaluation
    from probes.models import Probe

    for kind, threshold in [
        ("slice_error_rate", 0.2),
        ("margin_density", 0.5),
        ("slice_ece", 0.2),
        ("slice_error_gap", 0.2),
    ]:
        p = Probe(finding=finding, dataset=dataset, kind=kind, threshold=threshold)
        p.full_clean()
        p.save()
    calls = []
    real_load = artifacts.load_model

    class Counting:
        def __init__(self, model):
            self.model = model
            self.classes_ = model.classes_

        def __getattr__(self, name):
            return getattr(self.model, name)

        def predict_proba(self, X):
            calls.append(len(X))
            return self.model.predict_proba(X)

    monkeypatch.setattr(artifacts, "load_model", lambda *a, **k: Counting(real_load(*a, **k)))
    v2 = register(ml_model, people["maintainer"])
    assert ProbeRun.objects.filter(model_version=v2, status="passed").count() == 4
    assert calls == [len(dataset.read())]
    assert evaluation  # the evaluation module looked the loader up at call time


@pytest.mark.parametrize(
    "name",
    ["run_chunk", "nightly_rerun", "sweep_runs", "run_rerun", "enqueue_rerun", "on_worker_spawn"],
)
def test_the_task_paths_that_queues_and_schedules_store_still_resolve(name):
    """Queued tasks and stored schedules name their function by path."""
    from django.utils.module_loading import import_string

    assert callable(import_string(f"probes.tasks.{name}"))


def test_every_schedule_the_migrations_store_names_a_function_that_exists():
    import re
    from pathlib import Path

    from django.utils.module_loading import import_string

    migrations = Path(__file__).resolve().parent.parent / "probes" / "migrations"
    funcs = {
        f
        for path in migrations.glob("*.py")
        for f in re.findall(r"[\"'](probes\.tasks\.\w+)[\"']", path.read_text())
    }
    assert {"probes.tasks.nightly_rerun", "probes.tasks.sweep_runs"} <= funcs
    for func in funcs:
        assert callable(import_string(func)), func
