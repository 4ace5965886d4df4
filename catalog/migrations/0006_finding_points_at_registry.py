"""A finding's ML model, version and dataset are the registry app's models now (the\ncolumns and their foreign keys are unchanged)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0005_overview_indexes'),
        ('registry', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='finding',
                    name='dataset',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='findings', to='registry.dataset'),
                ),
                migrations.AlterField(
                    model_name='finding',
                    name='ml_model',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='findings', to='registry.mlmodel'),
                ),
                migrations.AlterField(
                    model_name='finding',
                    name='model_version',
                    field=models.ForeignKey(blank=True, help_text="The version on which the problem was discovered (the probes' baseline).", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='findings', to='registry.modelversion'),
                ),
            ],
        ),
    ]
