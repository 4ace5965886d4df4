"""The catalog's version: one row that triggers on catalog_finding, catalog_tag and
catalog_finding_tags move on every insert, update, delete (and, on PostgreSQL, truncate),
whoever writes (the ORM, a bulk update, raw SQL, a restore). catalog.freshness keys the
API's list pages by it. (0009 adds the ML models.)"""

import secrets

from django.db import migrations, models

TABLES = ["catalog_finding", "catalog_tag", "catalog_finding_tags"]

# PostgreSQL: once per transaction, when it commits (deferred constraint triggers fire
# then, after every other lock the transaction takes; a bump in the middle of it would
# hold the version's row while waiting for findings another writer holds, a deadlock).
POSTGRES_BUMP = """
CREATE OR REPLACE FUNCTION catalog_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('catalog.version_bumped', true) = txid_current()::text THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('catalog.version_bumped', txid_current()::text, true);
    INSERT INTO catalog_catalogversion (id, epoch, number)
    VALUES (1, md5(random()::text || clock_timestamp()::text), 1)
    ON CONFLICT (id) DO UPDATE SET number = catalog_catalogversion.number + 1;
    RETURN NULL;
END
$$;
"""

SQLITE_BUMP = """
CREATE TRIGGER {table}_version_{event} AFTER {event} ON {table}
BEGIN
    INSERT INTO catalog_catalogversion (id, epoch, number)
    VALUES (1, lower(hex(randomblob(16))), 1)
    ON CONFLICT (id) DO UPDATE SET number = number + 1;
END;
"""

EVENTS = ["insert", "update", "delete"]


def postgres_triggers(run, table):
    run(
        f"CREATE CONSTRAINT TRIGGER {table}_version AFTER INSERT OR UPDATE OR DELETE "
        f"ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        "EXECUTE FUNCTION catalog_version_bump()"
    )
    run(
        f"CREATE TRIGGER {table}_version_truncate AFTER TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION catalog_version_bump()"
    )


def drop_postgres_triggers(run, table):
    run(f"DROP TRIGGER IF EXISTS {table}_version ON {table}")
    run(f"DROP TRIGGER IF EXISTS {table}_version_truncate ON {table}")


def create_triggers(apps, schema_editor):
    run = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        run(POSTGRES_BUMP)
        for table in TABLES:
            postgres_triggers(run, table)
    else:
        for table in TABLES:
            for event in EVENTS:
                run(SQLITE_BUMP.format(table=table, event=event.upper()))
    run(
        "INSERT INTO catalog_catalogversion (id, epoch, number) VALUES (1, %s, 1)",
        [secrets.token_hex(16)],
    )


def drop_triggers(apps, schema_editor):
    run = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            drop_postgres_triggers(run, table)
        run("DROP FUNCTION IF EXISTS catalog_version_bump()")
    else:
        for table in TABLES:
            for event in EVENTS:
                run(f"DROP TRIGGER IF EXISTS {table}_version_{event.upper()}")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0007_finding_accepted_until")]

    operations = [
        migrations.CreateModel(
            name="CatalogVersion",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False),
                ),
                ("epoch", models.CharField(max_length=40)),
                ("number", models.BigIntegerField(default=0)),
            ],
            options={"default_permissions": ()},
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
