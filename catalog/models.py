"""Findings: the catalog's lessons, with their slice, evidence, status and tags."""

import datetime

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connections, models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from boundary import engine, slices
from core.audit import acting_as
from core.roles import CONTRIBUTOR, REVIEWER, has_role
from core.workflow import SYSTEM, TransitionError, allowed_moves, transition

from .choices import FindingStatus, RiskCategory, Severity


class Tag(models.Model):
    name = models.CharField(max_length=60, unique=True)
    slug = models.SlugField(max_length=60, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    # How often a new tag looks for a free slug again after another writer took the one
    # it chose (each retry sees the other's committed tag, so a few always suffice).
    SLUG_ATTEMPTS = 5

    def save(self, *args, **kwargs):
        """Save, choosing the slug of a new tag: different names may slugify alike ("a b",
        "a-b", "A!"), and the later ones are numbered. Two writers that choose the same
        free slug at the same moment (PostgreSQL, two requests) both insert; the loser's
        savepoint rolls back and it chooses again. A tag of the same name saved by the
        other writer is the caller's IntegrityError (get_or_create then reads that tag)."""
        if self.slug:
            return super().save(*args, **kwargs)
        for attempt in range(1, self.SLUG_ATTEMPTS + 1):
            self.slug = self._free_slug()
            try:
                with transaction.atomic():
                    return super().save(*args, **kwargs)
            except IntegrityError:
                self.slug = ""
                others = type(self).objects.exclude(pk=self.pk)
                if attempt == self.SLUG_ATTEMPTS or others.filter(name=self.name).exists():
                    raise

    def _free_slug(self):
        base = slugify(self.name)[:60] or "tag"
        slug, n = base, 2
        while type(self).objects.filter(slug=slug).exclude(pk=self.pk).exists():
            suffix = f"-{n}"
            slug, n = base[: 60 - len(suffix)] + suffix, n + 1
        return slug

    @classmethod
    def from_names(cls, names):
        """The tags with these names, created where missing (names are trimmed, lowercased).
        A tag of the same name created at the same moment by another request is read, not
        refused (get_or_create on the name; Tag.save settles a clash of slugs)."""
        tags = []
        for raw in names:
            name = str(raw).strip().lower()[:60]
            if name:
                tags.append(cls.objects.get_or_create(name=name)[0])
        return tags


class FindingQuerySet(models.QuerySet):
    def search(self, q):
        """Findings matching `q` in the web-search syntax ("a phrase", or, -excluded),
        unranked. PostgreSQL matches the stored tsvector; SQLite, the stemmed words the
        fallback keeps in the same column (see catalog/search.py)."""
        # Late: catalog/search.py imports these models.
        from . import search

        q = search.clean_query(q)
        if not q:
            return self
        if self.db and connections[self.db].vendor == "postgresql":
            return self.filter(
                search_vector=SearchQuery(q, search_type="websearch", config=search.SEARCH_CONFIG)
            )
        parsed = search.parse(q)
        return self.filter(search.sqlite_filter(parsed)) if parsed else self.none()

    def find(self, q="", *, ranked=True, limit=None):
        """Search results for the catalog page and the API: ranked within a bounded candidate
        set when there is a query, else in this queryset's order; pages, capped counts,
        facets, highlighted passages and "did you mean" (catalog.search.SearchResults)."""
        # Late: catalog/search.py imports these models.
        from .search import CANDIDATE_LIMIT, SearchResults

        return SearchResults(self, q, ranked=ranked, limit=limit or CANDIDATE_LIMIT)

    def refresh_search_vectors(self, ids=None):
        """Rewrite the search documents of these findings (by default: this queryset's)."""
        # Late: catalog/search.py imports these models.
        from . import search

        if ids is None:
            ids = list(self.values_list("pk", flat=True))
        search.refresh(ids, using=self.db)

    def open(self):
        return self.exclude(status__in=[FindingStatus.RESOLVED, FindingStatus.ACCEPTED_RISK])

    def risk_expired(self, today=None):
        """Accepted risks whose acceptance has run out: `accepted_until` is today or
        earlier (the acceptance holds up to, not including, its expiry date)."""
        today = today or timezone.localdate()
        return self.filter(status=FindingStatus.ACCEPTED_RISK, accepted_until__lte=today)


# (from, to) -> who may take the transition: a role name, "system", or a tuple of them.
FINDING_TRANSITIONS = {
    (FindingStatus.OPEN, FindingStatus.REMEDIATING): (CONTRIBUTOR, REVIEWER),
    (FindingStatus.REMEDIATING, FindingStatus.RESOLVED): REVIEWER,
    (FindingStatus.RESOLVED, FindingStatus.REGRESSED): SYSTEM,
    (FindingStatus.REGRESSED, FindingStatus.REMEDIATING): (CONTRIBUTOR, REVIEWER),
    (FindingStatus.OPEN, FindingStatus.ACCEPTED_RISK): REVIEWER,
    (FindingStatus.REMEDIATING, FindingStatus.ACCEPTED_RISK): REVIEWER,
    (FindingStatus.REGRESSED, FindingStatus.ACCEPTED_RISK): REVIEWER,
    # At expiry the system moves an accepted risk back to open (remediation/tasks.py).
    (FindingStatus.ACCEPTED_RISK, FindingStatus.OPEN): SYSTEM,
}

# The moves that close a finding: whoever reported it may not take them (separation of
# duties; a superuser may).
CLOSING_MOVES = {
    FindingStatus.RESOLVED: "resolve it",
    FindingStatus.ACCEPTED_RISK: "accept its risk",
}

DEFAULT_RISK_ACCEPTANCE_MAX_DAYS = 180


def risk_acceptance_max_days():
    """How far ahead an accepted risk may expire (settings.RISK_ACCEPTANCE_MAX_DAYS)."""
    return int(getattr(settings, "RISK_ACCEPTANCE_MAX_DAYS", DEFAULT_RISK_ACCEPTANCE_MAX_DAYS))


def actor_may(who, by):
    """Whether `by` (a user, or SYSTEM) fits the rule's actor kind(s)."""
    kinds = (who,) if isinstance(who, str) else who
    if by == SYSTEM:
        return SYSTEM in kinds
    return any(kind != SYSTEM and has_role(by, kind) for kind in kinds)


def finding_duties(finding, frm, to, by):
    """Separation of duties: whoever reported a finding may not resolve it or accept its
    risk (core.workflow.transition exempts superusers and the system)."""
    if to in CLOSING_MOVES and finding.reporter_id and finding.reporter_id == by.pk:
        return (
            f"You reported this finding, so someone else must {CLOSING_MOVES[to]} "
            "(separation of duties)."
        )
    return None


def parse_expiry(expires_on, today=None):
    """The expiry date of an accepted risk: a date (or YYYY-MM-DD) after today and at most
    RISK_ACCEPTANCE_MAX_DAYS ahead; else a TransitionError that says which."""
    if expires_on in (None, ""):
        raise TransitionError(
            "Accepting a risk needs an expiry date (expires_on, YYYY-MM-DD), at most "
            f"{risk_acceptance_max_days()} days ahead."
        )
    if isinstance(expires_on, datetime.datetime):
        expires_on = expires_on.date()
    if not isinstance(expires_on, datetime.date):
        try:
            expires_on = datetime.date.fromisoformat(str(expires_on).strip())
        except ValueError as exc:
            raise TransitionError(
                f"The expiry date (expires_on) must look like 2026-11-26, not {expires_on!r}."
            ) from exc
    today = today or timezone.localdate()
    latest = today + datetime.timedelta(days=risk_acceptance_max_days())
    if expires_on <= today:
        raise TransitionError(
            f"The expiry date (expires_on) must be after today ({today.isoformat()})."
        )
    if expires_on > latest:
        raise TransitionError(
            f"A risk may be accepted for at most {risk_acceptance_max_days()} days: the expiry "
            f"date (expires_on) must be {latest.isoformat()} or earlier."
        )
    return expires_on


class Finding(models.Model):
    title = models.CharField(max_length=200)
    summary = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    ml_model = models.ForeignKey(
        "registry.MLModel", on_delete=models.PROTECT, related_name="findings"
    )
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="findings",
        help_text="The version on which the problem was discovered (the probes' baseline).",
    )
    dataset = models.ForeignKey(
        "registry.Dataset", null=True, blank=True, on_delete=models.PROTECT, related_name="findings"
    )
    slice = models.JSONField(default=list, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.MEDIUM)
    risk_category = models.CharField(
        max_length=20, choices=RiskCategory.choices, default=RiskCategory.RELIABILITY
    )
    harms = models.TextField(blank=True)
    affected_stakeholders = models.TextField(blank=True)
    policy_reference = models.CharField(max_length=200, blank=True)
    lesson = models.TextField("lesson learned", blank=True)
    remaining_gaps = models.TextField(blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="findings")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_findings",
    )
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reported_findings",
    )
    status = models.CharField(
        max_length=20, choices=FindingStatus.choices, default=FindingStatus.OPEN, db_index=True
    )
    status_note = models.TextField(blank=True, help_text="Justification of the current status.")
    accepted_until = models.DateField(
        null=True,
        blank=True,
        help_text="While the risk is accepted: the date the acceptance expires, when the "
        "finding reopens.",
    )
    is_key_lesson = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # PostgreSQL: the weighted tsvector (title A; summary, lesson B; description, harms,
    # action titles C; tags, slice features, ML model D). SQLite: the same words, stemmed,
    # as text for the fallback search. Written only by catalog.search.refresh().
    search_vector = SearchVectorField(null=True, editable=False)

    objects = FindingQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [("review_finding", "Can resolve findings, accept risks, mark key lessons")]
        indexes = [
            GinIndex(fields=["search_vector"], name="finding_search_gin"),
            models.Index(fields=["created_at", "id"], name="finding_created_id"),
            # Walk one ML model's or one status's findings newest first (filtered pages).
            models.Index(fields=["ml_model", "created_at", "id"], name="finding_model_created"),
            models.Index(fields=["status", "created_at", "id"], name="finding_status_created"),
            # The heatmaps count from these alone (index-only scans).
            models.Index(fields=["severity", "risk_category"], name="finding_severity_risk"),
            models.Index(fields=["ml_model", "status"], name="finding_model_status"),
            models.Index(
                fields=["ml_model", "created_at"],
                condition=Q(is_key_lesson=True),
                name="finding_key_lessons",
            ),
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("catalog:finding_detail", args=[self.pk])

    def clean(self):
        """The slice must fit the dataset's schema; the version must belong to the model."""

        if self.model_version_id and self.ml_model_id:
            self.ml_model.check_owns(self.model_version)
        if self.slice and not self.dataset_id:
            raise ValidationError({"dataset": "A slice needs the dataset it is defined on."})
        if self.dataset_id:
            try:
                self.slice = engine.validate_slice(self.slice or [], self.dataset.schema)
            except engine.ProbeDefinitionError as exc:
                raise ValidationError({"slice": str(exc)}) from exc

    @property
    def slice_text(self):
        """The slice as text: `age < 22 AND region in ("north", "south")` (slices.describe)."""

        return slices.describe(self.slice)

    def set_key_lesson(self, value, *, by):
        """Mark (or unmark) the finding as a key lesson for newcomers; reviewers only."""

        if not by.has_perm("catalog.review_finding"):
            raise PermissionDenied("Only reviewers may mark key lessons.")
        self.is_key_lesson = bool(value)
        with acting_as(by):
            self.save(update_fields=["is_key_lesson", "updated_at"])
        return self

    def allowed_transitions(self, user):
        """The target statuses `user` may move this finding to now."""
        return allowed_moves(
            self,
            user,
            rules=FINDING_TRANSITIONS,
            check_actor=lambda finding, who, actor: actor_may(who, actor),
            duties=finding_duties,
        )

    def transition_to(self, new, *, by, note="", expected=None, expires_on=None):
        """Move the finding through its workflow (see FINDING_TRANSITIONS).

        Accepting a risk needs a justification (the note), kept on the finding, and an
        expiry date `expires_on` (a date or YYYY-MM-DD, after today, at most
        RISK_ACCEPTANCE_MAX_DAYS ahead), kept as `accepted_until`; leaving the accepted
        risk clears it. Whoever reported the finding may not resolve it or accept its risk.
        """

        def before_save(locked):
            if new == FindingStatus.ACCEPTED_RISK:
                if not note.strip():
                    raise TransitionError("Accepting a risk needs a justification (note).")
                locked.accepted_until = parse_expiry(expires_on)
                locked.status_note = note.strip()
            else:
                locked.accepted_until = None

        return transition(
            self,
            new,
            by=by,
            note=note,
            rules=FINDING_TRANSITIONS,
            label="finding",
            check_actor=lambda locked, who, actor: actor_may(who, actor),
            before_save=before_save,
            expected=expected,
            duties=finding_duties,
        )


class SearchWord(models.Model):
    """A word that occurs in the catalog: the vocabulary behind "did you mean"."""

    word = models.CharField(max_length=40, unique=True)

    class Meta:
        indexes = [GinIndex(fields=["word"], opclasses=["gin_trgm_ops"], name="searchword_trgm")]

    def __str__(self):
        return self.word


class CatalogVersion(models.Model):
    """One row whose `number` the database itself moves on every write to the findings,
    the tags, the links between them or the ML models (triggers, migrations 0008 and
    0009), however the write is made: what is computed from those tables alone is keyed
    by it (catalog.freshness).
    `epoch` is drawn afresh whenever the row is created, so that a number is never
    reused after the table has been emptied."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    epoch = models.CharField(max_length=40)
    number = models.BigIntegerField(default=0)

    class Meta:
        default_permissions = ()

    def __str__(self):
        return f"catalog version {self.epoch}:{self.number}"
