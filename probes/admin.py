from django import forms
from django.contrib import admin

from core.admin import RecordAdmin, RuledAdmin

from .forms import check_also_on
from .models import Probe, ProbeRun, Rerun


class ProbeAdminForm(forms.ModelForm):
    """The admin's probe form refuses `also_on` datasets as every other form does."""

    def _post_clean(self):
        super()._post_clean()
        check_also_on(self)


@admin.register(Probe)
class ProbeAdmin(RuledAdmin):
    """A probe's definition is immutable once it has a run (Probe.definition_fields; a
    revision changes it) and a probe is retired, not switched off: those fields are shown
    read-only. Every other change goes through Probe.edit, a new probe starts its history
    as one logged in the app does."""

    form = ProbeAdminForm
    list_display = ["__str__", "finding", "kind", "comparator", "threshold", "active"]
    list_filter = ["kind", "active"]
    raw_id_fields = ["finding", "dataset", "created_by"]
    # Set by retiring or revising a probe in the app, and by who logged it.
    never_edited = ["active", "supersedes", "retired_at", "retired_by", "retire_note"]

    def get_readonly_fields(self, request, obj=None):
        readonly = [*self.never_edited, "created_by", "created_at"]
        if obj is not None and obj.runs.exists():
            readonly += [name for name in Probe.definition_fields() if name not in readonly]
        return readonly

    def save_ruled(self, request, obj, form, change):
        if change:
            obj.edit(self.changes(form), by=request.user, note="Edited in the admin.")
        else:
            obj.created_by = request.user
            obj.save()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change:
            form.instance.start_history(request.user)


@admin.register(Rerun)
class RerunAdmin(RecordAdmin):
    list_display = ["__str__", "trigger", "requested_by_label", "created_at", "finished_at"]
    list_filter = ["trigger"]


@admin.register(ProbeRun)
class ProbeRunAdmin(RecordAdmin):
    list_display = [
        "probe",
        "dataset",
        "model_version",
        "status",
        "value",
        "support",
        "trigger",
        "finished_at",
    ]
    list_filter = ["status", "trigger"]
    raw_id_fields = ["probe", "dataset", "model_version", "rerun"]
