from django.contrib import admin

from .models import (
    BoundaryMap,
    Dataset,
    MLModel,
    ModelVersion,
    Probe,
    ProbeRun,
    Rerun,
    SliceScan,
    StressSweep,
)


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "task", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
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
class DatasetAdmin(admin.ModelAdmin):
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


@admin.register(Probe)
class ProbeAdmin(admin.ModelAdmin):
    list_display = ["__str__", "finding", "kind", "comparator", "threshold", "active"]
    list_filter = ["kind", "active"]
    raw_id_fields = ["finding", "dataset", "created_by"]


@admin.register(Rerun)
class RerunAdmin(admin.ModelAdmin):
    list_display = ["__str__", "trigger", "requested_by_label", "created_at", "finished_at"]
    list_filter = ["trigger"]


@admin.register(ProbeRun)
class ProbeRunAdmin(admin.ModelAdmin):
    list_display = [
        "probe",
        "model_version",
        "status",
        "value",
        "support",
        "trigger",
        "finished_at",
    ]
    list_filter = ["status", "trigger"]
    raw_id_fields = ["probe", "model_version", "rerun"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


class IntrospectionJobAdmin(admin.ModelAdmin):
    """Scans, maps and sweeps are results computed by workers: shown, never edited here."""

    list_filter = ["status"]
    raw_id_fields = ["model_version", "dataset", "requested_by"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(SliceScan)
class SliceScanAdmin(IntrospectionJobAdmin):
    list_display = ["__str__", "model_version", "dataset", "status", "created_at", "finished_at"]


@admin.register(BoundaryMap)
class BoundaryMapAdmin(IntrospectionJobAdmin):
    list_display = ["finding", "model_version", "feature_x", "feature_y", "status", "created_at"]
    raw_id_fields = [*IntrospectionJobAdmin.raw_id_fields, "finding"]


@admin.register(StressSweep)
class StressSweepAdmin(IntrospectionJobAdmin):
    list_display = ["finding", "model_version", "kind", "feature", "status", "created_at"]
    list_filter = ["kind", "status"]
    raw_id_fields = [*IntrospectionJobAdmin.raw_id_fields, "finding"]
