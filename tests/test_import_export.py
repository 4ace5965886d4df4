"""CSV import with a dry run and all-or-nothing commit; the whole-catalog JSON round trip."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from catalog.importexport import import_findings_csv
from catalog.models import Finding, Tag
from core.models import AuditEvent
from ledger import backup
from ledger.backup import export_catalog, import_catalog
from probes.models import Probe, ProbeRun, Rerun
from registry.models import Dataset, MLModel, ModelVersion
from remediation.models import Evaluation, Notification, RemediationAction

from .factories import client_for

HEADER = "title,ml_model,model_version,dataset,slice,evidence,severity,risk_category,tags,owner\n"


def csv_file(text):
    return io.BytesIO(text.encode())


@pytest.fixture
def good_rows(version, dataset):
    return (
        HEADER
        + 'High x1 rows misjudged,toy-risk,1,toy-eval,"[{""feature"": ""x1"", ""op"": "">"", '
        '""value"": 1}]","{""error_rate"": 0.4}",high,safety,"calibration, x1",bob\n'
        + "Colour bias,Toy-Risk,,,,,low,fairness,,\n"
    )


def test_dry_run_saves_nothing_and_reports_no_error(people, good_rows):
    report = import_findings_csv(csv_file(good_rows), by=people["contributor"])
    assert report.ok and report.rows == 2 and not report.committed
    assert not Finding.objects.exists()


def test_commit_saves_every_row_searchable_and_audited(people, good_rows):
    report = import_findings_csv(csv_file(good_rows), by=people["contributor"], commit=True)
    assert report.ok and report.committed and len(report.created) == 2
    finding = Finding.objects.get(title="High x1 rows misjudged")
    assert finding.model_version.version == "1" and finding.dataset.name == "toy-eval"
    assert finding.slice == [{"feature": "x1", "op": ">", "value": 1}]
    assert finding.severity == "high" and finding.owner == people["contributor"]
    assert finding.reporter == people["contributor"]
    assert sorted(t.name for t in finding.tags.all()) == ["calibration", "x1"]
    assert [f.title for f in Finding.objects.all().find("calibration").page()] == [finding.title]
    assert AuditEvent.objects.for_object(finding).get(verb="create").actor == people["contributor"]


def test_every_bad_cell_is_reported_and_nothing_is_saved(people, version, dataset):
    text = (
        HEADER
        + "Fine row,toy-risk,,,,,medium,safety,,\n"
        + ",toy-risk,,,,,medium,safety,,\n"  # row 3: no title
        + "Unknown model,ghost-model,,,,,medium,safety,,\n"  # row 4
        + 'Bad slice,toy-risk,1,toy-eval,"[{""feature"": ""age"", ""op"": ""<"", '
        '""value"": 3}]",,medium,safety,,\n'  # row 5: no column age
         + "Bad choice,toy-risk,7,,not json,[],severe,safety,,ghost\n"  # row 6: four problems
    )
    report = import_findings_csv(csv_file(text), by=people["contributor"], commit=True)
    assert not report.committed
    got = {(e.row, e.column) for e in report.errors}
    assert got == {
        (3, "title"),
        (4, "ml_model"),
        (5, "slice"),
        (6, "model_version"),
        (6, "slice"),
        (6, "evidence"),
        (6, "severity"),
        (6, "owner"),
    }
    slice_error = next(e for e in report.errors if e.row == 5)
    assert "age" in slice_error.message
    assert not Finding.objects.exists()  # the fine row was not saved either


def test_unknown_and_missing_columns_are_refused(people):
    report = import_findings_csv(csv_file("title,colour\nA,red\n"), by=people["contributor"])
    assert {(e.row, e.column) for e in report.errors} == {(1, "colour"), (1, "ml_model")}
    report = import_findings_csv(csv_file("title,ml_model\n"), by=people["contributor"])
    assert [e.message for e in report.errors] == ["the file has no data rows"]
    report = import_findings_csv(io.BytesIO(b"\xff\xfe\x00"), by=people["contributor"])
    assert "UTF-8" in report.errors[0].message


def test_a_failure_while_saving_rolls_every_row_back(people, ml_model, monkeypatch):
    text = "title,ml_model\nFirst,toy-risk\nSecond,toy-risk\n"
    calls = []
    real = Tag.from_names

    def failing(names):
        calls.append(names)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(names)

    monkeypatch.setattr(Tag, "from_names", staticmethod(failing))
    with pytest.raises(RuntimeError):
        import_findings_csv(csv_file(text), by=people["contributor"], commit=True)
    assert not Finding.objects.exists()


def test_import_page_dry_run_then_import(people, good_rows):
    client = client_for(people["contributor"])
    upload = SimpleUploadedFile("f.csv", b"title,ml_model\n,toy-risk\n", "text/csv")
    html = client.post("/catalog/import/", {"file": upload, "check": "1"}).content.decode()
    assert "problem" in html and "<td>2</td><td>title</td>" in html
    upload = SimpleUploadedFile("f.csv", good_rows.encode(), "text/csv")
    html = client.post("/catalog/import/", {"file": upload, "check": "1"}).content.decode()
    assert "All 2 rows are valid" in html and not Finding.objects.exists()
    upload = SimpleUploadedFile("f.csv", good_rows.encode(), "text/csv")
    response = client.post("/catalog/import/", {"file": upload, "commit": "1"})
    assert response.status_code == 302 and Finding.objects.count() == 2
    viewer = client_for(people["viewer"])
    assert viewer.get("/catalog/import/").status_code == 403


# -- the whole catalog --------------------------------------------------------------------


@pytest.fixture
def full_catalog(people, finding, probe, version):
    """A catalog with every kind of object: tags, an action moved through its workflow, an
    evaluation linked to a probe run, a key lesson, audit events."""
    finding.tags.set(Tag.from_names(["calibration", "x1"]))
    finding.is_key_lesson = True
    finding.lesson = "Label the high-x1 rows again."
    finding.save()
    action = RemediationAction.objects.create(
        finding=finding,
        kind="relabeling",
        title="Relabel high x1",
        owner=people["contributor"],
        created_by=people["contributor"],
    )
    action.transition_to("approved", by=people["reviewer"], note="ok")
    rerun = Rerun.queue(
        version, trigger="manual", by=people["contributor"], probes=[probe], dispatch=False
    )
    run = ProbeRun.objects.get(rerun=rerun)
    ProbeRun.objects.filter(pk=run.pk).update(status="passed", value=0.1, passed=True, support=120)
    evaluation = Evaluation.objects.create(
        action=action,
        model_version=version,
        outcome="held",
        notes="held",
        is_manual=True,
        created_by=people["reviewer"],
    )
    evaluation.probe_runs.add(run)
    return finding


def _wipe_catalog():
    """Empty every catalog table, audit trail included: in SQL, since nothing with history
    can be deleted through the application (core/history.py)."""
    from core.models import AuditChain

    tables = [
        m._meta.db_table
        for m in (
            Notification,
            Evaluation.probe_runs.through,
            Evaluation,
            RemediationAction,
            ProbeRun,
            Rerun,
            Probe,
            Finding.tags.through,
            Finding,
            ModelVersion,
            Dataset,
            MLModel,
            Tag,
            AuditEvent,
            AuditChain,
        )
    ]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")


def _comparable(data):
    data = json.loads(backup.catalog_json(data))
    data.pop("exported_at")
    return data


def test_round_trip_reproduces_the_catalog(full_catalog, people, settings):
    before = export_catalog()
    assert all(
        before["objects"][label]
        for label in (
            "catalog.tag",
            "registry.mlmodel",
            "registry.dataset",
            "registry.modelversion",
            "catalog.finding",
            "probes.probe",
            "probes.proberun",
            "remediation.remediationaction",
            "remediation.evaluation",
            "core.auditevent",
        )
    )
    text = backup.catalog_json(before)
    _wipe_catalog()
    assert backup.catalog_is_empty()
    report = import_catalog(json.loads(text))
    assert report.missing_files == []  # the files stayed in MEDIA_ROOT
    after = export_catalog()
    assert _comparable(after) == _comparable(before)
    finding = Finding.objects.get(pk=full_catalog.pk)
    assert finding.is_key_lesson and [t.name for t in finding.tags.order_by("name")] == [
        "calibration",
        "x1",
    ]
    evaluation = Evaluation.objects.get()
    assert evaluation.probe_runs.count() == 1
    # search documents are rebuilt and new rows get fresh ids
    assert Finding.objects.all().find("relabel").count == 1
    new = Finding.objects.create(title="After import", ml_model=finding.ml_model)
    assert new.pk > finding.pk


def test_import_refuses_a_catalog_that_is_not_empty(full_catalog):
    data = export_catalog()
    with pytest.raises(Exception, match="not empty"):
        import_catalog(data)


def test_import_reports_missing_files_and_creates_unknown_users(full_catalog, settings, tmp_path):
    data = json.loads(backup.catalog_json())
    _wipe_catalog()
    from django.contrib.auth.models import User

    User.objects.filter(username="bob").delete()
    settings.MEDIA_ROOT = tmp_path / "elsewhere"
    report = import_catalog(data)
    assert len(report.missing_files) == 2 and all("missing" in p for p in report.missing_files)
    assert report.users_created == ["bob"]
    bob = User.objects.get(username="bob")
    assert not bob.is_active and not bob.has_usable_password()
    assert Finding.objects.get().owner == bob


def test_export_never_carries_dataset_rows(full_catalog, dataset, settings):
    dataset.columns[2]["sensitive"] = True
    Dataset.objects.filter(pk=dataset.pk).update(columns=dataset.columns)
    text = backup.catalog_json()
    frame = dataset.read()
    # no cell of the table appears: only the schema, the path and the sha256
    for value in frame["color"].head(20):
        assert f'"{value}"' not in text or value in ("red", "green", "blue")
    assert str(frame["x1"].iloc[0]) not in text
    data = json.loads(text)
    assert data["files"]["included"] is False
    entry = data["objects"]["registry.dataset"][0]["fields"]
    assert entry["sha256"] == dataset.sha256 and entry["columns"][2]["sensitive"] is True


def test_commands_export_and_import(full_catalog, tmp_path, capsys):
    path = tmp_path / "catalog.json"
    call_command("export_catalog", "--output", str(path))
    data = json.loads(path.read_text())
    assert data["format"] == "boundary-ledger-catalog"
    with pytest.raises(CommandError, match="not empty"):
        call_command("import_catalog", str(path))
    _wipe_catalog()
    call_command("import_catalog", str(path))
    assert "Catalog imported." in capsys.readouterr().out
    assert Finding.objects.get().title == full_catalog.title
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("import_catalog", str(bad))


def test_catalog_pages_for_export_and_import(full_catalog, people):
    response = client_for(people["viewer"]).get("/catalog/backup/export/")
    assert response.status_code == 200
    assert json.loads(response.content)["format"] == "boundary-ledger-catalog"
    assert client_for(people["maintainer"]).get("/catalog/backup/import/").status_code == 403
    upload = SimpleUploadedFile("c.json", response.content, "application/json")
    html = (
        client_for(people["admin"])
        .post("/catalog/backup/import/", {"file": upload})
        .content.decode()
    )
    assert "not empty" in html
