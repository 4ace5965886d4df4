"""The load benchmark's short form (benchmarks/load.py; `make load` runs the full one):
concurrent users against gunicorn (DEBUG off, static files collected) while a rerun runs
on a real worker, on the test's PostgreSQL database. Every request must succeed."""

import os
import subprocess

import pytest

from benchmarks import load

from . import processes
from . import test_faults as faults
from .test_faults import needs_postgres

# The fault tests' fixtures: worker environment, started processes, their logs.
cluster_env, started, log_dir = faults.cluster_env, faults.started, faults.log_dir

pytestmark = [pytest.mark.django_db(transaction=True), needs_postgres]

LOAD_SECONDS = float(os.environ.get("LOAD_SMOKE_SECONDS", "10"))


@pytest.mark.slow
def test_users_mixing_searches_pages_writes_and_transitions_get_no_errors(
    cluster_env, started, log_dir, tmp_path
):
    static = tmp_path / "static"
    env = cluster_env(
        Q_WORKERS=1,
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="127.0.0.1",
        STATIC_ROOT=static,
        GUNICORN_ACCESS_LOG="",
    )
    subprocess.run(
        [processes.PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=processes.BASE_DIR,
        env=env,
        check=True,
        timeout=300,
    )
    ctx = load.prepare(users=20, findings=60)
    started.append(processes.qcluster("worker", env, log_dir))
    web, url = processes.gunicorn(env, log_dir, workers=2, threads=4)
    started.append(web)
    figures, mix, rerunner = load.drive(url, ctx, users=20, duration=LOAD_SECONDS, phase=2)
    assert figures["errors"] == 0, mix["errors"]
    for kind, _ in load.MIX:
        assert mix["times"].get(kind), f"no successful {kind} request"
    assert rerunner.queued >= 1 and rerunner.busy_seconds >= LOAD_SECONDS * 0.8, (
        "a rerun was queued or running throughout the load"
    )
    assert figures["rates"]["healthz"] > 0 and figures["rates"]["list"] > 0
