"""Faults, with real `manage.py qcluster` processes (and gunicorn) on PostgreSQL.

- kill -9 a worker in the middle of a rerun, FAULT_KILLS times (3 here, 20 with
  `make faults`), on the ORM broker and on Redis: every probe ends with exactly one run on
  the version, with the value a clean run gives; none lost, none duplicated;
- a probe that hangs is cut at the task time limit and marked as an error, the other
  probes of its chunk still run (a hang in Python code, and one that ignores the alarm);
- PostgreSQL restarts in the middle of a load: the web app and the workers recover by
  themselves and every write the API acknowledged (201) is in the database afterwards;
- a full disk on upload answers 507 with a clear message and saves nothing.
"""

import errno
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import connection

from catalog.models import Finding
from probes.models import Probe, ProbeRun, Rerun
from registry.models import Dataset, ModelVersion

from . import processes
from .factories import api_for, csv_upload, fitted_model, skops_upload, toy_frame

pytestmark = pytest.mark.django_db(transaction=True)

FAULT_KILLS = int(os.environ.get("FAULT_KILLS", "3"))
REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/13")

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="real qcluster processes share the test database: PostgreSQL only "
    "(the SQLite test database lives in this process's memory)",
)


# --------------------------------------------------------------------------------------
# Workload: a 20,000-row table and 40 probes, 10 of them perturbation probes that call the
# model on 40 x (up to 20,000) rows each, so that a rerun lasts long enough to kill it mid-way.
# --------------------------------------------------------------------------------------


def make_workload(
    people, ml_model, *, rows=20_000, cheap=30, perturbation=10, repeats=40, model=None
):
    frame = toy_frame(n=rows, seed=1)
    dataset = Dataset.create_from_upload(
        csv_upload(frame), name=f"faults-{rows}", target_column="y", by=people["contributor"]
    )
    v1 = ModelVersion.register(
        ml_model=ml_model,
        version="1",
        artifact=skops_upload(model or fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )
    finding = Finding.objects.create(
        title="Errors near the x1 boundary",
        summary="The model errs where x1 is near 0.",
        ml_model=ml_model,
        model_version=v1,
        dataset=dataset,
        slice=[{"feature": "x1", "op": "between", "value": [-0.5, 0.5]}],
        severity="high",
        risk_category="reliability",
        owner=people["contributor"],
        reporter=people["contributor"],
    )
    slices = [
        [],
        [{"feature": "x1", "op": ">", "value": 0.5}],
        [{"feature": "x1", "op": "between", "value": [-0.5, 0.5]}],
        [{"feature": "color", "op": "==", "value": "red"}],
        [
            {"feature": "x2", "op": "<", "value": 0},
            {"feature": "color", "op": "!=", "value": "blue"},
        ],
    ]
    kinds = [
        ("slice_error_rate", {}, "<=", 0.5),
        ("margin_density", {"margin": 0.2}, "<=", 0.9),
        ("slice_metric", {"metric": "accuracy"}, ">=", 0.1),
        ("slice_ece", {"bins": 10}, "<=", 0.9),
        ("slice_error_gap", {}, "<=", 0.9),
        ("group_disparity", {"group_feature": "color", "metric": "error_rate"}, "<=", 0.9),
    ]
    probes = []
    for i in range(cheap):
        kind, params, comparator, threshold = kinds[i % len(kinds)]
        probes.append(
            Probe(
                finding=finding,
                dataset=dataset,
                kind=kind,
                params=dict(params),
                slice=slices[i % len(slices)],
                comparator=comparator,
                threshold=threshold,
            )
        )
    for i in range(perturbation):
        probes.append(
            Probe(
                finding=finding,
                dataset=dataset,
                kind="perturbation_flip_rate",
                params={"scale": 0.05, "repeats": repeats, "seed": i},
                slice=slices[i % len(slices)],
                threshold=0.9,
            )
        )
    for probe in probes:
        probe.full_clean()
        probe.save()
    return dataset, finding, probes, v1


def reference_values(ml_model, people, version_name="reference"):
    """Every probe's status and value from a clean inline rerun."""
    from django.test import override_settings

    with override_settings(TASKS_SYNC=True):
        version = ModelVersion.register(
            ml_model=ml_model,
            version=version_name,
            artifact=skops_upload(fitted_model()),
            by=people["maintainer"],
        )
    runs = ProbeRun.objects.filter(model_version=version)
    return {r.probe_id: (r.status, r.value) for r in runs}


def wait_for(condition, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def assert_complete(version, probes, reference):
    """Exactly one finished run per probe on the version, with the clean run's outcome."""
    runs = list(ProbeRun.objects.filter(model_version=version))
    assert sorted(r.probe_id for r in runs) == sorted(p.pk for p in probes), "lost or doubled"
    for run in runs:
        status, value = reference[run.probe_id]
        assert run.status == status, (run.probe_id, run.status, run.error)
        if value is None:
            assert run.value is None, (run.probe_id, run.value)
        else:
            assert run.value == pytest.approx(value, rel=1e-9, abs=1e-12)
        assert run.claimed_by == "" and run.finished_at is not None
    return runs


# --------------------------------------------------------------------------------------
# Clusters
# --------------------------------------------------------------------------------------


@pytest.fixture
def cluster_env(settings, monkeypatch):
    """The environment of a worker cluster on the test database; the test process queues
    its tasks for real workers."""
    from django_q.conf import Conf
    from django_q.models import Schedule

    settings.TASKS_SYNC = False
    settings.RERUN_CHUNK_SIZE = 20
    # Tasks are signed with SECRET_KEY: the test and its processes share one.
    settings.SECRET_KEY = "fault-tests-" + "k" * 50
    monkeypatch.setattr(Conf, "SECRET_KEY", settings.SECRET_KEY)
    # Only the reruns a test queues: no nightly rerun firing when a cluster starts.
    Schedule.objects.filter(name="nightly-rerun").delete()

    def env(**extra):
        url = processes.database_url(connection.settings_dict)
        values = {
            "Q_WORKERS": 2,
            "RERUN_CHUNK_SIZE": 20,
            "SECRET_KEY": settings.SECRET_KEY,
            **extra,
        }
        return processes.child_env(url, settings.MEDIA_ROOT, **values)

    return env


@pytest.fixture
def log_dir(tmp_path):
    """Where the test's processes write their logs (pytest keeps the last runs' temporary
    folders; a failing test prints where)."""
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def started():
    """Processes started by a test, stopped (and their group killed) at its end."""
    procs = []
    yield procs
    processes.stop_all(procs)
    for proc in procs:
        log = proc.log()
        if "Traceback" in log:
            print(f"--- {proc.log_path} (tail) ---\n{log[-4000:]}")


def redis_queue(monkeypatch):
    """A Redis queue of this test's own (a unique Q_NAME: test runs on one machine share
    the Redis server); the test process enqueues there. Yields the workers' variables."""
    import uuid

    from django_q.conf import Conf

    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_TEST_URL}")
    name = f"faults-{uuid.uuid4().hex[:12]}"
    for attribute, value in [
        ("ORM", None),
        ("REDIS", REDIS_TEST_URL),
        ("PREFIX", name),
        ("CLUSTER_NAME", name),
    ]:
        monkeypatch.setattr(Conf, attribute, value)
    yield {"REDIS_URL": REDIS_TEST_URL, "Q_NAME": name}
    keys = list(client.scan_iter(f"django_q:{name}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=["orm", "redis"])
def broker(request, monkeypatch):
    """The broker this test's processes and the test itself use."""
    if request.param == "orm":
        yield {}
        return
    yield from redis_queue(monkeypatch)


def claim_pid(token):
    return int(token.rsplit(":", 2)[1])


@needs_postgres
@pytest.mark.slow
def test_killing_workers_mid_rerun_loses_and_doubles_nothing(
    people, ml_model, cluster_env, started, broker, log_dir
):
    """kill -9 the worker evaluating a probe, FAULT_KILLS times, one new version each time.

    The worker's successor (or the task's next delivery on the ORM broker, after the short
    Q_RETRY used here) releases the dead claim; the probe in progress and the ones its chunk
    had not reached are evaluated again, once.
    """
    t0 = time.monotonic()
    dataset, finding, probes, v1 = make_workload(people, ml_model)
    reference = reference_values(ml_model, people)
    print(f"workload and reference: {time.monotonic() - t0:.1f}s")
    env = cluster_env(Q_TIMEOUT=20, Q_RETRY=25, **broker)
    cluster = processes.qcluster("workers", env, log_dir)
    print(f"cluster ready: {time.monotonic() - t0:.1f}s")
    started.append(cluster)
    killed = []
    for i in range(FAULT_KILLS):
        t0 = time.monotonic()
        version = ModelVersion.register(
            ml_model=ml_model,
            version=f"k{i}",
            artifact=skops_upload(fitted_model()),
            by=people["maintainer"],
        )
        rerun = Rerun.objects.get(model_version=version)

        def in_progress(rerun=rerun):
            runs = ProbeRun.objects.filter(rerun=rerun)
            if not runs.filter(status__in=["passed", "failed"]).exists():
                return None
            busy = runs.filter(status="running", started_at__isnull=False).exclude(claimed_by="")
            return busy.values_list("claimed_by", flat=True).first()

        token = wait_for(in_progress, 60, f"a probe in progress on version k{i}", 0.02)
        pid = claim_pid(token)
        assert cluster.owns(pid), "the claim names a process of the test's cluster"
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        wait_for(
            lambda rerun=rerun: Rerun.objects.get(pk=rerun.pk).finished_at,
            90,
            f"the rerun of version k{i} to finish after the kill",
        )
        runs = assert_complete(version, probes, reference)
        # The probe the worker was evaluating ran a second time; nothing ran a third time.
        assert max(r.attempts for r in runs) == 2, [r.attempts for r in runs]
        print(
            f"kill {i + 1}: worker {pid} killed; rerun complete {time.monotonic() - t0:.1f}s "
            "after the version was registered"
        )
    assert cluster.alive()
    assert cluster.log().count("reincarnated worker") >= FAULT_KILLS
    print(f"{FAULT_KILLS} workers killed mid-rerun ({broker or 'orm'}), all reruns complete")


@needs_postgres
@pytest.mark.slow
@pytest.mark.parametrize("block_alarm", [False, True], ids=["python-hang", "native-hang"])
def test_a_hanging_probe_is_cut_at_the_time_limit(
    people, ml_model, cluster_env, started, log_dir, block_alarm, settings
):
    """A counterfactual probe whose model call never returns: the chunk's time limit cuts
    it, the run is an error that says so, and the chunk's other probes still run."""
    from .hanging_model import hanging_model

    # Registration checks the artifact's types: the test's own model type is trusted here
    # as it is in the workers' environment below.
    settings.SKOPS_EXTRA_TRUSTED_TYPES = ["tests.hanging_model.HangingPipeline"]
    model = hanging_model(toy_frame(), block_alarm=block_alarm)
    dataset, finding, probes, v1 = make_workload(
        people, ml_model, rows=2000, cheap=12, perturbation=2, repeats=2, model=model
    )
    hang = Probe(
        finding=finding,
        dataset=dataset,
        kind="counterfactual_flip_rate",
        params={"changes": {"x2": {"set": 1e9}}},
        threshold=0.5,
    )
    hang.full_clean()
    hang.save()
    # Long enough that a busy machine starts the model within it; the probe hangs forever.
    limit = 10
    env = cluster_env(
        Q_TIMEOUT=limit,
        Q_RETRY=limit + 2,
        SKOPS_EXTRA_TRUSTED_TYPES="tests.hanging_model.HangingPipeline",
    )
    started.append(processes.qcluster("workers", env, log_dir))
    t0 = time.monotonic()
    version = ModelVersion.register(
        ml_model=ml_model, version="2", artifact=skops_upload(model), by=people["maintainer"]
    )
    rerun = Rerun.objects.get(model_version=version)
    wait_for(lambda: Rerun.objects.get(pk=rerun.pk).finished_at, 60, "the rerun to finish")
    elapsed = time.monotonic() - t0
    runs = {r.probe_id: r for r in ProbeRun.objects.filter(model_version=version)}
    assert len(runs) == len(probes) + 1
    cut = runs[hang.pk]
    assert cut.status == "error" and "timed out" in cut.error, cut.error
    assert f"{limit} s" in cut.error
    others = [r for pk, r in runs.items() if pk != hang.pk]
    assert all(r.status in ("passed", "failed") for r in others), [
        (r.status, r.error) for r in others if r.status not in ("passed", "failed")
    ]
    # Cut once, not retried until Q_MAX_ATTEMPTS: well under three time limits.
    assert elapsed < 3 * limit + 10, elapsed


# --------------------------------------------------------------------------------------
# PostgreSQL restart
# --------------------------------------------------------------------------------------


# Restarting the server breaks every other session on it: only in CI (a machine of its
# own) or when asked for (make faults sets it).
RESTART_POSTGRES = bool(os.environ.get("CI") or os.environ.get("FAULTS_RESTART_POSTGRES"))


def _pg_cluster():
    """(version, name) of this machine's PostgreSQL cluster serving the test database."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        return None
    if os.geteuid() != 0:
        return None
    host = connection.settings_dict.get("HOST") or "localhost"
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
        return None
    port = str(connection.settings_dict.get("PORT") or "5432")
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == port and parts[3] == "online":
            return parts[0], parts[1]
    return None


def restart_postgres(cluster):
    version, name = cluster
    subprocess.run(
        ["pg_ctlcluster", version, name, "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=120,
    )


class Writer(threading.Thread):
    """Creates findings through the API as fast as it can; remembers every id answered
    with 201, and counts the failures (which the client would retry)."""

    def __init__(self, base_url, token, payload, stop):
        super().__init__(daemon=True)
        self.base_url, self.token, self.payload, self.stop = base_url, token, payload, stop
        self.created, self.failures, self.statuses = [], 0, {}

    def run(self):
        import json
        import urllib.error
        import urllib.request

        n = 0
        while not self.stop.is_set():
            n += 1
            body = json.dumps(dict(self.payload, title=f"{self.name} finding {n}")).encode()
            request = urllib.request.Request(
                self.base_url + "/api/v1/findings/",
                data=body,
                method="POST",
                headers={
                    "Authorization": f"Token {self.token}",
                    "Content-Type": "application/json",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    status = response.status
                    data = json.loads(response.read())
            except urllib.error.HTTPError as exc:
                status, data = exc.code, None
            except (urllib.error.URLError, OSError):
                status, data = "connection", None
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 201:
                self.created.append(data["id"])
            else:
                self.failures += 1
                time.sleep(0.05)


@needs_postgres
@pytest.mark.slow
# The restart breaks every connection to the server: no other test may run meanwhile.
@pytest.mark.exclusive
@pytest.mark.skipif(
    not RESTART_POSTGRES,
    reason="restarts this machine's PostgreSQL server, which other sessions share: "
    "runs in CI (CI=true) or with FAULTS_RESTART_POSTGRES=1 (make faults)",
)
def test_postgres_restart_during_load_loses_no_acknowledged_write(
    people, ml_model, cluster_env, started, log_dir
):
    """Writers create findings through gunicorn while a rerun runs on a worker; PostgreSQL
    restarts. Afterwards: every 201 is a row, the web app answers again, the rerun that
    was running completes, and a new rerun after the restart completes too."""
    from rest_framework.authtoken.models import Token

    pg = _pg_cluster()
    if pg is None:
        pytest.skip("needs root and this machine's PostgreSQL cluster (pg_ctlcluster)")
    dataset, finding, probes, v1 = make_workload(people, ml_model, perturbation=20, repeats=20)
    reference = reference_values(ml_model, people)
    env = cluster_env(
        Q_TIMEOUT=60, Q_RETRY=70, DEBUG="0", SECURE_SSL_REDIRECT="0", ALLOWED_HOSTS="127.0.0.1"
    )
    started.append(processes.qcluster("workers", env, log_dir))
    web, url = processes.gunicorn(env, log_dir, workers=2, threads=4)
    started.append(web)
    token = Token.objects.create(user=people["contributor"]).key
    payload = {
        "summary": "Written while the database restarts.",
        "ml_model": ml_model.pk,
        "dataset": dataset.pk,
        "severity": "low",
        "risk_category": "other",
    }
    stop = threading.Event()
    writers = [Writer(url, token, payload, stop) for _ in range(4)]
    for w in writers:
        w.start()
    version = ModelVersion.register(
        ml_model=ml_model,
        version="during",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
    )
    rerun = Rerun.objects.get(model_version=version)
    wait_for(
        lambda: (
            ProbeRun.objects.filter(rerun=rerun, status="passed").exists()
            or ProbeRun.objects.filter(rerun=rerun, status="failed").exists()
        ),
        60,
        "the rerun to be under way",
    )
    before = sum(len(w.created) for w in writers)
    restart_postgres(pg)
    connection.close()  # this process's connection died with the server
    time.sleep(3)
    after_restart = sum(len(w.created) for w in writers)
    wait_for(
        lambda: sum(len(w.created) for w in writers) > after_restart + 20,
        60,
        "the API to acknowledge writes again after the restart",
    )
    stop.set()
    for w in writers:
        w.join(timeout=15)
    created = [pk for w in writers for pk in w.created]
    assert before > 0 and len(created) > before
    stored = set(Finding.objects.filter(pk__in=created).values_list("pk", flat=True))
    assert stored == set(created), f"{len(set(created) - stored)} acknowledged writes lost"
    # The rerun that was running when the server restarted completes, with right values.
    wait_for(
        lambda: Rerun.objects.get(pk=rerun.pk).finished_at,
        120,
        "the rerun under way during the restart to finish",
    )
    assert_complete(version, probes, reference)
    # The workers take new work without a restart of their own.
    fresh = ModelVersion.register(
        ml_model=ml_model,
        version="after",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
    )
    wait_for(
        lambda: Rerun.objects.get(model_version=fresh).finished_at,
        60,
        "a rerun queued after the restart to finish",
    )
    assert_complete(fresh, probes, reference)
    failures = {k: v for w in writers for k, v in w.statuses.items() if k != 201}
    print(f"writes acknowledged: {len(created)}, refused during the restart: {failures}")


# --------------------------------------------------------------------------------------
# Full disk
# --------------------------------------------------------------------------------------


class FullDiskStorage(FileSystemStorage):
    """A file system whose disk fills up after `room` bytes of the file being written."""

    room = 64 * 1024

    def _save(self, name, content):
        full_path = self.path(name)
        os.makedirs(os.path.dirname(full_path), exist_ok=True)
        written = 0
        with open(full_path, "wb") as handle:
            for chunk in content.chunks():
                if written + len(chunk) > self.room:
                    handle.write(chunk[: self.room - written])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), full_path)
                handle.write(chunk)
                written += len(chunk)
        return name


def _files_under(root):
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_full_disk_on_dataset_upload_answers_507_and_saves_nothing(people, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.test_faults.FullDiskStorage"},
    }
    big = csv_upload(toy_frame(n=5000), name="big.csv")
    response = api_for(people["contributor"]).post(
        "/api/v1/datasets/",
        {"name": "big", "version": "1", "target_column": "y", "file": big},
        format="multipart",
    )
    assert response.status_code == 507, response.content
    assert "not enough disk space" in response.json()["detail"].lower()
    assert not Dataset.objects.filter(name="big").exists()
    assert _files_under(settings.MEDIA_ROOT) == []


def test_a_full_disk_on_artifact_upload_answers_507_and_saves_nothing(people, settings, ml_model):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.test_faults.FullDiskStorage"},
    }
    FullDiskStorage.room = 1024
    try:
        response = api_for(people["maintainer"]).post(
            "/api/v1/model-versions/",
            {"ml_model": ml_model.pk, "version": "9", "artifact": skops_upload(fitted_model())},
            format="multipart",
        )
    finally:
        FullDiskStorage.room = 64 * 1024
    assert response.status_code == 507, response.content
    assert "not enough disk space" in response.json()["detail"].lower()
    assert not ModelVersion.objects.filter(version="9").exists()
    assert not Rerun.objects.exists()
    assert _files_under(settings.MEDIA_ROOT) == []


def test_a_full_disk_on_the_upload_form_is_a_form_error(people, settings):
    from .factories import client_for

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.test_faults.FullDiskStorage"},
    }
    big = csv_upload(toy_frame(n=5000), name="big.csv")
    response = client_for(people["contributor"]).post(
        "/datasets/new/", {"name": "big", "version": "1", "target_column": "y", "file": big}
    )
    assert response.status_code == 200
    assert "not enough disk space" in response.content.decode().lower()
    assert not Dataset.objects.exists()
    assert _files_under(settings.MEDIA_ROOT) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 1 MiB file system (tmpfs), when this process may mount one (root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_file_system_answers_507_and_keeps_nothing(people, settings, tiny_tmpfs):
    """MEDIA_ROOT on a 1 MiB tmpfs, a 2 MB dataset: the disk really fills up."""
    settings.MEDIA_ROOT = tiny_tmpfs
    frame = toy_frame(n=40_000)
    upload = csv_upload(frame, name="large.csv")
    assert upload.size > 1024 * 1024
    response = api_for(people["contributor"]).post(
        "/api/v1/datasets/",
        {"name": "large", "version": "1", "target_column": "y", "file": upload},
        format="multipart",
    )
    assert response.status_code == 507, response.content
    assert "not enough disk space" in response.json()["detail"].lower()
    assert not Dataset.objects.exists()
    assert _files_under(tiny_tmpfs) == []
    # Once there is room again, the same upload goes through.
    small = csv_upload(toy_frame(n=500), name="small.csv")
    ok = api_for(people["contributor"]).post(
        "/api/v1/datasets/",
        {"name": "small", "version": "1", "target_column": "y", "file": small},
        format="multipart",
    )
    assert ok.status_code == 201, ok.content


# --------------------------------------------------------------------------------------
# Claims, in this process (SQLite and PostgreSQL): the rules the workers follow
# --------------------------------------------------------------------------------------


def dead_token():
    """A claim of a process of this host that is gone (same pid, another start time)."""
    from probes.claims import _host_identity

    return f"{_host_identity()}:{os.getpid()}:1"


def queue_rerun(version, probes, **kwargs):
    from django.db import transaction

    with transaction.atomic():
        return Rerun.queue(version, trigger="manual", probes=probes, dispatch=False, **kwargs)


def small_workload(people, ml_model, n=6):
    return make_workload(people, ml_model, rows=600, cheap=n - 2, perturbation=2, repeats=2)


def test_chunks_deal_each_datasets_runs_round_robin():
    from probes.tasks import plan_chunks

    pairs = [(i, "a") for i in range(1, 8)] + [(i, "b") for i in range(8, 10)]
    assert plan_chunks(pairs, size=3) == [[1, 4, 7], [2, 5], [3, 6], [8, 9]]
    assert plan_chunks([], size=3) == []


def test_a_duplicated_chunk_delivery_evaluates_nothing_twice(people, ml_model, settings):
    from probes.tasks import run_chunk

    dataset, finding, probes, v1 = small_workload(people, ml_model)
    rerun = queue_rerun(v1, probes)
    ids = list(rerun.runs.values_list("pk", flat=True))
    run_chunk(rerun.pk, ids)
    first = list(rerun.runs.order_by("pk").values_list("pk", "value", "finished_at"))
    run_chunk(rerun.pk, ids)  # the broker delivers it again
    assert list(rerun.runs.order_by("pk").values_list("pk", "value", "finished_at")) == first
    assert set(rerun.runs.values_list("attempts", flat=True)) == {1}
    assert Rerun.objects.get(pk=rerun.pk).finished_at is not None


def test_a_dead_workers_claim_is_released_and_its_runs_evaluated_once(people, ml_model):
    """The worker died while evaluating one probe: that probe and the ones it had not
    reached go back to the queue; the one it had stored stays as it was."""
    from django.utils import timezone

    from probes.claims import recover_dead_claims
    from probes.tasks import run_chunk

    dataset, finding, probes, v1 = small_workload(people, ml_model)
    rerun = queue_rerun(v1, probes)
    runs = list(rerun.runs.order_by("pk"))
    run_chunk(rerun.pk, [runs[0].pk])
    done = ProbeRun.objects.get(pk=runs[0].pk)
    now = timezone.now()
    token = dead_token()
    ProbeRun.objects.filter(pk__in=[r.pk for r in runs[1:]]).update(
        status="running", claimed_by=token, claimed_at=now, attempts=1
    )
    ProbeRun.objects.filter(pk=runs[1].pk).update(started_at=now)
    requeued = recover_dead_claims(local_only=True)  # what the next worker does first
    assert requeued == len(runs) - 1
    after = {r.pk: r for r in rerun.runs.all()}
    # The inline (TASKS_SYNC) queue evaluated them at once; every run finished once.
    assert all(r.status in ("passed", "failed", "inconclusive") for r in after.values())
    assert after[runs[0].pk].finished_at == done.finished_at
    assert after[runs[1].pk].attempts == 2  # the probe in progress: tried again
    assert {after[r.pk].attempts for r in runs[2:]} == {1}  # not blamed
    assert rerun.runs.count() == len(probes)


def test_a_probe_whose_worker_keeps_dying_becomes_an_error(people, ml_model, settings):
    from django.utils import timezone

    from probes.claims import recover_dead_claims

    dataset, finding, probes, v1 = small_workload(people, ml_model)
    rerun = queue_rerun(v1, probes[:1])
    now = timezone.now()
    rerun.runs.update(
        status="running",
        claimed_by=dead_token(),
        claimed_at=now,
        started_at=now,
        attempts=settings.Q_CLUSTER["max_attempts"],
    )
    recover_dead_claims(local_only=True)
    run = rerun.runs.get()
    assert run.status == "error"
    assert "stopped while evaluating this probe, 3 times" in run.error
    assert Rerun.objects.get(pk=rerun.pk).finished_at is not None


def test_a_claim_past_the_time_limit_marks_its_probe_timed_out(people, ml_model, settings):
    from datetime import timedelta

    from django.utils import timezone

    from probes.claims import recover_dead_claims

    dataset, finding, probes, v1 = small_workload(people, ml_model)
    rerun = queue_rerun(v1, probes[:3])
    runs = list(rerun.runs.order_by("pk"))
    limit = settings.Q_CLUSTER["timeout"]
    began = timezone.now() - timedelta(seconds=limit + 5)
    ProbeRun.objects.filter(rerun=rerun).update(
        status="running", claimed_by=dead_token(), claimed_at=began, attempts=1
    )
    ProbeRun.objects.filter(pk=runs[0].pk).update(started_at=began)
    recover_dead_claims(local_only=True)
    cut = ProbeRun.objects.get(pk=runs[0].pk)
    assert cut.status == "error" and cut.error.startswith("timed out")
    assert f"{limit} s (Q_TIMEOUT)" in cut.error
    # The others ran once the claim was released.
    assert all(ProbeRun.objects.get(pk=r.pk).status in ("passed", "failed") for r in runs[1:])


def test_claims_of_other_hosts_wait_for_their_lease(people, ml_model, settings):
    from datetime import timedelta

    from django.utils import timezone

    from probes.claims import LEASE_MARGIN_S, claim_is_dead, recover_dead_claims

    dataset, finding, probes, v1 = small_workload(people, ml_model)
    rerun = queue_rerun(v1, probes[:2])
    lease = settings.Q_CLUSTER["timeout"] + LEASE_MARGIN_S
    other = "another-machine/abcd1234/4026531836:4242:12345"
    fresh = timezone.now() - timedelta(seconds=lease - 30)
    assert not claim_is_dead(other, fresh)
    rerun.runs.update(status="running", claimed_by=other, claimed_at=fresh)
    assert recover_dead_claims() == 0
    assert set(rerun.runs.values_list("status", flat=True)) == {"running"}
    rerun.runs.update(claimed_at=timezone.now() - timedelta(seconds=lease + 1))
    assert recover_dead_claims(local_only=True) == 0  # the local pass leaves other hosts
    assert recover_dead_claims() == 2
    assert set(rerun.runs.values_list("status", flat=True)) <= {"passed", "failed"}


def test_the_sweeper_requeues_lost_runs_and_finishes_complete_reruns(people, ml_model, settings):
    from datetime import timedelta

    from django.utils import timezone

    from probes.tasks import run_chunk, sweep_runs

    dataset, finding, probes, v1 = small_workload(people, ml_model)
    lost = queue_rerun(v1, probes[:2])  # its task never reached a worker
    old = timezone.now() - timedelta(seconds=settings.Q_CLUSTER["retry"] + 1)
    lost.runs.update(created_at=old)
    complete = queue_rerun(v1, probes[2:4])
    run_chunk(complete.pk, list(complete.runs.values_list("pk", flat=True)))
    Rerun.objects.filter(pk=complete.pk).update(finished_at=None)  # crashed before this
    report = sweep_runs()
    assert report["requeued_lost"] == 2
    assert report["finished_reruns"] >= 1
    assert Rerun.objects.filter(finished_at=None).count() == 0
    assert set(lost.runs.values_list("status", flat=True)) <= {"passed", "failed"}


def test_chunks_of_one_rerun_predict_once_per_dataset_in_a_process(
    people, ml_model, settings, monkeypatch
):
    from boundary import artifacts

    dataset, finding, probes, v1 = small_workload(people, ml_model, n=8)
    settings.RERUN_CHUNK_SIZE = 2
    calls = []
    real_load = artifacts.load_model

    class Counting:
        def __init__(self, model):
            self.model, self.classes_ = model, model.classes_

        def __getattr__(self, name):
            return getattr(self.model, name)

        def predict_proba(self, X):
            calls.append(len(X))
            return self.model.predict_proba(X)

    monkeypatch.setattr(artifacts, "load_model", lambda *a, **k: Counting(real_load(*a, **k)))
    version = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        by=people["maintainer"],
        artifact=skops_upload(fitted_model()),
    )
    runs = ProbeRun.objects.filter(model_version=version)
    assert runs.count() == 8 and not runs.exclude(status__in=["passed", "failed"]).exists()
    full = [n for n in calls if n == dataset.row_count]
    assert len(full) == 1, calls  # 4 chunks, one prediction over the dataset
    assert {r.lineage["rerun"] for r in runs} == {runs[0].rerun_id}


def test_no_worse_than_baseline_compares_with_the_discovery_version(
    people, ml_model, finding, dataset
):
    """The baseline is the probe's value on the finding's discovery version, whatever ran
    on other versions since."""
    from .factories import fitted_model as model_of

    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind="slice_error_rate",
        slice=[{"feature": "x1", "op": ">", "value": 0.5}],
        comparator="no_worse_than_baseline",
        tolerance=0.01,
    )
    probe.full_clean()
    probe.save()
    from probes.tasks import run_rerun

    baseline = queue_rerun(finding.model_version, [probe])
    run_rerun(baseline.pk)
    base_value = baseline.runs.get().value
    worse = ModelVersion.register(
        ml_model=ml_model,
        version="worse",
        by=people["maintainer"],
        artifact=skops_upload(model_of(flip_above=0.5)),
    )
    bad = ProbeRun.objects.get(model_version=worse, probe=probe)
    assert bad.status == "failed" and bad.lineage["baseline_value"] == base_value
    same = ModelVersion.register(
        ml_model=ml_model,
        version="same",
        by=people["maintainer"],
        artifact=skops_upload(model_of()),
    )
    good = ProbeRun.objects.get(model_version=same, probe=probe)
    assert good.status == "passed" and good.lineage["baseline_value"] == base_value
