"""The whole catalog as one JSON backup, and back.

`export_catalog()` / `import_catalog(data)`: the whole catalog (ML models, model versions'
and datasets' metadata, findings, tags, probes, reruns, probe runs, remediation actions,
evaluations and the audit trail) as JSON, and back into an empty instance with the same
ids, so links keep working.

Files are not in the JSON: datasets and artifacts travel as their storage path, size and
sha256, and are copied separately (MEDIA_ROOT/datasets and MEDIA_ROOT/artifacts);
`import_catalog` reports each file that is missing or whose sha256 differs. Embedding them
would put dataset rows, sensitive columns included, into the export.
"""

import hashlib
import json
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from catalog import search
from catalog.models import Finding, Tag
from core.audit import silenced
from core.models import AuditEvent
from probes.models import Probe, ProbeRun, Rerun
from registry.models import Dataset, MLModel, ModelVersion
from remediation.models import Evaluation, RemediationAction

# -- the whole catalog -------------------------------------------------------------------

FORMAT = "boundary-ledger-catalog"
FORMAT_VERSION = 1


def _catalog_models():
    """The exported models, in an order where every reference points backwards."""
    return [Tag, MLModel, Dataset, ModelVersion, Finding, Probe, Rerun, ProbeRun,
            RemediationAction, Evaluation, AuditEvent]


SKIPPED_FIELDS = {"search_vector"}


def export_catalog():
    """The whole catalog as a JSON-ready dict (see the module docstring)."""
    User = get_user_model()
    sections = {}
    user_ids = set()
    for model in _catalog_models():
        label = model._meta.label_lower
        objects = model._default_manager.order_by("pk")
        data = serializers.serialize("python", objects, use_natural_foreign_keys=True)
        for item in data:
            for name in SKIPPED_FIELDS:
                item["fields"].pop(name, None)
        sections[label] = data
        for f in model._meta.concrete_fields:
            if f.is_relation and f.related_model is User:
                user_ids.update(objects.exclude(**{f.attname: None})
                                .values_list(f.attname, flat=True))
    users = [
        {"username": u.get_username(), "first_name": u.first_name, "last_name": u.last_name,
         "email": u.email}
        for u in User.objects.filter(pk__in=user_ids).order_by("username")
    ]
    files = []
    for label, key, sha in (("registry.dataset", "file", "sha256"),
                            ("registry.modelversion", "artifact", "artifact_sha256")):
        for item in sections[label]:
            files.append({"path": item["fields"][key], "sha256": item["fields"][sha]})
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "files": {
            "included": False,
            "note": "Copy these files from MEDIA_ROOT separately; each is checked by sha256.",
            "list": files,
        },
        "users": users,
        "objects": sections,
    }


def catalog_json(data=None):
    return json.dumps(export_catalog() if data is None else data, cls=DjangoJSONEncoder,
                      indent=1, ensure_ascii=False)


@dataclass
class CatalogImportReport:
    counts: dict = field(default_factory=dict)
    users_created: list = field(default_factory=list)
    missing_files: list = field(default_factory=list)


def catalog_is_empty():
    return not any(m._default_manager.exists() for m in _catalog_models())


def import_catalog(data):
    """Load an `export_catalog()` dict into an empty catalog, keeping every id.

    1. Refuse another format or version, and a catalog that already holds anything.
    2. Create the users it names that do not exist (inactive, without a password: an
       administrator activates them); keep existing ones.
    3. Save every object as exported (no audit events are invented: the exported trail is
       the history), reset the id sequences, rebuild the search documents.
    4. Report the dataset and artifact files missing from MEDIA_ROOT or whose sha256
       differs (they are copied separately).
    All in one transaction: a failure leaves the instance as it was.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValidationError(f"Not a {FORMAT} file.")
    if data.get("version") != FORMAT_VERSION:
        raise ValidationError(f"Unsupported catalog format version {data.get('version')!r}; "
                              f"this instance reads version {FORMAT_VERSION}.")
    if not catalog_is_empty():
        raise ValidationError("The catalog is not empty: import into a fresh instance.")

    User = get_user_model()
    report = CatalogImportReport()
    models = _catalog_models()
    # Silenced: the exported audit trail is the history; loading it is not an event.
    with transaction.atomic(), silenced(), search.deferred():
        for entry in data.get("users", []):
            user, created = User.objects.get_or_create(
                username=entry["username"],
                defaults={"first_name": entry.get("first_name", ""),
                          "last_name": entry.get("last_name", ""),
                          "email": entry.get("email", ""), "is_active": False},
            )
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
                report.users_created.append(user.get_username())
        sections = data.get("objects", {})
        for model in models:
            label = model._meta.label_lower
            items = sections.get(label, [])
            try:
                for obj in serializers.deserialize("python", items,
                                                   handle_forward_references=False):
                    obj.save()
            except serializers.base.DeserializationError as exc:
                raise ValidationError(f"{label}: {exc}") from exc
            report.counts[label] = len(items)
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), models):
                cursor.execute(sql)
    Finding.objects.refresh_search_vectors()
    report.missing_files = _check_files(data.get("files", {}).get("list", []))
    return report


def _check_files(files):
    from django.core.files.storage import default_storage

    problems = []
    for entry in files:
        path, expected = entry.get("path"), entry.get("sha256")
        if not path:
            continue
        if not default_storage.exists(path):
            problems.append(f"{path}: missing")
            continue
        digest = hashlib.sha256()
        with default_storage.open(path, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            problems.append(f"{path}: sha256 differs from the export's")
    return problems
