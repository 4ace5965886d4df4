from django.contrib import admin

from core.admin import RecordAdmin, RuledAdmin

from .models import EDITABLE_FIELDS, FREE_WHEN_FROZEN, Evaluation, Notification, RemediationAction


@admin.register(RemediationAction)
class RemediationActionAdmin(RuledAdmin):
    """Status moves only through the action's transitions in the app. An edit is
    RemediationAction.edit: who may edit, eligible owners and reviewers, a settled action's
    frozen fields, one audit event; its refusals show on the form. A new action is
    proposed as in the app: by the signed-in user, owned by them unless someone is named."""

    list_display = ["title", "finding", "kind", "status", "owner", "due_date"]
    list_filter = ["status", "kind"]
    search_fields = ["title", "description"]
    raw_id_fields = ["finding", "owner", "reviewer", "fixed_in_version", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            editable = ("finding", *EDITABLE_FIELDS)
        elif obj.is_frozen:
            editable = FREE_WHEN_FROZEN
        else:
            editable = EDITABLE_FIELDS
        fields = [
            f.name for f in self.model._meta.get_fields() if f.concrete and not f.auto_created
        ]
        return [name for name in fields if name not in editable]

    def save_ruled(self, request, obj, form, change):
        if change:
            obj.edit(self.changes(form), by=request.user, note="Edited in the admin.")
            return
        for name in ("owner", "reviewer"):
            self.model.check_person(getattr(obj, name), name)
        obj.created_by = request.user
        if obj.owner is None:
            obj.owner = request.user
        obj.save()


@admin.register(Evaluation)
class EvaluationAdmin(RecordAdmin):
    """Evaluations are recorded by the follow-up (or by a reviewer in the app)."""

    list_display = ["action", "model_version", "outcome", "is_manual", "created_at"]
    list_filter = ["outcome", "is_manual"]
    raw_id_fields = ["action", "model_version", "probe_runs", "created_by"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["recipient", "subject", "read_at", "created_at"]
