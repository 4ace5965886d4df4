"""The audit trail moves to the core app: its table is renamed in place, rows untouched;
core's first migration takes over the model's state."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("remediation", "0002_roles")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.AlterModelTable("auditevent", "core_auditevent")],
        )
    ]
