from django.contrib import admin

from .models import AuditEvent, Evaluation, Notification, RemediationAction


@admin.register(RemediationAction)
class RemediationActionAdmin(admin.ModelAdmin):
    list_display = ["title", "finding", "kind", "status", "owner", "due_date"]
    list_filter = ["status", "kind"]
    search_fields = ["title", "description"]
    raw_id_fields = ["finding", "owner", "reviewer", "fixed_in_version", "created_by"]
    readonly_fields = ["status", "fixed_in_version"]


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ["action", "model_version", "outcome", "is_manual", "created_at"]
    list_filter = ["outcome", "is_manual"]
    raw_id_fields = ["action", "model_version", "probe_runs", "created_by"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "verb", "object_repr", "from_status",
                    "to_status"]
    list_filter = ["verb", "content_type"]
    search_fields = ["object_repr", "note", "actor_label"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["recipient", "subject", "read_at", "created_at"]
