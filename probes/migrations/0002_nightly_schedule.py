"""The nightly rerun of each ML model's latest version, as a django-q2 schedule."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name="nightly-rerun",
        defaults={"func": "probes.tasks.nightly_rerun", "schedule_type": "D", "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="nightly-rerun").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("probes", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
