"""The one way a status changes, and the one way a workflow object's fields change.

A workflow is a TextChoices status, a table of allowed transitions (from, to) -> who may
take it, and `transition(...)` below, which every model's `transition_to` calls: it
checks the target, locks the row, compares the locked status with the one the caller saw
(a stale view is a conflict, not a silent overwrite), checks the role and the separation
of duties, saves, and writes the audit event, all in one transaction.

`edit(...)` is the same shape for everything else a workflow guards: who may edit an
object, which fields its state freezes, a probe's revision or retirement. It locks the row,
asks who may, lets the model apply (and refuse) the change against the stored state, saves
and writes one audit event; a refusal changes nothing and writes nothing.
"""

from django.core.exceptions import PermissionDenied
from django.db import transaction

from .audit import silenced
from .models import SYSTEM, AuditEvent

__all__ = [
    "SYSTEM",
    "TransitionConflict",
    "TransitionError",
    "TransitionForbidden",
    "allowed_moves",
    "edit",
    "is_superuser",
    "transition",
]


class TransitionError(Exception):
    """An illegal transition or a missing field: refused, nothing changed (HTTP 400)."""

    status_code = 400


class TransitionForbidden(TransitionError, PermissionDenied):
    """The actor lacks the role for this transition (HTTP 403)."""

    status_code = 403


class TransitionConflict(TransitionError):
    """Someone else changed the status first (HTTP 409)."""

    status_code = 409


def is_superuser(by):
    """A superuser may do everything every role may, the separation of duties included
    (the system is no superuser)."""
    return by != SYSTEM and bool(getattr(by, "is_superuser", False))


def _duty_refusal(duties, instance, frm, new, by):
    if duties is None or by == SYSTEM or is_superuser(by):
        return None
    return duties(instance, frm, new, by)


def allowed_moves(instance, user, *, rules, check_actor, duties=None):
    """The target statuses `user` may move `instance` to now: what transition() would take
    (the table, the role and the separation of duties), for the pages' buttons."""
    return [
        to
        for (frm, to), who in rules.items()
        if frm == instance.status
        and check_actor(instance, who, user)
        and _duty_refusal(duties, instance, frm, to, user) is None
    ]


def transition(
    instance,
    new,
    *,
    by,
    note="",
    rules,
    label,
    check_actor,
    before_save=None,
    expected=None,
    duties=None,
):
    """Move `instance.status` to `new`.

    1. Refuse an unknown target or one the table does not allow from the status the caller
       saw (`expected`, e.g. the status shown on the page; else the instance's), with a
       message that names both.
    2. Lock the row (select_for_update) and re-read its status; if it changed since the
       caller loaded it, raise TransitionConflict: the other writer won.
    3. Ask `check_actor(instance, who, by)` whether `by` may take it (who = the rule's
       actor kind); raise TransitionForbidden if not. Then the separation of duties:
       `duties(locked, from, to, by)` names why this person may not take a move their role
       allows (they created the action, another reviewer is named), or returns None; a
       superuser and the system are not bound by it.
    4. Run `before_save(locked)` for per-transition fields (it may raise TransitionError),
       save, and write one audit event with the before and after state.
    Returns the saved, locked instance (also copied back onto `instance`).
    """
    model = type(instance)
    choices = dict(model._meta.get_field("status").choices)
    if new not in choices:
        raise TransitionError(
            f"'{new}' is not a {label} status; expected one of: " + ", ".join(choices)
        )
    seen = expected or instance.status
    who = rules.get((seen, new))
    if who is None:
        allowed = sorted(to for (frm, to) in rules if frm == seen)
        hint = ", ".join(allowed) if allowed else "none"
        raise TransitionError(
            f"A {label} cannot move from '{seen}' to '{new}' (allowed from '{seen}': {hint})."
        )
    with transaction.atomic():
        locked = model.objects.select_for_update().get(pk=instance.pk)
        if locked.status != seen:
            raise TransitionConflict(
                f"This {label} was changed by someone else: it is now '{locked.status}', "
                f"not '{seen}'. Reload and try again."
            )
        if not check_actor(locked, who, by):
            raise TransitionForbidden(
                f"You may not move this {label} from '{seen}' to '{new}'"
                f" (needs: {who if isinstance(who, str) else ' or '.join(who)})."
            )
        refusal = _duty_refusal(duties, locked, seen, new, by)
        if refusal:
            raise TransitionForbidden(refusal)
        before = AuditEvent.snapshot(locked)
        locked.status = new
        if before_save is not None:
            before_save(locked)
        with silenced():
            locked.save()
        AuditEvent.record(
            locked,
            verb=AuditEvent.Verb.TRANSITION,
            actor=None if by == SYSTEM else by,
            before=before,
            note=note,
            from_status=seen,
            to_status=new,
        )
    instance.__dict__.update(
        {f.attname: getattr(locked, f.attname) for f in model._meta.concrete_fields}
    )
    return locked


def edit(instance, *, by, may_edit, apply, note="", from_status="", to_status=""):
    """Change `instance` other than by moving its status, under its workflow's rules.

    1. Lock the row (select_for_update) and re-read it: every rule reads what is stored,
       not what the caller loaded.
    2. Ask `may_edit(locked, by)`: None when `by` may edit it, else the reason, raised as
       TransitionForbidden (403). A superuser may edit everything.
    3. `apply(locked)` sets the fields. It refuses what the object's state forbids (a field
       its status freezes, a definition that has runs, a retired probe) with a
       TransitionError (a TransitionConflict, 409, when the state is the reason) and a bad
       value with a ValidationError; it returns whether anything changed.
    4. Save, and write one audit event with the before and after state and the note (a
       text, or a function of the changed row when the note names what `apply` made) and
       `from_status`/`to_status` when the change is a move of sorts (a probe retired);
       nothing is written when nothing changed.
    Returns the locked instance (also copied back onto `instance`). A refusal in any step
    leaves the row and the audit trail as they were.
    """
    model = type(instance)
    with transaction.atomic():
        locked = model.objects.select_for_update().get(pk=instance.pk)
        refusal = None if is_superuser(by) else may_edit(locked, by)
        if refusal:
            raise TransitionForbidden(refusal)
        before = AuditEvent.snapshot(locked)
        if apply(locked):
            with silenced():
                locked.save()
            AuditEvent.record(
                locked,
                verb=AuditEvent.Verb.TRANSITION if to_status else AuditEvent.Verb.UPDATE,
                actor=None if by == SYSTEM else by,
                before=before,
                note=note(locked) if callable(note) else note,
                from_status=from_status,
                to_status=to_status,
            )
    instance.__dict__.update(
        {f.attname: getattr(locked, f.attname) for f in model._meta.concrete_fields}
    )
    return locked
