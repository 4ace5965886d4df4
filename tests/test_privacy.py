"""Sensitive columns take part in computations but their values never appear row by row:
not on any page, preview, map, sweep, scan listing, API answer, command output or export."""

import io
import json
import re
import zipfile

import pytest
from django.core.management import call_command

from core.models import AuditEvent
from introspection.models import BoundaryMap, SliceScan, StressSweep
from introspection.tasks import run_scan
from registry.models import Dataset

from .factories import client_for
from .planted import planted_frame, store_planted

pytestmark = pytest.mark.django_db

ZONE = re.compile(r"zz\d{5}q")  # the shape of every value of the sensitive column "zone"


def _leaks(text, salaries):
    """The sensitive values found in `text` (zone tokens, salaries as printed)."""
    found = set(ZONE.findall(text))
    found |= {s for s in salaries if s in text}
    return found


@pytest.fixture
def salaries():
    frame = planted_frame()
    values = set()
    for v in frame["salary"]:
        values |= {f"{v:.4f}", repr(float(v)), f"{v:.2f}", str(v)}
    return values


@pytest.fixture
def world(people, ml_model, django_capture_on_commit_callbacks):
    """A scan, a finding logged from it, maps (one over the sensitive salary axis) and
    sweeps (one of salary, one of the sensitive zone), everything a page may show."""
    dataset, (v1, v2) = store_planted(people, ml_model, versions=2)
    contributor = client_for(people["contributor"])
    with django_capture_on_commit_callbacks(execute=True):
        contributor.post(
            f"/versions/{v1.pk}/scan/", {"dataset": dataset.pk, "top_k": 5, "max_predicates": 2}
        )
    scan = SliceScan.objects.get()
    assert scan.status == "done" and scan.candidates
    with django_capture_on_commit_callbacks(execute=True):
        contributor.post(f"/scans/{scan.pk}/candidates/0/log/", {})
    finding = scan.model_version.findings.get()
    for axes in (
        {"feature_x": "x1", "feature_y": "x2"},
        {"feature_x": "x1", "feature_y": "salary"},
    ):
        with django_capture_on_commit_callbacks(execute=True):
            contributor.post(f"/findings/{finding.pk}/maps/", axes)
    for data in (
        {"kind": "noise"},
        {"kind": "counterfactual", "feature": "salary"},
        {"kind": "counterfactual", "feature": "zone"},
        {"kind": "counterfactual", "feature": "color"},
    ):
        with django_capture_on_commit_callbacks(execute=True):
            contributor.post(f"/findings/{finding.pk}/sweeps/", dict(data, model_version=v2.pk))
    return {"dataset": dataset, "versions": (v1, v2), "scan": scan, "finding": finding}


def test_sensitive_values_appear_on_no_page_and_in_no_export(people, world, salaries):
    dataset, finding, scan = world["dataset"], world["finding"], world["scan"]
    v1, v2 = world["versions"]
    assert BoundaryMap.objects.filter(status="done").count() == 4
    sweeps = {(s.kind, s.feature): s for s in StressSweep.objects.all()}
    assert sweeps[("counterfactual", "salary")].status == "done"
    assert sweeps[("counterfactual", "color")].status == "done"
    # Each zone value is shared by a handful of rows: sweeping it would list single rows.
    zone = sweeps[("counterfactual", "zone")]
    assert zone.status == "error" and "no value frequent enough" in zone.error
    # A counterfactual of salary tries round values inside its 5th-95th percentiles.
    tried = sweeps[("counterfactual", "salary")].params["values"]
    assert all(float(v) == round(float(v), 0) for v in tried)
    urls = [
        "/",
        "/catalog/",
        f"/catalog/findings/{finding.pk}/",
        "/models/",
        f"/models/{v1.ml_model.slug}/",
        f"/versions/{v1.pk}/",
        f"/versions/{v2.pk}/",
        "/datasets/",
        f"/datasets/{dataset.pk}/",
        f"/datasets/{dataset.pk}/columns.json",
        f"/scans/{scan.pk}/",
        f"/scans/{scan.pk}/progress.json",
        f"/findings/{finding.pk}/introspection.json",
        f"/findings/{finding.pk}/probes/new/",
        "/review/",
        "/review/pack/",
        "/review/effectiveness/",
        "/audit/",
        "/catalog/export.csv",
        "/catalog/export.json",
        "/catalog/backup/export/",
        "/api/v1/datasets/",
        f"/api/v1/datasets/{dataset.pk}/",
        "/api/v1/scans/",
        f"/api/v1/scans/{scan.pk}/",
        "/api/v1/findings/",
        "/api/v1/probes/",
        "/api/v1/probe-runs/",
        "/api/v1/evaluations/",
        "/api/v1/reruns/",
    ]
    checked = 0
    for who in ("admin", "viewer"):
        client = client_for(people[who])
        for url in urls:
            response = client.get(url)
            if who == "viewer" and response.status_code == 403:
                continue
            assert response.status_code == 200, (url, who, response.status_code)
            assert not _leaks(response.content.decode(), salaries), (url, who)
            checked += 1
        for m in BoundaryMap.objects.all():
            png = client.get(f"/maps/{m.pk}.png").content
            assert png.startswith(b"\x89PNG") and not ZONE.search(png.decode("latin-1"))
    assert checked >= 45
    # The evidence pack (a zip) for governance.
    pack = client_for(people["admin"]).get(f"/findings/{finding.pk}/evidence-pack.zip")
    with zipfile.ZipFile(io.BytesIO(pack.content)) as archive:
        for name in archive.namelist():
            assert not _leaks(archive.read(name).decode(errors="replace"), salaries), name
    # The command-line export of the whole catalog and the scan command's output.
    out = io.StringIO()
    call_command("export_catalog", stdout=out)
    exported = out.getvalue()
    assert json.loads(exported)["format"] == "boundary-ledger-catalog"
    assert not _leaks(exported, salaries)
    out = io.StringIO()
    call_command(
        "scan_slices",
        "--model-version",
        str(v1.pk),
        "--dataset",
        str(dataset.pk),
        stdout=out,
        stderr=io.StringIO(),
    )
    assert "Left out: zone" in out.getvalue() and not _leaks(out.getvalue(), salaries)
    # The preview shows the other columns, so the check above could have seen them.
    preview = client_for(people["viewer"]).get(f"/datasets/{dataset.pk}/").content.decode()
    assert "Sensitive columns are not shown row by row: salary, zone." in preview
    assert f"{planted_frame()['x1'].iloc[0]:g}" in preview


def test_the_scan_lists_aggregates_of_sensitive_columns_only(people, world):
    scan = world["scan"]
    assert "zone" not in scan.lineage["scanned_columns"]
    for candidate in scan.candidates:
        for pred in candidate["slice"]:
            assert pred["feature"] != "zone"
            if pred["feature"] == "salary":  # a threshold, never a row's own value
                assert candidate["support"] >= scan.overall["min_support"]


def test_sensitive_marks_can_be_changed_on_the_dataset_page(people, world, salaries):
    dataset = world["dataset"]
    url = f"/datasets/{dataset.pk}/sensitive/"
    page = client_for(people["contributor"]).get(f"/datasets/{dataset.pk}/").content.decode()
    assert f'action="{url}"' in page
    assert re.search(r'value="salary"[^>]*checked', page)
    assert not re.search(r'value="x1"[^>]*checked', page)
    response = client_for(people["contributor"]).post(
        url, {"sensitive_columns": ["zone", "salary", "x1"]}
    )
    assert response.status_code == 302
    dataset.refresh_from_db()
    assert dataset.sensitive_columns == ["x1", "zone", "salary"]
    before = dataset.sha256
    assert dataset.sha256 == before and dataset.file.name  # the file is untouched
    event = AuditEvent.objects.for_object(dataset).order_by("-pk").first()
    assert event.verb == "update" and event.actor == people["contributor"]
    preview = client_for(people["viewer"]).get(f"/datasets/{dataset.pk}/").content.decode()
    assert f"{planted_frame()['x1'].iloc[0]:g}" not in preview
    assert "Sensitive columns are not shown row by row: salary, x1, zone." in preview
    # An unknown column is refused and nothing changes.
    response = client_for(people["contributor"]).post(
        url, {"sensitive_columns": ["nope"]}, follow=True
    )
    assert "Nothing changed" in response.content.decode()
    dataset.refresh_from_db()
    assert dataset.sensitive_columns == ["x1", "zone", "salary"]
    # Viewers and reviewers read the marks but may not change them.
    for who in ("viewer", "reviewer", "nobody"):
        assert client_for(people[who]).post(url, {"sensitive_columns": []}).status_code == 403
    viewer_page = client_for(people["viewer"]).get(f"/datasets/{dataset.pk}/").content.decode()
    assert f'action="{url}"' not in viewer_page and "<code>x1</code>" in viewer_page
    # Unmarking everything is a change like any other.
    client_for(people["maintainer"]).post(url, {})
    assert Dataset.objects.get(pk=dataset.pk).sensitive_columns == []
    preview = client_for(people["viewer"]).get(f"/datasets/{dataset.pk}/").content.decode()
    assert _leaks(preview, salaries)  # the check above would have caught them


def test_a_scan_of_a_newly_sensitive_column_leaves_it_out(people, world):
    dataset, (v1, _v2) = world["dataset"], world["versions"]
    client_for(people["contributor"]).post(
        f"/datasets/{dataset.pk}/sensitive/", {"sensitive_columns": ["zone", "salary", "color"]}
    )
    dataset.refresh_from_db()
    scan = SliceScan.queue(v1, dataset, dispatch=False, min_support=100)
    run_scan(scan.pk)
    scan.refresh_from_db()
    # color's three values are each shared by ~1000 rows: an aggregate, still scanned.
    assert "color" in scan.lineage["scanned_columns"]
    assert [s["column"] for s in scan.skipped_columns] == ["zone"]
