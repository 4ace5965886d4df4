from django.contrib import admin

from core.admin import HistoryAdmin, RuledAdmin

from .models import Dataset, DatasetDrift, Deployment, MLModel, ModelVersion, SliceShare


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
class DeploymentAdmin(RuledAdmin):
    """A deployment is recorded by Deployment.record, which ends the one it replaces; what
    served where and since when is history, so only the note changes afterwards."""

    list_display = ["ml_model", "environment", "model_version", "since", "until"]
    list_filter = ["environment", "ml_model"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            # The ML model is the version's (Deployment.record).
            return ["ml_model", "until", "recorded_by", "recorded_at"]
        return [
            "ml_model",
            "model_version",
            "environment",
            "since",
            "until",
            "recorded_by",
            "recorded_at",
        ]

    def save_ruled(self, request, obj, form, change):
        if change:
            # The note alone: a deployment recorded meanwhile may have ended this one.
            obj.save(update_fields=["note"])
            return
        recorded = Deployment.record(
            model_version=obj.model_version,
            environment=obj.environment,
            since=obj.since,
            note=obj.note,
            by=request.user,
        )
        obj.__dict__.update(
            {f.attname: getattr(recorded, f.attname) for f in Deployment._meta.concrete_fields}
        )
        obj._state.adding = False


class ComputedAdmin(admin.ModelAdmin):
    """Drift results and slice counts are computed by workers: shown, never edited here."""

    list_filter = ["status"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(DatasetDrift)
class DatasetDriftAdmin(ComputedAdmin):
    list_display = ["__str__", "status", "created_at", "finished_at"]
    raw_id_fields = ["dataset", "reference", "requested_by"]


@admin.register(SliceShare)
class SliceShareAdmin(ComputedAdmin):
    list_display = ["__str__", "status", "rows", "total", "created_at"]
    raw_id_fields = ["dataset"]
