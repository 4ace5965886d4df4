from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self):
        # Imported here, not at the top: models and receivers load once the app registry
        # is ready.
        from core import audit, history

        from . import search
        from .models import Finding

        audit.track(Finding)
        history.protect(Finding)
        audit.track_tags(Finding)
        search.connect()
