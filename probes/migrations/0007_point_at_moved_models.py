"""Probes and runs point at the registry's models now; the moved models' own foreign keys\nare dropped from this app's state first (their columns stay: the tables are the\nregistry's and introspection's now)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('probes', '0006_tables_of_moved_models'),
        ('registry', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='dataset',
                    name='uploaded_by',
                ),
                migrations.AlterField(
                    model_name='probe',
                    name='dataset',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='probes', to='registry.dataset'),
                ),
                migrations.RemoveField(
                    model_name='modelversion',
                    name='training_dataset',
                ),
                migrations.RemoveField(
                    model_name='stresssweep',
                    name='dataset',
                ),
                migrations.RemoveField(
                    model_name='slicescan',
                    name='dataset',
                ),
                migrations.RemoveField(
                    model_name='modelversion',
                    name='ml_model',
                ),
                migrations.RemoveField(
                    model_name='modelversion',
                    name='registered_by',
                ),
                migrations.AlterField(
                    model_name='rerun',
                    name='model_version',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reruns', to='registry.modelversion'),
                ),
                migrations.RemoveField(
                    model_name='slicescan',
                    name='model_version',
                ),
                migrations.RemoveField(
                    model_name='stresssweep',
                    name='model_version',
                ),
                migrations.AlterField(
                    model_name='proberun',
                    name='model_version',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='runs', to='registry.modelversion'),
                ),
                migrations.RemoveField(
                    model_name='slicescan',
                    name='requested_by',
                ),
                migrations.RemoveField(
                    model_name='stresssweep',
                    name='finding',
                ),
                migrations.RemoveField(
                    model_name='stresssweep',
                    name='requested_by',
                ),
                migrations.DeleteModel(
                    name='BoundaryMap',
                ),
                migrations.DeleteModel(
                    name='Dataset',
                ),
                migrations.DeleteModel(
                    name='MLModel',
                ),
            ],
        ),
    ]
