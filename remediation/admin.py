from django.contrib import admin

from core.admin import HistoryAdmin

from .models import Evaluation, Notification, RemediationAction


@admin.register(RemediationAction)
class RemediationActionAdmin(HistoryAdmin):
    list_display = ["title", "finding", "kind", "status", "owner", "due_date"]
    list_filter = ["status", "kind"]
    search_fields = ["title", "description"]
    raw_id_fields = ["finding", "owner", "reviewer", "fixed_in_version", "created_by"]
    readonly_fields = ["status", "fixed_in_version"]


@admin.register(Evaluation)
class EvaluationAdmin(HistoryAdmin):
    list_display = ["action", "model_version", "outcome", "is_manual", "created_at"]
    list_filter = ["outcome", "is_manual"]
    raw_id_fields = ["action", "model_version", "probe_runs", "created_by"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["recipient", "subject", "read_at", "created_at"]
