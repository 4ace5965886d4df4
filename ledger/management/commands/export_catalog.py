from django.core.management.base import BaseCommand

from ...backup import catalog_json


class Command(BaseCommand):
    help = (
        "Write the whole catalog as JSON (ML models, versions' and datasets' metadata, "
        "findings, tags, probes, runs, actions, evaluations, audit trail). Dataset and "
        "artifact files are not included: copy MEDIA_ROOT/datasets and MEDIA_ROOT/artifacts "
        "separately."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args, output=None, **options):
        text = catalog_json()
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
            self.stderr.write(f"Catalog written to {output}.")
        else:
            self.stdout.write(text)
