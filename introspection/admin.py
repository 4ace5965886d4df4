from django.contrib import admin

from core.admin import RecordAdmin

from .models import BoundaryMap, ScanDismissal, SliceScan, StressSweep


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


@admin.register(ScanDismissal)
class ScanDismissalAdmin(RecordAdmin):
    """Dismissed scan candidates: dismissed and restored on the scan page, with their audit
    events; shown here, never edited."""

    list_display = ["ml_model", "dataset", "reason", "dismissed_by", "dismissed_at", "lifted_at"]
