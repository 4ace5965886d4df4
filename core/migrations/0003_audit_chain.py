"""The audit trail becomes a hash chain: every event stores the previous event's hash and
its own; the chain's tip lives in AuditChain's single row. The existing events are chained
in id order here, with a copy of the canonical form as it is defined today (a migration
never imports live code)."""

import hashlib
import json

from django.db import migrations, models

GENESIS = "0" * 64


def _canonical(event, labels):
    return json.dumps(
        {
            "id": event.pk,
            "object_type": labels[event.content_type_id],
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
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
    )


def chain_existing(apps, schema_editor):
    db = schema_editor.connection.alias
    AuditEvent = apps.get_model("core", "AuditEvent")
    AuditChain = apps.get_model("core", "AuditChain")
    ContentType = apps.get_model("contenttypes", "ContentType")
    labels = {ct.pk: f"{ct.app_label}.{ct.model}" for ct in ContentType.objects.using(db)}
    tip, length = GENESIS, 0
    for event in AuditEvent.objects.using(db).order_by("pk").iterator():
        digest = hashlib.sha256((tip + _canonical(event, labels)).encode("utf-8")).hexdigest()
        AuditEvent.objects.using(db).filter(pk=event.pk).update(prev_hash=tip, hash=digest)
        tip, length = digest, length + 1
    AuditChain.objects.using(db).update_or_create(pk=1, defaults={"tip": tip, "length": length})


class Migration(migrations.Migration):
    dependencies = [("core", "0002_content_types_of_moved_models")]

    operations = [
        migrations.CreateModel(
            name="AuditChain",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("tip", models.CharField(default=GENESIS, max_length=64)),
                ("length", models.PositiveBigIntegerField(default=0)),
            ],
            options={"verbose_name": "audit chain"},
        ),
        migrations.AddField("auditevent", "prev_hash", models.CharField(max_length=64, null=True)),
        migrations.AddField("auditevent", "hash", models.CharField(max_length=64, null=True)),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
        migrations.AlterField("auditevent", "prev_hash",
                              models.CharField(max_length=64, unique=True)),
        migrations.AlterField("auditevent", "hash", models.CharField(max_length=64, unique=True)),
    ]
