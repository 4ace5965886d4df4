"""Import and export of the catalog.

- `findings_frame(queryset)`: any search result as a pandas DataFrame, written as CSV
  (`findings_csv`) or JSON (`findings_json`).
- `import_findings_csv(file, by=..., commit=...)`: findings from a CSV file. Every row is
  checked first; the errors name the row (the spreadsheet's row number, the header being
  row 1), the column and what is wrong. Nothing is saved unless every row is valid.

The whole catalog's backup (every app's rows) is ledger/backup.py.
"""

import csv
import io
import json
from dataclasses import dataclass, field

import pandas as pd
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from core.audit import acting_as
from core.csv import frame_csv
from registry.models import Dataset, MLModel, ModelVersion

from . import search
from .choices import RiskCategory, Severity
from .models import Finding, Tag

CSV_MAX_BYTES = 5 * 1024 * 1024
CSV_MAX_ROWS = 5000

EXPORT_COLUMNS = [
    "id",
    "title",
    "summary",
    "ml_model",
    "model_version",
    "dataset",
    "slice",
    "slice_text",
    "severity",
    "risk_category",
    "status",
    "tags",
    "owner",
    "description",
    "evidence",
    "harms",
    "affected_stakeholders",
    "policy_reference",
    "lesson",
    "remaining_gaps",
    "is_key_lesson",
    "created_at",
    "url",
]
IMPORT_COLUMNS = [
    "title",
    "ml_model",
    "summary",
    "description",
    "model_version",
    "dataset",
    "slice",
    "evidence",
    "severity",
    "risk_category",
    "harms",
    "affected_stakeholders",
    "policy_reference",
    "lesson",
    "remaining_gaps",
    "tags",
    "owner",
]
REQUIRED_COLUMNS = ("title", "ml_model")


# -- exporting search results ------------------------------------------------------------


def findings_frame(queryset):
    """One row per finding, related objects by name; JSON fields as JSON text."""
    rows = []
    qs = queryset.select_related("ml_model", "model_version", "dataset", "owner")
    for f in qs.prefetch_related("tags").iterator(chunk_size=2000):
        rows.append(
            {
                "id": f.pk,
                "title": f.title,
                "summary": f.summary,
                "ml_model": f.ml_model.name,
                "model_version": f.model_version.version if f.model_version else "",
                "dataset": f"{f.dataset.name}@{f.dataset.version}" if f.dataset else "",
                "slice": json.dumps(f.slice),
                "slice_text": f.slice_text,
                "severity": f.severity,
                "risk_category": f.risk_category,
                "status": f.status,
                "tags": ", ".join(sorted(t.name for t in f.tags.all())),
                "owner": f.owner.get_username() if f.owner else "",
                "description": f.description,
                "evidence": json.dumps(f.evidence),
                "harms": f.harms,
                "affected_stakeholders": f.affected_stakeholders,
                "policy_reference": f.policy_reference,
                "lesson": f.lesson,
                "remaining_gaps": f.remaining_gaps,
                "is_key_lesson": f.is_key_lesson,
                "created_at": f.created_at.isoformat(),
                "url": settings.SITE_URL.rstrip("/") + f.get_absolute_url(),
            }
        )
    return pd.DataFrame(rows, columns=EXPORT_COLUMNS)


def findings_csv(queryset):
    """The findings as CSV text, every cell safe in a spreadsheet (core.csv)."""
    return frame_csv(findings_frame(queryset))


def findings_json(queryset):
    frame = findings_frame(queryset)
    return frame.to_json(orient="records", force_ascii=False, indent=2)


# -- importing findings from CSV ---------------------------------------------------------


@dataclass
class RowError:
    row: int
    column: str
    message: str

    def __str__(self):
        return f"row {self.row}, {self.column}: {self.message}"


@dataclass
class ImportReport:
    rows: int = 0
    errors: list = field(default_factory=list)
    created: list = field(default_factory=list)
    committed: bool = False

    @property
    def ok(self):
        return not self.errors


class _Lookups:
    """Cached lookups of the names a CSV uses (ML model, version, dataset, owner)."""

    def __init__(self):
        self.models = {}
        for m in MLModel.objects.all():
            self.models[m.slug.lower()] = m
            self.models[m.name.lower()] = m
        self.versions = {(v.ml_model_id, v.version): v for v in ModelVersion.objects.all()}
        self.datasets = {}
        for d in Dataset.objects.order_by("created_at"):
            self.datasets[f"{d.name}@{d.version}".lower()] = d
            self.datasets[d.name.lower()] = d  # a bare name means its newest version
        self.users = {
            u.get_username().lower(): u for u in get_user_model().objects.filter(is_active=True)
        }


def _json_cell(value, column, kind, errors, row):
    if not value.strip():
        return kind()
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        errors.append(RowError(row, column, f"not valid JSON ({exc.msg})"))
        return kind()
    if not isinstance(parsed, kind):
        errors.append(RowError(row, column, f"expected a JSON {kind.__name__}"))
        return kind()
    return parsed


def _finding_from_row(values, row, lookups, by):
    errors = []
    cell = {c: (values.get(c) or "").strip() for c in IMPORT_COLUMNS}
    finding = Finding(reporter=by, title=cell["title"])
    for text in (
        "summary",
        "description",
        "harms",
        "affected_stakeholders",
        "policy_reference",
        "lesson",
        "remaining_gaps",
    ):
        setattr(finding, text, cell[text])
    if not cell["title"]:
        errors.append(RowError(row, "title", "a title is required"))
    model = lookups.models.get(cell["ml_model"].lower())
    if not cell["ml_model"]:
        errors.append(RowError(row, "ml_model", "an ML model (name or slug) is required"))
    elif model is None:
        errors.append(RowError(row, "ml_model", f"no ML model named '{cell['ml_model']}'"))
    else:
        finding.ml_model = model
    if cell["model_version"] and model is not None:
        version = lookups.versions.get((model.pk, cell["model_version"]))
        if version is None:
            errors.append(
                RowError(
                    row, "model_version", f"{model.name} has no version '{cell['model_version']}'"
                )
            )
        finding.model_version = version
    if cell["dataset"]:
        dataset = lookups.datasets.get(cell["dataset"].lower())
        if dataset is None:
            errors.append(
                RowError(
                    row, "dataset", f"no dataset '{cell['dataset']}' (write name or name@version)"
                )
            )
        finding.dataset = dataset
    finding.slice = _json_cell(values.get("slice") or "", "slice", list, errors, row)
    finding.evidence = _json_cell(values.get("evidence") or "", "evidence", dict, errors, row)
    for column, choices, default in (
        ("severity", Severity, Severity.MEDIUM),
        ("risk_category", RiskCategory, RiskCategory.RELIABILITY),
    ):
        value = cell[column].lower() or default
        if value not in choices.values:
            errors.append(
                RowError(
                    row, column, f"'{cell[column]}' is not one of " + ", ".join(choices.values)
                )
            )
        setattr(finding, column, value)
    if cell["owner"]:
        owner = lookups.users.get(cell["owner"].lower())
        if owner is None:
            errors.append(RowError(row, "owner", f"no active user '{cell['owner']}'"))
        finding.owner = owner
    if not errors:
        try:
            finding.full_clean(exclude=["reporter", "owner"])
        except ValidationError as exc:
            for column, messages in exc.message_dict.items():
                for message in messages:
                    errors.append(RowError(row, column if column != "__all__" else "-", message))
    tags = [t.strip() for t in cell["tags"].split(",") if t.strip()]
    return finding, tags, errors


def import_findings_csv(file, *, by, commit=False):
    """Check (and with `commit`, save) the findings of a CSV file, all or nothing.

    1. Refuse a file over CSV_MAX_BYTES or CSV_MAX_ROWS, not UTF-8, without a header, or
       with unknown or missing columns (reported as row 1).
    2. Build and validate every row (names looked up, JSON parsed, the slice checked
       against the dataset's schema), collecting every error.
    3. If there is no error and `commit`, save them all in one transaction, as `by`, and
       rebuild their search documents once at the end.
    """

    report = ImportReport()
    raw = file.read(CSV_MAX_BYTES + 1)
    if len(raw) > CSV_MAX_BYTES:
        report.errors.append(RowError(0, "-", f"the file is over {CSV_MAX_BYTES} bytes"))
        return report
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        report.errors.append(RowError(0, "-", "the file is not UTF-8 text"))
        return report
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        report.errors.append(RowError(1, "-", "the file has no header row"))
        return report
    reader.fieldnames = header
    unknown = [h for h in header if h not in IMPORT_COLUMNS]
    for column in unknown:
        report.errors.append(
            RowError(1, column, "unknown column; expected some of " + ", ".join(IMPORT_COLUMNS))
        )
    for column in REQUIRED_COLUMNS:
        if column not in header:
            report.errors.append(RowError(1, column, "required column is missing"))
    if report.errors:
        return report
    lookups = _Lookups()
    parsed = []
    for index, values in enumerate(reader, start=2):
        if index - 1 > CSV_MAX_ROWS:
            report.errors.append(RowError(index, "-", f"more than {CSV_MAX_ROWS} rows"))
            break
        if not any((v or "").strip() for v in values.values() if isinstance(v, str)):
            continue
        if values.get(None):
            report.errors.append(RowError(index, "-", "more cells than header columns"))
        finding, tags, errors = _finding_from_row(values, index, lookups, by)
        report.errors += errors
        parsed.append((finding, tags))
    report.rows = len(parsed)
    if report.rows == 0 and not report.errors:
        report.errors.append(RowError(2, "-", "the file has no data rows"))
    if report.errors or not commit:
        return report
    with transaction.atomic(), acting_as(by), search.deferred():
        for finding, tags in parsed:
            finding.save()
            finding.tags.set(Tag.from_names(tags))
            report.created.append(finding)
    report.committed = True
    return report
