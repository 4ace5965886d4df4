"""Real processes for the fault, scale-out and load tests and benchmarks.

`qcluster` clusters and gunicorn run as subprocesses of the repository's manage.py, each
in its own process group (so that a test can stop exactly what it started) and with its
own environment (standing in for separate machines). Nothing here is a mock: they talk to
the same PostgreSQL database (and Redis, when given) as the test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
# Variables of the calling shell that must not leak into a child's configuration.
_CLEARED = (
    "DATABASE_URL",
    "REDIS_URL",
    "TASKS_SYNC",
    "MEDIA_ROOT",
    "Q_WORKERS",
    "Q_TIMEOUT",
    "Q_RETRY",
    "Q_MAX_ATTEMPTS",
    "Q_QUEUE_LIMIT",
    "RERUN_CHUNK_SIZE",
    "DJANGO_SETTINGS_MODULE",
)


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for a Django DATABASES entry (PostgreSQL)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


def child_env(database_url: str, media_root, **extra) -> dict:
    """The environment of a child process: this one's minus the app's own settings, plus
    the database, the media folder and `extra` (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(
        DATABASE_URL=database_url,
        MEDIA_ROOT=str(media_root),
        TASKS_SYNC="0",
        PYTHONPATH=str(BASE_DIR),
        PYTHONUNBUFFERED="1",
        # One core per worker process: the clusters stand in for separate machines.
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path):
        self.name, self.argv, self.env, self.log_path = name, argv, env, Path(log_path)
        self.popen: subprocess.Popen | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab", buffering=0)  # noqa: SIM115 (closed in stop)
        self.popen = subprocess.Popen(
            self.argv,
            cwd=BASE_DIR,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._copy_output, daemon=True)
        self._reader.start()
        return self

    def _copy_output(self):
        """The child's output into the log, each line stamped with the time."""
        for line in iter(self.popen.stdout.readline, b""):
            stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d} "
            self._log.write(stamp.encode() + line)
        self.popen.stdout.close()

    @property
    def pgid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def group_pids(self) -> list[int]:
        """Every live process of this group (the cluster's sentinel, workers, ...)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(fields[2]) == self.pgid and fields[0] not in ("Z", "X"):
                pids.append(int(entry.name))
        return pids

    def owns(self, pid: int) -> bool:
        try:
            return os.getpgid(pid) == self.pgid
        except ProcessLookupError:
            return False

    def wait_for_log(self, text: str, timeout: float = 60, start: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log()[start:]:
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name}: no {text!r} after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self, grace: float = 8) -> None:
        """SIGTERM to the group, then SIGKILL to whatever is left after `grace` seconds
        (django-q2's main process may linger after its cluster has stopped)."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        # The children go; the main process may not (it is killed below).
        while time.monotonic() < deadline and set(self.group_pids()) - {self.pgid}:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        self._reader.join(timeout=5)
        self._log.close()


def qcluster(name: str, env: dict, log_dir: Path, *, ready_timeout: float = 120) -> Proc:
    """Start `manage.py qcluster` and wait until its workers are ready."""
    log_path = Path(log_dir) / f"{name}.log"
    log_path.unlink(missing_ok=True)
    env = dict(env, LOG_LEVEL="INFO")  # readiness is read from the cluster's log
    proc = Proc(name, [PYTHON, "manage.py", "qcluster"], env, log_path).start()
    try:
        proc.wait_for_log("running.", timeout=ready_timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


def gunicorn(
    env: dict,
    log_dir: Path,
    *,
    port: int | None = None,
    workers: int = 2,
    threads: int = 4,
    ready_timeout: float = 120,
) -> tuple[Proc, str]:
    """Start gunicorn with the deployment's configuration file (deploy/gunicorn.conf.py);
    return it and its base URL once /healthz answers."""
    port = port or free_port()
    env = dict(
        env,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS=workers,
        GUNICORN_THREADS=threads,
    )
    env = {k: str(v) for k, v in env.items()}
    argv = [
        PYTHON,
        "-m",
        "gunicorn",
        "-c",
        str(BASE_DIR / "deploy" / "gunicorn.conf.py"),
        "config.wsgi",
    ]
    log_path = Path(log_dir) / "gunicorn.log"
    log_path.unlink(missing_ok=True)
    proc = Proc("gunicorn", argv, env, log_path).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(url + "/healthz", ready_timeout, proc)
    except BaseException:
        proc.stop()
        raise
    return proc, url


def wait_for_url(url: str, timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log()[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop_all(procs) -> None:
    for proc in procs:
        proc.stop()
