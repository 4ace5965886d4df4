"""Background jobs have one runner (core/jobs.py): every job kind (slice scans, boundary
maps, stress sweeps) starts, fails or finishes through it; a failure keeps its clear
message for the user and its traceback for maintainers on the row; a duplicated delivery
of a finished job does nothing. A source check finds any other start/fail/finish wrapper
(run on planted ones too, so that it is known to fire)."""

import ast

import pytest

from catalog.models import Finding
from core.jobs import JobStatus
from introspection import tasks
from introspection.models import BoundaryMap, SliceScan, StressSweep

from .factories import api_for, client_for
from .planted import REGION, store_planted
from .sources import app_modules, offenders

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(people, ml_model):
    dataset, (version,) = store_planted(people, ml_model)
    finding = Finding.objects.create(
        title="Top-left corner",
        ml_model=ml_model,
        model_version=version,
        dataset=dataset,
        slice=REGION,
        owner=people["contributor"],
        reporter=people["contributor"],
    )
    return {"dataset": dataset, "version": version, "finding": finding}


def new_scan(world):
    return SliceScan.queue(world["version"], world["dataset"], dispatch=False).pk


def new_map(world):
    return BoundaryMap.objects.create(
        finding=world["finding"],
        model_version=world["version"],
        dataset=world["dataset"],
        feature_x="x1",
        feature_y="x2",
        slice=REGION,
    ).pk


def new_sweep(world):
    return StressSweep.objects.create(
        finding=world["finding"],
        model_version=world["version"],
        dataset=world["dataset"],
        kind="noise",
        slice=REGION,
        params={"scales": [0.1], "repeats": 2, "seed": 0},
    ).pk


KINDS = {
    "scan": (new_scan, tasks.run_scan, SliceScan),
    "map": (new_map, tasks.draw_map, BoundaryMap),
    "sweep": (new_sweep, tasks.run_sweep, StressSweep),
}


def tamper(version):
    with open(version.artifact.path, "ab") as handle:
        handle.write(b"tampered")


@pytest.mark.parametrize("kind", KINDS, ids=list(KINDS))
def test_a_failing_job_keeps_its_reason_and_its_traceback(world, kind):
    make, run, model = KINDS[kind]
    pk = make(world)
    tamper(world["version"])
    assert run(pk) == "error"
    job = model.objects.get(pk=pk)
    assert job.status == "error" and job.finished_at is not None
    assert "sha256 mismatch" in job.error and "Traceback" not in job.error
    assert job.traceback.startswith("Traceback (most recent call last)")
    assert "sha256 mismatch" in job.traceback.splitlines()[-1]
    # A duplicated delivery of the failed job does nothing.
    assert run(pk) == "error"
    again = model.objects.get(pk=pk)
    assert (again.finished_at, again.traceback, again.error) == (
        job.finished_at,
        job.traceback,
        job.error,
    )


@pytest.mark.parametrize("kind", KINDS, ids=list(KINDS))
def test_a_duplicated_delivery_of_a_finished_job_does_nothing(world, kind):
    make, run, model = KINDS[kind]
    pk = make(world)
    assert run(pk) == "done"
    job = model.objects.get(pk=pk)
    assert job.error == "" and job.traceback == "" and job.started_at <= job.finished_at
    assert run(pk) == "done"
    again = model.objects.get(pk=pk)
    assert (again.started_at, again.finished_at) == (job.started_at, job.finished_at)
    if kind == "map":
        assert again.image.name == job.image.name
        files = job.image.storage.listdir("maps")[1]
        assert files == [job.image.name.split("/")[-1]]  # no second image was drawn


def test_a_failed_scan_shows_its_traceback_to_maintainers_only(people, world):
    pk = new_scan(world)
    tamper(world["version"])
    tasks.run_scan(pk)
    scan = SliceScan.objects.get(pk=pk)
    assert scan.progress_text == "Failed"
    for who, sees in [
        ("viewer", False),
        ("contributor", False),
        ("reviewer", False),
        ("maintainer", True),
        ("admin", True),
    ]:
        page = client_for(people[who]).get(scan.get_absolute_url()).content.decode()
        assert "The scan failed" in page and "sha256 mismatch" in page, who
        assert ("Traceback (most recent call last)" in page) is sees, who
    body = api_for(people["maintainer"]).get(f"/api/v1/scans/{pk}/").json()
    assert "sha256 mismatch" in body["error"] and "traceback" not in body


def test_only_a_running_job_terminates_and_only_as_done_or_error(world):
    scan = SliceScan.objects.get(pk=new_scan(world))
    assert scan.terminate(JobStatus.DONE) is False  # still queued: nothing changes
    assert SliceScan.objects.get(pk=scan.pk).status == "queued"
    assert scan.start() is True and scan.status == "running"
    with pytest.raises(ValueError):
        scan.terminate(JobStatus.RUNNING)
    assert scan.terminate(JobStatus.ERROR, error="x" * 5000, traceback="tb") is True
    stored = SliceScan.objects.get(pk=scan.pk)
    assert (stored.status, len(stored.error), stored.traceback) == ("error", 4000, "tb")
    assert scan.start() is False and scan.status == "error"


# -- one runner -----------------------------------------------------------------------

HOME = "core/jobs.py"
STATE_METHODS = {"start", "fail", "finish", "terminate"}


def _defines_a_state_method(node):
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in STATE_METHODS


def _guards_on_start(node):
    test = getattr(node, "test", None)
    return (
        isinstance(node, ast.If)
        and isinstance(test, ast.UnaryOp)
        and isinstance(test.op, ast.Not)
        and isinstance(test.operand, ast.Call)
        and isinstance(test.operand.func, ast.Attribute)
        and test.operand.func.attr == "start"
    )


def _sets_a_job_status(node):
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "update"
        and any(
            k.arg == "status" and ast.unparse(k.value).startswith("JobStatus.")
            for k in node.keywords
        )
    )


def job_state_wrappers(tree):
    """Lines that move a job's state by themselves: a start/fail/finish/terminate function,
    an `if not job.start()` guard, or an update that sets a JobStatus."""
    checks = (_defines_a_state_method, _guards_on_start, _sets_a_job_status)
    return sorted({node.lineno for node in ast.walk(tree) if any(check(node) for check in checks)})


def test_only_the_job_runner_moves_a_jobs_state():
    # Job rows live in the Django apps; boundary/ (no Django) has no job to start, and its
    # slice parser's fail() is a parse error.
    django_apps = [
        (path, source) for path, source in app_modules() if not path.startswith("boundary/")
    ]
    found = offenders(job_state_wrappers, django_apps)
    assert set(found) == {HOME}, found


@pytest.mark.parametrize(
    "planted",
    [
        # IntrospectionJob's old methods
        "class IntrospectionJob:\n    def fail(self, message):\n        pass\n",
        # the old per-kind wrapper
        "def run_sweep(pk):\n    sweep = StressSweep.objects.get(pk=pk)\n"
        "    if not sweep.start():\n        return sweep.status\n",
        "def finish(pk):\n    StressSweep.objects.filter(pk=pk).update(status=JobStatus.DONE)\n",
    ],
    ids=["fail-method", "start-guard", "finish-by-update"],
)
def test_a_second_job_wrapper_is_found(planted):
    assert list(offenders(job_state_wrappers, [("introspection/planted.py", planted)])) == [
        "introspection/planted.py"
    ]
