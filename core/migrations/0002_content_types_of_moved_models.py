"""Content types follow the models that moved between apps, so that permissions (and the
roles holding them) and audit events keep pointing at the same models.

Written against the historical models only, with the table of moves copied here."""

from django.db import migrations

MOVES = [
    ("probes", "mlmodel", "registry"),
    ("probes", "dataset", "registry"),
    ("probes", "modelversion", "registry"),
    ("probes", "slicescan", "introspection"),
    ("probes", "boundarymap", "introspection"),
    ("probes", "stresssweep", "introspection"),
    ("remediation", "auditevent", "core"),
]


def relabel(apps, schema_editor, moves=MOVES):
    """1. Give each moved model's content type its new app label (its id, permissions
       and the audit events that point at it stay as they are).
    2. Where a content type with the new label exists already (created by a run of
       post_migrate in between), move the permissions' group and user grants and the
       audit events over to it, then drop the old one."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    AuditEvent = apps.get_model("core", "AuditEvent")
    db = schema_editor.connection.alias
    for old_app, model, new_app in moves:
        old = ContentType.objects.using(db).filter(app_label=old_app, model=model).first()
        if old is None:
            continue
        new = ContentType.objects.using(db).filter(app_label=new_app, model=model).first()
        if new is None:
            old.app_label = new_app
            old.save(update_fields=["app_label"])
            continue
        for perm in Permission.objects.using(db).filter(content_type=old):
            target = Permission.objects.using(db).filter(
                content_type=new, codename=perm.codename).first()
            if target is None:
                perm.content_type = new
                perm.save(update_fields=["content_type"])
                continue
            for group in perm.group_set.all():
                group.permissions.add(target)
            for user in perm.user_set.all():
                user.user_permissions.add(target)
            perm.delete()
        # Audit events are immutable through the model's manager; this historical model
        # has a plain manager, and the move changes no event's meaning.
        AuditEvent.objects.using(db).filter(content_type=old).update(content_type=new)
        old.delete()


def unlabel(apps, schema_editor):
    relabel(apps, schema_editor, [(new, model, old) for old, model, new in MOVES])


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("probes", "0008_forget_moved_models"),
        ("remediation", "0004_point_at_moved_models"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(relabel, unlabel)]
