from django.apps import AppConfig


class IntrospectionConfig(AppConfig):
    name = "introspection"
    verbose_name = "Introspection: slice scans, boundary maps, stress sweeps"

    def ready(self):
        # Imported here, not at the top: models and receivers load once the app registry
        # is ready.
        from remediation.signals import evaluation_recorded

        from .tasks import on_evaluation_recorded

        # Every automatic evaluation gets a moved-problem check (introspection/tasks.py).
        evaluation_recorded.connect(on_evaluation_recorded, dispatch_uid="introspection.moved")
