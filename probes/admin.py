from django.contrib import admin

from core.admin import HistoryAdmin

from .models import Probe, ProbeRun, Rerun


@admin.register(Probe)
class ProbeAdmin(HistoryAdmin):
    list_display = ["__str__", "finding", "kind", "comparator", "threshold", "active"]
    list_filter = ["kind", "active"]
    raw_id_fields = ["finding", "dataset", "created_by"]


@admin.register(Rerun)
class RerunAdmin(HistoryAdmin):
    list_display = ["__str__", "trigger", "requested_by_label", "created_at", "finished_at"]
    list_filter = ["trigger"]


@admin.register(ProbeRun)
class ProbeRunAdmin(HistoryAdmin):
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
