from django.apps import AppConfig


class ProbesConfig(AppConfig):
    name = "probes"
    verbose_name = "Probes and model versions"

    def ready(self):
        from . import checks  # noqa: F401  (registers the task-settings check)
