from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.jobs import JobStatus
from registry.models import Dataset, ModelVersion

from ...models import SliceScan
from ...tasks import run_scan


class Command(BaseCommand):
    help = (
        "Scan a model version for weak slices on a dataset, here and now, and print the "
        "candidates (the scan is stored; open it in the web UI to log one as a finding)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model-version", type=int, required=True)
        parser.add_argument("--dataset", type=int, required=True)
        parser.add_argument("--top-k", type=int, default=5, help="Candidates at most.")
        parser.add_argument(
            "--max-predicates", type=int, default=2, help="Conditions per slice at most (1-3)."
        )
        parser.add_argument(
            "--min-support",
            type=int,
            default=None,
            help="Rows per slice at least (default: 30 or 0.5%%).",
        )

    def handle(self, *args, model_version, dataset, top_k, max_predicates, min_support, **options):
        version = ModelVersion.objects.select_related("ml_model").filter(pk=model_version).first()
        if version is None:
            raise CommandError(f"No model version with id {model_version}.")
        table = Dataset.objects.filter(pk=dataset).first()
        if table is None:
            raise CommandError(f"No dataset with id {dataset}.")
        try:
            with transaction.atomic():
                scan = SliceScan.queue(
                    version,
                    table,
                    top_k=top_k,
                    max_predicates=max_predicates,
                    min_support=min_support,
                    dispatch=False,
                )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"Scan {scan.pk}: {version} on {table} ({table.row_count} rows).")
        run_scan(scan.pk, progress=self._progress)
        self.stderr.write("")
        scan.refresh_from_db()
        if scan.status == JobStatus.ERROR:
            raise CommandError(f"The scan failed: {scan.error}")
        overall = scan.overall
        self.stdout.write(
            f"Overall: {overall['errors']} errors in {overall['rows']} rows "
            f"({overall['error_rate']:.1%}); slices need {overall['min_support']} rows."
        )
        for skipped in scan.skipped_columns:
            self.stdout.write(f"Left out: {skipped['column']} ({skipped['reason']}).")
        if not scan.candidates:
            self.stdout.write("No slice is significantly worse than the whole dataset.")
            return
        for i, c in enumerate(scan.candidates, start=1):
            self.stdout.write(
                f"{i}. {c['description']}\n"
                f"   error rate {c['error_rate']:.1%} (95% CI {c['ci_low']:.1%}-"
                f"{c['ci_high']:.1%}) on {c['support']} rows, {c['lift']:.2f}x overall, "
                f"{c['error_share']:.1%} of all errors; margin < 0.1: "
                f"{c['margin_density']:.1%}; p = {c['p_value']:.2g}"
            )
        self.stdout.write(f"Log one as a finding: {scan.get_absolute_url()}")

    def _progress(self, percent, text):
        self.stderr.write(f"\r{percent:3d}% {text:<60}", ending="")
        self.stderr.flush()
