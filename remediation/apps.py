from django.apps import AppConfig


class RemediationConfig(AppConfig):
    name = "remediation"
    verbose_name = "Remediation"

    def ready(self):
        # Imported here, not at the top: models and receivers load once the app registry
        # is ready.
        from catalog import search
        from core import audit, history
        from probes.signals import rerun_finished

        from . import checks  # noqa: F401  (registers the webhook-secret deploy check)
        from .followup import on_rerun_finished
        from .models import Evaluation, RemediationAction

        audit.track(RemediationAction, Evaluation)
        history.protect(RemediationAction, Evaluation)
        search.follow_actions(RemediationAction)

        # Every finished rerun gets its follow-up evaluations (remediation/followup.py).
        rerun_finished.connect(on_rerun_finished, dispatch_uid="remediation.followup")
