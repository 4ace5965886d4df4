"""May this model version ship? The release gate for a training pipeline.

    manage.py gate credit-risk 7 --wait 600 --junit gate.xml

Exit status: 0 pass, 1 fail, 2 still pending (its guarding probes' runs are queued or
running when --wait runs out). The JUnit file names every guarding probe, with a failure
for each one that blocks.
"""

import time

from django.core.management.base import BaseCommand, CommandError

from registry.models import MLModel, ModelVersion

from ...gate import FAIL, PASS, PENDING, decide

EXIT = {PASS: 0, FAIL: 1, PENDING: 2}
POLL_S = 1.0


class Command(BaseCommand):
    help = "The release gate of a model version: exit 0 pass, 1 fail, 2 pending."

    def add_arguments(self, parser):
        parser.add_argument("ml_model", help="the ML model's slug or name, e.g. credit-risk")
        parser.add_argument("version", help="the version's name, e.g. 7")
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            metavar="SECONDS",
            help="wait up to this long while the decision is pending",
        )
        parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report here")

    def handle(self, *args, ml_model, version, wait, junit, **options):
        model = (
            MLModel.objects.filter(slug=ml_model).first()
            or MLModel.objects.filter(name=ml_model).first()
        )
        if model is None:
            raise CommandError(f"No ML model '{ml_model}'.")
        mv = ModelVersion.objects.filter(ml_model=model, version=str(version)).first()
        if mv is None:
            known = ", ".join(model.versions.values_list("version", flat=True)) or "none"
            raise CommandError(f"{model.name} has no version '{version}' (versions: {known}).")
        deadline = time.monotonic() + max(wait, 0)
        result = decide(mv)
        while result.decision == PENDING and time.monotonic() < deadline:
            time.sleep(POLL_S)  # a pipeline waiting on workers: polling is the point here
            result = decide(mv)
        if junit:
            with open(junit, "w", encoding="utf-8") as fh:
                fh.write(result.junit())
        self.stdout.write(
            f"{mv}: {result.decision} ({len(result.checks)} guarding probe(s) "
            f"checked, {len(result.blocking)} blocking)"
        )
        for check in result.blocking:
            self.stdout.write(
                f"  probe {check.probe.pk} (finding {check.probe.finding_id}): {check.reason}"
            )
        code = EXIT[result.decision]
        if code:
            raise SystemExit(code)
