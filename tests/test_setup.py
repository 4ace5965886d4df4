"""The two README commands' pieces: settings, checks, the demo loader, the serve script."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


def run_python(code, **env):
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_the_default_secret_key():
    result = run_python(
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE',"
        " 'config.settings'); django.setup()",
        DEBUG="0",
        SECRET_KEY="",
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    result = run_python(
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE',"
        " 'config.settings'); django.setup()",
        DEBUG="0",
        SECRET_KEY="x" * 60,
    )
    assert result.returncode == 0, result.stderr


def test_database_url_parsing():
    from config.settings import database_from_url

    pg = database_from_url("postgres://u:p%40ss@db.example:6543/ledger?sslmode=require")
    assert pg["ENGINE"].endswith("postgresql") and pg["PASSWORD"] == "p@ss"
    assert pg["HOST"] == "db.example" and pg["PORT"] == "6543" and pg["NAME"] == "ledger"
    assert pg["OPTIONS"] == {"sslmode": "require"}
    assert database_from_url("sqlite:////tmp/x.sqlite3")["NAME"] == "/tmp/x.sqlite3"
    with pytest.raises(Exception, match="unsupported scheme"):
        database_from_url("mysql://x/y")


def test_redis_url_switches_the_broker():
    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings';"
        "from django.conf import settings; q=settings.Q_CLUSTER;"
        "print(q.get('redis'), q.get('orm'))"
    )
    assert run_python(code, REDIS_URL="redis://127.0.0.1:6379/3").stdout.split() == [
        "redis://127.0.0.1:6379/3",
        "None",
    ]
    assert run_python(code, REDIS_URL="").stdout.split() == ["None", "default"]


def test_system_check_refuses_retry_not_above_timeout(settings):
    from probes.checks import task_timeout_below_retry

    assert task_timeout_below_retry(None) == []
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 600, "retry": 600}
    errors = task_timeout_below_retry(None)
    assert [e.id for e in errors] == ["probes.E001"]


@pytest.mark.django_db(transaction=True)
def test_demo_loader_is_idempotent_and_believable(capsys):
    from catalog.models import Finding
    from probes.models import ProbeRun
    from registry.models import ModelVersion
    from remediation.models import RemediationAction

    call_command("load_demo")
    out = capsys.readouterr().out
    for name in ("viewer", "contributor", "reviewer", "maintainer"):
        assert f"{name}-demo-pass" in out
    counts = (
        Finding.objects.count(),
        ModelVersion.objects.count(),
        ProbeRun.objects.count(),
        RemediationAction.objects.count(),
    )
    assert counts[0] >= 5 and counts[1] >= 6
    for ml_model in {v.ml_model for v in ModelVersion.objects.all()}:
        assert ml_model.versions.count() >= 2
        assert set(ml_model.versions.values_list("artifact_format", flat=True)) == {"skops"}
    statuses = set(RemediationAction.objects.values_list("status", flat=True))
    assert {"proposed", "verified"} <= statuses
    assert set(Finding.objects.values_list("status", flat=True)) >= {
        "open",
        "resolved",
        "accepted_risk",
    }
    # evidence comes from the engine on real slices, not typed in
    young = Finding.objects.get(title__startswith="Young low-income")
    assert young.evidence["support"] > 30 and 0 < young.evidence["value"] < 1
    first = ProbeRun.objects.get(
        probe__finding=young,
        probe__kind="slice_error_rate",
        model_version__version="1",
        dataset=young.dataset,  # the probe also runs on a later window
    )
    assert abs(first.value - young.evidence["value"]) < 1e-3 and first.status == "failed"
    call_command("load_demo")
    assert counts == (
        Finding.objects.count(),
        ModelVersion.objects.count(),
        ProbeRun.objects.count(),
        RemediationAction.objects.count(),
    )


def test_make_run_migrates_loads_and_serves():
    plan = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    steps = [line for line in plan.splitlines() if "manage.py" in line or "serve" in line]
    assert "migrate" in steps[0] and "load_demo" in steps[1] and "serve.sh" in steps[2]
    plan = subprocess.run(
        ["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "pytest" in plan


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes():
    """(pid, parent pid, session id, command line) of every process on the machine."""
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid=,sid=,args="], capture_output=True, text=True
    ).stdout
    rows = []
    for line in out.splitlines():
        pid, ppid, sid, *args = line.split(None, 3)
        rows.append((int(pid), int(ppid), int(sid), args[0] if args else ""))
    return rows


def _sessions(leader):
    """The session `leader` leads and the sessions its children lead (the serve script
    starts the web server and the worker each in a session of its own)."""
    return {leader} | {pid for pid, ppid, sid, _ in _processes() if ppid == leader and sid == pid}


def _in_sessions(sessions, pattern=""):
    """The processes of `sessions` whose command line holds `pattern`."""
    rows = _processes()
    return [(pid, args) for pid, _, sid, args in rows if sid in sessions and pattern in args]


def _state(sessions):
    """What each process of `sessions` is doing: for a failure message."""
    lines = []
    for pid, args in _in_sessions(sessions):
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            wchan = Path(f"/proc/{pid}/wchan").read_text()
        except OSError:
            continue
        signals = " ".join(line.replace("\t", "") for line in status if line.startswith("Sig"))
        lines.append(f"{pid} [{wchan}] {args[:80]} {signals}")
    return "\n".join(lines)


def wait_for(condition, timeout):
    """True as soon as `condition()` holds, False if it still does not after `timeout`
    seconds (a condition polled, never a fixed wait)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


# Run argv[1:] with SIGINT, SIGQUIT and SIGHUP at their defaults, whatever this process has.
AS_FROM_A_TERMINAL = (
    "import os, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):\n"
    "    signal.signal(s, signal.SIG_DFL)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def test_serve_script_starts_web_and_worker_and_stops_both(tmp_path):
    db = tmp_path / "serve.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "PORT": str(free_port()),
        "PY": sys.executable,
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300
    )
    # Output to a file, not a pipe nobody reads: a full pipe blocks the servers' logging,
    # and with it their shutdown.
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 (closed in finally)
    # Started as a terminal's shell starts it: with Ctrl-C's signals at their defaults. A
    # suite launched in the background (`nohup make test &`) passes SIGINT and SIGQUIT on
    # ignored, and a shell that starts with a signal ignored can never trap it.
    proc = subprocess.Popen(
        [sys.executable, "-c", AS_FROM_A_TERMINAL, "./scripts/serve.sh"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sessions = {proc.pid}
    try:
        url = f"http://127.0.0.1:{env['PORT']}/healthz"
        deadline = time.time() + 120
        while True:
            try:
                assert urllib.request.urlopen(url, timeout=2).status == 200
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)

        # The worker starts beside the web server: wait for it to be there (a busy
        # machine starts it later), then for every process to be gone after Ctrl-C.
        def worker_started():
            sessions.update(_sessions(proc.pid))
            return _in_sessions(sessions, "qcluster")

        assert wait_for(worker_started, 120), "no qcluster worker is running beside the web server"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            log.flush()
            log_text = (tmp_path / "serve.log").read_text()[-3000:]
            pytest.fail(f"serve.sh still runs 180 s after Ctrl-C:\n{_state(sessions)}\n{log_text}")
        assert wait_for(lambda: not _in_sessions(sessions), 60), (
            f"a process outlived Ctrl-C:\n{_state(sessions)}"
        )
    finally:
        for pid, _ in _in_sessions(sessions):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()


def test_every_model_of_the_app_has_an_admin_page():
    from django.apps import apps
    from django.contrib import admin

    # The search vocabulary is an index the app rebuilds itself, and the catalog's version
    # a number the database's triggers move: not data anyone edits.
    derived = {"catalog.SearchWord", "catalog.CatalogVersion"}
    missing = [
        model._meta.label
        for app in (
            "core",
            "registry",
            "catalog",
            "probes",
            "remediation",
            "introspection",
            "ledger",
        )
        for model in apps.get_app_config(app).get_models()
        if model not in admin.site._registry and model._meta.label not in derived
    ]
    assert missing == []
