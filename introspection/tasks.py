"""Background tasks of the offline introspection (django-q2): slice scans, boundary maps,
stress sweeps and the moved-problem check.

Plain functions taking primary keys, queued after the transaction commits. Each loads the
model artifact (hash checked, skops allow-list) in a worker only, and there in a child
process with a memory limit (scans.Workbench). Scans, maps and sweeps are jobs run by
core.jobs' one runner: a duplicated delivery of a finished job does nothing; a failure is
kept on the row with its reason and its traceback. A model whose process crashes or runs out
of memory fails its job once with that reason (ModelCrashed); the worker goes on.
"""

import logging

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from core.jobs import JobRunner, error_message
from remediation import followup
from remediation.models import Evaluation

from . import scans
from .models import BoundaryMap, SliceScan, StressSweep

log = logging.getLogger(__name__)

TASKS = ("run_scan", "draw_map", "run_sweep", "check_moved_problem")


def enqueue(name, pk):
    """Hand one job to a worker (inline when TASKS_SYNC is on)."""
    if name not in TASKS:
        raise ValueError(f"unknown introspection task {name!r}")
    async_task(
        f"introspection.tasks.{name}",
        pk,
        task_name=f"{name}-{pk}",
        group="introspection",
        sync=settings.TASKS_SYNC,
    )


class ScanRunner(JobRunner):
    """A weak-slice scan; `progress(percent, text)` hears its progress besides the row."""

    model = SliceScan
    select_related = ("model_version__ml_model", "dataset")
    failed_fields = {"progress_text": "Failed"}

    def __init__(self, progress=None):
        self.progress = progress

    def run(self, scan):
        def report(percent, text):
            scan.report(percent, text)
            if self.progress is not None:
                self.progress(percent, text)

        result = scans.run_scan(scan, report)
        n = len(result["candidates"])
        return {
            "progress": 100,
            "progress_text": f"Done: {n} candidate slice{'s' if n != 1 else ''}",
            "overall": result["overall"],
            "candidates": result["candidates"],
            "skipped_columns": result["skipped_columns"],
            "lineage": result["lineage"],
        }

    def finished(self, scan, stored, fields):
        if self.progress is not None:
            self.progress(100, "Done")


class MapRunner(JobRunner):
    """A boundary map: its PNG stored under a server-generated name."""

    model = BoundaryMap
    select_related = ("model_version__ml_model", "dataset")

    def run(self, m):
        png, summary = scans.draw_map(m)
        self.old_image = m.image.name
        m.image.save("map.png", ContentFile(png), save=False)
        return {"image": m.image.name, "summary": summary}

    def finished(self, m, stored, fields):
        storage = m.image.storage
        if not stored:  # redrawn or removed meanwhile: this image is nobody's
            storage.delete(fields["image"])
        elif self.old_image and self.old_image != fields["image"]:
            storage.delete(self.old_image)


class SweepRunner(JobRunner):
    """A noise or counterfactual sweep of a finding's slice on one version."""

    model = StressSweep
    select_related = ("model_version", "dataset", "finding")

    def run(self, sweep):
        params, points = scans.run_sweep(sweep)
        return {"params": params, "points": points}


def run_scan(scan_id, progress=None):
    """Scan a model version on a dataset for weak slices; `progress(percent, text)` is
    called as it goes (besides the row's own progress fields)."""
    return ScanRunner(progress).execute(scan_id)


def draw_map(map_id):
    """Render one boundary map and store its PNG under a server-generated name."""
    return MapRunner().execute(map_id)


def run_sweep(sweep_id):
    """Compute a noise or counterfactual sweep of a finding's slice on one version."""
    return SweepRunner().execute(sweep_id)


def on_evaluation_recorded(sender, evaluation, **kwargs):
    """Receiver of remediation.signals.evaluation_recorded: True when a moved-problem check
    is queued (the evaluation then waits for it before it counts as held)."""
    return queue_moved_problem_check(evaluation)


def queue_moved_problem_check(evaluation):
    """After a follow-up evaluation of a fix: check, in a worker, whether the finding's
    errors moved next to its slice on the evaluated version.

    Only for an evaluation on the fix version or a later one, of a finding with a slice
    and a dataset. Queued after commit (the evaluation may be recorded in a web request).
    """
    action = evaluation.action
    finding = action.finding
    fix = action.fixed_in_version
    version = evaluation.model_version
    if not finding.slice or finding.dataset_id is None or fix is None:
        return False
    if (version.registered_at, version.pk) < (fix.registered_at, fix.pk):
        return False
    transaction.on_commit(lambda: enqueue("check_moved_problem", evaluation.pk))
    return True


def check_moved_problem(evaluation_id):
    """Run the neighbourhood check of an evaluation's finding on its version and keep the
    summary in Evaluation.details["moved_problem"]."""

    evaluation = (
        Evaluation.objects.select_related(
            "action__finding__dataset", "action__finding__model_version", "model_version"
        )
        .filter(pk=evaluation_id)
        .first()
    )
    if evaluation is None:
        return None
    finding = evaluation.action.finding
    if not finding.slice or finding.dataset is None:
        return None
    try:
        summary = scans.moved_problem_check(
            evaluation.model_version, finding.dataset, finding.slice, baseline=finding.model_version
        )
    except Exception as exc:  # a model that crashed included: the check could not run
        log.info("moved-problem check of evaluation %s failed: %s", evaluation.pk, exc)
        summary = {"verdict": "error", "text": f"The check could not run: {error_message(exc)}"}
    summary["checked_at"] = timezone.now().isoformat()
    summary["slice"] = finding.slice
    with transaction.atomic():
        locked = Evaluation.objects.select_for_update().filter(pk=evaluation.pk).first()
        if locked is None:
            return None
        details = dict(locked.details or {}, moved_problem=summary)
        Evaluation.objects.filter(pk=locked.pk).update(details=details)
        # The fix's verdict waited for this check: decide it now.
        followup.after_moved_problem_check(locked.pk)
    return summary["verdict"]
