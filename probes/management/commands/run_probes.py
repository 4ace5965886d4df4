import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from registry.models import ModelVersion

from ...choices import RunStatus, Trigger
from ...models import Probe, Rerun
from ...tasks import run_rerun


class Command(BaseCommand):
    help = (
        "Rerun the active probes of a model version (or one probe) and show progress. "
        "With --sync the exit status tells a pipeline the result: 0 when no probe failed "
        "or ended in error, 1 otherwise (each such run is listed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model-version", type=int, required=True)
        parser.add_argument("--probe", type=int, help="Only this probe.")
        parser.add_argument(
            "--sync", action="store_true", help="Run here and now instead of queuing for a worker."
        )

    def handle(self, *args, model_version, probe=None, sync=False, **options):
        version = ModelVersion.objects.filter(pk=model_version).first()
        if version is None:
            raise CommandError(f"No model version with id {model_version}.")
        probes = None
        if probe is not None:
            probes = list(Probe.objects.filter(pk=probe, finding__ml_model=version.ml_model_id))
            if not probes:
                raise CommandError(f"Probe {probe} is not a probe of {version.ml_model}.")
        with transaction.atomic():
            # With --sync the runs are created but the work stays in this process.
            rerun = Rerun.queue(
                version,
                trigger=Trigger.MANUAL,
                probes=probes,
                label="run_probes",
                dispatch=not sync,
            )
        total = rerun.runs.count()
        self.stdout.write(f"Rerun {rerun.pk}: {total} probe(s) on {version}.")
        if not sync:
            self.stdout.write("Queued for the workers; follow it on the version page.")
            return
        run_rerun(rerun.pk, progress=lambda done, n: self._progress(done, n))
        counts = rerun.progress()["counts"]
        self.stdout.write("")
        self.stdout.write(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
        bad = rerun.runs.filter(status__in=[RunStatus.FAILED, RunStatus.ERROR]).select_related(
            "probe"
        )
        for run in bad.order_by("probe_id"):
            self.stderr.write(
                f"probe #{run.probe_id} ({run.probe.get_kind_display()}) {run.status} on "
                f"{version}: run #{run.pk}, "
                + (f"value {run.value:.6g}" if run.value is not None else run.error or "no value")
            )
        if bad:
            raise CommandError(
                f"{len(bad)} of {total} probe(s) failed or ended in error on {version}.",
                returncode=1,
            )

    def _progress(self, done, total):
        sys.stdout.write(f"\r{done} of {total} probes done")
        sys.stdout.flush()
