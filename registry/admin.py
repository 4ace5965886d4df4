from django.contrib import admin

from core.admin import HistoryAdmin

from .models import Dataset, Deployment, MLModel, ModelVersion


@admin.register(MLModel)
class MLModelAdmin(HistoryAdmin):
    list_display = ["name", "slug", "task", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(ModelVersion)
class ModelVersionAdmin(HistoryAdmin):
    list_display = [
        "__str__",
        "artifact_format",
        "artifact_sha256",
        "registered_by",
        "registered_at",
    ]
    list_filter = ["ml_model", "artifact_format"]
    search_fields = ["version", "artifact_sha256", "ml_model__name"]
    # Artifacts are registered through the app (format and hash checks); never edited here.
    readonly_fields = [
        "ml_model",
        "version",
        "artifact",
        "artifact_format",
        "artifact_sha256",
        "original_filename",
        "environment",
        "registered_by",
        "registered_at",
    ]

    def has_add_permission(self, request):
        return False


@admin.register(Dataset)
class DatasetAdmin(HistoryAdmin):
    list_display = ["name", "version", "row_count", "target_column", "sha256", "created_at"]
    search_fields = ["name", "sha256"]
    readonly_fields = [
        "file",
        "file_format",
        "original_filename",
        "sha256",
        "size_bytes",
        "row_count",
        "columns",
        "target_column",
        "uploaded_by",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False


@admin.register(Deployment)
class DeploymentAdmin(HistoryAdmin):
    list_display = ["ml_model", "environment", "model_version", "since", "until"]
    list_filter = ["environment", "ml_model"]
    readonly_fields = ["until", "recorded_by", "recorded_at"]
