from django.contrib import admin

from core.admin import HistoryAdmin

from .models import Finding, Tag


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Finding)
class FindingAdmin(HistoryAdmin):
    list_display = [
        "title",
        "ml_model",
        "severity",
        "risk_category",
        "status",
        "owner",
        "created_at",
    ]
    list_filter = ["status", "severity", "risk_category", "ml_model", "is_key_lesson"]
    search_fields = ["title", "summary", "description", "lesson"]
    autocomplete_fields = ["tags"]
    raw_id_fields = ["model_version", "dataset", "owner", "reporter"]
    # Status moves only through the workflow, which checks roles and writes the audit trail.
    readonly_fields = ["status", "created_at", "updated_at"]
