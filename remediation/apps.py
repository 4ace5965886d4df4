from django.apps import AppConfig


class RemediationConfig(AppConfig):
    name = "remediation"
    verbose_name = "Remediation and audit"

    def ready(self):
        from . import audit

        audit.connect()
