"""ML models, their versions and datasets: what findings and probes point at.

Model versions and datasets are immutable once stored: their files live under
server-generated names and their sha256 is recorded at upload, checked again before every
use. Domain operations (registering a version, storing a dataset) are methods here so that
the web views, the API and the commands call the same code.
"""

import functools
import hashlib
import json
import platform
import uuid
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import localize
from django.utils.text import slugify
from django.utils.timezone import template_localtime

from boundary.artifacts import (
    DEFAULT_TRUSTED_TYPES,
    ArtifactError,
    artifact_classes,
    artifact_components,
    artifact_features,
    check_skops,
    detect_format,
    sha256_of,
)
from boundary.kinds import SENSITIVE_MESSAGE, UNKNOWN, Sensitivity
from boundary.profiles import fold_sensitive, profile
from boundary.tables import DatasetError, inspect_upload, read_table, table_preview
from core.audit import acting_as
from core.jobs import Job, JobStatus
from core.roles import MAINTAINER, has_role
from core.uploads import ImmutableFileMixin, refuse_duplicate, store_upload

from .choices import ArtifactFormat, FileFormat, Task
from .signals import version_registered

# A missing profile asked for again within this time is not queued a second time.
PROFILE_REQUEUE_SECONDS = 300


def _dataset_path(instance, filename):
    return f"datasets/{uuid.uuid4().hex}.{instance.file_format or 'bin'}"


def _artifact_path(instance, filename):
    return f"artifacts/{uuid.uuid4().hex}.{instance.artifact_format or 'bin'}"


def trusted_artifact_types():
    """The skops allow-list of this deployment: scikit-learn's supported families and
    containers (boundary.artifacts.DEFAULT_TRUSTED_TYPES) and SKOPS_EXTRA_TRUSTED_TYPES.
    Registration checks an artifact's types against it, and workers load with it."""
    return list(DEFAULT_TRUSTED_TYPES) + list(settings.SKOPS_EXTRA_TRUSTED_TYPES)


def capture_environment():
    """Library versions of the process that registers an artifact (imported here, not at
    the top, so that the web process pays for scikit-learn only when it registers one)."""
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
    }


@functools.lru_cache(maxsize=128)
def _schema_facts(path, sha256):
    """(classes_, feature_names_in_, components) of an artifact, once per file and hash;
    components is UNKNOWN when the schema cannot say (boundary.kinds.validate_probe)."""
    if not path:
        return None, None, UNKNOWN
    try:
        classes, features = artifact_classes(path), artifact_features(path)
    except OSError:  # the file is gone: nothing to tell
        return None, None, UNKNOWN
    try:
        components = artifact_components(path)
    except (ArtifactError, OSError):
        components = UNKNOWN
    return classes, features, components


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
        return reverse("registry:mlmodel_detail", args=[self.slug])

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
                {
                    field: f"The ML model '{clash.name}' already has the address '{slug}'; "
                    "choose another name or slug."
                }
            )

    def task_refusal(self, classes):
        """Why a model fitted with these `classes_` cannot be a version of this ML model, or
        "": a binary ML model's versions have two classes, a multiclass one's three or
        more (DESIGN.md: the task is checked against classes_ at registration). None
        (the artifact does not say) passes."""
        if classes is None:
            return ""
        n = len(classes)
        shown = ", ".join(map(str, classes[:6])) + (", ..." if n > 6 else "")
        if self.task == Task.BINARY and n != 2:
            return (
                f"The model has {n} classes ({shown}), but {self} is a binary ML model: its "
                "versions have two."
            )
        if self.task == Task.MULTICLASS and n < 3:
            return (
                f"The model has {n} classes ({shown}), but {self} is a multiclass ML model: "
                "its versions have three or more."
            )
        return ""

    @property
    def latest_version(self):
        return self.versions.order_by("-registered_at", "-pk").first()

    def check_owns(self, obj, *, field=None):
        """Refuse a model version of another ML model, or a dataset that is not one of its
        datasets (`dataset_refusal`): the one rule, and the one message, of every form, API
        and operation that takes a version or a dataset for this ML model.

        Raises a ValidationError keyed by `field` (default: "model_version" for a version,
        "dataset" for a dataset; a web form shows it on that field, the API answers 400 with
        it under that key); None (nothing chosen) passes.
        """
        if obj is None:
            return
        if isinstance(obj, Dataset):
            refusal = self.dataset_refusal(obj)
            if refusal:
                raise ValidationError({field or "dataset": refusal})
        elif obj.ml_model_id != self.pk:
            raise ValidationError({field or "model_version": f"{obj} is not a version of {self}."})

    def reference_datasets(self):
        """The training datasets recorded on this ML model's versions: what it reads."""
        return Dataset.objects.filter(trained_versions__ml_model=self).distinct()

    def dataset_refusal(self, dataset, references=None):
        """Why `dataset` is not a dataset of this ML model, or "".

        A dataset belongs to an ML model when it has the columns the model reads: the
        target column and every feature column of one of the training datasets recorded
        on its versions (other columns, such as ids, do not matter). With no training
        dataset on record, the columns its newest version's model was fitted on
        (feature_names_in_, read from the artifact's schema); with neither, any dataset.
        """
        references = list(self.reference_datasets() if references is None else references)
        if not references:
            return self._artifact_columns_refusal(dataset)
        columns = set(dataset.column_names)
        reasons = []
        for ref in references:
            missing = [c for c in [*ref.feature_columns, ref.target_column] if c not in columns]
            if missing:
                shown = ", ".join(missing[:5])
                if len(missing) > 5:
                    shown += f" and {len(missing) - 5} more"
                reasons.append((len(missing), f"it lacks the columns {self} reads ({shown})"))
            elif dataset.target_column != ref.target_column:
                reasons.append(
                    (
                        0,
                        f"its target is {dataset.target_column}, "
                        f"{self} predicts {ref.target_column}",
                    )
                )
            else:
                return ""
        return f"{dataset} is not a dataset of {self}: {min(reasons)[1]}."

    def _artifact_columns_refusal(self, dataset):
        version = self.latest_version
        features = version.schema_features() if version is not None else None
        missing = [c for c in features or [] if c not in set(dataset.column_names)]
        if not missing:
            return ""
        shown = ", ".join(map(str, missing[:5])) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        return f"{dataset} is not a dataset of {self}: it lacks the columns {self} reads ({shown})."

    def datasets(self):
        """This ML model's datasets (`dataset_refusal` finds nothing to refuse), newest first."""
        references = list(self.reference_datasets())
        every = Dataset.objects.order_by("-created_at", "-pk")
        return [d for d in every if not self.dataset_refusal(d, references)]

    def evaluation_datasets(self):
        """Its datasets that no version of it was trained on, newest first."""
        trained = set(self.reference_datasets().values_list("pk", flat=True))
        return [d for d in self.datasets() if d.pk not in trained]


def _as_shown(preview):
    """A table preview (boundary.tables.table_preview) with each cell as the dataset page's
    template writes it ({{ value }}: the local time of a datetime, a localized number)."""
    return dict(
        preview,
        rows=[[str(localize(template_localtime(v))) for v in row] for row in preview["rows"]],
    )


class Dataset(ImmutableFileMixin, models.Model):
    immutable_fields = ("file", "sha256")
    # The stored first rows and the profile are data, not history: the audit trail never
    # copies them.
    audit_exclude = ("preview", "profile", "profiled_at")

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
    # What the dataset page shows, kept at upload so that pages never re-read the file:
    # {"columns", "hidden", "rows"}, the first rows without the sensitive columns, each cell
    # as the page writes it. Null for a dataset stored before; filled in on its first view.
    preview = models.JSONField(null=True, blank=True, editable=False)
    # Per-column profile (boundary.profiles.profile: {"rows", "columns"}), computed by a
    # worker after upload so that pages never re-read the file. Null until then.
    profile = models.JSONField(null=True, blank=True, editable=False)
    profiled_at = models.DateTimeField(null=True, blank=True, editable=False)
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
        return reverse("registry:dataset_detail", args=[self.pk])

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

    def page_preview(self):
        """The first rows the dataset page shows, from the stored preview.

        1. A dataset stored before previews were kept has its preview made from the file on
           its first view; so has one whose sensitive mark was lifted from a column the
           stored preview leaves out (the preview never holds a sensitive column).
        2. A column marked sensitive since is dropped from the stored preview.
        3. A changed preview is stored with an update (derived data, not an edit: no audit
           event; the audit trail never copies the rows, see audit_exclude); later views
           never read the file.
        """
        preview = self.preview
        sensitive = set(self.sensitive_columns)
        if preview is None or not set(self.column_names) - sensitive <= set(preview["columns"]):
            preview = _as_shown(table_preview(self.read(), hidden=sensitive))
        elif sensitive != set(preview["hidden"]):
            keep = [i for i, name in enumerate(preview["columns"]) if name not in sensitive]
            preview = {
                "columns": [preview["columns"][i] for i in keep],
                "hidden": sorted(sensitive),
                "rows": [[row[i] for i in keep] for row in preview["rows"]],
            }
        else:
            return preview
        type(self).objects.filter(pk=self.pk).update(preview=preview)
        self.preview = preview
        return preview

    def schema_refusal(self, reference):
        """Why `reference` cannot be this dataset's drift reference, or "": both have the
        same columns of the same kinds (in any order)."""
        if reference.schema == self.schema:
            return ""
        mine, theirs = self.schema, reference.schema
        missing = [c for c in mine if c not in theirs]
        extra = [c for c in theirs if c not in mine]
        changed = [c for c in mine if c in theirs and mine[c] != theirs[c]]
        reasons = []
        for label, names in (
            ("lacks", missing),
            ("also has", extra),
            ("has other kinds for", changed),
        ):
            if names:
                shown = ", ".join(names[:5]) + (
                    f" and {len(names) - 5} more" if len(names) > 5 else ""
                )
                reasons.append(f"{label} {shown}")
        return f"{reference} does not have the schema of {self}: it {'; it '.join(reasons)}."

    def page_profile(self):
        """The stored profile as pages and the API show it (None until a worker computed
        it): the values of a column marked sensitive since are folded as when profiled."""
        if self.profile is None:
            return None
        return fold_sensitive(self.profile, self.sensitive_columns, settings.SENSITIVE_MIN_ROWS)

    def compute_profile(self):
        """Read the file once (hash checked), profile every column and store the result
        with an update (derived data, not an edit: no audit event)."""
        stored = profile(
            self.read(),
            self.schema,
            sensitive=self.sensitive_columns,
            min_rows=settings.SENSITIVE_MIN_ROWS,
        )
        now = timezone.now()
        type(self).objects.filter(pk=self.pk).update(profile=stored, profiled_at=now)
        self.profile, self.profiled_at = stored, now
        return stored

    def queue_profile(self, *, once=False):
        """Hand the profile to a worker once the transaction commits (inline when
        TASKS_SYNC is on). With `once`, not again for PROFILE_REQUEUE_SECONDS: a client
        that polls for a missing profile queues one task, not one per request."""
        from .tasks import enqueue  # late: the tasks module imports these models

        pk = self.pk
        if once and not cache.add(f"registry:profile-queued:{pk}", True, PROFILE_REQUEUE_SECONDS):
            return
        transaction.on_commit(lambda: enqueue("profile_dataset", pk))

    def read(self):
        """The table as a DataFrame, after checking the stored hash.

        Decoding Parquet passes through Arrow buffers about as large as the table, which
        Arrow's allocator keeps for its own reuse once the frame is built (the frame's
        columns stay in Arrow memory and are not copied); they are handed back here, or a
        worker would hold them, unused, through the whole rerun.
        """
        import pyarrow

        path = self.file.path
        actual = sha256_of(path)
        if actual != self.sha256:
            raise ValidationError(
                f"dataset file sha256 mismatch: expected {self.sha256}, got {actual}"
            )
        frame = read_table(path, self.file_format)
        pyarrow.default_memory_pool().release_unused()
        return frame

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
        2. Detect CSV or Parquet by content (not by the name); before decoding, refuse more
           than DATASET_MAX_ROWS rows or DATASET_MAX_CELLS cells, duplicate column names
           and a ragged CSV. Parse it, refuse a table with no rows or without the target
           column, or with unknown sensitive/ignored names.
        3. Hash the bytes, infer the column schema, keep the first rows the page shows, save
           the file under a generated name and the row in one transaction; nothing is kept
           if any step fails.
        4. Once it commits, a worker profiles the dataset (queue_profile).
        """
        try:
            info = inspect_upload(
                upload,
                target_column=target_column,
                max_bytes=settings.UPLOAD_MAX_BYTES,
                max_rows=settings.DATASET_MAX_ROWS,
                max_cells=settings.DATASET_MAX_CELLS,
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
            preview=_as_shown(info.preview),
            uploaded_by=by,
        )
        taken = cls.objects.filter(name=name, version=version)
        with refuse_duplicate(taken, duplicate), transaction.atomic():
            upload.seek(0)
            store_upload(dataset.file, upload)
            try:
                with acting_as(by):
                    dataset.save()
            except Exception:
                dataset.file.delete(save=False)
                raise
            dataset.queue_profile()
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
        return reverse("registry:version_detail", args=[self.pk])

    def schema_classes(self):
        """The classes_ its artifact's model was fitted with, read from the skops schema
        (never loaded here); None when unknown."""
        return _schema_facts(self.artifact.name and self.artifact.path, self.artifact_sha256)[0]

    def schema_features(self):
        """The columns its artifact's model was fitted on (feature_names_in_), read from
        the skops schema; None when unknown."""
        return _schema_facts(self.artifact.name and self.artifact.path, self.artifact_sha256)[1]

    def schema_components(self):
        """Its ensemble's components (names or indices) read from the skops schema; None
        when the model is no ensemble, boundary.kinds.UNKNOWN when the schema cannot say."""
        return _schema_facts(self.artifact.name and self.artifact.path, self.artifact_sha256)[2]

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
           A skops file is refused, from its zip directory and schema without unpacking or
           loading it, when it would unpack to more than ARTIFACT_MAX_UNPACKED_BYTES or a
           member is compressed absurdly, and when it holds a type outside the allow-list
           (trusted_artifact_types), by name.
        2. Hash the artifact, capture the library versions, save file and row together.
        3. Send `version_registered` (unless `enqueue` is false): the probes app queues a
           rerun of every active probe of the ML model on this version, handed to a worker
           after the transaction commits (the artifact is only ever loaded by a worker).
        """
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
        if fmt == "skops":
            try:
                check_skops(
                    artifact,
                    max_unpacked_bytes=settings.ARTIFACT_MAX_UNPACKED_BYTES,
                    trusted_types=trusted_artifact_types(),
                )
            except ArtifactError as exc:
                reason = str(exc)
                raise ValidationError({"artifact": reason[:1].upper() + reason[1:] + "."}) from exc
            artifact.seek(0)
            refusal = ml_model.task_refusal(artifact_classes(artifact))
            if refusal:
                raise ValidationError({"artifact": refusal})
            artifact.seek(0)
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
        with refuse_duplicate(taken, duplicate), transaction.atomic():
            store_upload(mv.artifact, artifact)
            try:
                with acting_as(by):
                    mv.save()
            except Exception:
                mv.artifact.delete(save=False)
                raise
            if enqueue:
                version_registered.send(sender=cls, version=mv, by=by)
        return mv


class DeploymentQuerySet(models.QuerySet):
    def current(self):
        return self.filter(until=None)


class Deployment(models.Model):
    """Which version of an ML model serves in an environment, since when (and until when:
    null while it still serves). Recording a deployment ends the one it replaces in the
    same environment; rows are never deleted, so the history of what served is kept."""

    ml_model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="deployments")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="deployments"
    )
    environment = models.SlugField(
        max_length=40, help_text="Where it serves, e.g. production, staging, shadow."
    )
    since = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField(null=True, blank=True, editable=False)
    note = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["ml_model", "environment", "-since", "-pk"]
        constraints = [
            # At most one current deployment per ML model and environment.
            models.UniqueConstraint(
                fields=["ml_model", "environment"],
                condition=models.Q(until=None),
                name="deployment_one_current_per_environment",
            ),
        ]

    def __str__(self):
        return f"{self.model_version} in {self.environment} since {self.since:%Y-%m-%d}"

    def clean(self):
        if self.ml_model_id and self.model_version_id:
            self.ml_model.check_owns(self.model_version)

    @classmethod
    def record(cls, *, model_version, environment, since=None, note="", by=None):
        """Record that `model_version` serves in `environment` from `since` (now by
        default), in one transaction:

        1. Refuse a version of another ML model, an environment that is not a slug, and a
           start before the start of the deployment it replaces.
        2. End the current deployment of the ML model in that environment at `since`.
        3. Store the new one (audited)."""
        since = since or timezone.now()
        deployment = cls(
            ml_model=model_version.ml_model,
            model_version=model_version,
            environment=environment,
            since=since,
            note=note,
            recorded_by=by if getattr(by, "pk", None) else None,
        )
        # The one-current-per-environment constraint holds once step 2 ended the current one.
        deployment.full_clean(exclude=["recorded_by"], validate_constraints=False)
        with transaction.atomic():
            current = (
                cls.objects.select_for_update()
                .filter(ml_model=deployment.ml_model, environment=environment, until=None)
                .first()
            )
            if current is not None:
                if since < current.since:
                    raise ValidationError(
                        {
                            "since": (
                                f"{current} started on {current.since:%Y-%m-%d %H:%M}; "
                                "a deployment that replaces it cannot start earlier."
                            )
                        }
                    )
                with acting_as(by):
                    current.until = since
                    current.save(update_fields=["until"])
            with acting_as(by):
                deployment.save()
        return deployment


class DatasetDrift(Job):
    """Drift of a dataset against a reference of the same schema (boundary.profiles.drift),
    computed once by a worker from both files and kept: datasets are immutable, so a
    result never goes stale. One row per (dataset, reference)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="drifts")
    reference = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    # boundary.profiles.drift's columns, worst first.
    columns = models.JSONField(default=list, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "reference"], name="drift_once_per_pair")
        ]

    def __str__(self):
        return f"Drift of {self.dataset} against {self.reference}"

    @classmethod
    def request(cls, dataset, reference, *, by=None):
        """The drift of `dataset` against `reference`: the stored one, or a new row handed
        to a worker once the transaction commits. Refuses a reference of another schema
        (ValidationError keyed by "reference")."""
        refusal = dataset.schema_refusal(reference)
        if refusal:
            raise ValidationError({"reference": refusal})
        drift, created = cls.objects.get_or_create(
            dataset=dataset,
            reference=reference,
            defaults={"requested_by": by if getattr(by, "pk", None) else None},
        )
        if created:
            from .tasks import enqueue  # late: the tasks module imports these models

            transaction.on_commit(lambda: enqueue("compute_drift", drift.pk))
        return drift


def slice_key(slice_):
    """The sha256 of a slice's canonical JSON: the same predicates, the same key."""
    text = json.dumps(slice_ or [], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class SliceShare(Job):
    """How many rows of a dataset fall in a slice, counted once by a worker (boundary.
    slices.mask) and kept: a finding page shows its slice's share in each dataset of its
    ML model without reading a file. One row per (dataset, slice)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    slice = models.JSONField(default=list, blank=True)
    slice_key = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(null=True, blank=True)
    total = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "slice_key"], name="slice_share_once")
        ]

    def __str__(self):
        return f"Share of a slice in {self.dataset}"

    @classmethod
    def request(cls, dataset, slice_):
        """The stored count of `slice_` in `dataset`, or a new row handed to a worker once
        the transaction commits."""
        share, created = cls.objects.get_or_create(
            dataset=dataset, slice_key=slice_key(slice_), defaults={"slice": slice_ or []}
        )
        if created:
            from .tasks import enqueue  # late: the tasks module imports these models

            transaction.on_commit(lambda: enqueue("count_slice", share.pk))
        return share

    @property
    def share(self):
        """rows / total, or None while it is not counted or when it may not be shown."""
        if self.status != JobStatus.DONE or not self.total or self.suppressed:
            return None
        return self.rows / self.total

    @property
    def suppressed(self):
        """A slice on a sensitive column covering fewer than SENSITIVE_MIN_ROWS rows (none
        included) is not shown, as for probe runs (DESIGN.md "Sensitive columns")."""
        sensitivity = Sensitivity(
            frozenset(self.dataset.sensitive_columns), settings.SENSITIVE_MIN_ROWS
        )
        return bool(sensitivity.involved(self.slice, {})) and (self.rows or 0) < (
            sensitivity.min_rows
        )

    suppressed_message = SENSITIVE_MESSAGE
