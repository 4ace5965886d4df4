"""Load: concurrent users against gunicorn while a probe rerun is running.

gunicorn (deploy/gunicorn.conf.py, DEBUG off, static files collected) and one qcluster
worker serve a PostgreSQL database created for the run, on loopback only. Each simulated
user is a thread with its own keep-alive connection, an API token and a signed-in
session; for --duration seconds it loops over a weighted mix:

  search      GET  /catalog/?q=<term>                 the catalog search page
  page        GET  /catalog/findings/<id>/            a finding's page
  list        GET  /api/v1/findings/?page=<n>         the list endpoint
  create      POST /api/v1/findings/                  log a finding (201)
  transition  POST /api/v1/findings/<id>/transition/  open -> remediating -> resolved

Meanwhile a background thread keeps a rerun of the model's probes queued or running (a
new one as soon as the previous finishes). Any status other than the expected one, or a
connection error, is an error. Then, in the same run, short saturation phases with the
same users measure the throughput of a trivial view (/healthz, one SELECT 1), of the list
endpoint (GET /api/v1/findings/?page=<n>) and of the catalog page (GET /catalog/, signed
in), and the CPU time each request costs the web workers and the database. Printed last:
each throughput as a ratio of /healthz's, against its target (list endpoint >= 0.20,
catalog page >= 0.15), and the errors.

The list and catalog pages are kept per web process until the catalog changes
(catalog.freshness; the saturation phases write nothing, so most of their requests are
answered from kept pages, as a catalog that is read far more than it is written is);
--kept-pages 0 measures every request searching and rendering.

Run: .venv/bin/python benchmarks/load.py [--users 20] [--duration 60] [--kept-pages 0]
Needs PostgreSQL (--database-url; that database is dropped and created).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://boundary_dev:dev@127.0.0.1:5432/bench_load"
SEARCH_TERMS = [
    "boundary",
    "income",
    "young applicants",
    "calibration",
    "drift",
    "region",
    "threshold",
    "noise",
    "recall",
    "night shift",
]
MIX = [("search", 25), ("page", 25), ("list", 20), ("create", 15), ("transition", 15)]
EXPECTED = {
    "search": 200,
    "page": 200,
    "list": 200,
    "create": 201,
    "transition": 200,
    "healthz": 200,
    "catalog": 200,
}
# Saturation phases, each against /healthz in the same run: (kind, what it requests,
# throughput target as a share of /healthz's).
PHASES = [
    ("healthz", "GET /healthz", None),
    ("list", "GET /api/v1/findings/?page=<n>", 0.20),
    ("catalog", "GET /catalog/", 0.15),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument(
        "--phase",
        type=float,
        default=10,
        help="seconds of each throughput phase (/healthz, list endpoint, catalog page)",
    )
    parser.add_argument("--findings", type=int, default=300, help="findings to start with")
    parser.add_argument(
        "--kept-pages",
        type=int,
        default=256,
        help="LIST_CACHE_PAGES of the web workers (0: every request searches and renders)",
    )
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--log-dir", default=str(ROOT / "var" / "bench-load"))
    return parser.parse_args(argv)


# --------------------------------------------------------------------------------------
# Data (in the database the server uses; needs Django set up)
# --------------------------------------------------------------------------------------


def prepare(users: int, findings: int) -> dict:
    """Users (contributor + reviewer) with API tokens and sessions, an ML model with a
    version, a dataset and probes to rerun, and `findings` findings to search and view."""
    import numpy as np
    import pandas as pd
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.files.base import ContentFile
    from rest_framework.authtoken.models import Token
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from boundary.artifacts import dump_skops
    from catalog.models import Finding
    from core.roles import CONTRIBUTOR, REVIEWER, sync_role_groups
    from probes.models import Probe
    from registry.models import Dataset, MLModel, ModelVersion

    sync_role_groups()
    groups = list(Group.objects.filter(name__in=[CONTRIBUTOR, REVIEWER]))
    people = []
    for i in range(users):
        user = User.objects.create_user(f"load{i}", f"load{i}@example.com", f"load-password-{i}")
        user.groups.add(*groups)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        people.append(
            {"token": Token.objects.create(user=user).key, "session": session.session_key}
        )

    rng = np.random.default_rng(0)
    n = 20_000
    frame = pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.7, n),
            "age": rng.integers(18, 90, n),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )
    logit = (np.log(frame.income) - 10) * 2 - 0.03 * (frame.age - 50)
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    owner = User.objects.get(username="load0")
    dataset = Dataset.create_from_upload(
        ContentFile(frame.to_csv(index=False).encode(), name="loans.csv"),
        name="loans",
        target_column="y",
        by=owner,
    )
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["income", "age"]),
                        ("cat", OneHotEncoder(), ["region"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(frame.drop(columns="y"), frame.y)
    ml_model = MLModel.objects.create(name="loan-default")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.skops"
        dump_skops(model, path)
        version = ModelVersion.register(
            ml_model=ml_model,
            version="1",
            enqueue=False,
            artifact=ContentFile(path.read_bytes(), "m.skops"),
        )
    words = [
        "boundary",
        "income",
        "young applicants",
        "calibration",
        "drift",
        "region",
        "threshold",
        "noise",
        "recall",
        "night shift",
        "margin",
        "refusals",
    ]
    ids = []
    for i in range(findings):
        a, b = words[i % len(words)], words[(i * 7 + 3) % len(words)]
        finding = Finding.objects.create(
            title=f"{a.capitalize()} problem {i} near the {b} boundary",
            summary=f"The model decides badly where {a} meets {b}.",
            description=f"Seen on version 1. {a} and {b} interact; lesson {i}.",
            lesson=f"Check {b} before shipping.",
            ml_model=ml_model,
            dataset=dataset,
            model_version=version,
            severity=["low", "medium", "high", "critical"][i % 4],
            risk_category=["fairness", "financial", "reliability", "other"][i % 4],
            owner=owner,
            reporter=owner,
        )
        ids.append(finding.pk)
    Finding.objects.all().refresh_search_vectors()
    probe_finding = Finding.objects.get(pk=ids[0])
    for i in range(60):
        kind = ["slice_error_rate", "margin_density", "perturbation_flip_rate"][i % 3]
        params = {"seed": i, "repeats": 20} if kind == "perturbation_flip_rate" else {}
        probe = Probe(
            finding=probe_finding,
            dataset=dataset,
            kind=kind,
            params=params,
            slice=[{"feature": "age", "op": "<", "value": 25 + i % 40}],
            threshold=0.9,
        )
        probe.full_clean()
        probe.save()
    # Whoever reports a finding may not resolve it (separation of duties): a reviewer of
    # its own resolves what the users log.
    resolver = User.objects.create_user("load-resolver", "resolver@example.com", "load-resolver")
    resolver.groups.add(*groups)
    return {
        "resolver_token": Token.objects.create(user=resolver).key,
        "people": people,
        "findings": ids,
        "version_id": version.pk,
        "ml_model": ml_model.pk,
        "dataset": dataset.pk,
    }


class Rerunner(threading.Thread):
    """Keeps a rerun of the version's probes queued or running until stopped."""

    def __init__(self, version_id: int):
        super().__init__(daemon=True)
        self.version_id, self.stop = version_id, threading.Event()
        self.queued, self.finished, self.busy_seconds = 0, 0, 0.0
        self.started_at = None

    def run(self):
        from django.db import connection, transaction

        from probes.models import Rerun
        from registry.models import ModelVersion

        version = ModelVersion.objects.get(pk=self.version_id)
        try:
            while not self.stop.is_set():
                with transaction.atomic():
                    rerun = Rerun.queue(version, trigger="manual", label="load test")
                self.queued += 1
                began = time.monotonic()
                self.started_at = self.started_at or began
                while not self.stop.wait(0.2):
                    if Rerun.objects.filter(pk=rerun.pk, finished_at__isnull=False).exists():
                        self.finished += 1
                        break
                self.busy_seconds += time.monotonic() - began
        finally:
            connection.close()


# --------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------


class User(threading.Thread):
    """One simulated user: its own keep-alive connection, token and session."""

    def __init__(self, index, base_url, person, ctx, until, mix=MIX, path=None):
        super().__init__(daemon=True)
        parsed = urlparse(base_url)
        self.host, self.port = parsed.hostname, parsed.port
        self.person, self.ctx, self.until, self.path = person, ctx, until, path
        self.rng = random.Random(index)
        self.kinds = [k for k, _ in mix]
        self.weights = [w for _, w in mix]
        self.times = defaultdict(list)
        self.errors = defaultdict(list)
        self.mine = []  # (finding id, status) created by this user
        self.conn = None

    def request(self, kind, method, path, body=None, auth="token", token=None):
        headers = {"Accept": "application/json" if auth == "token" else "text/html"}
        if auth == "token":
            headers["Authorization"] = f"Token {token or self.person['token']}"
        elif auth == "session":
            headers["Cookie"] = f"sessionid={self.person['session']}"
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
            status = response.status
            if response.getheader("Connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
        except (OSError, http.client.HTTPException) as exc:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            self.errors[kind].append(f"{method} {path}: {type(exc).__name__}: {exc}")
            return None
        elapsed = time.perf_counter() - started
        if status != EXPECTED[kind]:
            self.errors[kind].append(f"{method} {path}: {status} {data[:200]!r}")
            return None
        self.times[kind].append(elapsed)
        return data

    def run(self):
        while time.monotonic() < self.until:
            kind = self.path or self.rng.choices(self.kinds, self.weights)[0]
            getattr(self, f"do_{kind}")()
        if self.conn is not None:
            self.conn.close()

    def do_search(self):
        term = self.rng.choice(SEARCH_TERMS).replace(" ", "+")
        self.request("search", "GET", f"/catalog/?q={term}", auth="session")

    def do_page(self):
        pk = self.rng.choice(self.ctx["findings"])
        self.request("page", "GET", f"/catalog/findings/{pk}/", auth="session")

    def do_list(self):
        self.request("list", "GET", f"/api/v1/findings/?page={self.rng.randint(1, 3)}")

    def do_healthz(self):
        self.request("healthz", "GET", "/healthz", auth=None)

    def do_catalog(self):
        self.request("catalog", "GET", "/catalog/", auth="session")

    def do_create(self):
        body = {
            "title": f"Load finding {self.rng.randrange(10**9)}",
            "summary": "Logged during the load test.",
            "ml_model": self.ctx["ml_model"],
            "dataset": self.ctx["dataset"],
            "severity": "medium",
            "risk_category": "reliability",
        }
        data = self.request("create", "POST", "/api/v1/findings/", body)
        if data is not None:
            self.mine.append((json.loads(data)["id"], "open"))

    def do_transition(self):
        movable = [i for i, (_, status) in enumerate(self.mine) if status != "resolved"]
        if not movable:
            return self.do_create()
        index = movable[0]
        pk, status = self.mine[index]
        target = "remediating" if status == "open" else "resolved"
        data = self.request(
            "transition",
            "POST",
            f"/api/v1/findings/{pk}/transition/",
            {"to": target, "note": "load test"},
            token=self.ctx["resolver_token"] if target == "resolved" else None,
        )
        if data is not None:
            self.mine[index] = (pk, target)


def run_users(base_url, ctx, users, seconds, *, path=None):
    until = time.monotonic() + seconds
    threads = [
        User(i, base_url, ctx["people"][i % len(ctx["people"])], ctx, until, path=path)
        for i in range(users)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    times, errors = defaultdict(list), defaultdict(list)
    for t in threads:
        for kind, values in t.times.items():
            times[kind] += values
        for kind, values in t.errors.items():
            errors[kind] += values
    return {"times": dict(times), "errors": dict(errors), "seconds": elapsed}


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def report(mix, phases, rerunner, users, duration, cpu=None) -> dict:
    """Print the figures; return them. `cpu`: {kind: (web ms, database ms) per request}
    of the throughput phases, when measured."""
    print(
        f"users: {users}; mixed load for {duration:.0f} s on loopback, "
        f"reruns queued {rerunner.queued}, finished {rerunner.finished} meanwhile"
    )
    print(f"{'request':<12}{'count':>8}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}")
    total_errors = 0
    for kind, _ in MIX:
        values = mix["times"].get(kind, [])
        errors = len(mix["errors"].get(kind, []))
        total_errors += errors
        print(
            f"{kind:<12}{len(values):>8}{errors:>8}{len(values) / mix['seconds']:>9.1f}"
            f"{percentile(values, 50) * 1000:>9.1f}{percentile(values, 95) * 1000:>9.1f}"
        )
    count = sum(len(v) for v in mix["times"].values())
    print(f"{'all':<12}{count:>8}{total_errors:>8}{count / mix['seconds']:>9.1f}")
    for kind, errors in mix["errors"].items():
        for line in errors[:3]:
            print(f"  error ({kind}): {line}")
    print(
        f"throughput phases ({users} users each, the rerun still running):\n"
        f"{'phase':<9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}"
        f"{'CPU ms/request: web':>21}{'database':>10}"
    )
    rates = {}
    for kind, result in phases.items():
        values = result["times"].get(kind, [])
        errors = len(result["errors"].get(kind, []))
        total_errors += errors
        rates[kind] = len(values) / result["seconds"]
        web, db = (cpu or {}).get(kind, (float("nan"), float("nan")))
        print(
            f"{kind:<9}{rates[kind]:>9.1f}{percentile(values, 50) * 1000:>9.1f}"
            f"{percentile(values, 95) * 1000:>9.1f}{errors:>8}{web:>21.2f}{db:>10.2f}"
        )
        for line in result["errors"].get(kind, [])[:3]:
            print(f"  error ({kind}): {line}")
    ratios = {}
    for kind, what, target in PHASES:
        if target is None or kind not in rates:
            continue
        ratios[kind] = rates[kind] / rates["healthz"] if rates.get("healthz") else float("nan")
        verdict = "met" if ratios[kind] >= target else "MISSED"
        print(
            f"{what} throughput / /healthz throughput: {ratios[kind]:.3f} "
            f"(target >= {target:.2f}: {verdict})"
        )
    print(f"errors: {total_errors}")
    return {
        "errors": total_errors,
        "ratio": ratios.get("list", float("nan")),
        "ratios": ratios,
        "rates": rates,
        "cpu": cpu,
    }


# --------------------------------------------------------------------------------------
# CPU time of the server processes (same machine, from /proc)
# --------------------------------------------------------------------------------------


def _proc_stat(pid):
    """(parent pid, CPU seconds of the process, CPU seconds of its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (
        int(fields[1]),
        (int(fields[11]) + int(fields[12])) / tick,
        (int(fields[13]) + int(fields[14])) / tick,
    )


def process_tree_cpu(root: int) -> float:
    """CPU seconds used by process `root` and its descendants, the exited ones included
    (gunicorn replaces its workers now and then: the master has reaped them)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat:
                stats[int(entry.name)] = stat
    children = defaultdict(list)
    for pid, (ppid, _, _) in stats.items():
        children[ppid].append(pid)
    total = stats[root][2] if root in stats else 0.0
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo += children.get(pid, [])
    return total


# The web server's database connections carry this name (its DATABASE_URL says so), so that
# their CPU time is told apart from the worker's and this process's.
WEB_APPLICATION_NAME = "bench-load-web"


def database_cpu() -> dict:
    """{pid: CPU seconds so far} of the database server's processes serving the web
    server's connections (PostgreSQL on this machine)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s",
            [WEB_APPLICATION_NAME],
        )
        pids = [row[0] for row in cursor.fetchall()]
    return {pid: (_proc_stat(pid) or (0, 0.0, 0.0))[1] for pid in pids}


def database_cpu_used(before: dict, after: dict) -> float:
    """CPU seconds the connections used between two `database_cpu()` readings (one that
    closed meanwhile counts until the first reading only)."""
    return sum(after.get(pid, used) - used for pid, used in before.items()) + sum(
        used for pid, used in after.items() if pid not in before
    )


def drive(base_url, ctx, *, users, duration, phase, web_pid=None):
    """The mixed load with a rerun running, then the throughput phases (with the CPU time
    per request of the web server `web_pid` and of the database, when given)."""
    # Warm-up, not counted: each server thread opens its database connection, templates
    # and URL patterns load.
    run_users(base_url, ctx, users, 2)
    rerunner = Rerunner(ctx["version_id"])
    rerunner.start()
    time.sleep(0.5)
    mix = run_users(base_url, ctx, users, duration)
    phases, cpu = {}, {}
    for kind, _, _ in PHASES:
        if web_pid:
            web, db = process_tree_cpu(web_pid), database_cpu()
        phases[kind] = run_users(base_url, ctx, users, phase, path=kind)
        if web_pid:
            done = max(1, len(phases[kind]["times"].get(kind, [])))
            cpu[kind] = (
                (process_tree_cpu(web_pid) - web) * 1000 / done,
                database_cpu_used(db, database_cpu()) * 1000 / done,
            )
    rerunner.stop.set()
    rerunner.join(timeout=30)
    return report(mix, phases, rerunner, users, duration, cpu or None), mix, rerunner


def main(argv=None) -> None:
    args = parse_args(argv)
    from scale_out import recreate_database

    from tests import processes

    recreate_database(args.database_url)
    media = tempfile.mkdtemp(prefix="bench-load-media-")
    static = tempfile.mkdtemp(prefix="bench-load-static-")
    secret = "load-benchmark-" + "s" * 50
    server_env = {
        "DEBUG": "0",
        "SECRET_KEY": secret,
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "STATIC_ROOT": static,
        "LOG_LEVEL": "WARNING",
        "GUNICORN_ACCESS_LOG": "",
        "LIST_CACHE_PAGES": str(args.kept_pages),
    }
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=args.database_url,
        MEDIA_ROOT=media,
        TASKS_SYNC="0",
        **server_env,
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    Schedule.objects.all().delete()  # only the benchmark's reruns
    ctx = prepare(args.users, args.findings)
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = processes.child_env(args.database_url, media, Q_WORKERS=1, **server_env)
    procs = [processes.qcluster("worker", env, log_dir)]
    separator = "&" if "?" in args.database_url else "?"
    web_env = dict(
        env, DATABASE_URL=f"{args.database_url}{separator}application_name={WEB_APPLICATION_NAME}"
    )
    try:
        web, url = processes.gunicorn(
            web_env, log_dir, workers=args.web_workers, threads=args.web_threads
        )
        procs.append(web)
        print(
            f"gunicorn: {args.web_workers} workers x {args.web_threads} threads at {url}; "
            f"one qcluster worker; {len(ctx['findings'])} findings to start with; "
            f"{args.kept_pages} kept pages per process (LIST_CACHE_PAGES)"
        )
        figures, _, _ = drive(
            url,
            ctx,
            users=args.users,
            duration=args.duration,
            phase=args.phase,
            web_pid=web.popen.pid,
        )
    finally:
        processes.stop_all(procs)
    if figures["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    main()
