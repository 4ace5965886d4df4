"""The audit trail, moved here from the remediation app: its table was renamed by\nremediation 0003, so this migration only takes over its state."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('remediation', '0003_table_of_audit_events'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='AuditEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('object_id', models.CharField(max_length=40)),
                        ('object_repr', models.CharField(max_length=200)),
                        ('verb', models.CharField(choices=[('create', 'Created'), ('update', 'Updated'), ('transition', 'Status changed')], max_length=20)),
                        ('actor_label', models.CharField(max_length=150)),
                        ('before', models.JSONField(blank=True, null=True)),
                        ('after', models.JSONField(blank=True, null=True)),
                        ('from_status', models.CharField(blank=True, max_length=20)),
                        ('to_status', models.CharField(blank=True, max_length=20)),
                        ('note', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('content_type', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to='contenttypes.contenttype')),
                    ],
                    options={
                        'ordering': ['-created_at', '-pk'],
                        'indexes': [models.Index(fields=['content_type', 'object_id', 'created_at'], name='core_audite_content_4a4217_idx')],
                    },
                ),
            ],
        ),
    ]
