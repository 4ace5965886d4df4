"""Shared fixtures: named people per role, a small real dataset and real skops models.

Background tasks run inline (TASKS_SYNC) unless a test starts a real worker itself.

The suite runs in several processes (pytest-xdist, `make test`; `-n 0` runs it in one).
Each process has its own test database (pytest-django names it after the process: gw0,
gw1, ...), its own temporary folders and MEDIA_ROOT (tmp_path), ports found free (the
live server binds port 0) and, on Redis, queue names of its own. Arranged here:
- tests that start real worker clusters or gunicorn (they use the `cluster_env` fixture)
  form one xdist group: with `--dist loadgroup` one process runs them one after another,
  so that two of them never compete for the cores (their waits are bounded);
- tests marked `exclusive` (they restart the PostgreSQL server, which breaks every other
  connection to it) are left out of a run in several processes and run on their own:
  `--exclusive=only` selects just them, `--exclusive=none` leaves them out; `make test`
  runs the first, then the rest in parallel;
- node ids the scheduler can tell apart, and the fuzzing's summary added up over the
  processes.
"""

import pytest
from django.contrib.auth.models import User

from core.roles import CONTRIBUTOR, MAINTAINER, REVIEWER, VIEWER, sync_role_groups

from .factories import csv_upload, fitted_model, make_user, skops_upload, toy_frame
from .fuzz_report import write_fuzz_summary

# Tests that request one of these fixtures start real processes (clusters, gunicorn).
REAL_PROCESS_FIXTURES = {"cluster_env"}
REAL_PROCESS_GROUP = "real-processes"
# What the main process of an xdist run gathers from its processes.
_LEFT_OUT = pytest.StashKey[list]()  # node ids of the exclusive tests left out
_FUZZ = pytest.StashKey[dict]()  # the fuzzing's examples setting and case counts


def pytest_addoption(parser):
    parser.addoption(
        "--exclusive",
        choices=("auto", "only", "none"),
        default="auto",
        help="tests marked exclusive (they need the database server to themselves): "
        "'only' runs just them, 'none' leaves them out, 'auto' (default) leaves them out "
        "of a run in several processes (pytest-xdist) and runs them otherwise",
    )


def pytest_ignore_collect(collection_path, config):
    """With --exclusive=only, a test module that never mentions the mark is not imported
    at all: the run of the exclusive tests starts in seconds, not after the whole suite."""
    if config.getoption("exclusive") != "only" or collection_path.suffix != ".py":
        return None
    if collection_path.name == "conftest.py":
        return None
    try:
        text = collection_path.read_text(encoding="utf-8")
    except OSError:
        return None
    return True if "exclusive" not in text else None


def _in_xdist_worker(config):
    return hasattr(config, "workerinput")


def _set_nodeid(item, nodeid):
    """Give `item` another node id. pytest 9.2 computes it once, from the parent, the
    function's name and the parametrization's id (Node._id), and no longer reads _nodeid."""
    from _pytest.nodeid import coerce_node_id

    item._id = coerce_node_id(nodeid)
    item._nodeid = nodeid


def _distinct_nodeids(config, items):
    """Node ids the xdist scheduler can tell apart.

    - schemathesis names each API operation's test `test_...[GET /api/v1/...]`, but under
      pytest 9.2 every one of them gets the function's node id (no parametrization id); a
      scheduler that keys its work by node id (--dist loadgroup) would run one of them.
    - `--dist loadgroup` reads a test's group from a `@group` suffix of its node id, which
      xdist 3.8 sets through _nodeid, ignored by pytest 9.2: the suffix is set here.
    """
    for item in items:
        if "[" in item.name and not item.nodeid.endswith("]"):
            _set_nodeid(item, f"{item.parent.nodeid}::{item.name}")
    if not getattr(config.option, "loadgroup", False):  # set in xdist processes
        return
    for item in items:
        groups = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        suffix = "@" + "_".join(sorted(groups))
        if groups and not item.nodeid.endswith(suffix):
            _set_nodeid(item, item.nodeid + suffix)
    seen, twice = set(), set()
    for item in items:
        (twice if item.nodeid in seen else seen).add(item.nodeid)
    if twice:
        raise pytest.UsageError(
            "--dist loadgroup would run only one of the tests that share a node id: "
            + ", ".join(sorted(twice))
        )


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(REAL_PROCESS_GROUP))
    _distinct_nodeids(config, items)


# After -k and -m: an exclusive test they deselected is not one left for another run.
@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_exclusive(config, items):
    choice = config.getoption("exclusive")
    if choice == "auto":
        choice = "none" if _in_xdist_worker(config) else "run"
    if choice == "run":
        return
    keep, left_out = [], []
    for item in items:
        exclusive = item.get_closest_marker("exclusive") is not None
        (keep if exclusive == (choice == "only") else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = keep
    if choice == "none":
        config.stash[_LEFT_OUT] = [item.nodeid for item in left_out]
        if _in_xdist_worker(config):
            config.workeroutput["exclusive_left_out"] = config.stash[_LEFT_OUT]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """An xdist process is done: keep what it reports (the fuzzing's case counts, the
    exclusive tests it left out), for this main process to sum up."""
    output = getattr(node, "workeroutput", None) or {}
    config = node.config
    if "exclusive_left_out" in output:
        config.stash[_LEFT_OUT] = output["exclusive_left_out"]
    if "fuzz_calls" in output:
        fuzz = config.stash.setdefault(_FUZZ, {"examples": output["fuzz_examples"], "calls": {}})
        for operation, status, n in output["fuzz_calls"]:
            key = (operation, status)
            fuzz["calls"][key] = fuzz["calls"].get(key, 0) + n


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if _in_xdist_worker(config):
        return
    fuzz = config.stash.get(_FUZZ, None)
    if fuzz is not None:
        write_fuzz_summary(fuzz["examples"], fuzz["calls"])
    # A selection that held only tests run elsewhere (the exclusive ones, or all but them)
    # is not a run that found no tests.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and (
        config.getoption("exclusive") == "only" or config.stash.get(_LEFT_OUT, None)
    ):
        session.exitstatus = pytest.ExitCode.OK


def pytest_terminal_summary(terminalreporter, config):
    left_out = config.stash.get(_LEFT_OUT, None)
    if left_out and not _in_xdist_worker(config):
        terminalreporter.write_line(
            f"{len(left_out)} exclusive test(s) left out, to run on their own with "
            "--exclusive=only (make test does): " + ", ".join(left_out)
        )


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.TASKS_SYNC = True
    # Fast hashing: the suite creates many users; production keeps Django's default.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.WEBHOOK_URLS = []
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # The sign-in throttle counts failures in the cache: no test inherits another's.
    # (Only the in-process cache is emptied; clearing Redis would flush its whole db.)
    from django.core.cache import cache

    if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
        cache.clear()


@pytest.fixture
def people(db):
    """alice views, bob contributes, rita reviews, mona maintains, nobody has no role."""
    sync_role_groups()  # a transactional test flushes the groups the migration created
    return {
        "viewer": make_user("alice", VIEWER),
        "contributor": make_user("bob", CONTRIBUTOR),
        "reviewer": make_user("rita", REVIEWER),
        "maintainer": make_user("mona", MAINTAINER),
        "nobody": make_user("nobody"),
        "admin": User.objects.create_superuser("admin", "admin@example.com", "pw-admin"),
    }


@pytest.fixture
def ml_model(db):
    from registry.models import MLModel

    return MLModel.objects.create(name="toy-risk", task="binary")


@pytest.fixture
def dataset(people):
    from registry.models import Dataset

    return Dataset.create_from_upload(
        csv_upload(toy_frame()), name="toy-eval", target_column="y", by=people["contributor"]
    )


@pytest.fixture
def version(people, ml_model):
    from registry.models import ModelVersion

    return ModelVersion.register(
        ml_model=ml_model,
        version="1",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
    )


@pytest.fixture
def finding(people, ml_model, version, dataset):
    from catalog.models import Finding

    return Finding.objects.create(
        title="Positive x1 rows are misjudged",
        summary="The model errs when x1 is high.",
        ml_model=ml_model,
        model_version=version,
        dataset=dataset,
        slice=[{"feature": "x1", "op": ">", "value": 0.5}],
        severity="high",
        risk_category="reliability",
        owner=people["contributor"],
        reporter=people["contributor"],
    )


@pytest.fixture
def probe(finding, dataset, people):
    from probes.models import Probe

    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind="slice_error_rate",
        slice=[{"feature": "x1", "op": ">", "value": 0.5}],
        threshold=0.2,
        created_by=people["contributor"],
    )
    probe.full_clean()
    probe.save()
    return probe
