"""Probes run on more than one dataset: `Probe.also_on`, and the dataset of each run (the
probe's own for every run before)."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def own_dataset(apps, schema_editor):
    Probe = apps.get_model("probes", "Probe")
    ProbeRun = apps.get_model("probes", "ProbeRun")
    ProbeRun.objects.filter(dataset=None).update(
        dataset=Subquery(Probe.objects.filter(pk=OuterRef("probe_id")).values("dataset_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("probes", "0011_new_probe_kinds"),
        ("registry", "0004_dataset_profiles_drift"),
    ]

    operations = [
        migrations.AddField(
            model_name="probe",
            name="also_on",
            field=models.ManyToManyField(
                blank=True,
                help_text="Other datasets of the same schema to run the probe on as well (a "
                "holdout, a later time window, a production sample), to tell a fix that "
                "generalises from one that holds only where it was designed.",
                related_name="also_probes",
                to="registry.dataset",
            ),
        ),
        migrations.AddField(
            model_name="proberun",
            name="dataset",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="registry.dataset",
            ),
        ),
        migrations.RunPython(own_dataset, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="proberun",
            name="dataset",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="registry.dataset",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="proberun",
            name="proberun_unique_per_rerun",
        ),
        migrations.AddConstraint(
            model_name="proberun",
            constraint=models.UniqueConstraint(
                fields=("probe", "dataset", "model_version", "trigger", "rerun"),
                name="proberun_unique_per_rerun_and_dataset",
            ),
        ),
    ]
