"""The catalog's version moves with the ML models too: their names and slugs show on
findings, filter them and head the catalog's facets and search form."""

import importlib

from django.db import migrations

_first = importlib.import_module("catalog.migrations.0008_catalog_version")
postgres_triggers, drop_postgres_triggers = _first.postgres_triggers, _first.drop_postgres_triggers

TABLE = "registry_mlmodel"
EVENTS = ["INSERT", "UPDATE", "DELETE"]


def create_triggers(apps, schema_editor):
    run = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        postgres_triggers(run, TABLE)
        return
    for event in EVENTS:
        run(_first.SQLITE_BUMP.format(table=TABLE, event=event))


def drop_triggers(apps, schema_editor):
    run = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        drop_postgres_triggers(run, TABLE)
        return
    for event in EVENTS:
        run(f"DROP TRIGGER IF EXISTS {TABLE}_version_{event}")


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0008_catalog_version"),
        ("registry", "0004_dataset_profiles_drift"),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
