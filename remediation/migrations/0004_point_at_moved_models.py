"""Actions and evaluations point at the registry's model versions; the audit trail leaves\nthis app's state (core 0001 took it over)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0001_initial'),
        ('registry', '0001_initial'),
        ('remediation', '0003_table_of_audit_events'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='evaluation',
                    name='model_version',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='evaluations', to='registry.modelversion'),
                ),
                migrations.AlterField(
                    model_name='remediationaction',
                    name='fixed_in_version',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='fixes', to='registry.modelversion'),
                ),
                migrations.DeleteModel(
                    name='AuditEvent',
                ),
            ],
        ),
    ]
