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

import datetime
import hashlib
import json
import re
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog import search
from catalog.models import Finding, Tag
from core import hygiene
from core.audit import silenced
from core.models import GENESIS, AuditChain, AuditEvent, chain_hash, verify_chain
from probes.models import Probe, ProbeRun, Rerun
from registry.models import Dataset, MLModel, ModelVersion
from remediation.models import Evaluation, RemediationAction

# -- the whole catalog -------------------------------------------------------------------

FORMAT = "boundary-ledger-catalog"
# 2: models under their layered apps (registry., core.) and a hash-chained audit trail.
# Version 1 files (probes.mlmodel, remediation.auditevent, no hashes) are still read.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
LEGACY_LABELS = {
    "probes.mlmodel": "registry.mlmodel",
    "probes.dataset": "registry.dataset",
    "probes.modelversion": "registry.modelversion",
    "remediation.auditevent": "core.auditevent",
}
# Stored files are always under a generated name (registry/models.py); anything else in an
# import (an absolute path, "..") is refused before anything is read or written.
FILE_FIELDS = {
    "registry.dataset": ("file", "sha256"),
    "registry.modelversion": ("artifact", "artifact_sha256"),
}
STORED_NAME = re.compile(r"(datasets|artifacts)/[0-9a-f]{32}\.[a-z]{2,8}")


def _catalog_models():
    """The exported models, in an order where every reference points backwards."""
    return [
        Tag,
        MLModel,
        Dataset,
        ModelVersion,
        Finding,
        Probe,
        Rerun,
        ProbeRun,
        RemediationAction,
        Evaluation,
        AuditEvent,
    ]


# Derived data, rebuilt where it is needed; a dataset's preview holds its rows, which an
# export never carries (the dataset page stores it again on its first view).
SKIPPED_FIELDS = {"search_vector", "preview"}


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
                user_ids.update(
                    objects.exclude(**{f.attname: None}).values_list(f.attname, flat=True)
                )
    users = [
        {
            "username": u.get_username(),
            "first_name": u.first_name,
            "last_name": u.last_name,
            "email": u.email,
        }
        for u in User.objects.filter(pk__in=user_ids).order_by("username")
    ]
    files = []
    for label, key, sha in (
        ("registry.dataset", "file", "sha256"),
        ("registry.modelversion", "artifact", "artifact_sha256"),
    ):
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


class _ExactEncoder(DjangoJSONEncoder):
    """Times to the microsecond (DjangoJSONEncoder keeps milliseconds): the audit trail's
    hashes cover its events' exact times."""

    def default(self, o):
        if isinstance(o, datetime.datetime):
            return o.isoformat()
        return super().default(o)


def catalog_json(data=None):
    return json.dumps(
        export_catalog() if data is None else data, cls=_ExactEncoder, indent=1, ensure_ascii=False
    )


@dataclass
class CatalogImportReport:
    counts: dict = field(default_factory=dict)
    users_created: list = field(default_factory=list)
    missing_files: list = field(default_factory=list)


def catalog_is_empty():
    return not any(m._default_manager.exists() for m in _catalog_models())


def import_catalog(data):
    """Load an `export_catalog()` dict into an empty catalog, keeping every id.

    1. Check everything before anything is written: the format and version, an empty
       catalog, every section a model of the catalog's own (any other model, auth.user or
       django_q.schedule say, is refused by name, whatever section it hides in), every
       value under the input-hygiene rules, every stored file name a generated one.
    2. Create the users it names that do not exist (inactive, without a password: an
       administrator activates them); keep existing ones.
    3. Save every object as exported (no audit events are invented: the exported trail is
       the history; a version 1 trail is chained here), reset the id sequences, check the
       audit chain end to end, rebuild the search documents.
    4. Report the dataset and artifact files missing from MEDIA_ROOT or whose sha256
       differs (they are copied separately).
    Steps 2 and 3 run in one transaction: a failure leaves the instance as it was.
    """
    sections = _checked_sections(data)
    if not catalog_is_empty():
        raise ValidationError("The catalog is not empty: import into a fresh instance.")
    missing_files = _check_files(_checked_files(data))

    User = get_user_model()
    report = CatalogImportReport(missing_files=missing_files)
    models = _catalog_models()
    legacy_trail = data["version"] == 1
    # Silenced: the exported audit trail is the history; loading it is not an event.
    with transaction.atomic(), silenced(), search.deferred():
        for entry in data.get("users", []):
            user, created = User.objects.get_or_create(
                username=entry["username"],
                defaults={
                    "first_name": entry.get("first_name", ""),
                    "last_name": entry.get("last_name", ""),
                    "email": entry.get("email", ""),
                    "is_active": False,
                },
            )
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
                report.users_created.append(user.get_username())
        for model in models:
            label = model._meta.label_lower
            items = sections.get(label, [])
            try:
                for obj in serializers.deserialize(
                    "python", items, handle_forward_references=False
                ):
                    if type(obj.object) is not model:  # checked already; never trusted
                        raise ValidationError(f"{label}: holds a {obj.object._meta.label}.")
                    obj.save()
            except serializers.base.DeserializationError as exc:
                raise ValidationError(f"{label}: {exc}") from exc
            report.counts[label] = len(items)
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), models):
                cursor.execute(sql)
        _restore_chain(rechain=legacy_trail)
    Finding.objects.refresh_search_vectors()
    return report


def _checked_sections(data):
    """{label: items} of a readable export, every item checked (step 1 above)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValidationError(f"Not a {FORMAT} file.")
    version = data.get("version")
    if version not in READABLE_VERSIONS:
        raise ValidationError(
            f"Unsupported catalog format version {version!r}; "
            f"this instance reads versions 1 and {FORMAT_VERSION}."
        )
    try:
        hygiene.check(data)
    except hygiene.InputError as exc:
        raise ValidationError(f"The file cannot be stored as it is: {exc}") from exc
    allowed = {m._meta.label_lower: m for m in _catalog_models()}
    raw = data.get("objects", {})
    if not isinstance(raw, dict):
        raise ValidationError("'objects' must map each model to its list of objects.")
    sections = {}
    for given, items in raw.items():
        label = LEGACY_LABELS.get(given, given) if version == 1 else given
        if label not in allowed:
            raise ValidationError(
                f"'{given}' is not part of a catalog: an import writes only "
                + ", ".join(sorted(allowed))
                + "."
            )
        if not isinstance(items, list):
            raise ValidationError(f"{given}: expected a list of objects.")
        checked = []
        for index, item in enumerate(items):
            where = f"{given}[{index}]"
            if not isinstance(item, dict) or not isinstance(item.get("fields"), dict):
                raise ValidationError(f"{where}: expected an object with 'model' and 'fields'.")
            model = str(item.get("model", "")).lower()
            model = LEGACY_LABELS.get(model, model) if version == 1 else model
            if model != label:
                raise ValidationError(
                    f"{where} is a '{item.get('model')}' object in the '{given}' section; "
                    "an import writes each section's own model only."
                )
            item = {**item, "model": label, "fields": dict(item["fields"])}
            if label in FILE_FIELDS:
                name = item["fields"].get(FILE_FIELDS[label][0])
                if not isinstance(name, str) or not STORED_NAME.fullmatch(name):
                    raise ValidationError(
                        f"{where}: {name!r} is not a stored file name (datasets/… or artifacts/…)."
                    )
            if label == "core.auditevent" and version == 1:
                # Chained after loading (_restore_chain); unique placeholders until then.
                item["fields"]["prev_hash"] = f"import-prev-{item.get('pk')}"
                item["fields"]["hash"] = f"import-{item.get('pk')}"
            checked.append(item)
        sections[label] = checked
    return sections


def _checked_files(data):
    files = data.get("files", {}).get("list", []) if isinstance(data.get("files"), dict) else []
    for entry in files:
        path = entry.get("path") if isinstance(entry, dict) else None
        if path and not (isinstance(path, str) and STORED_NAME.fullmatch(path)):
            raise ValidationError(
                f"files: {path!r} is not a stored file name (datasets/… or artifacts/…)."
            )
    return files


def _restore_chain(*, rechain):
    """The imported trail becomes this instance's chain: a version 1 trail is chained in
    id order; a version 2 trail must verify as exported."""
    events = AuditEvent.objects.order_by("pk")
    tip, length = GENESIS, 0
    if rechain:
        for event in events.iterator():
            digest = chain_hash(tip, event)
            QuerySet(AuditEvent).filter(pk=event.pk).update(prev_hash=tip, hash=digest)
            tip, length = digest, length + 1
    else:
        last = events.last()
        tip, length = (last.hash, events.count()) if last else (GENESIS, 0)
    AuditChain.objects.update_or_create(pk=1, defaults={"tip": tip, "length": length})
    problem = verify_chain()
    if problem:
        raise ValidationError(f"The export's audit trail is not intact: {problem}")


def _check_files(files):
    from django.core.files.storage import default_storage

    problems = []
    for entry in files:
        if not isinstance(entry, dict):
            continue
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
