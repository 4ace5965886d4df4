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
    raw_id_fields = ["model_version", "dataset", "owner"]
    # Status moves only through the workflow (Finding.transition_to), which checks roles and
    # the separation of duties and writes the audit trail; the justification and expiry of
    # an accepted risk are part of that move, and the reporter is whoever logged it. Other
    # edits are audited like the app's (core.audit).
    readonly_fields = [
        "status",
        "status_note",
        "accepted_until",
        "reporter",
        "created_at",
        "updated_at",
    ]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.reporter = request.user
        super().save_model(request, obj, form, change)
