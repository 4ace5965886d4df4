"""Catalog search at 200,000 findings on PostgreSQL: the real page and the real API.

1. Creates a dedicated database (DROP + CREATE `boundary_bench_search`, reached through the
   server of DATABASE_URL, default the local boundary_dev superuser), migrates it, and
   bulk-loads the findings with COPY: six ML models, 300 tags, 1-3 tags per finding, an
   action on every fourth finding. The text is drawn from a Zipf-distributed vocabulary
   with planted words: `boundary` in about half the findings, `calibration` in about 5%,
   `label noise` as a phrase in about 1% (both words separately in about 10%), `zeolite`
   in 20 findings and `quasar` in 3.
2. Builds every search document with the production code (catalog.search.refresh) and
   runs VACUUM ANALYZE.
3. For each query of the set, requests the catalog page (/catalog/?q=...) and the API
   (/api/v1/findings/?search=...) through Django's test Client against the real URLconf,
   with production settings (DEBUG off), as a signed-in viewer, WARMUP + RUNS times, and
   reports p50/p95 of the server-side time (the whole request: middleware, session,
   queries, template).
4. Measures, in the same run, an ILIKE baseline for each query: the substring search the
   catalog used before (every word ILIKE'd over title, summary, description and lesson,
   newest first, 25 rows, plus the exact COUNT(*) its page showed).

Prints p50/p95 per query and endpoint, the mean CPU time per request (this process plus
the database backend: what a request costs whatever else runs on the machine), the ratio
ILIKE p95 / search p95 (how many times faster), the load average, and last the worst
p95. The database is dropped at the end unless --keep.

Run: .venv/bin/python benchmarks/search.py [--findings 200000] [--runs 40] [--keep]
     [--reuse]   (--reuse skips the load when the database from a --keep run exists)
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlparse, urlunparse

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_DB = "boundary_bench_search"
WARMUP = 3
ILIKE_RUNS = 5

_TOPIC_TEXT = """
    model score threshold applicants income age region segment error rate slice probe
    confidence margin flip perturbation fairness group disparity recall precision drift
    feature engineering retrain relabeling fallback rule monitoring evaluation version
    tenure balance channel plan students guarantors default refusal approval review cohort
    sparse outlier seasonal shift covariate imbalance minority holdout ensemble tree
    gradient logistic linear interaction missing values encoding categorical numeric
    histogram quantile bucket tail extreme borderline uncertain ambiguous
"""
TOPIC_WORDS = _TOPIC_TEXT.split()


# The server to use, read once: main() points DATABASE_URL at the benchmark's own database.
ADMIN_DSN = os.environ.get("DATABASE_URL") or "postgres://boundary_dev:dev@127.0.0.1:5432/postgres"


def _admin_dsn():
    return ADMIN_DSN


def _with_db(url, name):
    parts = urlparse(url)
    return urlunparse(parts._replace(path="/" + name))


def _psql_admin(sql):
    import psycopg2

    parts = urlparse(_admin_dsn())
    conn = psycopg2.connect(
        dbname=parts.path.lstrip("/") or "postgres",
        user=parts.username,
        password=parts.password,
        host=parts.hostname,
        port=parts.port or 5432,
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall() if cur.description else None
    conn.close()
    return rows


def _vocabulary(rng, size=6000):
    letters = np.array(list("abcdefghiklmnoprstuvy"))
    made = set()
    while len(made) < size:
        n = int(rng.integers(4, 10))
        made.add("".join(rng.choice(letters, n)))
    made -= {"boundary", "calibration", "label", "noise", "zeolite", "quasar"}
    return np.array(TOPIC_WORDS + sorted(made))


def _text(rng, vocab, n_words, ranks):
    idx = np.minimum(rng.zipf(1.3, n_words) - 1, len(vocab) - 1)
    return vocab[ranks[idx]]


def generate(n, seed=0):
    """Rows for COPY, plus tag links and actions, as CSV buffers."""
    import csv

    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng)
    ranks = rng.permutation(len(vocab))
    ranks[: len(TOPIC_WORDS)] = np.arange(len(TOPIC_WORDS))  # domain words are common
    severities = np.array(["low", "medium", "high", "critical"])
    risks = np.array(
        ["fairness", "safety", "financial", "privacy", "reliability", "compliance", "other"]
    )
    statuses = np.array(["open", "remediating", "resolved", "regressed", "accepted_risk"])
    features = ["age", "income", "tenure", "balance", "region", "channel", "plan"]
    zeolite = set(rng.choice(n, 20, replace=False).tolist())
    quasar = set(rng.choice(n, 3, replace=False).tolist())
    start = time.time() - 3 * 365 * 86400
    findings, links, actions = io.StringIO(), io.StringIO(), io.StringIO()
    fw, lw, aw = csv.writer(findings), csv.writer(links), csv.writer(actions)
    words = _text(rng, vocab, n * 110, ranks)
    pos = 0
    for i in range(n):
        chunk = words[pos : pos + 110]
        pos += 110
        title = " ".join(chunk[:7])
        summary = " ".join(chunk[7:25])
        desc = list(chunk[25:85])
        lesson = " ".join(chunk[85:110])
        r = rng.random()
        if r < 0.5:
            desc.insert(int(rng.integers(0, len(desc))), "boundary")
        if rng.random() < 0.05:
            desc.insert(int(rng.integers(0, len(desc))), "calibration")
        if rng.random() < 0.01:
            desc.insert(int(rng.integers(0, len(desc))), "label noise")
        else:
            if rng.random() < 0.09:
                desc.insert(0, "label")
            if rng.random() < 0.09:
                desc.append("noise")
        if i in zeolite:
            title += " zeolite"
        if i in quasar:
            summary += " quasar"
        feats = rng.choice(features, int(rng.integers(0, 3)), replace=False)
        slice_json = (
            "[" + ", ".join(f'{{"feature": "{f}", "op": ">", "value": 1}}' for f in feats) + "]"
        )
        created = start + (i / n) * 3 * 365 * 86400
        stamp = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(created))
        fw.writerow(
            [
                i + 1,
                title,
                summary,
                " ".join(desc),
                int(rng.integers(1, 7)),
                slice_json,
                '{"error_rate": 0.3}',
                severities[int(rng.integers(0, 4))],
                risks[int(rng.integers(0, 7))],
                "",
                "",
                "",
                lesson,
                "",
                statuses[int(rng.integers(0, 5))],
                "",
                rng.random() < 0.002,
                stamp,
                stamp,
            ]
        )
        for t in rng.choice(300, int(rng.integers(1, 4)), replace=False):
            lw.writerow([i + 1, int(t) + 1])
        if i % 4 == 0:
            aw.writerow(
                [
                    i + 1,
                    "retrain",
                    "Retrain with " + " ".join(chunk[:3]),
                    "",
                    "proposed",
                    stamp,
                    stamp,
                ]
            )
    return findings, links, actions


def load(n):
    from django.contrib.auth.models import Group
    from django.db import connection

    from catalog.models import Finding, Tag
    from core.roles import sync_role_groups
    from registry.models import MLModel

    t0 = time.perf_counter()
    sync_role_groups()
    from django.contrib.auth.models import User

    viewer = User.objects.create_user("bench-viewer", password="x")
    viewer.groups.add(Group.objects.get(name="viewer"))
    for i, name in enumerate(
        ["credit-risk", "churn", "fraud-screen", "tumour-triage", "wine-quality", "loan-approval"],
        start=1,
    ):
        MLModel.objects.create(pk=i, name=name)
    Tag.objects.bulk_create(
        [Tag(pk=i + 1, name=f"tag-{i:03d}", slug=f"tag-{i:03d}") for i in range(300)]
    )
    findings, links, actions = generate(n)
    t1 = time.perf_counter()
    raw = connection.connection
    with raw.cursor() as cur:
        findings.seek(0)
        cur.copy_expert(
            "COPY catalog_finding (id, title, summary, description, ml_model_id, slice, "
            "evidence, severity, risk_category, harms, affected_stakeholders, "
            "policy_reference, lesson, remaining_gaps, status, status_note, is_key_lesson, "
            "created_at, updated_at) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
            findings,
        )
        links.seek(0)
        cur.copy_expert(
            "COPY catalog_finding_tags (finding_id, tag_id) FROM STDIN WITH (FORMAT csv)", links
        )
        actions.seek(0)
        cur.copy_expert(
            "COPY remediation_remediationaction (finding_id, kind, title, "
            "description, status, created_at, updated_at) FROM STDIN "
            "WITH (FORMAT csv, NULL '\\N')",
            actions,
        )
        cur.execute(
            "SELECT setval('catalog_finding_id_seq', (SELECT max(id) FROM catalog_finding))"
        )
    connection.commit() if not connection.get_autocommit() else None
    t2 = time.perf_counter()
    Finding.objects.refresh_search_vectors()
    t3 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    t4 = time.perf_counter()
    print(
        f"loaded {n} findings: generate {t1 - t0:.1f}s, COPY {t2 - t1:.1f}s, "
        f"search documents {t3 - t2:.1f}s, VACUUM ANALYZE {t4 - t3:.1f}s",
        flush=True,
    )


def ilike_baseline(q, filters):
    """The former substring search: every word ILIKE'd over four columns, newest first."""
    from django.db.models import Q
    from django.http import QueryDict

    from catalog.filtersets import FindingFilterSet
    from catalog.models import Finding

    qd = QueryDict(mutable=True)
    qd.update(filters)
    qs = FindingFilterSet(qd, queryset=Finding.objects.all()).qs
    for raw in q.replace('"', " ").split():
        if raw.lower() == "or":
            continue
        word = raw.lstrip("-")
        cond = (
            Q(title__icontains=word)
            | Q(summary__icontains=word)
            | Q(description__icontains=word)
            | Q(lesson__icontains=word)
        )
        qs = qs.exclude(cond) if raw.startswith("-") else qs.filter(cond)
    qs.count()
    list(qs.order_by("-created_at", "-pk").values_list("pk", "title")[:25])


def query_set():
    from catalog.models import Finding
    from registry.models import MLModel

    fraud = MLModel.objects.get(name="fraud-screen").pk
    common_tag = Finding.tags.through.objects.values_list("tag__name", flat=True).first()
    return [
        ("rare word", "zeolite", {}),
        ("rare + common", "quasar boundary", {}),
        ("phrase", '"label noise"', {}),
        ("half the catalog", "boundary", {}),
        ("5% word", "calibration", {}),
        ("search + severity", "calibration", {"severity": "high"}),
        ("search + model + status", "boundary", {"ml_model": str(fraud), "status": "open"}),
        ("search + tag", "boundary", {"tag": common_tag}),
        ("or / exclude", "calibration or zeolite -boundary", {}),
        ("ML model name", "churn calibration", {}),
        ("browse, no query", "", {}),
        ("browse + 2 filters", "", {"status": "regressed", "risk_category": "fairness"}),
        ("typo (did you mean)", "calbration", {}),
    ]


def _backend_cpu_seconds(pid):
    """User + system CPU of a PostgreSQL backend process (same machine), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn, runs, warmup=WARMUP, backend=None):
    """(p50, p95, mean CPU) in ms. The CPU figure adds this process's CPU time and the
    database backend's over all runs: what a request costs whatever else the machine
    runs (wall times grow with the machine's load; CPU time hardly does)."""
    for _ in range(warmup):
        fn()
    times = []
    cpu0, db0 = time.process_time(), _backend_cpu_seconds(backend) if backend else 0.0
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    cpu = time.process_time() - cpu0 + (_backend_cpu_seconds(backend) - db0 if backend else 0)
    times.sort()
    p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
    return statistics.median(times), p95, cpu * 1000 / runs


def run(runs):
    from django.contrib.auth.models import User
    from django.db import connection, reset_queries
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username="bench-viewer"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    worst = ("", 0.0)
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"{'query':26} {'endpoint':5} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms':>8} "
        f"{'ILIKE p95':>10} {'x faster':>9}  results"
    )
    for label, q, filters in query_set():
        # The baseline costs seconds a run: fewer runs, its p95 is about its slowest.
        _, ilike_p95, _ = timed(lambda q=q, f=filters: ilike_baseline(q, f), ILIKE_RUNS, warmup=1)
        for endpoint in ("page", "api"):
            if endpoint == "page":
                params = {**filters, **({"q": q} if q else {})}
                url = "/catalog/?" + urlencode(params)
            else:
                params = {**filters, **({"search": q} if q else {})}
                url = "/api/v1/findings/?" + urlencode(params)

            def fetch(url=url):
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
                reset_queries()
                return response

            response = fetch()
            if endpoint == "api":
                body = response.json()
                found = f"{body['count']}{'+' if body['count_capped'] else ''}"
            else:
                found = ""
            p50, p95, cpu = timed(fetch, runs, backend=backend)
            if p95 > worst[1]:
                worst = (f"{label} ({endpoint})", p95)
            print(
                f"{label:26} {endpoint:5} {p50:8.1f} {p95:8.1f} {cpu:8.1f} {ilike_p95:10.1f} "
                f"{ilike_p95 / p95:9.1f}  {found}",
                flush=True,
            )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"worst p95: {worst[1]:.1f} ms ({worst[0]})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--findings", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database")
    args = parser.parse_args()

    exists = _psql_admin(f"SELECT 1 FROM pg_database WHERE datname = '{BENCH_DB}'")
    if not (args.reuse and exists):
        _psql_admin(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        _psql_admin(f"CREATE DATABASE {BENCH_DB}")
    os.environ["DATABASE_URL"] = _with_db(_admin_dsn(), BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["TASKS_SYNC"] = "1"
    # Production settings, as a deployment serves the page: DEBUG off (no query log, no
    # template debug information), hashed static files.
    static = tempfile.mkdtemp(prefix="bench-search-static-")
    os.environ.update(
        DEBUG="0",
        SECRET_KEY="search-benchmark-" + secrets.token_urlsafe(40),
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="testserver",
        STATIC_ROOT=static,
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("collectstatic", interactive=False, verbosity=0)
    try:
        if not (args.reuse and exists):
            call_command("migrate", verbosity=0)
            load(args.findings)
        run(args.runs)
    finally:
        connections.close_all()
        shutil.rmtree(static, ignore_errors=True)
        if not args.keep:
            _psql_admin(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
