"""Probes and their runs: stored, re-runnable diagnostics and every execution of them.

Domain operations (queuing a rerun, starting a new probe's history) are methods here so
that the web views, the API, the commands and the tasks call the same code.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from boundary import engine
from registry.models import Dataset, ModelVersion

from .choices import FINISHED_RUN_STATUSES, Comparator, ProbeKind, RunStatus, Trigger


class Probe(models.Model):
    finding = models.ForeignKey("catalog.Finding", on_delete=models.CASCADE, related_name="probes")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="probes")
    kind = models.CharField(max_length=40, choices=ProbeKind.choices)
    slice = models.JSONField(default=list, blank=True)
    params = models.JSONField(default=dict, blank=True)
    comparator = models.CharField(max_length=30, choices=Comparator.choices, default="<=")
    threshold = models.FloatField(null=True, blank=True)
    tolerance = models.FloatField(default=0.0)
    min_support = models.PositiveIntegerField(default=30)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["finding", "pk"]
        permissions = [("run_probe", "Can run probes now")]

    def __str__(self):
        return f"{self.get_kind_display()} on {self.dataset} (#{self.pk})"

    def get_absolute_url(self):
        return self.finding.get_absolute_url() + f"#probe-{self.pk}"

    def clean(self):
        """Validate kind, slice and parameters against the dataset's schema."""

        if self.dataset_id is None:
            return
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
            )
        except engine.ProbeDefinitionError as exc:
            raise ValidationError(str(exc)) from exc
        if self.comparator != Comparator.NO_WORSE and self.threshold is None:
            raise ValidationError({"threshold": "A threshold is required for this comparator."})

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
        first = ("the version where the finding was discovered" if finding.model_version_id
                 else "the newest version")
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
        return Rerun.queue(versions[0], trigger=Trigger.MANUAL, by=by, probes=[self],
                           label="first run of a new probe")

    def definition(self):
        """The probe as it is now, frozen into every run's lineage."""
        return {
            "id": self.pk,
            "kind": self.kind,
            "dataset": self.dataset_id,
            "slice": self.slice,
            "params": self.params,
            "comparator": self.comparator,
            "threshold": self.threshold,
            "tolerance": self.tolerance,
            "min_support": self.min_support,
        }


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

        The runs exist before the task starts, so a retried or duplicated task finds them
        (unique per probe, version and rerun) and never creates a second one.
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
        ProbeRun.objects.bulk_create(
            [
                ProbeRun(probe=p, model_version=model_version, rerun=rerun, trigger=trigger)
                for p in probes
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
            return Rerun.queue(latest, trigger=Trigger.MANUAL, by=self.requested_by,
                               probes=probes, label=self.requested_by_label)

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

    def latest_runs(self, *, probes=None, versions=None):
        """The latest run of each probe on each model version, among these runs.

        The one definition every page, report, API answer and follow-up uses: the newest
        FINISHED run (passed, failed, inconclusive or error; never a queued or running one)
        by `finished_at`, then by `id`, both descending. A probe runs on its own dataset,
        so (probe, version) names the run. `probes` and `versions` (objects, ids or
        querysets) narrow it; a filter on the run itself (e.g. its status) narrows the
        answer, never which run is the latest. One query, a queryset.
        """
        newest = (
            self.model._default_manager.finished()
            .filter(probe=OuterRef("probe"), model_version=OuterRef("model_version"))
            .order_by(F("finished_at").desc(nulls_last=True), F("pk").desc())
            .values("pk")[:1]
        )
        runs = self.finished()
        if probes is not None:
            runs = runs.filter(probe__in=probes)
        if versions is not None:
            runs = runs.filter(model_version__in=versions)
        return runs.filter(pk=Subquery(newest))

    def matrix(self, probes, versions):
        """{(probe_id, version_id): latest run} (see latest_runs), in one query."""
        return {
            (run.probe_id, run.model_version_id): run
            for run in self.latest_runs(probes=probes, versions=versions)
        }


class ProbeRun(models.Model):
    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="runs")
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
                fields=["probe", "model_version", "trigger", "rerun"],
                name="proberun_unique_per_rerun",
            )
        ]
        indexes = [models.Index(fields=["model_version", "probe"])]

    def __str__(self):
        return f"{self.probe_id} on {self.model_version_id}: {self.status}"

    @property
    def is_finished(self):
        return self.status in FINISHED_RUN_STATUSES
