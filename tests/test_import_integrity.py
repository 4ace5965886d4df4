"""The whole-catalog import writes only the catalog's own models and checks everything
before it writes anything (DESIGN.md: import_catalog): a section or an object of any other
model (a superuser, a worker schedule) is refused by name, as are stored-file paths that
leave MEDIA_ROOT, values the database cannot hold and an export whose audit trail was
edited; the web form and the command alike, with nothing saved."""

import copy
import json

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django_q.models import Schedule

from catalog.models import Finding
from core.models import AuditEvent, verify_chain
from ledger import backup
from ledger.backup import import_catalog

from .factories import client_for
from .test_import_export import _wipe_catalog, full_catalog  # noqa: F401


@pytest.fixture
def export(full_catalog):  # noqa: F811
    """A real export of a full catalog, then an empty instance to import it into."""
    data = json.loads(backup.catalog_json())
    _wipe_catalog()
    return data


def superuser(pk=999):
    return {
        "model": "auth.user",
        "pk": pk,
        "fields": {
            "username": "mallory",
            "is_superuser": True,
            "is_staff": True,
            "is_active": True,
            "password": "x",
        },
    }


def schedule():
    return {
        "model": "django_q.schedule",
        "pk": 99,
        "fields": {"name": "x", "func": "os.system", "args": "'id'", "schedule_type": "O"},
    }


def with_objects(data, label, items, at=None):
    data = copy.deepcopy(data)
    if at is None:
        data["objects"][label] = items
    else:
        data["objects"][label] = data["objects"].get(label, []) + items
    return data


def tampered_event(data):
    data = copy.deepcopy(data)
    data["objects"]["core.auditevent"][0]["fields"]["note"] = "rewritten"
    return data


def bad_file(data, path):
    data = copy.deepcopy(data)
    data["objects"]["registry.dataset"][0]["fields"]["file"] = path
    return data


CASES = [
    ("section-auth-user", lambda d: with_objects(d, "auth.user", [superuser()]), "'auth.user'"),
    (
        "section-django-q-schedule",
        lambda d: with_objects(d, "django_q.schedule", [schedule()]),
        "'django_q.schedule'",
    ),
    (
        "user-hidden-in-tags",
        lambda d: with_objects(d, "catalog.tag", [superuser()], at="end"),
        "'auth.user' object in the 'catalog.tag' section",
    ),
    (
        "schedule-hidden-in-findings",
        lambda d: with_objects(d, "catalog.finding", [schedule()], at="end"),
        "'django_q.schedule' object in the 'catalog.finding' section",
    ),
    ("session-section", lambda d: with_objects(d, "sessions.session", []), "'sessions.session'"),
    ("file-outside-media", lambda d: bad_file(d, "../../etc/passwd"), "not a stored file name"),
    ("file-absolute", lambda d: bad_file(d, "/etc/passwd"), "not a stored file name"),
    (
        "file-list-outside-media",
        lambda d: {**d, "files": {"list": [{"path": "../x", "sha256": "0"}]}},
        "not a stored file name",
    ),
    ("nan-in-evidence", lambda d: _set_evidence(d, float("nan")), "not a finite number"),
    ("nul-in-title", lambda d: _set_title(d, "a\x00b"), "NUL"),
    ("edited-audit-event", tampered_event, "audit trail is not intact"),
    ("unknown-version", lambda d: {**d, "version": 99}, "Unsupported catalog format version"),
    ("objects-not-a-mapping", lambda d: {**d, "objects": []}, "'objects' must map"),
]


def _set_evidence(data, value):
    data = copy.deepcopy(data)
    data["objects"]["catalog.finding"][0]["fields"]["evidence"] = {"rate": value}
    return data


def _set_title(data, value):
    data = copy.deepcopy(data)
    data["objects"]["catalog.finding"][0]["fields"]["title"] = value
    return data


def _nothing_written():
    return (
        Finding.objects.count(),
        AuditEvent.objects.count(),
        User.objects.filter(username="mallory").count(),
        Schedule.objects.filter(func="os.system").count(),
        User.objects.filter(is_superuser=True).count(),
    )


@pytest.mark.parametrize(("case", "change", "message"), CASES, ids=[c[0] for c in CASES])
def test_the_import_refuses_by_name_and_writes_nothing(export, case, change, message):
    before = _nothing_written()
    with pytest.raises(ValidationError) as refused:
        import_catalog(change(export))
    assert message in str(refused.value)
    assert _nothing_written() == before
    assert not Finding.objects.exists()


def test_the_web_form_refuses_a_superuser_in_the_export(export, people):
    before = _nothing_written()
    data = with_objects(export, "catalog.tag", [superuser()], at="end")
    upload = SimpleUploadedFile("catalog.json", json.dumps(data).encode(), "application/json")
    response = client_for(people["admin"]).post("/catalog/backup/import/", {"file": upload})
    assert response.status_code == 200
    assert (
        "&#x27;auth.user&#x27; object in the &#x27;catalog.tag&#x27; section"
        in response.content.decode()
    )
    assert _nothing_written() == before


def test_the_command_refuses_a_schedule_in_the_export(export, tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(with_objects(export, "django_q.schedule", [schedule()])))
    with pytest.raises(CommandError, match="'django_q.schedule' is not part of a catalog"):
        call_command("import_catalog", str(path))
    assert not Schedule.objects.filter(func="os.system").exists()


def test_an_intact_export_imports_with_its_chain(export):
    import_catalog(export)
    assert verify_chain() is None
    assert AuditEvent.objects.count() == len(export["objects"]["core.auditevent"])


def test_a_version_1_export_is_read_and_its_trail_chained(export):
    legacy = copy.deepcopy(export)
    legacy["version"] = 1
    renames = {
        "registry.mlmodel": "probes.mlmodel",
        "registry.dataset": "probes.dataset",
        "registry.modelversion": "probes.modelversion",
        "core.auditevent": "remediation.auditevent",
    }
    for new, old in renames.items():
        items = legacy["objects"].pop(new)
        for item in items:
            item["model"] = old
            item["fields"].pop("prev_hash", None)
            item["fields"].pop("hash", None)
        legacy["objects"][old] = items
    report = import_catalog(legacy)
    assert report.counts["registry.modelversion"] == 1
    assert verify_chain() is None
    assert Finding.objects.count() == 1
