"""Offline introspection: slice scans, boundary maps and stress sweeps, each a background
job on one model version and dataset (introspection/scans.py holds the computations,
introspection/tasks.py the tasks that run them)."""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from core import history
from core.jobs import Job, JobStatus
from core.models import AuditEvent
from registry.models import Dataset, MLModel, ModelVersion


def _map_path(instance, filename):
    return f"maps/{uuid.uuid4().hex}.png"


class IntrospectionJob(Job):
    """Fields shared by the background computations on one model version and dataset; the
    job's state (status, error, traceback, times) and its start/terminate are core.jobs'."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class SliceScan(IntrospectionJob):
    """A weak-slice scan of one model version on one dataset, and its candidates."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scans")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="scans")
    params = models.JSONField(default=dict, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_text = models.CharField(max_length=200, blank=True, default="Waiting for a worker")
    # Whole-dataset figures: rows, errors, error_rate, margin_density.
    overall = models.JSONField(default=dict, blank=True)
    # find_weak_slices results, best first, with margin_density and suggested thresholds.
    candidates = models.JSONField(default=list, blank=True)
    # Candidates left out because a dismissal hides them: each with its slice, support,
    # error_rate, the dismissal, how it matched ("slice" or "rows") and why.
    dismissed_candidates = models.JSONField(default=list, blank=True)
    # Columns left out of the scan and why (e.g. sensitive columns with rare values).
    skipped_columns = models.JSONField(default=list, blank=True)
    lineage = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"Scan of {self.model_version} on {self.dataset}"

    def get_absolute_url(self):
        return reverse("introspection:scan_detail", args=[self.pk])

    @classmethod
    def queue(
        cls,
        model_version,
        dataset,
        *,
        by=None,
        top_k=5,
        max_predicates=2,
        min_support=None,
        dispatch=True,
    ):
        """Store a scan request and hand it to a worker once the transaction commits. A
        dataset that is not one of the version's ML model's is refused (MLModel.check_owns,
        ValidationError keyed "dataset"): the web form and the API alike."""
        # Late: introspection/scans.py imports these models.
        from .scans import scan_params

        model_version.ml_model.check_owns(dataset, field="dataset")
        params = scan_params(
            dataset, top_k=top_k, max_predicates=max_predicates, min_support=min_support
        )
        scan = cls.objects.create(
            model_version=model_version,
            dataset=dataset,
            params=params,
            requested_by=by if getattr(by, "pk", None) else None,
        )
        if dispatch:
            # Late: introspection/tasks.py imports these models.
            from .tasks import enqueue

            transaction.on_commit(lambda: enqueue("run_scan", scan.pk))
        return scan

    def report(self, percent, text):
        """Progress as the worker goes (a plain update: readers poll the row)."""
        self.progress, self.progress_text = int(percent), text[:200]
        type(self).objects.filter(pk=self.pk).update(
            progress=self.progress, progress_text=self.progress_text
        )

    def progress_json(self):
        return {
            "id": self.pk,
            "status": self.status,
            "progress": self.progress,
            "text": self.progress_text if not self.error else self.error[:200],
            "candidates": len(self.candidates or []),
            "finished": self.is_finished,
        }

    def candidate(self, index):
        """The candidate at `index` (0-based), or a ValidationError naming the problem."""
        if self.status != JobStatus.DONE:
            raise ValidationError("The scan has not finished yet.")
        try:
            index = int(index)
        except (TypeError, ValueError):
            raise ValidationError({"candidate": "Give the candidate's number."}) from None
        if not 0 <= index < len(self.candidates):
            raise ValidationError(
                {
                    "candidate": f"This scan has {len(self.candidates)} candidate(s); "
                    f"there is no candidate {index + 1}."
                }
            )
        return self.candidates[index]

    def log_finding(
        self,
        index,
        *,
        by,
        title="",
        severity="",
        risk_category="",
        summary="",
        error_threshold=None,
        margin_threshold=None,
    ):
        """Log candidate `index` as a finding with its two probes, in one transaction.

        1. The finding: the candidate's slice, its measured evidence, this scan's model
           version (the probes' baseline) and dataset; the user's title and severity or
           suggested ones.
        2. Probes: slice_error_rate and margin_density on the slice, each with the
           suggested threshold unless one is given.
        3. On commit, both probes run on the scan's version (their baseline).
        """
        # Late: introspection/scans.py imports these models.
        from .scans import log_candidate_as_finding

        return log_candidate_as_finding(
            self,
            self.candidate(index),
            by=by,
            title=title,
            severity=severity,
            risk_category=risk_category,
            summary=summary,
            error_threshold=error_threshold,
            margin_threshold=margin_threshold,
        )


class ScanDismissalQuerySet(models.QuerySet):
    def active(self):
        """Dismissals in force (not lifted)."""
        return self.filter(lifted_at__isnull=True)

    def for_scan(self, scan):
        """Dismissals that apply to scans of this scan's ML model on its dataset."""
        return self.filter(ml_model_id=scan.model_version.ml_model_id, dataset_id=scan.dataset_id)


class ScanDismissal(models.Model):
    """A scan candidate someone judged not worth a finding, with who and why, kept per ML
    model and dataset: later scans of that model on that dataset leave it out (a candidate
    with the same slice, or whose rows overlap the dismissed slice's with Jaccard >= 0.5).
    Never deleted: a dismissal is lifted (restored), which keeps who did it and when."""

    ml_model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    # The scan whose candidate was dismissed (the page it was dismissed from).
    scan = models.ForeignKey(
        SliceScan, null=True, blank=True, on_delete=models.SET_NULL, related_name="dismissals"
    )
    slice = models.JSONField(default=list)
    description = models.TextField(blank=True, default="")
    reason = models.TextField()
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    dismissed_at = models.DateTimeField(default=timezone.now)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    lift_note = models.TextField(blank=True, default="")

    objects = ScanDismissalQuerySet.as_manager()

    class Meta:
        ordering = ["-dismissed_at", "-pk"]
        indexes = [models.Index(fields=["ml_model", "dataset"], name="scandismissal_model_data")]

    def __str__(self):
        return f"Dismissed scan candidate {self.description or self.slice}"

    def get_absolute_url(self):
        if self.scan_id:
            return reverse("introspection:scan_detail", args=[self.scan_id]) + "#dismissals"
        return self.dataset.get_absolute_url()

    @property
    def is_active(self):
        return self.lifted_at is None

    @classmethod
    def dismiss(cls, scan, index, *, by, reason):
        """Dismiss candidate `index` (0-based) of a finished scan, for its ML model and
        dataset; one audit event (created, with the reason as its note).

        1. Contributors only; a reason is required; the candidate must exist, not be
           logged as a finding, and not be dismissed already.
        2. The dismissal row (the candidate's slice and text), and the scan's candidate
           marked with it, in one transaction.
        """
        # Late: introspection/scans.py imports these models.
        from .scans import check_may_dismiss, dismissal_of

        check_may_dismiss(by)
        reason = (reason or "").strip()
        if not reason:
            raise ValidationError({"reason": "Say why this candidate is not worth a finding."})
        with transaction.atomic():
            locked = type(scan).objects.select_for_update().get(pk=scan.pk)
            candidate = locked.candidate(index)
            index = int(index)
            if candidate.get("finding"):
                raise ValidationError(
                    {
                        "candidate": "This candidate is logged as finding "
                        f"#{candidate['finding']}; it is tracked there."
                    }
                )
            current = dismissal_of(candidate)
            if current is not None:
                raise ValidationError(
                    {"candidate": f"This candidate is dismissed already (#{current.pk})."}
                )
            dismissal = cls.objects.create(
                ml_model_id=scan.model_version.ml_model_id,
                dataset_id=scan.dataset_id,
                scan=locked,
                slice=candidate["slice"],
                description=candidate.get("description", ""),
                reason=reason,
                dismissed_by=by if getattr(by, "pk", None) else None,
            )
            AuditEvent.record(dismissal, verb=AuditEvent.Verb.CREATE, actor=by, note=reason)
            locked.candidates[index] = dict(candidate, dismissal=dismissal.pk)
            type(scan).objects.filter(pk=scan.pk).update(candidates=locked.candidates)
            scan.candidates = locked.candidates
        return dismissal

    def lift(self, *, by, note=""):
        """Restore: later scans show the candidate again. The row stays, marked lifted
        (by whom, when, why); one audit event (dismissed -> lifted). Lifting one that is
        lifted already is refused and changes nothing."""
        # Late: introspection/scans.py imports these models.
        from .scans import check_may_dismiss

        check_may_dismiss(by)
        note = (note or "").strip()
        with transaction.atomic():
            now = timezone.now()
            lifted_by = by if getattr(by, "pk", None) else None
            done = (
                type(self)
                .objects.filter(pk=self.pk, lifted_at__isnull=True)
                .update(lifted_at=now, lifted_by=lifted_by, lift_note=note)
            )
            if not done:
                raise ValidationError("This dismissal is lifted already.")
            self.lifted_at, self.lifted_by, self.lift_note = now, lifted_by, note
            AuditEvent.record(
                self,
                verb=AuditEvent.Verb.TRANSITION,
                actor=by,
                from_status="dismissed",
                to_status="lifted",
                note=note or "Restored: later scans show this candidate again.",
            )
        return self


# Nothing with history is deleted (DESIGN.md): a dismissal is lifted, never removed.
history.protect(ScanDismissal)


class BoundaryMap(IntrospectionJob):
    """A finding's decision-boundary map on one model version (PNG under MEDIA_ROOT)."""

    finding = models.ForeignKey(
        "catalog.Finding", on_delete=models.CASCADE, related_name="boundary_maps"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="boundary_maps"
    )
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="boundary_maps")
    feature_x = models.CharField(max_length=200)
    feature_y = models.CharField(max_length=200)
    slice = models.JSONField(default=list, blank=True)
    margin = models.FloatField(default=0.1)
    image = models.FileField(upload_to=_map_path, blank=True)
    # uncertain_share, positive_share, error_rate, slice_support, slice_box, points_shown,
    # and the predicted class per grid cell (packed) to compare versions.
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["feature_x", "feature_y", "model_version__registered_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["finding", "model_version", "feature_x", "feature_y"],
                name="boundarymap_unique_per_version_and_axes",
            )
        ]

    def __str__(self):
        return f"Map {self.feature_y} × {self.feature_x} of finding {self.finding_id}"

    @classmethod
    def request(cls, finding, feature_x, feature_y, *, by=None, versions=None, redraw=False):
        """Maps of a finding over two features on each version of its ML model.

        Maps that exist for the same slice and dataset are kept (a stored version never
        changes) unless `redraw`; the others are (re)queued, one task each, on commit.
        """
        # Late: introspection/scans.py imports these models.
        from .scans import check_map_axes

        check_map_axes(finding, feature_x, feature_y)
        if versions is None:
            versions = finding.ml_model.versions.all()
        queued = []
        for version in versions:
            m, created = cls.objects.get_or_create(
                finding=finding,
                model_version=version,
                feature_x=feature_x,
                feature_y=feature_y,
                defaults={
                    "dataset": finding.dataset,
                    "slice": finding.slice,
                    "requested_by": by if getattr(by, "pk", None) else None,
                },
            )
            current = (
                m.dataset_id == finding.dataset_id
                and m.slice == finding.slice
                and m.status != JobStatus.ERROR
            )
            if not created and current and not redraw:
                continue
            if not created:
                # The stored image stays until the new one replaces it (tasks.draw_map).
                m.dataset, m.slice, m.status, m.error = (
                    finding.dataset,
                    finding.slice,
                    JobStatus.QUEUED,
                    "",
                )
                m.finished_at = None
                m.requested_by = by if getattr(by, "pk", None) else m.requested_by
                m.save()
            queued.append(m)
        # Late: introspection/tasks.py imports these models.
        from .tasks import enqueue

        for m in queued:
            transaction.on_commit(lambda pk=m.pk: enqueue("draw_map", pk))
        return queued


class SweepKind(models.TextChoices):
    NOISE = "noise", "Noise sweep"
    COUNTERFACTUAL = "counterfactual", "Counterfactual sweep"


class StressSweep(IntrospectionJob):
    """A noise or counterfactual sweep on a finding's slice, on one model version."""

    finding = models.ForeignKey("catalog.Finding", on_delete=models.CASCADE, related_name="sweeps")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="sweeps")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="sweeps")
    kind = models.CharField(max_length=20, choices=SweepKind.choices)
    feature = models.CharField(max_length=200, blank=True)
    slice = models.JSONField(default=list, blank=True)
    params = models.JSONField(default=dict, blank=True)
    # [{"scale"|"value", "flip_rate", "n", ("mean_proba"), "suggested_threshold"}]
    points = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        what = f" of {self.feature}" if self.feature else ""
        return f"{self.get_kind_display()}{what} on {self.model_version}"

    @classmethod
    def request(cls, finding, kind, *, version, by=None, feature=""):
        """Queue a sweep of the finding's slice on `version`, run by a worker on commit."""
        # Late: introspection/scans.py imports these models.
        from .scans import check_sweep

        params = check_sweep(finding, kind, version, feature)
        sweep = cls.objects.create(
            finding=finding,
            model_version=version,
            dataset=finding.dataset,
            kind=kind,
            feature=feature if kind == SweepKind.COUNTERFACTUAL else "",
            slice=finding.slice,
            params=params,
            requested_by=by if getattr(by, "pk", None) else None,
        )
        # Late: introspection/tasks.py imports these models.
        from .tasks import enqueue

        transaction.on_commit(lambda: enqueue("run_sweep", sweep.pk))
        return sweep

    def point(self, index):
        if self.status != JobStatus.DONE:
            raise ValidationError("The sweep has not finished yet.")
        try:
            index = int(index)
        except (TypeError, ValueError):
            raise ValidationError({"point": "Give the point's number."}) from None
        if not 0 <= index < len(self.points):
            raise ValidationError(
                {
                    "point": f"This sweep has {len(self.points)} point(s); "
                    f"there is no point {index + 1}."
                }
            )
        return self.points[index]

    def save_point_as_probe(self, index, *, by, threshold=None):
        """A probe that re-checks this point on every version (perturbation_flip_rate at
        the point's scale, or counterfactual_flip_rate with the point's change)."""
        # Late: introspection/scans.py imports these models.
        from .scans import probe_from_sweep_point

        return probe_from_sweep_point(self, self.point(index), by=by, threshold=threshold)
