"""Every CSV the app hands out is written by core/csv.py: a text cell that a spreadsheet
would run as a formula starts with an apostrophe, numbers stay numbers, the answer is
UTF-8 and says so. One test per export with a formula payload in it, and a source check
that no other module writes CSV (run on a planted second writer too, so it is known to
fire)."""

import ast
import csv
import io
import json
import math
import zipfile

import numpy as np
import pytest
from django.utils import timezone

from core.csv import csv_response, safe_cell, write_csv
from probes.models import ProbeRun, Rerun
from registry.models import ModelVersion

from .factories import client_for, fitted_model, make_user, skops_upload
from .sources import call_name, offenders

PAYLOAD = '=HYPERLINK("http://evil.example", "click")'


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+1 555 0100", "'+1 555 0100"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("   =1+2", "'   =1+2"),
        ("\n@cmd", "'\n@cmd"),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-0.25, -0.25),
        (7, 7),
        (np.int64(-3), np.int64(-3)),
        (True, True),
    ],
    ids=[
        "equals",
        "plus",
        "minus",
        "at",
        "tab",
        "carriage-return",
        "spaces-then-equals",
        "newline-then-at",
        "plain",
        "equals-inside",
        "empty",
        "none",
        "negative-float",
        "int",
        "numpy-negative-int",
        "bool",
    ],
)
def test_a_cell_is_safe_in_a_spreadsheet(value, written):
    assert safe_cell(value) == written
    assert type(safe_cell(value)) is type(written)


def test_nan_is_an_empty_cell():
    assert safe_cell(math.nan) == "" and safe_cell(np.float64("nan")) == ""


def test_numbers_stay_numbers_in_the_text():
    text = write_csv(["name", "value"], [["=x", -1.5], ["-y", 3]])
    assert text.splitlines() == ["name,value", "'=x,-1.5", "'-y,3"]


def test_a_download_is_utf8_and_says_so():
    response = csv_response(["city"], [["Zürich"]], filename="c.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="c.csv"'
    assert response.content.decode("utf-8") == "city\r\nZürich\r\n"


def rows_of(response):
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))


# -- every export ---------------------------------------------------------------------


def test_findings_export_neutralises_formulas(people, finding):
    finding.title, finding.summary = PAYLOAD, "-1+1"
    finding.save()
    response = client_for(people["viewer"]).get("/catalog/export.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    [row] = rows_of(response)
    assert row["title"] == "'" + PAYLOAD and row["summary"] == "'-1+1"
    assert row["id"] == str(finding.pk)  # a number, as it was


def test_audit_log_export_neutralises_formulas(people, finding):
    dialer = make_user("+1dial", "contributor")
    finding.title = PAYLOAD
    finding.save()
    finding.transition_to("remediating", by=dialer, note="@SUM(1)")
    response = client_for(people["viewer"]).get("/audit/?verb=transition&format=csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    [row] = rows_of(response)
    assert row["actor"] == "'+1dial"
    assert row["object"] == "'" + PAYLOAD and row["note"] == "'@SUM(1)"


def test_review_pack_export_neutralises_formulas(people, finding):
    finding.title = PAYLOAD
    finding.save()
    today = timezone.localdate().isoformat()
    response = client_for(people["viewer"]).get(
        f"/review/pack/?start={today}&end={today}&format=csv"
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = rows_of(response)
    opened = [r for r in rows if r["section"] == "findings_opened"]
    assert [r["title"] for r in opened] == ["'" + PAYLOAD]
    counts = [r for r in rows if r["section"] == "actions_by_status"]
    assert all(not r["actions"].startswith("'") for r in counts)


def test_evidence_pack_standing_csv_neutralises_formulas(people, ml_model, finding, probe):
    version = ModelVersion.register(
        ml_model=ml_model,
        version="=2+3",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )
    rerun = Rerun.objects.create(model_version=version, trigger="manual")
    run = ProbeRun.objects.create(
        probe=probe,
        model_version=version,
        rerun=rerun,
        trigger="manual",
        status="failed",
        value=-0.5,
        finished_at=timezone.now(),
    )
    response = client_for(people["viewer"]).get(f"/findings/{finding.pk}/evidence-pack.zip")
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    rows = list(csv.DictReader(io.StringIO(archive.read("standing.csv").decode("utf-8"))))
    row = next(r for r in rows if r["run"] == str(run.pk))
    assert row["model_version"] == "'=2+3"
    assert row["value"] == "-0.5"  # a number stays a number
    standing = json.loads(archive.read("finding.json"))["standing"]
    assert {"run": run.pk, "model_version": "=2+3"}.items() <= next(
        s for s in standing if s["run"] == run.pk
    ).items()


# -- one writer -----------------------------------------------------------------------


def csv_writers(tree):
    """Lines that write CSV: csv.writer/DictWriter, DataFrame.to_csv, or an import of the
    stdlib's writers."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = call_name(node)
            to_csv = isinstance(node.func, ast.Attribute) and node.func.attr == "to_csv"
            if to_csv or name in ("csv.writer", "csv.DictWriter"):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module == "csv"
            and {a.name for a in node.names} & {"writer", "DictWriter"}
        ):
            lines.append(node.lineno)
    return lines


def test_only_core_csv_writes_csv():
    found = offenders(csv_writers)
    assert set(found) == {"core/csv.py"}, found


@pytest.mark.parametrize(
    "planted",
    [
        "import csv\n\ndef export(rows, out):\n    csv.writer(out).writerows(rows)\n",
        "def export(frame):\n    return frame.map(str).to_csv(index=False)\n",
        "from csv import DictWriter\n",
    ],
    ids=["csv-writer", "to-csv", "dictwriter-import"],
)
def test_a_second_csv_writer_is_found(planted):
    assert offenders(csv_writers, [("remediation/planted.py", planted)]) == {
        "remediation/planted.py": csv_writers(ast.parse(planted))
    }
    assert csv_writers(ast.parse(planted))
