"""The catalog's version moves with the ML models too: their names and slugs show on
findings, filter them and head the catalog's facets and search form."""

from django.db import migrations

TABLE = "registry_mlmodel"
EVENTS = ["INSERT", "UPDATE", "DELETE"]


def create_triggers(apps, schema_editor):
    run = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        run(
            f"CREATE TRIGGER {TABLE}_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {TABLE} FOR EACH STATEMENT EXECUTE FUNCTION catalog_version_bump()"
        )
        return
    for event in EVENTS:
        run(
            f"CREATE TRIGGER {TABLE}_version_{event} AFTER {event} ON {TABLE} BEGIN "
            "INSERT INTO catalog_catalogversion (id, epoch, number) "
            "VALUES (1, lower(hex(randomblob(16))), 1) "
            "ON CONFLICT (id) DO UPDATE SET number = number + 1; END"
        )


def drop_triggers(apps, schema_editor):
    run = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        run(f"DROP TRIGGER IF EXISTS {TABLE}_version ON {TABLE}")
        return
    for event in EVENTS:
        run(f"DROP TRIGGER IF EXISTS {TABLE}_version_{event}")


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0008_catalog_version"),
        ("registry", "0004_dataset_profiles_drift"),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
