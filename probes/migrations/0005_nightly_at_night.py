"""The nightly rerun runs at night: its first run is the next NIGHTLY_RERUN_HOUR (02:00 by
default, in TIME_ZONE), not the moment the first worker starts, and the same hour every day
after that (a daily django-q2 schedule repeats at the time of its last run)."""

from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def next_night(now=None):
    now = timezone.localtime(now)
    hour = getattr(settings, "NIGHTLY_RERUN_HOUR", 2)
    night = timezone.make_aware(datetime.combine(now.date(), time(hour)), now.tzinfo)
    return night if night > now else night + timedelta(days=1)


def schedule_at_night(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name="nightly-rerun").update(next_run=next_night())


class Migration(migrations.Migration):
    dependencies = [("probes", "0004_run_claims")]

    operations = [migrations.RunPython(schedule_at_night, migrations.RunPython.noop)]
