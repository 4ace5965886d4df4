"""Background jobs: one runner for every job kind (the shape of NetBox's JobRunner).

A job is a row (a model built on `Job`) that a worker runs: `JobRunner.execute(pk)`
1. loads the row and starts it (`Job.start`); a duplicated delivery of a job that already
   finished does nothing and answers its status;
2. runs the kind's work (`run(job)`), which returns the fields of its result;
3. terminates the job: `done` with those fields, or, when the work raised, `error` with a
   clear message for the user and the traceback for maintainers, both kept on the row.
"""

import logging
import traceback
from typing import Any, ClassVar, Self

from django.db import models
from django.utils import timezone

log = logging.getLogger(__name__)


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ERROR = "error", "Error"


FINISHED_JOB_STATUSES = (JobStatus.DONE, JobStatus.ERROR)
ERROR_MAX_CHARS = 4000


def error_message(exc):
    """What a user reads about a failure: a validation error's messages, else the text."""
    if hasattr(exc, "messages"):
        return "; ".join(exc.messages)
    return str(exc) or type(exc).__name__


class Job(models.Model):
    """A background job's state, on its own row: the status, the clear error a user reads,
    the traceback maintainers read, when it started and finished."""

    status = models.CharField(
        max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Every concrete job model has Django's default manager; declared for type checkers only
    # (an abstract model has none of its own).
    objects: ClassVar[models.Manager[Self]]

    class Meta:
        abstract = True

    @property
    def is_finished(self):
        return self.status in FINISHED_JOB_STATUSES

    def start(self):
        """Mark the job running; False when it already finished (a duplicated delivery),
        and then this copy reads the status it finished with."""
        values = {
            "status": JobStatus.RUNNING,
            "started_at": timezone.now(),
            "error": "",
            "traceback": "",
        }
        started = (
            type(self)
            .objects.filter(pk=self.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
            .update(**values)
        )
        if started:
            self.__dict__.update(values)
        else:
            self.refresh_from_db(fields=["status"])
        return bool(started)

    def terminate(self, status=JobStatus.DONE, *, error="", traceback="", **fields):
        """Finish a running job as done or error, storing `fields` (its results) with it.

        Only a running job is finished: one that finished meanwhile, or was queued again,
        keeps its state. True when this call finished it.
        """
        if status not in FINISHED_JOB_STATUSES:
            raise ValueError(f"A job terminates as done or error, not {status!r}.")
        values = dict(
            fields,
            status=status,
            error=error[:ERROR_MAX_CHARS],
            traceback=traceback,
            finished_at=timezone.now(),
        )
        finished = type(self).objects.filter(pk=self.pk, status=JobStatus.RUNNING).update(**values)
        if finished:
            for name, value in values.items():
                setattr(self, name, value)
        return bool(finished)


class JobRunner:
    """Runs one kind of job. A subclass names its `model` (a `Job`), the relations to load
    with it, and implements `run(job)`; see the module's docstring for the steps."""

    model: type[Job] | None = None
    select_related: tuple[str, ...] = ()
    # Stored with a failure besides the error and the traceback (e.g. a progress text).
    failed_fields: dict[str, Any] = {}

    def run(self, job):
        """Do the work; return the fields to store with `done`."""
        raise NotImplementedError

    def finished(self, job, stored, fields):
        """After `done` was (or, `stored` false, could not be) stored with `fields`."""

    def execute(self, pk):
        """Run the job `pk` once; answers the status it ends with."""
        model = self.model
        assert model is not None, "a JobRunner subclass names its model"
        job = model.objects.select_related(*self.select_related).get(pk=pk)
        if not job.start():
            return job.status
        try:
            fields = self.run(job) or {}
        except Exception as exc:  # the reason is shown, the traceback kept
            tb = traceback.format_exc()
            log.warning("%s %s failed: %s", model._meta.verbose_name, job.pk, exc)
            job.terminate(
                JobStatus.ERROR, error=error_message(exc), traceback=tb, **self.failed_fields
            )
            return JobStatus.ERROR
        stored = job.terminate(JobStatus.DONE, **fields)
        self.finished(job, stored, fields)
        if not stored:
            job.refresh_from_db(fields=["status"])
        return job.status
