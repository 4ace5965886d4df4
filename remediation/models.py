"""Remediation actions and their workflow, evaluations, the audit trail, notifications."""

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from catalog.choices import FindingStatus
from core.roles import CONTRIBUTOR, REVIEWER, has_role, membership_refusal
from core.workflow import (
    SYSTEM,
    TransitionConflict,
    TransitionError,
    allowed_moves,
    edit,
    transition,
)

from .choices import (
    DEFAULT_DUE_DAYS_BY_SEVERITY,
    FROZEN_ACTION_STATUSES,
    OPEN_ACTION_STATUSES,
    ActionKind,
    ActionStatus,
    Outcome,
)

OWNER = "owner"

# (from, to) -> who may take it: "owner" (the action's owner), a role name, or "system".
ACTION_TRANSITIONS = {
    (ActionStatus.PROPOSED, ActionStatus.APPROVED): REVIEWER,
    (ActionStatus.PROPOSED, ActionStatus.REJECTED): REVIEWER,
    (ActionStatus.APPROVED, ActionStatus.IN_PROGRESS): OWNER,
    (ActionStatus.IN_PROGRESS, ActionStatus.IMPLEMENTED): OWNER,
    (ActionStatus.IMPLEMENTED, ActionStatus.VERIFIED): (SYSTEM, REVIEWER),
    (ActionStatus.IMPLEMENTED, ActionStatus.INEFFECTIVE): (SYSTEM, REVIEWER),
    **{(s, ActionStatus.CANCELLED): (OWNER, REVIEWER) for s in OPEN_ACTION_STATUSES},
}


# Separation of duties: the moves whoever created an action may not take, and the moves that
# only the action's named reviewer takes (core.workflow.transition exempts superusers).
REVIEW_MOVES = {
    ActionStatus.APPROVED: "approve",
    ActionStatus.REJECTED: "reject",
    ActionStatus.VERIFIED: "verify",
    ActionStatus.INEFFECTIVE: "find ineffective",
}
NAMED_REVIEWER_MOVES = (ActionStatus.APPROVED, ActionStatus.REJECTED)

# What stays editable once an action's status freezes it: its description (its notes).
FREE_WHEN_FROZEN = ("description",)
# The fields an edit may change (status and the fix's version move only by transitions).
EDITABLE_FIELDS = ("kind", "title", "description", "owner", "reviewer", "due_date")


def action_duties(action, frm, to, by):
    if to in REVIEW_MOVES and action.created_by_id and action.created_by_id == by.pk:
        return (
            f"You proposed this action, so someone else must {REVIEW_MOVES[to]} it "
            "(separation of duties)."
        )
    if to in NAMED_REVIEWER_MOVES and action.reviewer_id and action.reviewer_id != by.pk:
        return f"Only {action.reviewer}, the action's named reviewer, may approve or reject it."
    return None


def due_days_by_severity():
    """Days from proposal to the default due date, per finding severity
    (settings.DUE_DAYS_BY_SEVERITY overrides any of them)."""
    return {**DEFAULT_DUE_DAYS_BY_SEVERITY, **getattr(settings, "DUE_DAYS_BY_SEVERITY", {})}


def action_actor_may(action, who, by):
    kinds = (who,) if isinstance(who, str) else who
    if by == SYSTEM:
        return SYSTEM in kinds
    for kind in kinds:
        if kind == OWNER:
            # The owner, or any contributor while the action has no owner yet.
            if by.is_superuser or (action.owner_id and action.owner_id == by.pk):
                return True
            if action.owner_id is None and has_role(by, CONTRIBUTOR):
                return True
        elif kind != SYSTEM and has_role(by, kind):
            return True
    return False


class ActionQuerySet(models.QuerySet):
    def overdue(self, today=None):
        today = today or timezone.localdate()
        return self.filter(status__in=OPEN_ACTION_STATUSES, due_date__lt=today)

    def open(self):
        return self.filter(status__in=OPEN_ACTION_STATUSES)


class RemediationAction(models.Model):
    finding = models.ForeignKey("catalog.Finding", on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=30, choices=ActionKind.choices)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_actions",
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reviewed_actions",
    )
    status = models.CharField(
        max_length=20, choices=ActionStatus.choices, default=ActionStatus.PROPOSED, db_index=True
    )
    due_date = models.DateField(null=True, blank=True)
    fixed_in_version = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="fixes",
    )
    broke_on_version = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="broken_fixes",
        help_text="The first version after the fix on which a verified fix regressed "
        "(set by the evaluations; the action keeps its status).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = ActionQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-pk"]
        verbose_name = "remediation action"
        permissions = [("review_action", "Can approve, reject and verify remediation actions")]

    def __str__(self):
        return self.title

    def save(self, *args, **kwargs):
        """A new action without a due date gets its finding's default (default_due_date)."""
        if self._state.adding and self.due_date is None and self.finding_id:
            self.due_date = self.default_due_date(self.finding)
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return self.finding.get_absolute_url() + f"#action-{self.pk}"

    @property
    def is_overdue(self):
        return (
            self.due_date is not None
            and self.status in OPEN_ACTION_STATUSES
            and self.due_date < timezone.localdate()
        )

    @staticmethod
    def default_due_date(finding, today=None):
        """A new action's due date from its finding's severity: critical 7 days, high 30,
        medium 90, low 180 (settings.DUE_DAYS_BY_SEVERITY)."""
        days = due_days_by_severity().get(finding.severity)
        if days is None:
            return None
        return (today or timezone.localdate()) + datetime.timedelta(days=days)

    @staticmethod
    def check_person(user, field):
        """Owners and reviewers are active users with a role: else a ValidationError keyed
        by the field."""
        refusal = membership_refusal(user) if user is not None else None
        if refusal:
            raise ValidationError(
                {field: f"{refusal} An action's {field} must be an active user with a role."}
            )

    def clean(self):
        """The version carrying the fix is a version of the finding's ML model."""
        if self.finding_id and self.fixed_in_version_id:
            self.finding.ml_model.check_owns(self.fixed_in_version, field="fixed_in_version")

    @property
    def is_frozen(self):
        """Verified, ineffective, rejected or cancelled: only the description may change."""
        return self.status in FROZEN_ACTION_STATUSES

    def edit_refusal(self, user):
        """Why `user` may not edit this action, or None: only its owner, its named
        reviewer or a reviewer may (a superuser may do everything)."""
        if not getattr(user, "is_authenticated", False):
            return "Sign in to edit an action."
        if user.is_superuser or has_role(user, REVIEWER):
            return None
        if user.pk in (self.owner_id, self.reviewer_id):
            return None
        return "Only the action's owner, its named reviewer or a reviewer may edit this action."

    def may_edit(self, user):
        return self.edit_refusal(user) is None

    def edit(self, changes, *, by, note=""):
        """Change the action's fields (EDITABLE_FIELDS) as `by`, in core.workflow.edit's
        shape: who may edit (edit_refusal), the owner and reviewer are active users with a
        role (check_person, a ValidationError keyed by the field), and a verified,
        ineffective, rejected or cancelled action's fields are frozen but its description
        (TransitionConflict). One audit event when something changed; a refusal changes
        nothing. Returns the saved action."""
        unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
        if unknown:
            raise TransitionError(
                "These fields of an action do not change by an edit: " + ", ".join(unknown) + "."
            )

        def apply(locked):
            changed = [
                name
                for name, value in changes.items()
                if _stored(locked, name) != _stored_value(locked, name, value)
            ]
            frozen = [name for name in changed if name not in FREE_WHEN_FROZEN]
            if frozen and locked.is_frozen:
                raise TransitionConflict(
                    f"This action is {locked.get_status_display().lower()}: its fields are "
                    f"frozen, only its description may change (refused: {', '.join(frozen)})."
                )
            for name in ("owner", "reviewer"):
                if name in changed:
                    self.check_person(changes[name], name)
            for name in changed:
                setattr(locked, name, changes[name])
            if changed:
                locked.full_clean(
                    exclude=[f.name for f in locked._meta.fields if f.name not in changed]
                )
            return bool(changed)

        return edit(
            self,
            by=by,
            may_edit=lambda locked, user: locked.edit_refusal(user),
            apply=apply,
            note=note,
        )

    def first_break(self):
        """The earliest version, from the fix version on, whose automatic evaluation of
        this verified fix says regressed (None for an action not verified, or unbroken)."""
        if self.status != ActionStatus.VERIFIED or self.fixed_in_version_id is None:
            return None
        fix = self.fixed_in_version
        broken = (
            self.evaluations.filter(is_manual=False, outcome=Outcome.REGRESSED)
            .select_related("model_version")
            .order_by("model_version__registered_at", "model_version__pk")
        )
        for evaluation in broken:
            version = evaluation.model_version
            if (version.registered_at, version.pk) >= (fix.registered_at, fix.pk):
                return version
        return None

    def record_break(self):
        """Keep `broke_on_version` equal to first_break() (DESIGN.md: a verified action
        that later regresses keeps its status and records broke_on_version); an audit
        event by the system when it changes. Returns the version it broke on, or None."""
        version = self.first_break()
        if self.broke_on_version_id == getattr(version, "pk", None):
            return version

        def apply(locked):
            locked.broke_on_version = version
            return True

        note = (
            f"The fix broke on {version}: its evaluation there says regressed."
            if version is not None
            else "The fix no longer counts as broken: no evaluation after it says regressed."
        )
        edit(self, by=SYSTEM, may_edit=lambda locked, user: None, apply=apply, note=note)
        return version

    def allowed_transitions(self, user):
        return allowed_moves(
            self, user, rules=ACTION_TRANSITIONS, check_actor=action_actor_may, duties=action_duties
        )

    def transition_to(self, new, *, by, note="", fixed_in_version=None, expected=None):
        """Move the action through its workflow (see ACTION_TRANSITIONS).

        `implemented` needs the model version that carries the fix, a version of the
        finding's ML model (else a ValidationError keyed `fixed_in_version`); it is kept
        on the action and is the version the follow-up evaluation verifies.
        """

        def before_save(locked):
            if new == ActionStatus.IMPLEMENTED:
                version = fixed_in_version
                if version is None:
                    raise TransitionError(
                        "Moving an action to 'implemented' needs the model version that "
                        "carries the fix (fixed_in_version)."
                    )
                locked.finding.ml_model.check_owns(version, field="fixed_in_version")
                locked.fixed_in_version = version

        locked = transition(
            self,
            new,
            by=by,
            note=note,
            rules=ACTION_TRANSITIONS,
            label="remediation action",
            check_actor=action_actor_may,
            before_save=before_save,
            expected=expected,
            duties=action_duties,
        )
        if new == ActionStatus.IMPLEMENTED:
            # Late: remediation/followup.py imports these models.
            from .followup import on_implemented

            transaction.on_commit(lambda: on_implemented(locked.pk))
        return locked


def _stored(obj, name):
    return getattr(obj, obj._meta.get_field(name).attname)


def _stored_value(obj, name, value):
    """`value` as the column stores it (a related object by its id)."""
    if obj._meta.get_field(name).is_relation:
        return getattr(value, "pk", value)
    return value


# Actions that no longer take part in their finding's remediation.
DROPPED_ACTION_STATUSES = (ActionStatus.CANCELLED, ActionStatus.REJECTED)


def ready_to_resolve(findings):
    """The findings of `findings` that show as "ready to resolve" (DESIGN.md: a finding
    whose every live action, not cancelled or rejected, is verified; resolving stays a
    reviewer's decision). A verified fix that broke on a later version (broke_on_version)
    is history: it keeps no finding ready and does not count as a fix that holds. So a
    finding is ready when it is neither resolved nor an accepted risk, has at least one
    live unbroken action, and all of those are verified."""
    live = ~Q(actions__status__in=DROPPED_ACTION_STATUSES) & Q(
        actions__broke_on_version__isnull=True
    )
    return (
        findings.exclude(status__in=[FindingStatus.RESOLVED, FindingStatus.ACCEPTED_RISK])
        .annotate(
            live_actions=Count("actions", filter=live),
            unverified_actions=Count(
                "actions", filter=live & ~Q(actions__status=ActionStatus.VERIFIED)
            ),
        )
        .filter(live_actions__gt=0, unverified_actions=0)
    )


def is_ready_to_resolve(finding):
    return ready_to_resolve(type(finding).objects.filter(pk=finding.pk)).exists()


class Evaluation(models.Model):
    action = models.ForeignKey(
        RemediationAction, on_delete=models.CASCADE, related_name="evaluations"
    )
    model_version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="evaluations"
    )
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    probe_runs = models.ManyToManyField("probes.ProbeRun", blank=True, related_name="evaluations")
    notes = models.TextField(blank=True)
    is_manual = models.BooleanField(default=False)
    details = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One automatic evaluation per action and version; manual ones are free.
            models.UniqueConstraint(
                fields=["action", "model_version"],
                condition=models.Q(is_manual=False),
                name="evaluation_one_automatic_per_version",
            )
        ]

    def __str__(self):
        return f"{self.action} on {self.model_version}: {self.outcome}"

    def clean(self):
        """An evaluation is of a version of its action's ML model (the admin's form)."""
        if self.action_id and self.model_version_id:
            self.action.finding.ml_model.check_owns(self.model_version)


class NotificationQuerySet(models.QuerySet):
    def unread_for(self, user):
        return self.filter(recipient=user, read_at=None)

    def mark_read(self, user, ids=None):
        """Mark the user's notifications (all, or these ids) read; returns how many."""
        qs = self.unread_for(user)
        if ids is not None:
            qs = qs.filter(pk__in=ids)
        return qs.update(read_at=timezone.now())


class Notification(models.Model):
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    finding = models.ForeignKey(
        "catalog.Finding", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=300, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["recipient"], condition=models.Q(read_at=None), name="notification_unread"
            )
        ]

    def __str__(self):
        return self.subject

    def get_absolute_url(self):
        return self.url or reverse("remediation:notifications")
