from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core import hygiene

from ...backup import import_catalog


class Command(BaseCommand):
    help = (
        "Load a catalog written by export_catalog into this empty instance, keeping every id. "
        "Copy the dataset and artifact files into MEDIA_ROOT separately; missing ones are "
        "listed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the JSON file written by export_catalog")

    def handle(self, *args, file, **options):
        try:
            with open(file, "rb") as fh:
                data = hygiene.loads(fh.read())
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from exc
        except hygiene.InputError as exc:
            raise CommandError(f"{file} is not a catalog export: {exc}") from exc
        try:
            report = import_catalog(data)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        for label, n in report.counts.items():
            self.stdout.write(f"{label}: {n}")
        if report.users_created:
            self.stdout.write(
                "users created (inactive, no password): " + ", ".join(report.users_created)
            )
        for problem in report.missing_files:
            self.stdout.write(self.style.WARNING(f"file to copy: {problem}"))
        self.stdout.write(self.style.SUCCESS("Catalog imported."))
