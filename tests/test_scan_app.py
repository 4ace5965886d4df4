"""Weak-slice scans in the app: the background task, its progress, the candidates page,
"log as finding", the API and the scan_slices command, and who may do what."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.utils.html import escape

from catalog.models import Finding
from introspection.models import SliceScan
from introspection.tasks import run_scan
from probes.models import Probe, ProbeRun

from .factories import api_for, client_for, csv_upload, skops_upload, toy_frame
from .planted import planted_frame, store_planted

pytestmark = pytest.mark.django_db


@pytest.fixture
def planted(people, ml_model):
    dataset, (version,) = store_planted(people, ml_model)
    return dataset, version


def _queue(version, dataset, **kwargs):
    return SliceScan.queue(version, dataset, dispatch=False, **kwargs)


def _thresholds(candidate):
    return {p["feature"]: (p["op"], p["value"]) for p in candidate["slice"]}


def test_the_scan_finds_the_planted_region_with_its_thresholds(
    people, planted, django_capture_on_commit_callbacks
):
    dataset, version = planted
    client = client_for(people["contributor"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/versions/{version.pk}/scan/",
            {"dataset": dataset.pk, "top_k": 5, "max_predicates": 2},
        )
    scan = SliceScan.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/scans/{scan.pk}/"
    assert scan.status == "done" and scan.progress == 100
    assert scan.requested_by == people["contributor"]
    best = scan.candidates[0]
    found = _thresholds(best)
    assert set(found) == {"x1", "x2"}
    assert found["x1"][0] == "<" and abs(found["x1"][1] - 0.3) <= 0.02
    assert found["x2"][0] == ">=" and abs(found["x2"][1] - 0.6) <= 0.02
    assert best["error_rate"] > 0.45 and best["ci_low"] > scan.overall["error_rate"]
    # The suggested thresholds fail now and pass once the slice is back to normal.
    assert scan.overall["error_rate"] < best["suggested"]["slice_error_rate"] < best["error_rate"]
    page = client_for(people["viewer"]).get(scan.get_absolute_url()).content.decode()
    assert escape(best["description"]) in page and "<svg" in page
    assert "Log as finding" not in page  # a viewer reads, does not log


def test_a_sensitive_column_with_rare_values_is_left_out_of_the_scan(people, planted):
    dataset, version = planted
    scan = _queue(version, dataset)
    run_scan(scan.pk)
    scan.refresh_from_db()
    assert [s["column"] for s in scan.skipped_columns] == ["zone"]
    assert "zone" not in scan.lineage["scanned_columns"]
    assert "salary" in scan.lineage["scanned_columns"]  # numeric: thresholds are aggregates


def test_nothing_is_reported_when_errors_are_uniform(people, ml_model):
    from registry.models import Dataset, ModelVersion

    from .planted import clean_model

    dataset = Dataset.create_from_upload(
        csv_upload(planted_frame(3000, seed=5, planted=False, noise=0.08)),
        name="uniform",
        target_column="y",
        by=people["contributor"],
    )
    version = ModelVersion.register(
        ml_model=ml_model,
        version="1",
        artifact=skops_upload(clean_model()),
        by=people["maintainer"],
    )
    scan = _queue(version, dataset)
    assert run_scan(scan.pk) == "done"
    scan.refresh_from_db()
    assert scan.candidates == []
    page = client_for(people["viewer"]).get(scan.get_absolute_url()).content.decode()
    assert "No slice is significantly worse" in page


def test_progress_is_visible_while_the_scan_runs(people, planted):
    dataset, version = planted
    scan = _queue(version, dataset)
    client = client_for(people["viewer"])
    before = client.get(f"/scans/{scan.pk}/progress.json").json()
    assert before == {
        "id": scan.pk,
        "status": "queued",
        "progress": 0,
        "text": "Waiting for a worker",
        "candidates": 0,
        "finished": False,
    }
    page = client.get(scan.get_absolute_url()).content.decode()
    assert f'data-job-url="/scans/{scan.pk}/progress.json"' in page and "js/jobs.js" in page
    seen = []

    def progress(percent, text):
        seen.append((percent, SliceScan.objects.get(pk=scan.pk).progress_text))

    run_scan(scan.pk, progress=progress)
    assert [p for p, _ in seen] == sorted(p for p, _ in seen) and seen[-1][0] == 100
    assert seen[0][1] == "Loading the model artifact"  # the row shows it, for the poller
    after = client.get(f"/scans/{scan.pk}/progress.json").json()
    assert after["finished"] and after["status"] == "done" and after["candidates"] >= 1
    # A duplicated delivery of a finished scan changes nothing.
    assert run_scan(scan.pk) == "done"


def test_log_as_finding_creates_the_finding_and_its_probes_in_one_step(
    people, planted, django_capture_on_commit_callbacks
):
    dataset, version = planted
    scan = _queue(version, dataset)
    run_scan(scan.pk)
    scan.refresh_from_db()
    best = scan.candidates[0]
    client = client_for(people["contributor"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/scans/{scan.pk}/candidates/0/log/",
            {
                "c0-title": "Top-left corner is mislabelled",
                "c0-severity": "high",
                "c0-risk_category": "reliability",
                "c0-error_threshold": "",
                "c0-margin_threshold": "",
            },
        )
    finding = Finding.objects.get()
    assert response.status_code == 302 and response["Location"] == finding.get_absolute_url()
    assert finding.title == "Top-left corner is mislabelled" and finding.severity == "high"
    assert finding.slice == best["slice"]
    assert (finding.model_version, finding.dataset, finding.ml_model) == (
        version,
        dataset,
        version.ml_model,
    )
    assert finding.evidence["error_rate"] == round(best["error_rate"], 4)
    assert finding.evidence["support"] == best["support"]
    assert finding.owner == finding.reporter == people["contributor"]
    probes = {p.kind: p for p in Probe.objects.filter(finding=finding)}
    assert set(probes) == {"slice_error_rate", "margin_density"}
    assert probes["slice_error_rate"].threshold == best["suggested"]["slice_error_rate"]
    assert probes["margin_density"].threshold == best["suggested"]["margin_density"]
    assert probes["margin_density"].params == {"margin": 0.1}
    assert all(p.slice == best["slice"] for p in probes.values())
    # The probes ran on the scan's version at once: the error rate probe demonstrates it.
    run = ProbeRun.objects.get(probe=probes["slice_error_rate"], model_version=version)
    assert run.status == "failed" and run.value == pytest.approx(best["error_rate"])
    scan.refresh_from_db()
    assert scan.candidates[0]["finding"] == finding.pk
    page = client.get(scan.get_absolute_url()).content.decode()
    assert f"finding #{finding.pk}" in page
    # Logging the same candidate twice is refused; nothing new is stored.
    response = client.post(
        f"/scans/{scan.pk}/candidates/0/log/", {"c0-title": "again"}, follow=True
    )
    assert "already logged as finding" in response.content.decode()
    assert Finding.objects.count() == 1 and Probe.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_finding_logged_on_an_older_version_also_runs_on_the_newest(people, ml_model):
    dataset, (v1, v2) = store_planted(people, ml_model, versions=2)
    scan = _queue(v1, dataset)
    run_scan(scan.pk)
    response = client_for(people["contributor"]).post(
        f"/scans/{scan.pk}/candidates/0/log/", {"c0-title": "Found on v1"}, follow=True
    )
    assert f"they run on {v1} now, then on {v2}." in response.content.decode()
    finding = Finding.objects.get()
    for probe in Probe.objects.filter(finding=finding):
        runs = {run.model_version_id: run for run in probe.runs.all()}
        assert set(runs) == {v1.pk, v2.pk}
        assert runs[v1.pk].finished_at <= runs[v2.pk].created_at
        assert runs[v2.pk].status in {"passed", "failed"}


def test_bad_log_input_is_refused_with_nothing_saved(people, planted):
    dataset, version = planted
    scan = _queue(version, dataset)
    client = client_for(people["contributor"])
    response = client.post(f"/scans/{scan.pk}/candidates/0/log/", {}, follow=True)
    assert "has not finished yet" in response.content.decode()
    run_scan(scan.pk)
    response = client.post(
        f"/scans/{scan.pk}/candidates/0/log/", {"c0-error_threshold": "1.5"}, follow=True
    )
    assert "Error-rate threshold" in response.content.decode()
    response = client.post(f"/scans/{scan.pk}/candidates/9/log/", {}, follow=True)
    assert "there is no candidate 10" in response.content.decode()
    response = client.post(
        f"/scans/{scan.pk}/candidates/0/log/", {"c0-severity": "apocalyptic"}, follow=True
    )
    assert "Severity" in response.content.decode()
    assert Finding.objects.count() == 0 and Probe.objects.count() == 0


def test_a_failing_scan_says_why(people, ml_model, version):
    import os

    from django.core.exceptions import ValidationError

    from registry.models import Dataset

    other = Dataset.create_from_upload(
        csv_upload(toy_frame().rename(columns={"x2": "z"})),
        name="renamed",
        target_column="y",
        by=people["contributor"],
    )
    with pytest.raises(ValidationError, match="lacks the columns toy-risk reads"):
        _queue(version, other)  # refused before anything is queued
    gone = Dataset.create_from_upload(
        csv_upload(toy_frame()), name="gone", target_column="y", by=people["contributor"]
    )
    scan = _queue(version, gone)
    os.remove(gone.file.path)
    assert run_scan(scan.pk) == "error"
    scan.refresh_from_db()
    assert scan.error and scan.progress_text == "Failed"
    page = client_for(people["viewer"]).get(scan.get_absolute_url()).content.decode()
    assert "The scan failed" in page and escape(scan.error) in page


def test_an_altered_artifact_fails_the_scan_instead_of_loading(people, planted):
    dataset, version = planted
    with open(version.artifact.path, "ab") as handle:
        handle.write(b"tampered")
    scan = _queue(version, dataset)
    run_scan(scan.pk)
    scan.refresh_from_db()
    assert scan.status == "error" and "sha256 mismatch" in scan.error


def test_the_web_process_only_queues_the_scan(
    people, planted, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from boundary import artifacts

    def refuse(*args, **kwargs):
        raise AssertionError("the web process loaded an artifact")

    monkeypatch.setattr(artifacts, "load_model", refuse)
    settings.TASKS_SYNC = False
    dataset, version = planted
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(people["contributor"]).post(
            f"/versions/{version.pk}/scan/",
            {"dataset": dataset.pk, "top_k": 3, "max_predicates": 2},
        )
    assert response.status_code == 302
    scan = SliceScan.objects.get()
    assert scan.status == "queued" and scan.params["top_k"] == 3
    from django_q.models import OrmQ

    assert OrmQ.objects.count() == 1  # handed to the broker for a worker


def test_scan_form_refuses_bad_bounds(people, planted):
    dataset, version = planted
    response = client_for(people["contributor"]).post(
        f"/versions/{version.pk}/scan/", {"dataset": dataset.pk, "top_k": 0, "max_predicates": 7}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) == {"top_k", "max_predicates"}
    assert SliceScan.objects.count() == 0


def test_who_may_scan_look_and_log(people, planted):
    dataset, version = planted
    scan = _queue(version, dataset)
    run_scan(scan.pk)
    urls = {
        "form": f"/versions/{version.pk}/scan/",
        "page": f"/scans/{scan.pk}/",
        "progress": f"/scans/{scan.pk}/progress.json",
        "log": f"/scans/{scan.pk}/candidates/0/log/",
    }
    expect = {
        # who: (form GET, page GET, progress GET, log POST)
        "viewer": (403, 200, 200, 403),
        "contributor": (200, 200, 200, 302),
        "reviewer": (200, 200, 200, 403),
        "maintainer": (200, 200, 200, 403),
        "nobody": (403, 403, 403, 403),
    }
    for who, codes in expect.items():
        client = client_for(people[who])
        got = (
            client.get(urls["form"]).status_code,
            client.get(urls["page"]).status_code,
            client.get(urls["progress"]).status_code,
            client.post(urls["log"], {}).status_code,
        )
        assert got == codes, who
    anonymous = client_for(None).get(urls["page"])
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    assert (
        client_for(people["viewer"]).post(urls["form"], {"dataset": dataset.pk}).status_code == 403
    )
    version_page = client_for(people["viewer"]).get(version.get_absolute_url()).content.decode()
    assert f"/scans/{scan.pk}/" in version_page and "Scan for weak slices" not in version_page
    version_page = client_for(people["maintainer"]).get(version.get_absolute_url()).content
    assert b"Scan for weak slices" in version_page


def test_api_scan_answers_202_then_the_candidates(
    people, planted, django_capture_on_commit_callbacks
):
    dataset, version = planted
    api = api_for(people["contributor"])
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/model-versions/{version.pk}/scan/", {"dataset": dataset.pk}, format="json"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["dataset"] == dataset.pk
    scan = api_for(people["viewer"]).get(f"/api/v1/scans/{body['id']}/").json()
    assert scan["status"] == "done"
    assert {p["feature"] for p in scan["candidates"][0]["slice"]} == {"x1", "x2"}
    listed = api_for(people["viewer"]).get(f"/api/v1/scans/?model_version={version.pk}").json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]
    # Log the first candidate through the API.
    response = api.post(f"/api/v1/scans/{body['id']}/log/", {"candidate": 1}, format="json")
    assert response.status_code == 201, response.content
    finding = Finding.objects.get(pk=response.json()["id"])
    assert finding.probes.count() == 2 and finding.slice == scan["candidates"][0]["slice"]


def test_api_scan_refuses_bad_input_and_roles(people, planted):
    dataset, version = planted
    api = api_for(people["contributor"])
    response = api.post(
        f"/api/v1/model-versions/{version.pk}/scan/", {"dataset": 999999}, format="json"
    )
    assert response.status_code == 400 and "dataset" in response.json()
    response = api.post(
        f"/api/v1/model-versions/{version.pk}/scan/",
        {"dataset": dataset.pk, "max_predicates": 9},
        format="json",
    )
    assert response.status_code == 400 and "max_predicates" in response.json()
    # A dataset the ML model does not read (other columns) is refused by name.
    from registry.models import Dataset

    from .factories import csv_upload, toy_frame

    foreign = Dataset.create_from_upload(
        csv_upload(toy_frame().rename(columns={"x1": "a", "x2": "b"})),
        name="someone-elses",
        target_column="y",
        by=people["contributor"],
    )
    response = api.post(
        f"/api/v1/model-versions/{version.pk}/scan/", {"dataset": foreign.pk}, format="json"
    )
    assert response.status_code == 400 and "someone-elses" in response.json()["dataset"][0]
    assert SliceScan.objects.count() == 0
    for who in ("viewer", "nobody"):
        response = api_for(people[who]).post(
            f"/api/v1/model-versions/{version.pk}/scan/", {"dataset": dataset.pk}, format="json"
        )
        assert response.status_code == 403, who
    assert api_for(None).get("/api/v1/scans/").status_code == 401
    assert api_for(people["nobody"]).get("/api/v1/scans/").status_code == 403
    scan = _queue(version, dataset)
    response = api_for(people["reviewer"]).post(
        f"/api/v1/scans/{scan.pk}/log/", {"candidate": 1}, format="json"
    )
    assert response.status_code == 403
    response = api.post(f"/api/v1/scans/{scan.pk}/log/", {"candidate": 1}, format="json")
    assert response.status_code == 400 and "not finished" in str(response.json())


def test_scan_slices_command_prints_the_candidates(people, planted):
    dataset, version = planted
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "scan_slices",
        "--model-version",
        str(version.pk),
        "--dataset",
        str(dataset.pk),
        stdout=out,
        stderr=err,
    )
    scan = SliceScan.objects.get()
    text = out.getvalue()
    assert f"Scan {scan.pk}: {version} on {dataset}" in text
    assert f"1. {scan.candidates[0]['description']}" in text
    assert f"error rate {scan.candidates[0]['error_rate']:.1%}" in text
    assert "Left out: zone" in text and "100% Done" in err.getvalue()
    with pytest.raises(CommandError, match="No dataset with id 999999"):
        call_command("scan_slices", "--model-version", str(version.pk), "--dataset", "999999")
    with pytest.raises(CommandError, match="No model version with id 999999"):
        call_command("scan_slices", "--model-version", "999999", "--dataset", str(dataset.pk))
    with pytest.raises(CommandError, match="top_k must be between 1 and 20"):
        call_command(
            "scan_slices",
            "--model-version",
            str(version.pk),
            "--dataset",
            str(dataset.pk),
            "--top-k",
            "0",
        )
