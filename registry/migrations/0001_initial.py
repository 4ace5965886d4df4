"""ML models, datasets and model versions, moved here from the probes app: their tables were\nrenamed by probes 0006, so this migration only takes over their state."""

import core.uploads
import django.db.models.deletion
import django.utils.timezone
import registry.models
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('probes', '0006_tables_of_moved_models'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='MLModel',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=120, unique=True)),
                        ('slug', models.SlugField(max_length=120, unique=True)),
                        ('description', models.TextField(blank=True)),
                        ('task', models.CharField(choices=[('binary', 'Binary classification'), ('multiclass', 'Multiclass classification')], default='binary', max_length=20)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        'verbose_name': 'ML model',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='Dataset',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=120)),
                        ('version', models.CharField(default='1', max_length=40)),
                        ('description', models.TextField(blank=True)),
                        ('file', models.FileField(upload_to=registry.models._dataset_path)),
                        ('file_format', models.CharField(choices=[('csv', 'CSV'), ('parquet', 'Parquet')], max_length=10)),
                        ('original_filename', models.CharField(blank=True, max_length=255)),
                        ('target_column', models.CharField(max_length=200)),
                        ('sha256', models.CharField(db_index=True, max_length=64)),
                        ('size_bytes', models.BigIntegerField(default=0)),
                        ('row_count', models.PositiveIntegerField()),
                        ('columns', models.JSONField(default=list)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('uploaded_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['name', '-created_at'],
                    },
                    bases=(core.uploads.ImmutableFileMixin, models.Model),
                ),
                migrations.CreateModel(
                    name='ModelVersion',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('version', models.CharField(max_length=40)),
                        ('artifact', models.FileField(upload_to=registry.models._artifact_path)),
                        ('artifact_format', models.CharField(choices=[('skops', 'skops'), ('pickle', 'pickle / joblib')], max_length=10)),
                        ('artifact_sha256', models.CharField(db_index=True, max_length=64)),
                        ('original_filename', models.CharField(blank=True, max_length=255)),
                        ('notes', models.TextField(blank=True)),
                        ('environment', models.JSONField(blank=True, default=dict)),
                        ('registered_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('ml_model', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='versions', to='registry.mlmodel')),
                        ('registered_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('training_dataset', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='trained_versions', to='registry.dataset')),
                    ],
                    options={
                        'ordering': ['ml_model__name', '-registered_at', '-pk'],
                    },
                    bases=(core.uploads.ImmutableFileMixin, models.Model),
                ),
                migrations.AddConstraint(
                    model_name='dataset',
                    constraint=models.UniqueConstraint(fields=('name', 'version'), name='dataset_unique_version'),
                ),
                migrations.AddConstraint(
                    model_name='modelversion',
                    constraint=models.UniqueConstraint(fields=('ml_model', 'version'), name='modelversion_unique_version'),
                ),
            ],
        ),
    ]
