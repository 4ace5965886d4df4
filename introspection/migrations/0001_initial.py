"""Slice scans, boundary maps and stress sweeps, moved here from the probes app: their\ntables were renamed by probes 0006, so this migration only takes over their state."""

import django.db.models.deletion
import django.utils.timezone
import introspection.models
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('probes', '0006_tables_of_moved_models'),
        ('catalog', '0006_finding_points_at_registry'),
        ('registry', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='SliceScan',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('error', 'Error')], db_index=True, default='queued', max_length=10)),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('params', models.JSONField(blank=True, default=dict)),
                        ('progress', models.PositiveSmallIntegerField(default=0)),
                        ('progress_text', models.CharField(blank=True, default='Waiting for a worker', max_length=200)),
                        ('overall', models.JSONField(blank=True, default=dict)),
                        ('candidates', models.JSONField(blank=True, default=list)),
                        ('skipped_columns', models.JSONField(blank=True, default=list)),
                        ('lineage', models.JSONField(blank=True, default=dict)),
                        ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='scans', to='registry.dataset')),
                        ('model_version', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='scans', to='registry.modelversion')),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['-created_at', '-pk'],
                    },
                ),
                migrations.CreateModel(
                    name='StressSweep',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('error', 'Error')], db_index=True, default='queued', max_length=10)),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('kind', models.CharField(choices=[('noise', 'Noise sweep'), ('counterfactual', 'Counterfactual sweep')], max_length=20)),
                        ('feature', models.CharField(blank=True, max_length=200)),
                        ('slice', models.JSONField(blank=True, default=list)),
                        ('params', models.JSONField(blank=True, default=dict)),
                        ('points', models.JSONField(blank=True, default=list)),
                        ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='sweeps', to='registry.dataset')),
                        ('finding', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='sweeps', to='catalog.finding')),
                        ('model_version', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='sweeps', to='registry.modelversion')),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['-created_at', '-pk'],
                    },
                ),
                migrations.CreateModel(
                    name='BoundaryMap',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('error', 'Error')], db_index=True, default='queued', max_length=10)),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('feature_x', models.CharField(max_length=200)),
                        ('feature_y', models.CharField(max_length=200)),
                        ('slice', models.JSONField(blank=True, default=list)),
                        ('margin', models.FloatField(default=0.1)),
                        ('image', models.FileField(blank=True, upload_to=introspection.models._map_path)),
                        ('summary', models.JSONField(blank=True, default=dict)),
                        ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='boundary_maps', to='registry.dataset')),
                        ('finding', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='boundary_maps', to='catalog.finding')),
                        ('model_version', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='boundary_maps', to='registry.modelversion')),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['feature_x', 'feature_y', 'model_version__registered_at', 'pk'],
                        'constraints': [models.UniqueConstraint(fields=('finding', 'model_version', 'feature_x', 'feature_y'), name='boundarymap_unique_per_version_and_axes')],
                    },
                ),
            ],
        ),
    ]
