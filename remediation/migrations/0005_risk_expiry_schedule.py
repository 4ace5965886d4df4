"""Accepted risks expire: a daily django-q2 schedule reopens them
(remediation.tasks.expire_accepted_risks). Its first run is the next midnight (TIME_ZONE), not
the moment the first worker starts, and the same time every day after that."""

from datetime import datetime, time, timedelta

from django.db import migrations
from django.utils import timezone


def next_midnight(now=None):
    now = timezone.localtime(now)
    return timezone.make_aware(datetime.combine(now.date() + timedelta(days=1), time(0, 5)),
                               now.tzinfo)


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name="risk-expiry",
        defaults={"func": "remediation.tasks.expire_accepted_risks", "schedule_type": "D",
                  "repeats": -1, "next_run": next_midnight()},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="risk-expiry").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("remediation", "0004_point_at_moved_models"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
