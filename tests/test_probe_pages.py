"""Probes in the web UI: create from a finding, the probes × versions table, charts,
run now, rerun progress."""

import json

import pytest

from boundary.charts import value_chart_svg
from probes.models import Probe, ProbeRun, Rerun
from registry.models import ModelVersion

from .factories import client_for, fitted_model, skops_upload

pytestmark = pytest.mark.django_db


def test_probe_form_is_prefilled_from_the_finding(people, finding):
    page = client_for(people["contributor"]).get(f"/findings/{finding.pk}/probes/new/")
    assert page.status_code == 200
    form = page.context["form"]
    assert form.initial["slice"] == finding.slice
    assert form["slice"].value() == finding.slice_text  # shown as slice text
    assert form.initial["dataset"] == finding.dataset_id
    assert json.loads(page.context["defaults_json"])["margin_density"] == {"margin": 0.1}


def test_probe_form_names_the_bad_column(people, finding, dataset):
    response = client_for(people["contributor"]).post(
        f"/findings/{finding.pk}/probes/new/",
        {
            "kind": "slice_error_rate",
            "dataset": dataset.pk,
            "comparator": "<=",
            "threshold": "0.2",
            "min_support": "30",
            "tolerance": "0",
            "active": "on",
            "slice": json.dumps([{"feature": "salary", "op": ">", "value": 3}]),
            "params": "{}",
        },
    )
    assert response.status_code == 200
    assert "salary" in response.content.decode()
    assert Probe.objects.count() == 0


def test_probe_form_creates_a_probe_with_defaults(people, finding, dataset):
    response = client_for(people["contributor"]).post(
        f"/findings/{finding.pk}/probes/new/",
        {
            "kind": "margin_density",
            "dataset": dataset.pk,
            "comparator": "<=",
            "threshold": "0.3",
            "min_support": "30",
            "tolerance": "0",
            "active": "on",
            "slice": json.dumps(finding.slice),
            "params": "",
        },
    )
    assert response.status_code == 302
    probe = Probe.objects.get()
    assert probe.params == {"margin": 0.1} and probe.created_by == people["contributor"]
    assert (
        client_for(people["viewer"]).get(f"/findings/{finding.pk}/probes/new/").status_code == 403
    )


@pytest.mark.django_db(transaction=True)
def test_finding_page_shows_runs_per_version_and_a_chart(people, ml_model, finding, probe, version):
    from probes.tasks import run_rerun

    rerun = Rerun.queue(version, trigger="manual", dispatch=False)
    run_rerun(rerun.pk)
    ModelVersion.register(
        ml_model=ml_model,
        version="2",
        artifact=skops_upload(fitted_model(flip_above=0.5)),
        by=people["maintainer"],
    )
    page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert page.count("run-passed") >= 1 and "run-failed" in page
    assert "<svg" in page and 'class="threshold"' in page
    runs = ProbeRun.objects.filter(probe=probe).order_by("model_version__registered_at")
    assert [r.status for r in runs] == ["passed", "failed"]


@pytest.mark.django_db(transaction=True)
def test_run_now_from_the_finding_page(people, finding, probe, version):
    client = client_for(people["reviewer"])
    response = client.post(
        f"/findings/{finding.pk}/probes/run/", {"model_version": version.pk, "probe": probe.pk}
    )
    assert response.status_code == 302
    run = ProbeRun.objects.get(probe=probe, model_version=version, trigger="manual")
    assert run.status == "passed"
    progress = client.get(f"/reruns/{run.rerun_id}/progress.json").json()
    assert progress["done"] == progress["total"] == 1 and progress["finished"]
    assert (
        client_for(people["viewer"])
        .post(f"/findings/{finding.pk}/probes/run/", {"model_version": version.pk})
        .status_code
        == 403
    )


def test_a_rerun_in_progress_is_shown(people, finding, probe, version):
    rerun = Rerun.queue(version, trigger="manual", dispatch=False)
    page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert "0 of 1 probes done" in page and f"/reruns/{rerun.pk}/progress.json" in page


def test_value_chart_marks_threshold_and_status():
    svg = value_chart_svg(
        [
            {"label": "v1", "value": 0.3, "status": "failed", "ci_low": 0.2, "ci_high": 0.4},
            {"label": "v2", "value": 0.1, "status": "passed"},
            {"label": "v3", "value": None, "status": "error"},
        ],
        threshold=0.2,
        title="t <x>",
    )
    assert svg.startswith("<svg") and 'class="threshold"' in svg
    assert 'class="point failed"' in svg and 'class="point passed"' in svg
    assert "t &lt;x&gt;" in svg and "style=" not in svg
    assert value_chart_svg([], threshold=None) == ""


@pytest.mark.django_db(transaction=True)
def test_a_new_probe_runs_on_the_discovery_version(people, finding, dataset, version):
    from .factories import api_for

    response = api_for(people["contributor"]).post(
        "/api/v1/probes/",
        {
            "finding": finding.pk,
            "dataset": dataset.pk,
            "kind": "slice_error_rate",
            "slice": finding.slice,
            "threshold": 0.2,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    run = ProbeRun.objects.get(probe_id=response.json()["id"])
    assert run.model_version == version and run.status == "passed"
    assert run.lineage["started_by"] == "bob" and run.lineage["trigger"] == "manual"


@pytest.mark.django_db(transaction=True)
def test_a_new_probe_then_runs_on_the_newest_version(people, ml_model, finding, dataset, version):
    """A finding logged against v1 while v2 exists: its new probe runs on v1 (baseline),
    then on v2, compared with the baseline's value."""
    newest = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        by=people["maintainer"],
        artifact=skops_upload(fitted_model(flip_above=0.5)),
    )
    response = client_for(people["contributor"]).post(
        f"/findings/{finding.pk}/probes/new/",
        {
            "kind": "slice_error_rate",
            "dataset": dataset.pk,
            "comparator": "no_worse_than_baseline",
            "threshold": "",
            "min_support": "30",
            "tolerance": "0.01",
            "active": "on",
            "params": "",
            "slice": json.dumps([{"feature": "x1", "op": ">", "value": 0.5}]),
        },
        follow=True,
    )
    assert "then on the newest version" in response.content.decode()
    probe = Probe.objects.get()
    runs = {run.model_version_id: run for run in probe.runs.all()}
    assert set(runs) == {version.pk, newest.pk}
    baseline, latest = runs[version.pk], runs[newest.pk]
    assert baseline.status == "passed" and baseline.finished_at <= latest.created_at
    assert latest.status == "failed" and latest.lineage["baseline_value"] == baseline.value
    assert latest.lineage["started_by"] == "bob"
    # Running the probe again on v1 does not queue a second run on v2.
    run_now = client_for(people["reviewer"]).post(
        f"/findings/{finding.pk}/probes/run/", {"model_version": version.pk, "probe": probe.pk}
    )
    assert run_now.status_code == 302
    assert probe.runs.filter(model_version=version).count() == 2
    assert probe.runs.filter(model_version=newest).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_new_probe_of_a_finding_without_a_version_runs_on_the_newest(
    people, ml_model, finding, dataset, version
):
    from catalog.models import Finding

    Finding.objects.filter(pk=finding.pk).update(model_version=None)
    newest = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        by=people["maintainer"],
        artifact=skops_upload(fitted_model()),
    )
    response = client_for(people["contributor"]).post(
        f"/findings/{finding.pk}/probes/new/",
        {
            "kind": "slice_error_rate",
            "dataset": dataset.pk,
            "comparator": "<=",
            "threshold": "0.2",
            "min_support": "30",
            "tolerance": "0",
            "active": "on",
            "params": "",
            "slice": json.dumps(finding.slice),
        },
        follow=True,
    )
    assert "it runs now on the newest version" in response.content.decode()
    run = ProbeRun.objects.get(probe=Probe.objects.get())
    assert run.model_version == newest and run.status == "passed"
