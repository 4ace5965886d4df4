"""ML models, datasets and model versions move to the registry app; slice scans, boundary
maps and stress sweeps to the introspection app. Their tables are renamed in place, rows
and files untouched; the apps' migrations that follow move the models' state (no table is
created or dropped)."""

from django.db import migrations

MOVED = {
    "mlmodel": "registry_mlmodel",
    "dataset": "registry_dataset",
    "modelversion": "registry_modelversion",
    "slicescan": "introspection_slicescan",
    "boundarymap": "introspection_boundarymap",
    "stresssweep": "introspection_stresssweep",
}


class Migration(migrations.Migration):
    dependencies = [
        ("probes", "0005_nightly_at_night"),
        ("catalog", "0005_overview_indexes"),
        ("remediation", "0002_roles"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name, table) for name, table in MOVED.items()
            ],
        )
    ]
