from django.contrib import admin

from .models import AuditChain, AuditEvent


class HistoryAdmin(admin.ModelAdmin):
    """The admin of a model with history (DESIGN.md: nothing with history is deleted):
    no delete button, no bulk delete action. What is obsolete is retired or archived."""

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(AuditEvent)
class AuditEventAdmin(HistoryAdmin):
    list_display = ["created_at", "actor_label", "verb", "object_repr", "from_status", "to_status"]
    list_filter = ["verb", "content_type"]
    search_fields = ["object_repr", "note", "actor_label"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AuditChain)
class AuditChainAdmin(HistoryAdmin):
    """The chain's tip, to compare with `manage.py verify_audit`; written only by events."""

    list_display = ["length", "tip"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
