"""Remediation actions and their workflow, evaluations, the audit trail, notifications."""


from django.conf import settings
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from core.roles import CONTRIBUTOR, REVIEWER, has_role
from core.workflow import SYSTEM, TransitionError, allowed_moves, transition

from .choices import OPEN_ACTION_STATUSES, ActionKind, ActionStatus, Outcome

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


def action_duties(action, frm, to, by):
    if to in REVIEW_MOVES and action.created_by_id and action.created_by_id == by.pk:
        return (f"You proposed this action, so someone else must {REVIEW_MOVES[to]} it "
                "(separation of duties).")
    if to in NAMED_REVIEWER_MOVES and action.reviewer_id and action.reviewer_id != by.pk:
        return (f"Only {action.reviewer}, the action's named reviewer, may approve or "
                "reject it.")
    return None


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

    def get_absolute_url(self):
        return self.finding.get_absolute_url() + f"#action-{self.pk}"

    @property
    def is_overdue(self):
        return (
            self.due_date is not None
            and self.status in OPEN_ACTION_STATUSES
            and self.due_date < timezone.localdate()
        )

    def clean(self):
        """The version carrying the fix is a version of the finding's ML model."""
        if self.finding_id and self.fixed_in_version_id:
            self.finding.ml_model.check_owns(self.fixed_in_version, field="fixed_in_version")

    def allowed_transitions(self, user):
        return allowed_moves(self, user, rules=ACTION_TRANSITIONS, check_actor=action_actor_may,
                             duties=action_duties)

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
