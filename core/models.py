"""The audit trail: one immutable row per create, update or status change of an audited
object (core/audit.py decides when one is written).

The trail is hash-chained: each event stores the hash of the event before it
(`prev_hash`) and its own `hash`, the sha256 of `prev_hash` and the event's canonical
JSON. AuditChain's single row holds the chain's tip and length, so that an edited, removed,
reordered or inserted event — the last one included — breaks a link that
`manage.py verify_audit` names.
"""

import datetime
import decimal
import hashlib
import json
import uuid

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone

SYSTEM = "system"  # the actor of what no person does (a regression found by a rerun)
GENESIS = "0" * 64  # the "previous hash" of the first event


def _jsonable(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, FieldFile):
        return value.name or None
    return value


class AuditEventQuerySet(models.QuerySet):
    def for_object(self, obj):
        return self.filter(
            content_type=ContentType.objects.get_for_model(type(obj)), object_id=str(obj.pk)
        )

    def update(self, **kwargs):
        raise ValidationError("Audit events are immutable.")

    def delete(self):
        raise ValidationError("Audit events are immutable.")


def canonical_json(event):
    """The event's recorded content as one fixed string: sorted keys, no spaces, the object
    type by its label (ids of content types differ between databases)."""
    content_type = ContentType.objects.get_for_id(event.content_type_id)
    return json.dumps(
        {
            "id": event.pk,
            "object_type": f"{content_type.app_label}.{content_type.model}",
            "object_id": event.object_id,
            "object_repr": event.object_repr,
            "verb": event.verb,
            "actor_label": event.actor_label,
            "before": event.before,
            "after": event.after,
            "from_status": event.from_status,
            "to_status": event.to_status,
            "note": event.note,
            "created_at": event.created_at.isoformat(),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def chain_hash(prev_hash, event):
    return hashlib.sha256((prev_hash + canonical_json(event)).encode("utf-8")).hexdigest()


class AuditChain(models.Model):
    """The tip of the audit trail's hash chain (one row): appends lock it, so that two
    writers never fork the chain, and a removed last event shows as a tip mismatch."""

    tip = models.CharField(max_length=64, default=GENESIS)
    length = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "audit chain"

    def __str__(self):
        return f"{self.length} events, tip {self.tip[:12]}"

    @classmethod
    def lock(cls):
        """The chain's row, locked for this transaction: the UPDATE takes the row lock
        (PostgreSQL) before the tip is read; SQLite's IMMEDIATE transactions already hold
        the database's write lock."""
        if not cls.objects.filter(pk=1).update(length=models.F("length")):
            cls.objects.get_or_create(pk=1)
        return cls.objects.get(pk=1)


def verify_chain():
    """Walk the audit trail in id order; None when every link holds, else a sentence that
    names the first broken one (an edited, removed, inserted or reordered event)."""
    expected, count, last = GENESIS, 0, None
    events: models.QuerySet[AuditEvent] = (
        models.QuerySet(AuditEvent)
        .order_by("pk")
        .only(*[f.attname for f in AuditEvent._meta.concrete_fields])
    )
    for event in events.iterator(chunk_size=2000):
        if event.prev_hash != expected:
            where = f"after event #{last}" if last else "at the start"
            return (
                f"Event #{event.pk} does not follow the chain {where}: an event was "
                f"removed, inserted or reordered before it."
            )
        if chain_hash(event.prev_hash, event) != event.hash:
            return (
                f"Event #{event.pk} was changed after it was recorded (its hash no longer matches)."
            )
        expected, count, last = event.hash, count + 1, event.pk
    chain = AuditChain.objects.filter(pk=1).first()
    tip, length = (chain.tip, chain.length) if chain else (GENESIS, 0)
    if (tip, length) != (expected, count):
        where = f"event #{last}" if last else "the start"
        return (
            f"The chain ends at {where} but its tip records {length} events: "
            f"events after #{last or 0} were removed."
        )
    return None


class AuditEvent(models.Model):
    """One immutable line of history: who did what to which object, before and after."""

    class Verb(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        TRANSITION = "transition", "Status changed"

    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    object_id = models.CharField(max_length=40)
    object_repr = models.CharField(max_length=200)
    verb = models.CharField(max_length=20, choices=Verb.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_label = models.CharField(max_length=150)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["content_type", "object_id", "created_at"])]

    def __str__(self):
        return f"{self.actor_label} {self.verb} {self.object_repr}"

    def save(self, *args, **kwargs):
        """Events are only ever added, at the end of the chain.

        1. Lock the chain's tip (AuditChain.lock).
        2. Insert the event with `prev_hash` = the tip and a unique placeholder hash, then
           compute its hash from its canonical JSON (which includes its id, known only
           after the insert).
        3. Store the hash on the event and move the tip to it; all in one transaction.
        """
        if not self._state.adding:
            raise ValidationError("Audit events are immutable.")
        with transaction.atomic():
            chain = AuditChain.lock()
            self.prev_hash = chain.tip
            self.hash = f"pending-{uuid.uuid4().hex}"
            super().save(*args, **kwargs)
            self.hash = chain_hash(chain.tip, self)
            models.QuerySet(type(self)).filter(pk=self.pk).update(hash=self.hash)
            AuditChain.objects.filter(pk=1).update(tip=self.hash, length=chain.length + 1)

    def delete(self, *args, **kwargs):
        raise ValidationError("Audit events are immutable.")

    @staticmethod
    def snapshot(obj):
        """The object's concrete fields (and tags, where it has them) as JSON."""
        data = {}
        for field in obj._meta.concrete_fields:
            if field.name == "search_vector" or field.name in getattr(obj, "audit_exclude", ()):
                continue
            data[field.attname] = _jsonable(getattr(obj, field.attname))
        return data

    @classmethod
    def record(
        cls,
        obj,
        *,
        verb,
        actor=None,
        before=None,
        after=None,
        note="",
        from_status="",
        to_status="",
    ):
        actor = actor if getattr(actor, "is_authenticated", False) else None
        return cls.objects.create(
            content_type=ContentType.objects.get_for_model(type(obj)),
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            verb=verb,
            actor=actor,
            actor_label=actor.get_username() if actor else SYSTEM,
            before=before,
            after=after if after is not None else cls.snapshot(obj),
            from_status=from_status,
            to_status=to_status,
            note=note,
        )

    @property
    def target_url(self):
        obj = self.content_type.get_object_for_this_type(pk=self.object_id)
        return obj.get_absolute_url() if hasattr(obj, "get_absolute_url") else ""
