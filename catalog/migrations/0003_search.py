"""Full-text search: the stored search vector with its GIN index, the word list behind
"did you mean" (pg_trgm), and the documents of the findings that already exist.

The GIN indexes exist only on PostgreSQL; on SQLite the same column holds the fallback's
stemmed words (catalog/search.py) and is searched without an index.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.conf import settings
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models


class AddIndexOnPostgres(migrations.AddIndex):
    """AddIndex that creates the index on PostgreSQL only (GIN has no SQLite equivalent)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


def build_documents(apps, schema_editor):
    from catalog import search

    search.refresh(
        finding_model=apps.get_model("catalog", "Finding"),
        word_model=apps.get_model("catalog", "SearchWord"),
        using=schema_editor.connection.alias,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0002_initial'),
        ('probes', '0002_nightly_schedule'),
        ('remediation', '0002_roles'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        TrigramExtension(),
        migrations.CreateModel(
            name='SearchWord',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('word', models.CharField(max_length=40, unique=True)),
            ],
        ),
        migrations.AddField(
            model_name='finding',
            name='search_vector',
            field=django.contrib.postgres.search.SearchVectorField(editable=False, null=True),
        ),
        AddIndexOnPostgres(
            model_name='finding',
            index=django.contrib.postgres.indexes.GinIndex(fields=['search_vector'], name='finding_search_gin'),
        ),
        migrations.AddIndex(
            model_name='finding',
            index=models.Index(fields=['created_at', 'id'], name='finding_created_id'),
        ),
        AddIndexOnPostgres(
            model_name='searchword',
            index=django.contrib.postgres.indexes.GinIndex(fields=['word'], name='searchword_trgm', opclasses=['gin_trgm_ops']),
        ),
        migrations.RunPython(build_documents, migrations.RunPython.noop),
    ]
