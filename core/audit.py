"""The audit trail: every create, update and transition of the audited models.

Creates and updates are caught by signals, so that every path (web form, API, admin,
import, management command) writes the same event; the actor comes from `acting_as`,
set by the request middleware, the API views and the domain methods. Transitions write
their own event (with from/to and a note) and silence the signal meanwhile.
"""

import contextvars
from contextlib import contextmanager

from django.db.models.signals import m2m_changed, post_save, pre_save

from .models import AuditEvent

_UNSET = object()
_actor = contextvars.ContextVar("audit_actor", default=_UNSET)
_request = contextvars.ContextVar("audit_request", default=None)
_silenced = contextvars.ContextVar("audit_silenced", default=False)


@contextmanager
def acting_as(user):
    """Attribute the audited saves inside this block to `user` (None: the system)."""
    token = _actor.set(user if getattr(user, "is_authenticated", False) else None)
    try:
        yield
    finally:
        _actor.reset(token)


@contextmanager
def silenced():
    token = _silenced.set(True)
    try:
        yield
    finally:
        _silenced.reset(token)


def current_actor():
    """The explicit actor if one is set, else the user of the current web request (read
    late, because the API authenticates a token only inside the view)."""
    actor = _actor.get()
    if actor is not _UNSET:
        return actor
    request = _request.get()
    user = getattr(request, "user", None)
    return user if getattr(user, "is_authenticated", False) else None


def _before(sender, instance, raw=False, **kwargs):
    if raw or _silenced.get():
        return
    if instance.pk and not instance._state.adding:
        stored = sender.objects.filter(pk=instance.pk).first()
        instance._audit_before = AuditEvent.snapshot(stored) if stored else None
    else:
        instance._audit_before = None


def _after(sender, instance, created, raw=False, **kwargs):
    if raw or _silenced.get():
        return
    before = getattr(instance, "_audit_before", None)
    verb = AuditEvent.Verb.CREATE if created else AuditEvent.Verb.UPDATE
    after = AuditEvent.snapshot(instance)
    if verb == AuditEvent.Verb.UPDATE and before == after:
        return  # a save that changed nothing is not history
    AuditEvent.record(instance, verb=verb, actor=current_actor(), before=before, after=after)


def _tags_changed(sender, instance, action, pk_set=None, reverse=False, **kwargs):
    """Tag edits are history too: one update event with the tag names before and after."""
    if reverse or _silenced.get():
        return
    names = sorted(instance.tags.values_list("name", flat=True))
    if action.startswith("pre_"):
        instance._audit_tags_before = names
        return
    if not action.startswith("post_"):
        return
    before = getattr(instance, "_audit_tags_before", None)
    if before is None or before == names:
        return
    AuditEvent.record(
        instance,
        verb=AuditEvent.Verb.UPDATE,
        actor=current_actor(),
        before={"tags": before},
        after={"tags": names},
    )
    instance._audit_tags_before = None


def track(*models):
    """Audit every create and update of these models (each app names its own in its
    AppConfig.ready())."""
    for model in models:
        label = model._meta.label
        pre_save.connect(_before, sender=model, dispatch_uid=f"audit-before-{label}")
        post_save.connect(_after, sender=model, dispatch_uid=f"audit-after-{label}")


def track_tags(model):
    """Audit changes of `model.tags` (a many-to-many) as updates of the model."""
    m2m_changed.connect(
        _tags_changed, sender=model.tags.through, dispatch_uid=f"audit-tags-{model._meta.label}"
    )


class AuditActorMiddleware:
    """Every audited save during a web request is attributed to the signed-in user."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)
