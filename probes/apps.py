import sys

from django.apps import AppConfig


class ProbesConfig(AppConfig):
    name = "probes"
    verbose_name = "Probes and probe runs"

    def ready(self):
        # Imported here, not at the top: models and receivers load once the app registry
        # is ready.
        from django_q.signals import post_spawn

        from catalog.forms import finding_form_parts
        from core import audit, history
        from registry.signals import version_registered

        from . import checks  # noqa: F401  (registers the task-settings check)
        from .forms import finding_form_probes
        from .models import Probe, ProbeRun, Rerun
        from .tasks import on_worker_spawn

        audit.track(Probe)
        history.protect(Probe, Rerun, ProbeRun)

        # A newly registered version gets a rerun of its ML model's active probes.
        version_registered.connect(
            Rerun.on_version_registered, dispatch_uid="probes.rerun_on_registration"
        )

        # The finding form logs probes with the finding, in one submit.
        finding_form_parts.connect(finding_form_probes, dispatch_uid="probes.finding_form")

        # A new worker releases the claims of this host's stopped workers (probes/claims.py).
        post_spawn.connect(on_worker_spawn, dispatch_uid="probes.release_dead_claims")
        if sys.argv[1:2] == ["qcluster"]:
            # Workers are forked from the cluster's process: import the numeric stack and
            # the artifact loader once, here, so that a worker that replaces a killed or
            # timed-out one takes work at once instead of importing for seconds.
            from boundary import artifacts, engine  # noqa: F401
