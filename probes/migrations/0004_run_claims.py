"""Claims on probe runs (which worker evaluates a run, since when, how many tries) and the
sweeper that releases the claims of stopped workers, as a django-q2 schedule."""

from django.db import migrations, models


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name="sweep-probe-runs",
        defaults={
            "func": "probes.tasks.sweep_runs",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="sweep-probe-runs").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("probes", "0003_introspection"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="proberun",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="proberun",
            name="claimed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="proberun",
            name="claimed_by",
            field=models.CharField(blank=True, db_index=True, max_length=200),
        ),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
