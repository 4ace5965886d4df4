"""The audit trail: one immutable row per create, update or status change of an audited
object (core/audit.py decides when one is written)."""

import datetime
import decimal
import uuid

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils import timezone

SYSTEM = "system"  # the actor of what no person does (a regression found by a rerun)


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

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["content_type", "object_id", "created_at"])]

    def __str__(self):
        return f"{self.actor_label} {self.verb} {self.object_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Audit events are immutable.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Audit events are immutable.")

    @staticmethod
    def snapshot(obj):
        """The object's concrete fields (and tags, where it has them) as JSON."""
        data = {}
        for field in obj._meta.concrete_fields:
            if field.name in ("search_vector",):
                continue
            data[field.attname] = _jsonable(getattr(obj, field.attname))
        return data

    @classmethod
    def record(cls, obj, *, verb, actor=None, before=None, after=None, note="", from_status="",
               to_status=""):
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
