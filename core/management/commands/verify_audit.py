"""Check that the audit trail is intact: exit 0 when every link of its hash chain holds,
1 naming the first broken link otherwise."""

from django.core.management.base import BaseCommand, CommandError

from core.models import AuditChain, verify_chain


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; names the first broken link."

    def handle(self, *args, **options):
        problem = verify_chain()
        if problem:
            raise CommandError(f"The audit trail is broken. {problem}", returncode=1)
        chain = AuditChain.objects.filter(pk=1).first()
        count = chain.length if chain else 0
        tip = chain.tip[:16] if chain else "-"
        self.stdout.write(f"Audit trail intact: {count} events, tip {tip}…")
