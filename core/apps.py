from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Audit trail"

    def ready(self):
        # Imported here, not at the top: models load once the app registry is ready.
        from . import history
        from .models import AuditChain, AuditEvent

        history.protect(AuditEvent, AuditChain)
