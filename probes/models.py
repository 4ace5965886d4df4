"""Probes and their runs: stored, re-runnable diagnostics and every execution of them.

Domain operations (queuing a rerun, starting a new probe's history, revising or retiring
a probe) are methods here so that the web views, the API, the commands and the tasks call
the same code.
"""

from collections import defaultdict

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MinValueValidator
from django.db import models, transaction
from django.db.models import F, OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone

from boundary import engine
from catalog.choices import FindingStatus
from core.audit import silenced
from core.models import AuditEvent
from core.roles import CONTRIBUTOR, REVIEWER, has_role
from core.workflow import TransitionConflict, TransitionError, edit
from registry.models import Dataset, ModelVersion

from .choices import (
    FINISHED_RUN_STATUSES,
    Comparator,
    Decide,
    ProbeKind,
    RunStatus,
    Trigger,
)

# A probe's definition (DESIGN.md, "Probe kinds"): immutable once the probe has a run, then
# changed only by a revision. `also_on` and `decide` belong to it as soon as a probe has
# them (Probe.definition_fields() reads which the model has).
DEFINITION_FIELDS = (
    "finding",
    "dataset",
    "also_on",
    "kind",
    "slice",
    "params",
    "comparator",
    "threshold",
    "tolerance",
    "min_support",
    "decide",
)

# On a finding in one of these statuses a probe guards a fix or an accepted risk: revising
# or retiring it needs the reviewer role.
SETTLED_FINDING_STATUSES = (
    FindingStatus.RESOLVED,
    FindingStatus.REGRESSED,
    FindingStatus.ACCEPTED_RISK,
)


# The probe's own fields, by the first word of the engine's message about them: each
# message of Probe.clean() is keyed by the field it is about (forms show it there, the API
# answers with it under that key).
_PARAM_NAMES = frozenset(
    name for kind in engine.PROBE_KINDS for name in engine.default_params(kind)
) | {"params", "parameter", "parameter(s)"}


def definition_error_field(message):
    """The probe field an engine message is about ("" for the probe as a whole)."""
    words = message.split()
    first = words[0].rstrip(":,").lower() if words else ""
    if first in ("threshold", "comparator", "tolerance", "decide"):
        return first
    if message.startswith("unknown probe kind") or first in engine.PROBE_KINDS:
        return "kind"  # e.g. "ensemble_disagreement needs an ensemble: ..."
    if first in _PARAM_NAMES or message.startswith("unknown parameter"):
        return "params"
    if first in ("slice", "predicate") or "column '" in message:
        return "slice"
    return ""


class Probe(models.Model):
    finding = models.ForeignKey("catalog.Finding", on_delete=models.CASCADE, related_name="probes")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="probes")
    # More datasets of the same schema the probe also runs on (a holdout, a later time
    # window, a production sample): a fix that holds only on `dataset` is "narrow".
    also_on = models.ManyToManyField(
        Dataset,
        blank=True,
        related_name="also_probes",
        help_text="Other datasets of the same schema to run the probe on as well (a holdout, "
        "a later time window, a production sample), to tell a fix that generalises from "
        "one that holds only where it was designed.",
    )
    kind = models.CharField(max_length=40, choices=ProbeKind.choices)
    slice = models.JSONField(default=list, blank=True)
    params = models.JSONField(default=dict, blank=True)
    comparator = models.CharField(max_length=30, choices=Comparator.choices, default="<=")
    threshold = models.FloatField(null=True, blank=True)
    tolerance = models.FloatField(default=0.0, validators=[MinValueValidator(0.0)])
    min_support = models.PositiveIntegerField(default=30)
    decide = models.CharField(
        max_length=12,
        choices=Decide.choices,
        default=Decide.POINT,
        help_text="Decide on the value, or only when the whole interval is on one side "
        "(so that a small slice does not flip between versions).",
    )
    active = models.BooleanField(default=True)
    supersedes = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="superseded_by",
        help_text="The probe this one revises (retired, its runs kept).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    retire_note = models.TextField(blank=True)

    class Meta:
        ordering = ["finding", "pk"]
        permissions = [("run_probe", "Can run probes now")]

    def __str__(self):
        return f"{self.get_kind_display()} on {self.dataset} (#{self.pk})"

    def get_absolute_url(self):
        return reverse("probes:probe_detail", args=[self.pk])

    def clean(self):
        """Validate the definition as the engine will run it, refusing a probe that could
        never run (DESIGN.md): a dataset that is not one of its finding's ML model's
        (MLModel.check_owns), the kind, slice and parameters against the dataset's schema,
        and against the classes of the ML model's newest version (a pos_label that is not a
        class; a one-vs-rest metric without pos_label on a multiclass model). Each message
        is keyed by the field it is about (definition_error_field)."""

        if self.dataset_id is None:
            return
        if self.finding_id:
            self.finding.ml_model.check_owns(self.dataset, field="dataset")
        try:
            self.slice = engine.validate_slice(self.slice or [], self.dataset.schema)
            self.params = engine.validate_probe(
                self.kind,
                self.slice,
                self.params or {},
                self.comparator,
                self.threshold,
                self.dataset.schema,
                target_column=self.dataset.target_column,
                classes=self.model_classes(),
                components=self.model_components(),
            )
        except engine.ProbeDefinitionError as exc:
            message = str(exc)
            raise ValidationError({definition_error_field(message) or NON_FIELD_ERRORS: message})
        if self.comparator != Comparator.NO_WORSE and self.threshold is None:
            raise ValidationError({"threshold": "A threshold is required for this comparator."})

    def check_also_on(self, datasets):
        """Refuse `also_on` datasets the probe could never run on, keyed "also_on": its own
        dataset again, a dataset that is not one of its ML model's (MLModel.check_owns), one
        whose schema differs from its dataset's (Dataset.schema_refusal), or one on which
        its slice cannot be evaluated. Called by every form, the API and revise/edit (a
        many-to-many is set after the probe is saved, so full_clean cannot see it)."""
        problems = []
        for other in datasets or ():
            if self.dataset_id and other.pk == self.dataset_id:
                problems.append(f"{other} is the probe's own dataset: list only the others.")
                continue
            try:
                if self.finding_id:
                    self.finding.ml_model.check_owns(other, field="also_on")
                if self.dataset_id:
                    refusal = self.dataset.schema_refusal(other)
                    if refusal:
                        raise ValidationError({"also_on": refusal})
                    engine.validate_slice(self.slice or [], other.schema)
            except ValidationError as exc:
                problems += exc.message_dict["also_on"]
            except engine.ProbeDefinitionError as exc:
                problems.append(f"on {other}: {exc}")
        if problems:
            raise ValidationError({"also_on": problems})

    def datasets(self):
        """Every dataset the probe runs on: its own first, then `also_on` by id."""
        also = sorted(self.also_on.all(), key=lambda d: d.pk) if self.pk else []
        return [self.dataset, *also]

    def model_classes(self):
        """The `classes_` of the newest version of the finding's ML model, read from its
        artifact's schema (no model is loaded); None when unknown."""
        if not self.finding_id:
            return None
        version = self.finding.ml_model.latest_version
        return version.schema_classes() if version is not None else None

    def model_components(self):
        """The ensemble components of the newest version of the finding's ML model, read
        from its artifact's schema: names or indices, None when it is no ensemble,
        engine.UNKNOWN when that cannot be told (no version, an unreadable schema)."""
        version = self.finding.ml_model.latest_version if self.finding_id else None
        return version.schema_components() if version is not None else engine.UNKNOWN

    @staticmethod
    def first_versions(finding):
        """The versions a new probe of `finding` runs on straight away, in order: the
        discovery version (its baseline; without one, the newest version), then the ML
        model's newest version when it is a later one. Empty when the model has none."""
        newest = finding.ml_model.latest_version
        first = finding.model_version or newest
        if first is None:
            return []
        return [first] if first == newest else [first, newest]

    @staticmethod
    def first_runs_text(finding):
        """Where a new probe of `finding` runs (Probe.first_versions), in words."""
        versions = Probe.first_versions(finding)
        if not versions:
            return "it runs on every version registered from now on"
        first = (
            "the version where the finding was discovered"
            if finding.model_version_id
            else "the newest version"
        )
        then = ", then on the newest version" if len(versions) > 1 else ""
        return f"it runs now on {first}{then}, and on every new version after"

    def start_history(self, by=None):
        """Run a new probe on the first of its `first_versions`: where its finding was
        discovered, so its history starts where the problem was seen and later versions
        have a baseline to compare against (the no-worse-than-baseline comparator needs
        it). When that rerun is finished, Rerun.catch_up runs it on the newest version.
        Returns the rerun, or None when the ML model has no version."""
        versions = self.first_versions(self.finding)
        if not versions:
            return None
        return Rerun.queue(
            versions[0],
            trigger=Trigger.MANUAL,
            by=by,
            probes=[self],
            label="first run of a new probe",
        )

    # --- Revisions: a definition with runs never changes in place ----------------------

    @classmethod
    def definition_fields(cls):
        """The names in DEFINITION_FIELDS that this model has."""
        names = {f.name for f in cls._meta.get_fields()}
        return tuple(name for name in DEFINITION_FIELDS if name in names)

    def _stored(self, name):
        """A field as stored: a related object by its id, a many-to-many as sorted ids."""
        field = self._meta.get_field(name)
        if field.many_to_many:
            return sorted(getattr(self, name).values_list("pk", flat=True)) if self.pk else []
        return getattr(self, field.attname)

    def changed_fields(self, changes):
        """The names in `changes` whose value differs from this probe's."""
        changed = []
        for name, value in changes.items():
            field = self._meta.get_field(name)
            if field.many_to_many:
                value = sorted(getattr(item, "pk", item) for item in (value or []))
            elif field.is_relation:
                value = getattr(value, "pk", value)
            if value != self._stored(name):
                changed.append(name)
        return changed

    def change_refusal(self, user):
        """Why `user` may not revise, retire or edit this probe, or None. On a finding that
        is resolved, regressed or an accepted risk it needs the reviewer role; otherwise a
        contributor (who logs probes) or a reviewer. (core.workflow.edit lets a superuser.)"""
        if not getattr(user, "is_authenticated", False):
            return "Sign in to change a probe."
        if self.finding.status in SETTLED_FINDING_STATUSES:
            if has_role(user, REVIEWER):
                return None
            return (
                f"The finding is {self.finding.get_status_display().lower()}: revising or "
                "retiring its probes needs the reviewer role."
            )
        if has_role(user, CONTRIBUTOR) or has_role(user, REVIEWER):
            return None
        return "Changing a probe needs the contributor or reviewer role."

    def may_change(self, user):
        return user.is_superuser or self.change_refusal(user) is None

    def _check_live(self, doing):
        if not self.active:
            successor = getattr(self, "superseded_by", None)
            where = f"; revise its revision, probe #{successor.pk}" if successor else ""
            raise TransitionConflict(f"Probe #{self.pk} is retired: it cannot be {doing}{where}.")

    def refuse_change(self, changes):
        """Raise why `changes` may not be made to this probe in place, if they may not: a
        definition field of a probe with runs -> TransitionConflict naming `revise`;
        `active` never changes in place (TransitionConflict naming `retire`); a probe never
        moves to another finding (TransitionError)."""
        changed = self.changed_fields(changes)
        if "active" in changed:
            raise TransitionConflict(
                "A probe is not switched off by an edit: retire it "
                f"(POST /api/v1/probes/{self.pk}/retire/ with a note), which keeps its runs; "
                "a retired probe stays retired."
            )
        definition = [name for name in changed if name in self.definition_fields()]
        if definition and self.runs.exists():
            raise TransitionConflict(
                f"Probe #{self.pk} has runs, so its definition is immutable "
                f"({', '.join(definition)} cannot change in place). Revise it instead: "
                f"POST /api/v1/probes/{self.pk}/revise/ with the changed fields and a note; "
                "the revision supersedes this probe, which is retired with its runs kept."
            )
        if "finding" in changed:
            raise TransitionError("A probe cannot move to another finding.")
        if definition:
            self._check_live("changed")
        return changed

    def edit(self, changes, *, by, note=""):
        """Change fields of this probe in place, which only a probe without runs allows
        (refuse_change); the new values are checked by full_clean."""

        def apply(locked):
            changed = locked.refuse_change(changes)
            for name in changed:
                if name != "also_on":
                    setattr(locked, name, changes[name])
            if changed:
                locked.full_clean()
                also_on = _datasets(changes.get("also_on", locked.also_on.all()))
                locked.check_also_on(also_on)
                if "also_on" in changed:
                    locked.also_on.set(also_on)
            return bool(changed)

        return edit(
            self,
            by=by,
            may_edit=lambda locked, user: locked.change_refusal(user),
            apply=apply,
            note=note,
        )

    def retire(self, *, by, note):
        """Deactivate this probe with a note; its runs stay. One audit event (active ->
        retired). A retired probe -> TransitionConflict."""
        note = (note or "").strip()
        if not note:
            raise TransitionError("Retiring a probe needs a note: why it no longer applies.")

        def apply(locked):
            locked._check_live("retired")
            locked._mark_retired(by, note)
            return True

        return edit(
            self,
            by=by,
            may_edit=lambda locked, user: locked.change_refusal(user),
            apply=apply,
            note=note,
            from_status="active",
            to_status="retired",
        )

    def _mark_retired(self, by, note):
        self.active = False
        self.retired_at = timezone.now()
        self.retired_by = by if getattr(by, "pk", None) else None
        self.retire_note = note

    def revise(self, changes, *, by, note):
        """A new probe with this probe's definition and `changes`, which supersedes it.

        1. Lock this probe; refuse if `by` may not change it (change_refusal), if it is
           already retired (TransitionConflict), if a revision would move it to another
           finding, or if nothing in the definition changes.
        2. Create the revision (full_clean: every rule of a new probe), recorded as created
           with the note, and retire this probe with its runs kept (active -> retired).
        3. Start the revision's history (Probe.start_history) once committed.
        Returns the new probe.
        """
        note = (note or "").strip()
        if not note:
            raise TransitionError("Revising a probe needs a note: what changes and why.")
        fields = self.definition_fields()
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise TransitionError(
                "Only a probe's definition is revised ("
                + ", ".join(f for f in fields if f != "finding")
                + "), not: "
                + ", ".join(unknown)
                + "."
            )
        revision = {}

        def apply(locked):
            locked._check_live("revised")
            changed = locked.changed_fields(changes)
            if "finding" in changed:
                raise TransitionError(
                    "A revision stays on its finding: a probe cannot move to another finding."
                )
            if not changed:
                raise TransitionError(
                    f"A revision changes the definition: nothing differs from probe #{locked.pk}."
                )
            values = {
                name: changes.get(name, getattr(locked, name))
                for name in fields
                if not locked._meta.get_field(name).many_to_many
            }
            new = Probe(
                **values, supersedes=locked, created_by=by if getattr(by, "pk", None) else None
            )
            new.full_clean()
            also_on = _datasets(changes.get("also_on", locked.also_on.all()))
            new.check_also_on(also_on)
            with silenced():
                new.save()
            new.also_on.set(also_on)
            AuditEvent.record(
                new,
                verb=AuditEvent.Verb.CREATE,
                actor=by,
                note=f"Revises probe #{locked.pk}: {note}",
            )
            locked._mark_retired(by, f"Superseded by probe #{new.pk}: {note}")
            revision["probe"] = new
            return True

        with transaction.atomic():
            edit(
                self,
                by=by,
                may_edit=lambda locked, user: locked.change_refusal(user),
                apply=apply,
                note=lambda locked: locked.retire_note,
                from_status="active",
                to_status="retired",
            )
            new = revision["probe"]
            new.start_history(by)
        return new

    def definition(self):
        """The probe as it is now, frozen into every run's lineage."""
        return {
            "id": self.pk,
            "kind": self.kind,
            "dataset": self.dataset_id,
            "also_on": sorted(d.pk for d in self.also_on.all()) if self.pk else [],
            "slice": self.slice,
            "params": self.params,
            "comparator": self.comparator,
            "threshold": self.threshold,
            "tolerance": self.tolerance,
            "min_support": self.min_support,
            "decide": self.decide,
        }


def _datasets(values):
    """Datasets given as objects or ids, as objects (ids that name none are left out)."""
    values = list(values or [])
    ids = [v for v in values if not isinstance(v, Dataset)]
    found = {d.pk: d for d in Dataset.objects.filter(pk__in=ids)} if ids else {}
    return [found.get(v, v) for v in values if isinstance(v, Dataset) or v in found]


class Rerun(models.Model):
    """One request to evaluate probes on a model version; its runs report progress."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="reruns")
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    requested_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.get_trigger_display()} of {self.model_version}"

    @classmethod
    def queue(cls, model_version, *, trigger, by=None, probes=None, label="", dispatch=True):
        """Create the rerun and its queued runs now; hand the work to a worker on commit.

        One run per probe and dataset it runs on (its own, then its `also_on`). The runs
        exist before the task starts, so a retried or duplicated task finds them (unique
        per probe, dataset, version and rerun) and never creates a second one.
        """
        # Late: probes/tasks.py imports these models.
        from .tasks import enqueue_rerun

        if probes is None:
            probes = Probe.objects.filter(
                finding__ml_model_id=model_version.ml_model_id, active=True
            )
        rerun = cls.objects.create(
            model_version=model_version,
            trigger=trigger,
            requested_by=by if getattr(by, "pk", None) else None,
            requested_by_label=(
                by.get_username() if getattr(by, "pk", None) else (label or "system")
            ),
        )
        probes = list(probes)
        also = defaultdict(list)
        for probe_id, dataset_id in Probe.also_on.through.objects.filter(
            probe_id__in=[p.pk for p in probes]
        ).values_list("probe_id", "dataset_id"):
            also[probe_id].append(dataset_id)
        ProbeRun.objects.bulk_create(
            [
                ProbeRun(
                    probe=p,
                    dataset_id=dataset_id,
                    model_version=model_version,
                    rerun=rerun,
                    trigger=trigger,
                )
                for p in probes
                for dataset_id in [p.dataset_id, *sorted(also[p.pk])]
            ]
        )
        if dispatch:
            transaction.on_commit(lambda: enqueue_rerun(rerun.pk))
        return rerun

    @classmethod
    def on_version_registered(cls, sender, version, by=None, **kwargs):
        """Receiver of registry.signals.version_registered: rerun every active probe of
        the ML model on the new version."""
        cls.queue(version, trigger=Trigger.REGISTRATION, by=by)

    def catch_up(self):
        """After a rerun on an older version: the probes it ran that have no run yet on
        the ML model's newest version run there too, so a finding logged against an
        older version (a new probe starts on its discovery version) shows at once where
        it stands now. Queued only after this rerun finished, so a probe compared with
        its baseline finds the baseline's value. Returns the new rerun, or None."""
        latest = self.model_version.ml_model.latest_version
        if latest is None or latest.pk == self.model_version_id:
            return None
        probes = list(
            Probe.objects.filter(active=True, runs__rerun=self)
            .exclude(runs__model_version=latest)
            .distinct()
        )
        if not probes:
            return None
        with transaction.atomic():
            return Rerun.queue(
                latest,
                trigger=Trigger.MANUAL,
                by=self.requested_by,
                probes=probes,
                label=self.requested_by_label,
            )

    @classmethod
    def unfinished_for(cls, ml_model_id):
        """Reruns of an ML model's versions that are still queued or running."""
        return cls.objects.filter(model_version__ml_model_id=ml_model_id, finished_at=None)

    def progress(self):
        counts = dict(
            self.runs.values_list("status")
            .annotate(n=models.Count("pk"))
            .values_list("status", "n")
        )
        total = sum(counts.values())
        done = sum(counts.get(s, 0) for s in FINISHED_RUN_STATUSES)
        return {"total": total, "done": done, "counts": counts, "finished": done == total}


class ProbeRunQuerySet(models.QuerySet):
    def finished(self):
        return self.filter(status__in=FINISHED_RUN_STATUSES)

    def latest_runs(self, *, probes=None, versions=None, everywhere=False):
        """The latest run of each probe on each model version and dataset, among these runs.

        The one definition every page, report, API answer and follow-up uses: the newest
        FINISHED run (passed, failed, inconclusive or error; never a queued or running one)
        by `finished_at`, then by `id`, both descending, per (probe, version, dataset).
        Only the runs on each probe's own dataset, so that (probe, version) names the run,
        unless `everywhere` (its `also_on` datasets too). `probes` and `versions` (objects,
        ids or querysets) narrow it; a filter on the run itself (e.g. its status) narrows
        the answer, never which run is the latest. One query, a queryset.
        """
        newest = (
            self.model._default_manager.finished()
            .filter(
                probe=OuterRef("probe"),
                model_version=OuterRef("model_version"),
                dataset=OuterRef("dataset"),
            )
            .order_by(F("finished_at").desc(nulls_last=True), F("pk").desc())
            .values("pk")[:1]
        )
        runs = self.finished()
        if probes is not None:
            runs = runs.filter(probe__in=probes)
        if versions is not None:
            runs = runs.filter(model_version__in=versions)
        if not everywhere:
            runs = runs.filter(dataset=F("probe__dataset"))
        return runs.filter(pk=Subquery(newest))

    def matrix(self, probes, versions):
        """{(probe_id, version_id): latest run on the probe's own dataset} (latest_runs),
        in one query."""
        return {
            (run.probe_id, run.model_version_id): run
            for run in self.latest_runs(probes=probes, versions=versions)
        }

    def also_matrix(self, probes, versions):
        """{(probe_id, version_id): [latest run on each `also_on` dataset, by dataset id]}
        (latest_runs everywhere, minus the runs on the probe's own dataset), one query."""
        found = defaultdict(list)
        runs = (
            self.latest_runs(probes=probes, versions=versions, everywhere=True)
            .exclude(dataset=F("probe__dataset"))
            .select_related("dataset")
            .order_by("dataset_id")
        )
        for run in runs:
            found[(run.probe_id, run.model_version_id)].append(run)
        return dict(found)


class ProbeRun(models.Model):
    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="runs")
    # The dataset it ran on: the probe's own, or one of its `also_on`.
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="runs")
    rerun = models.ForeignKey(Rerun, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    value = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    support = models.PositiveIntegerField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    # artifact/dataset sha256, library versions, probe definition snapshot, seed.
    lineage = models.JSONField(default=dict, blank=True)
    details = models.JSONField(default=dict, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The worker process evaluating the run (host, pid, start time) and since when; how
    # many times a worker took it. See probes/claims.py and probes/tasks.py ("Failures").
    claimed_by = models.CharField(max_length=200, blank=True, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    objects = ProbeRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # A retried or duplicated task can never produce a second run.
            models.UniqueConstraint(
                fields=["probe", "dataset", "model_version", "trigger", "rerun"],
                name="proberun_unique_per_rerun_and_dataset",
            )
        ]
        indexes = [models.Index(fields=["model_version", "probe"])]

    def __str__(self):
        return f"{self.probe_id} on {self.model_version_id}: {self.status}"

    def save(self, *args, **kwargs):
        if self.dataset_id is None and self.probe_id is not None:
            self.dataset_id = self.probe.dataset_id  # a run on the probe's own dataset
        super().save(*args, **kwargs)

    @property
    def is_finished(self):
        return self.status in FINISHED_RUN_STATUSES
