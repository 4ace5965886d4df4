import sys

from django.apps import AppConfig


class ProbesConfig(AppConfig):
    name = "probes"
    verbose_name = "Probes and model versions"

    def ready(self):
        from django_q.signals import post_spawn

        from . import checks  # noqa: F401  (registers the task-settings check)
        from .tasks import on_worker_spawn

        # A new worker releases the claims of this host's stopped workers (probes/tasks.py).
        post_spawn.connect(on_worker_spawn, dispatch_uid="probes.release_dead_claims")
        if sys.argv[1:2] == ["qcluster"]:
            # Workers are forked from the cluster's process: import the numeric stack and
            # the artifact loader once, here, so that a worker that replaces a killed or
            # timed-out one takes work at once instead of importing for seconds.
            from . import artifacts, engine  # noqa: F401
