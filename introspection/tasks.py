"""Background tasks of the offline introspection (django-q2): slice scans, boundary maps,
stress sweeps and the moved-problem check.

Plain functions taking primary keys, queued after the transaction commits. Each loads the
model artifact (hash checked, skops allow-list) in the worker only. A duplicated delivery
of a finished job does nothing; a failure is kept on the row with its reason.
"""

import logging
import traceback

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from remediation.models import Evaluation

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


def _message(exc):
    text = str(exc) or type(exc).__name__
    if hasattr(exc, "messages"):
        text = "; ".join(exc.messages)
    return text


def run_scan(scan_id, progress=None):
    """Scan a model version on a dataset for weak slices; `progress(percent, text)` is
    called as it goes (besides the row's own progress fields)."""
    from . import scans
    from .models import JobStatus, SliceScan

    scan = SliceScan.objects.select_related("model_version__ml_model", "dataset").get(pk=scan_id)
    if not scan.start():
        return scan.status

    def report(percent, text):
        scan.report(percent, text)
        if progress is not None:
            progress(percent, text)

    try:
        result = scans.run_scan(scan, report)
    except Exception as exc:  # the reason is shown on the scan page
        log.warning("scan %s failed: %s\n%s", scan.pk, exc, traceback.format_exc())
        scan.fail(_message(exc))
        SliceScan.objects.filter(pk=scan.pk).update(progress_text="Failed")
        return JobStatus.ERROR
    n = len(result["candidates"])
    SliceScan.objects.filter(pk=scan.pk).update(
        status=JobStatus.DONE,
        progress=100,
        progress_text=f"Done: {n} candidate slice{'s' if n != 1 else ''}",
        overall=result["overall"],
        candidates=result["candidates"],
        skipped_columns=result["skipped_columns"],
        lineage=result["lineage"],
        finished_at=timezone.now(),
    )
    if progress is not None:
        progress(100, "Done")
    return JobStatus.DONE


def draw_map(map_id):
    """Render one boundary map and store its PNG under a server-generated name."""
    from . import scans
    from .models import BoundaryMap, JobStatus

    m = BoundaryMap.objects.select_related("model_version__ml_model", "dataset").get(pk=map_id)
    if not m.start():
        return m.status
    try:
        png, summary = scans.draw_map(m)
    except Exception as exc:
        log.info("boundary map %s failed: %s", m.pk, exc)
        m.fail(_message(exc))
        return JobStatus.ERROR
    old = m.image.name
    m.image.save("map.png", ContentFile(png), save=False)
    updated = BoundaryMap.objects.filter(pk=m.pk, status=JobStatus.RUNNING).update(
        image=m.image.name, summary=summary, status=JobStatus.DONE, finished_at=timezone.now()
    )
    if not updated:  # redrawn or removed meanwhile: this image is nobody's
        m.image.storage.delete(m.image.name)
        return m.status
    if old and old != m.image.name:
        m.image.storage.delete(old)
    return JobStatus.DONE


def run_sweep(sweep_id):
    """Compute a noise or counterfactual sweep of a finding's slice on one version."""
    from . import scans
    from .models import JobStatus, StressSweep

    sweep = StressSweep.objects.select_related("model_version", "dataset", "finding").get(
        pk=sweep_id
    )
    if not sweep.start():
        return sweep.status
    try:
        params, points = scans.run_sweep(sweep)
    except Exception as exc:
        log.info("sweep %s failed: %s", sweep.pk, exc)
        sweep.fail(_message(exc))
        return JobStatus.ERROR
    StressSweep.objects.filter(pk=sweep.pk).update(
        params=params, points=points, status=JobStatus.DONE, finished_at=timezone.now()
    )
    return JobStatus.DONE


def on_evaluation_recorded(sender, evaluation, **kwargs):
    """Receiver of remediation.signals.evaluation_recorded."""
    queue_moved_problem_check(evaluation)


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
    from . import scans

    evaluation = Evaluation.objects.select_related(
        "action__finding__dataset", "action__finding__model_version", "model_version"
    ).filter(pk=evaluation_id).first()
    if evaluation is None:
        return None
    finding = evaluation.action.finding
    if not finding.slice or finding.dataset is None:
        return None
    try:
        summary = scans.moved_problem_check(evaluation.model_version, finding.dataset,
                                            finding.slice, baseline=finding.model_version)
    except Exception as exc:
        log.info("moved-problem check of evaluation %s failed: %s", evaluation.pk, exc)
        summary = {"verdict": "error", "text": f"The check could not run: {_message(exc)}"}
    summary["checked_at"] = timezone.now().isoformat()
    summary["slice"] = finding.slice
    with transaction.atomic():
        locked = Evaluation.objects.select_for_update().filter(pk=evaluation.pk).first()
        if locked is None:
            return None
        details = dict(locked.details or {}, moved_problem=summary)
        Evaluation.objects.filter(pk=locked.pk).update(details=details)
    return summary["verdict"]
