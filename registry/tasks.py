"""Background tasks of the registry (django-q2): dataset profiles, drift between two
datasets, and the rows of a slice in a dataset.

Plain functions taking primary keys, queued after the transaction commits (inline when
TASKS_SYNC is on). Each reads dataset files in a worker, so that pages never do. Drift and
slice counts are jobs run by core.jobs' one runner: a duplicated delivery of a finished job
does nothing; a failure is kept on the row with its reason and its traceback.
"""

import logging

import numpy as np
from django.conf import settings
from django_q.tasks import async_task

from boundary.profiles import drift
from boundary.slices import mask
from core.jobs import JobRunner

from .models import Dataset, DatasetDrift, SliceShare

log = logging.getLogger(__name__)

TASKS = ("profile_dataset", "compute_drift", "count_slice")


def enqueue(name, pk):
    """Hand one task to a worker (inline when TASKS_SYNC is on)."""
    if name not in TASKS:
        raise ValueError(f"unknown registry task {name!r}")
    async_task(
        f"registry.tasks.{name}",
        pk,
        task_name=f"{name}-{pk}",
        group="registry",
        sync=settings.TASKS_SYNC,
    )


def profile_dataset(dataset_id):
    """Profile a dataset that has no profile yet (a repeated delivery does nothing).

    A failure (a file gone or altered) is logged and leaves the profile empty: the dataset
    page says so and offers to compute it again."""
    dataset = Dataset.objects.filter(pk=dataset_id, profile__isnull=True).first()
    if dataset is None:
        return False
    try:
        dataset.compute_profile()
    except Exception:
        log.exception("profile of dataset %s failed", dataset_id)
        return False
    return True


class DriftRunner(JobRunner):
    """Drift of a dataset against its reference: both files read once, every column."""

    model = DatasetDrift
    select_related = ("dataset", "reference")

    def run(self, job):
        refusal = job.dataset.schema_refusal(job.reference)
        if refusal:
            raise ValueError(refusal)
        result = drift(job.reference.read(), job.dataset.read(), job.dataset.schema)
        return {"columns": result["columns"]}


class SliceShareRunner(JobRunner):
    """The rows of a dataset that fall in a slice (boundary.slices.mask, the one rule)."""

    model = SliceShare
    select_related = ("dataset",)

    def run(self, job):
        frame = job.dataset.read()
        return {"rows": int(np.count_nonzero(mask(frame, job.slice))), "total": len(frame)}


def compute_drift(drift_id):
    return DriftRunner().execute(drift_id)


def count_slice(share_id):
    return SliceShareRunner().execute(share_id)
