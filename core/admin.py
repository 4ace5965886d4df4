"""Admin bases that keep the admin inside the domain's rules (DESIGN.md, Workflows).

- HistoryAdmin: nothing with history is deleted.
- RecordAdmin: a record written by the system (an audit event, a run, an evaluation) is
  shown, never added or changed.
- RuledAdmin: a save goes through the model's own operation (its rules, its lock, its
  audit event); a refusal is shown on the form and saves nothing.
"""

from django.contrib import admin
from django.core.exceptions import ValidationError

from .models import AuditChain, AuditEvent
from .workflow import TransitionError


class HistoryAdmin(admin.ModelAdmin):
    """The admin of a model with history (DESIGN.md: nothing with history is deleted):
    no delete button, no bulk delete action. What is obsolete is retired or archived."""

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class RecordAdmin(HistoryAdmin):
    """A record the system writes (an audit event, a rerun, a probe run, an evaluation):
    its pages show it; no one adds or changes one here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class Refused(Exception):
    """The model refused an admin save: its messages, by form field (None: the form)."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


def refusal_errors(exc):
    """A TransitionError or ValidationError as {field or None: [messages]}."""
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return {
            (None if field == "__all__" else field): messages
            for field, messages in exc.message_dict.items()
        }
    if isinstance(exc, ValidationError):
        return {None: exc.messages}
    return {None: [str(exc)]}


class RuledAdmin(HistoryAdmin):
    """An admin whose saves are the model's own operations.

    A subclass implements `save_ruled(request, obj, form, change)`, which calls the model's
    operation (an edit through core.workflow.edit, a create with its checks) and raises a
    TransitionError or ValidationError to refuse. A refusal rolls back the admin's
    transaction and shows the form again, with the model's messages as form errors; nothing
    is saved and no audit event is written.
    """

    def save_ruled(self, request, obj, form, change):
        raise NotImplementedError

    @staticmethod
    def changes(form):
        """The fields the form changed, with their new values: what an edit applies."""
        return {
            name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data
        }

    def save_model(self, request, obj, form, change):
        try:
            self.save_ruled(request, obj, form, change)
        except (TransitionError, ValidationError) as exc:
            raise Refused(refusal_errors(exc)) from exc

    def save_related(self, request, form, formsets, change):
        """On a change the model's edit applied every changed field, many-to-many ones
        included: the form does not write them again."""
        if not change:
            return super().save_related(request, form, formsets, change)
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except Refused as refused:
            # The admin's transaction is rolled back; the same POST is shown again, on the
            # stored object, with the model's messages on the form.
            request._admin_refusal = refused.errors
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        errors = getattr(request, "_admin_refusal", None)
        if not errors:
            return form
        return type(form.__name__, (form,), {"clean": _with_refusal(form.clean, errors)})


def _with_refusal(clean, errors):
    """A form's clean() that adds the model's refusal to what it finds itself."""

    def refused(form):
        cleaned = clean(form)
        for field, messages in errors.items():
            form.add_error(field if field in form.fields else None, messages)
        return cleaned

    return refused


@admin.register(AuditEvent)
class AuditEventAdmin(RecordAdmin):
    list_display = ["created_at", "actor_label", "verb", "object_repr", "from_status", "to_status"]
    list_filter = ["verb", "content_type"]
    search_fields = ["object_repr", "note", "actor_label"]


@admin.register(AuditChain)
class AuditChainAdmin(RecordAdmin):
    """The chain's tip, to compare with `manage.py verify_audit`; written only by events."""

    list_display = ["length", "tip"]
