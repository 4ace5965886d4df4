"""The moved models leave this app's state (their tables live on under the registry and\nintrospection apps)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('introspection', '0001_initial'),
        ('catalog', '0006_finding_points_at_registry'),
        ('probes', '0007_point_at_moved_models'),
        ('remediation', '0004_point_at_moved_models'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(
                    name='ModelVersion',
                ),
                migrations.DeleteModel(
                    name='SliceScan',
                ),
                migrations.DeleteModel(
                    name='StressSweep',
                ),
            ],
        ),
    ]
