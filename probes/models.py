"""ML models, their versions, datasets, probes and probe runs.

Model versions and datasets are immutable once stored: their files live under
server-generated names and their sha256 is recorded at upload, checked again before every
use. Domain operations (registering a version, storing a dataset, queuing a rerun) are
methods here so that the web views, the API, the commands and the tasks call the same code.
"""

import contextlib
import errno
import platform
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from remediation.audit import acting_as

from .choices import (
    FINISHED_RUN_STATUSES,
    ArtifactFormat,
    Comparator,
    FileFormat,
    ProbeKind,
    RunStatus,
    Task,
    Trigger,
)


def _dataset_path(instance, filename):
    return f"datasets/{uuid.uuid4().hex}.{instance.file_format or 'bin'}"


def _artifact_path(instance, filename):
    return f"artifacts/{uuid.uuid4().hex}.{instance.artifact_format or 'bin'}"


# errno values that mean the disk is full: no space left, quota exceeded, file too large.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class InsufficientStorage(ValidationError):
    """An upload could not be written because the disk (or a quota) is full. Nothing was
    kept; forms show the message, the API answers 507."""


def _store_upload(fieldfile, content):
    """Write an upload under a generated name. On any failure the partial file is
    removed; a full disk becomes InsufficientStorage naming the field."""
    field = fieldfile.field
    name = field.generate_filename(fieldfile.instance, "upload")
    try:
        fieldfile.name = fieldfile.storage.save(name, content, max_length=field.max_length)
    except OSError as exc:
        with contextlib.suppress(OSError):
            fieldfile.storage.delete(name)
        if exc.errno in DISK_FULL_ERRNOS:
            raise InsufficientStorage(
                {
                    field.name: "Not enough disk space on the server to store this file; "
                    "nothing was saved. Ask an administrator to free space, then upload "
                    "it again."
                }
            ) from exc
        raise
    setattr(fieldfile.instance, field.attname, fieldfile.name)
    fieldfile._committed = True


def capture_environment():
    """Library versions of the process that registers an artifact."""
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
    }


@contextlib.contextmanager
def _refuse_duplicate(taken, message):
    """Turn the unique constraint's IntegrityError into the same clear message as the check
    before it: two uploads of one version at the same moment both pass that check."""
    try:
        yield
    except IntegrityError as exc:
        if taken.exists():
            raise ValidationError(message) from exc
        raise


class ImmutableFileMixin:
    """Refuses to change the stored file or its hash once the row exists."""

    immutable_fields = ()

    def save(self, *args, **kwargs):
        if not self._state.adding and self.pk:
            stored = type(self).objects.filter(pk=self.pk).values(*self.immutable_fields).first()
            if stored:
                for name in self.immutable_fields:
                    value = getattr(self, name)
                    value = value.name if hasattr(value, "name") else value
                    if stored[name] != value:
                        raise ValidationError(
                            {name: f"{name} cannot change once stored; register a new one."}
                        )
        super().save(*args, **kwargs)


class MLModel(models.Model):
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    task = models.CharField(max_length=20, choices=Task.choices, default=Task.BINARY)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = "ML model"

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if not self.slug:
            self.slug = slugify(self.name)[:120]
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("probes:mlmodel_detail", args=[self.slug])

    def clean(self):
        """The slug (the model's web address, derived from the name when not given) must
        be non-empty and unused: two names may slugify alike ("Credit Risk", "credit-risk")."""
        slug = self.slug or slugify(self.name or "")[:120]
        field = "slug" if self.slug else "name"
        if not slug:
            raise ValidationError(
                {field: "The name needs a letter or a digit: it makes the model's address."}
            )
        clash = type(self).objects.filter(slug=slug).exclude(pk=self.pk).first()
        if clash is not None:
            raise ValidationError(
                {field: f"The ML model '{clash.name}' already has the address '{slug}'; "
                        "choose another name or slug."}
            )

    @property
    def latest_version(self):
        return self.versions.order_by("-registered_at", "-pk").first()


class Dataset(ImmutableFileMixin, models.Model):
    immutable_fields = ("file", "sha256")

    name = models.CharField(max_length=120)
    version = models.CharField(max_length=40, default="1")
    description = models.TextField(blank=True)
    file = models.FileField(upload_to=_dataset_path)
    file_format = models.CharField(max_length=10, choices=FileFormat.choices)
    original_filename = models.CharField(max_length=255, blank=True)
    target_column = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.BigIntegerField(default=0)
    row_count = models.PositiveIntegerField()
    # [{"name", "dtype", "kind", "sensitive", "ignored"}], in file order.
    columns = models.JSONField(default=list)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="dataset_unique_version")
        ]

    def __str__(self):
        return f"{self.name} v{self.version}"

    def get_absolute_url(self):
        return reverse("probes:dataset_detail", args=[self.pk])

    @property
    def schema(self):
        """{column: kind} for slice validation (kinds: numeric, categorical, boolean, datetime)."""
        return {c["name"]: c["kind"] for c in self.columns}

    @property
    def column_names(self):
        return [c["name"] for c in self.columns]

    @property
    def sensitive_columns(self):
        return [c["name"] for c in self.columns if c.get("sensitive")]

    @property
    def ignored_columns(self):
        return [c["name"] for c in self.columns if c.get("ignored")]

    @property
    def feature_columns(self):
        return [
            c["name"]
            for c in self.columns
            if c["name"] != self.target_column and not c.get("ignored")
        ]

    def read(self):
        """The table as a DataFrame, after checking the stored hash."""
        from .artifacts import sha256_of
        from .datasets import read_table

        path = self.file.path
        actual = sha256_of(path)
        if actual != self.sha256:
            raise ValidationError(
                f"dataset file sha256 mismatch: expected {self.sha256}, got {actual}"
            )
        return read_table(path, self.file_format)

    @classmethod
    def create_from_upload(
        cls,
        upload,
        *,
        name,
        target_column,
        by=None,
        version="1",
        description="",
        sensitive_columns=(),
        ignored_columns=(),
    ):
        """Check an uploaded table and store it.

        1. Refuse files over UPLOAD_MAX_BYTES and empty files.
        2. Detect CSV or Parquet by content (not by the name), parse it, refuse a table with
           no rows or without the target column, or with unknown sensitive/ignored names.
        3. Hash the bytes, infer the column schema, save the file under a generated name
           and the row in one transaction; nothing is kept if any step fails.
        """
        from .datasets import DatasetError, inspect_upload

        try:
            info = inspect_upload(
                upload,
                target_column=target_column,
                max_bytes=settings.UPLOAD_MAX_BYTES,
                sensitive_columns=sensitive_columns,
                ignored_columns=ignored_columns,
            )
        except DatasetError as exc:
            raise ValidationError({exc.field: str(exc)}) from exc
        duplicate = {"version": f"Dataset '{name}' already has a version '{version}'."}
        if cls.objects.filter(name=name, version=version).exists():
            raise ValidationError(duplicate)
        dataset = cls(
            name=name,
            version=version,
            description=description,
            file_format=info.file_format,
            original_filename=Path(getattr(upload, "name", "") or "").name[:255],
            target_column=target_column,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            row_count=info.row_count,
            columns=info.columns,
            uploaded_by=by,
        )
        taken = cls.objects.filter(name=name, version=version)
        with _refuse_duplicate(taken, duplicate), transaction.atomic():
            upload.seek(0)
            _store_upload(dataset.file, upload)
            try:
                with acting_as(by):
                    dataset.save()
            except Exception:
                dataset.file.delete(save=False)
                raise
        return dataset


class ModelVersion(ImmutableFileMixin, models.Model):
    immutable_fields = ("artifact", "artifact_sha256")

    ml_model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=40)
    artifact = models.FileField(upload_to=_artifact_path)
    artifact_format = models.CharField(max_length=10, choices=ArtifactFormat.choices)
    artifact_sha256 = models.CharField(max_length=64, db_index=True)
    original_filename = models.CharField(max_length=255, blank=True)
    training_dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="trained_versions"
    )
    notes = models.TextField(blank=True)
    environment = models.JSONField(default=dict, blank=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    registered_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["ml_model__name", "-registered_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["ml_model", "version"], name="modelversion_unique_version"
            )
        ]

    def __str__(self):
        return f"{self.ml_model.name} v{self.version}"

    def get_absolute_url(self):
        return reverse("probes:version_detail", args=[self.pk])

    @classmethod
    def register(
        cls,
        *,
        ml_model,
        version,
        artifact,
        by=None,
        training_dataset=None,
        notes="",
        environment=None,
        enqueue=True,
    ):
        """Register a trained artifact as a new version of an ML model.

        1. Refuse a duplicate version, a file over the size limit, an empty file, and any
           format but skops — unless pickle is enabled for this deployment and `by` is a
           maintainer. The format is read from the bytes, never trusted from the name.
        2. Hash the artifact, capture the library versions, save file and row together.
        3. After the transaction commits, queue a rerun of every active probe of the ML
           model on this version (the artifact is only ever loaded by a worker).
        """
        from catalog.roles import MAINTAINER, has_role

        from .artifacts import detect_format, sha256_of

        version = str(version).strip()
        if not version:
            raise ValidationError({"version": "A version name is required."})
        duplicate = {"version": f"{ml_model.name} already has a version '{version}'."}
        if cls.objects.filter(ml_model=ml_model, version=version).exists():
            raise ValidationError(duplicate)
        size = getattr(artifact, "size", None)
        if size is None:
            artifact.seek(0, 2)
            size = artifact.tell()
        if size == 0:
            raise ValidationError({"artifact": "The artifact file is empty."})
        if size > settings.UPLOAD_MAX_BYTES:
            raise ValidationError(
                {
                    "artifact": f"The artifact is {size} bytes; the limit is "
                    f"{settings.UPLOAD_MAX_BYTES} bytes."
                }
            )
        artifact.seek(0)
        fmt = detect_format(artifact)  # a zip's directory is at its end: read it all
        if fmt == "unknown":
            raise ValidationError(
                {
                    "artifact": "The artifact is not a skops file (nor a pickle); "
                    "save the model with skops.io.dump()."
                }
            )
        if fmt == "pickle":
            if not settings.ALLOW_PICKLE_ARTIFACTS:
                raise ValidationError(
                    {
                        "artifact": "Pickle/joblib artifacts are refused: they run code when "
                        "loaded. Save the model with skops.io.dump()."
                    }
                )
            if by is None or not has_role(by, MAINTAINER):
                raise ValidationError(
                    {"artifact": "Only maintainers may register pickle/joblib artifacts."}
                )
        digest = sha256_of(artifact)
        artifact.seek(0)
        mv = cls(
            ml_model=ml_model,
            version=version,
            artifact_format=fmt,
            artifact_sha256=digest,
            original_filename=Path(getattr(artifact, "name", "") or "").name[:255],
            training_dataset=training_dataset,
            notes=notes,
            environment=environment or capture_environment(),
            registered_by=by,
        )
        taken = cls.objects.filter(ml_model=ml_model, version=version)
        with _refuse_duplicate(taken, duplicate), transaction.atomic():
            _store_upload(mv.artifact, artifact)
            try:
                with acting_as(by):
                    mv.save()
            except Exception:
                mv.artifact.delete(save=False)
                raise
            if enqueue:
                Rerun.queue(mv, trigger=Trigger.REGISTRATION, by=by)
        return mv


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
        from . import engine

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

    def matrix(self, probes, versions):
        """{(probe_id, version_id): newest finished run}, in one query."""
        cells = {}
        runs = self.finished().filter(probe__in=probes, model_version__in=versions)
        for run in runs.order_by("-finished_at", "-pk"):
            cells.setdefault((run.probe_id, run.model_version_id), run)
        return cells


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
    # many times a worker took it. See probes/tasks.py ("Claims", "Failures").
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


# --------------------------------------------------------------------------------------
# Offline introspection: slice scans, boundary maps, stress sweeps (probes/scans.py holds
# the computations; probes/scan_tasks.py the background tasks that run them).
# --------------------------------------------------------------------------------------


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ERROR = "error", "Error"


FINISHED_JOB_STATUSES = (JobStatus.DONE, JobStatus.ERROR)


def _map_path(instance, filename):
    return f"maps/{uuid.uuid4().hex}.png"


class IntrospectionJob(models.Model):
    """Fields shared by the background computations on one model version and dataset."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self):
        return self.status in FINISHED_JOB_STATUSES

    def start(self):
        """Mark the job running; False when it already finished (a duplicated delivery)."""
        return bool(
            type(self).objects.filter(pk=self.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
            .update(status=JobStatus.RUNNING, started_at=timezone.now(), error="")
        )

    def fail(self, message):
        self.status, self.error, self.finished_at = JobStatus.ERROR, message[:4000], timezone.now()
        type(self).objects.filter(pk=self.pk).update(
            status=self.status, error=self.error, finished_at=self.finished_at
        )


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
    # Columns left out of the scan and why (e.g. sensitive columns with rare values).
    skipped_columns = models.JSONField(default=list, blank=True)
    lineage = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"Scan of {self.model_version} on {self.dataset}"

    def get_absolute_url(self):
        return reverse("probes:scan_detail", args=[self.pk])

    @classmethod
    def queue(cls, model_version, dataset, *, by=None, top_k=5, max_predicates=2,
              min_support=None, dispatch=True):
        """Store a scan request and hand it to a worker once the transaction commits."""
        from .scans import scan_params

        params = scan_params(dataset, top_k=top_k, max_predicates=max_predicates,
                             min_support=min_support)
        scan = cls.objects.create(
            model_version=model_version, dataset=dataset, params=params,
            requested_by=by if getattr(by, "pk", None) else None,
        )
        if dispatch:
            from .scan_tasks import enqueue

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
                {"candidate": f"This scan has {len(self.candidates)} candidate(s); "
                              f"there is no candidate {index + 1}."}
            )
        return self.candidates[index]

    def log_finding(self, index, *, by, title="", severity="", risk_category="",
                    summary="", error_threshold=None, margin_threshold=None):
        """Log candidate `index` as a finding with its two probes, in one transaction.

        1. The finding: the candidate's slice, its measured evidence, this scan's model
           version (the probes' baseline) and dataset; the user's title and severity or
           suggested ones.
        2. Probes: slice_error_rate and margin_density on the slice, each with the
           suggested threshold unless one is given.
        3. On commit, both probes run on the scan's version (their baseline).
        """
        from .scans import log_candidate_as_finding

        return log_candidate_as_finding(
            self, self.candidate(index), by=by, title=title, severity=severity,
            risk_category=risk_category, summary=summary, error_threshold=error_threshold,
            margin_threshold=margin_threshold,
        )


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
        from .scans import check_map_axes

        check_map_axes(finding, feature_x, feature_y)
        if versions is None:
            versions = finding.ml_model.versions.all()
        queued = []
        for version in versions:
            m, created = cls.objects.get_or_create(
                finding=finding, model_version=version, feature_x=feature_x,
                feature_y=feature_y,
                defaults={"dataset": finding.dataset, "slice": finding.slice,
                          "requested_by": by if getattr(by, "pk", None) else None},
            )
            current = (m.dataset_id == finding.dataset_id and m.slice == finding.slice
                       and m.status != JobStatus.ERROR)
            if not created and current and not redraw:
                continue
            if not created:
                # The stored image stays until the new one replaces it (scan_tasks.draw_map).
                m.dataset, m.slice, m.status, m.error = (
                    finding.dataset, finding.slice, JobStatus.QUEUED, "")
                m.finished_at = None
                m.requested_by = by if getattr(by, "pk", None) else m.requested_by
                m.save()
            queued.append(m)
        from .scan_tasks import enqueue

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
        from .scans import check_sweep

        params = check_sweep(finding, kind, version, feature)
        sweep = cls.objects.create(
            finding=finding, model_version=version, dataset=finding.dataset, kind=kind,
            feature=feature if kind == SweepKind.COUNTERFACTUAL else "",
            slice=finding.slice, params=params,
            requested_by=by if getattr(by, "pk", None) else None,
        )
        from .scan_tasks import enqueue

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
                {"point": f"This sweep has {len(self.points)} point(s); "
                          f"there is no point {index + 1}."}
            )
        return self.points[index]

    def save_point_as_probe(self, index, *, by, threshold=None):
        """A probe that re-checks this point on every version (perturbation_flip_rate at
        the point's scale, or counterfactual_flip_rate with the point's change)."""
        from .scans import probe_from_sweep_point

        return probe_from_sweep_point(self, self.point(index), by=by, threshold=threshold)
