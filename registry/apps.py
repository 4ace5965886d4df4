from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry: ML models, versions and datasets"

    def ready(self):
        # Imported here, not at the top: models and receivers load once the app registry
        # is ready.
        from core import audit, history

        from .models import Dataset, Deployment, MLModel, ModelVersion

        audit.track(MLModel, Dataset, ModelVersion, Deployment)
        history.protect(MLModel, Dataset, ModelVersion, Deployment)
