from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from ... import demo


class Command(BaseCommand):
    help = "Load the demo catalog and one user per role (safe to run twice)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--quiet-users", action="store_true", help="Do not print the demo users and passwords."
        )

    def handle(self, *args, quiet_users=False, **options):
        users = demo.load(stdout=self.stdout)
        out = Path(settings.BASE_DIR) / "var" / "demo"
        out.mkdir(parents=True, exist_ok=True)
        artifact = out / "credit-risk-v3-regresses.skops"
        if not artifact.exists():
            artifact.write_bytes(demo.regressing_credit_artifact().read())
        self.stdout.write(self.style.SUCCESS("Demo catalog ready."))
        if not quiet_users:
            self.stdout.write(f"Sign in at {settings.SITE_URL.rstrip('/')}/ as one of:")
            for u in users:
                self.stdout.write(f"  {u.username:<12} password {u.password:<24} ({u.role})")
        self.stdout.write(
            f"To watch a fix stop holding, register {artifact} as credit-risk version 3 "
            "(ML models › credit-risk › Register a version, as maintainer)."
        )
