"""Catalog search at 200,000 and 1,000,000 findings on PostgreSQL: the real page and the
real API, and how their cost grows with the catalog.

For each size (--sizes, default 200000,1000000), smallest first:

1. Creates a dedicated database (DROP + CREATE `boundary_bench_search_<size>`, reached
   through the server of DATABASE_URL, default the local boundary_dev superuser), migrates
   it, and bulk-loads the findings with COPY, in chunks: six ML models, 300 tags, 1-3 tags
   per finding, an action on every fourth finding. The text is drawn from a Zipf-distributed
   vocabulary with planted words: `boundary` in about half the findings, `calibration` in
   about 5%, `label noise` as a phrase in about 1% (both words separately in about 10%),
   `zeolite` in 20 findings and `quasar` in 3, which all mention `boundary` (the same 20
   and 3 at every size: a rare word stays rare). Findings are created evenly over three
   years, in id order.
2. Builds every search document as it loads: the text of each weight comes from the
   production function (catalog.search.document_parts: title; summary and lesson;
   description, harms and action titles; tag names, slice features and the ML model's
   name) and is turned into the weighted tsvector with the SQL of catalog.search.refresh;
   the finding table's secondary indexes are built after the load, as after a bulk import.
   Fills the word list behind "did you mean" from the words used, rewrites a sample of
   documents with the production code (catalog.search.refresh) to check they are
   identical, and runs VACUUM ANALYZE.
3. For each query of the set, requests the catalog page (/catalog/?q=...) and the API
   (/api/v1/findings/?search=...) through Django's test Client against the real URLconf,
   with production settings (DEBUG off; no page kept between requests, LIST_CACHE_PAGES=0,
   so that each one searches), as a signed-in viewer, WARMUP + RUNS times, and
   reports p50/p95 of the server-side time (the whole request: middleware, session,
   queries, template) and the CPU time per request (this process plus the database
   backend: what a request costs whatever else runs on the machine).
4. At the first size only (every size with --ilike-every-size), measures an ILIKE
   baseline for each query: the substring search the catalog used before (every word
   ILIKE'd over title, summary, description and lesson, newest first, 25 rows, plus the
   exact COUNT(*) its page showed), and prints ILIKE p95 / search p95.

Then a summary: the worst p95 at each size, the ratio of the largest size's to the
smallest's (target: at most 1.5x), the same per query (p95 and CPU time), largest CPU
growth first (CPU time hardly moves with the machine's load; p95 does), and what breaks
first: the query whose cost grows the most. The databases are dropped at
the end unless --keep (--reuse skips the load when a kept database of that size exists).

Run: .venv/bin/python benchmarks/search.py [--sizes 200000,1000000] [--runs 40] [--keep]
     [--reuse] [--ilike-every-size]
"""

from __future__ import annotations

import argparse
import csv
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
CHUNK = 50_000  # findings generated and copied at a time
TARGET_GROWTH = 1.5  # worst p95 at the largest size / at the smallest, at most

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
ML_MODELS = [
    "credit-risk",
    "churn",
    "fraud-screen",
    "tumour-triage",
    "wine-quality",
    "loan-approval",
]
FEATURES = ["age", "income", "tenure", "balance", "region", "channel", "plan"]
SEVERITIES = ["low", "medium", "high", "critical"]
RISKS = ["fairness", "safety", "financial", "privacy", "reliability", "compliance", "other"]
STATUSES = ["open", "remediating", "resolved", "regressed", "accepted_risk"]
N_TAGS = 300
YEARS = 3


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
    return TOPIC_WORDS + sorted(made)


class Generator:
    """Findings in chunks, as CSV for COPY (findings with the text of each weight of their
    search document, tag links, actions), with the words each chunk used. Draws are
    vectorised per chunk; ids run from 1 to `n`."""

    WORDS = 110  # title 7, summary 18, description 60, lesson 25

    def __init__(self, n, seed=0):
        self.n = n
        rng = np.random.default_rng(seed)
        vocab = _vocabulary(rng)
        ranks = rng.permutation(len(vocab))
        ranks[: len(TOPIC_WORDS)] = np.arange(len(TOPIC_WORDS))  # domain words are common
        self.words = [vocab[r] for r in ranks]  # by Zipf rank
        # The planted rare words: in the same findings at every size (among the first
        # 200,000, or all of them when fewer).
        planted = np.random.default_rng(seed + 1)
        pool = min(n, 200_000)
        self.zeolite = set(planted.choice(pool, 20, replace=False).tolist())
        self.quasar = set(planted.choice(pool, 3, replace=False).tolist())
        self.rng = np.random.default_rng(seed + 2)
        self.start = time.time() - YEARS * 365 * 86400

    def chunks(self, size=CHUNK):
        for first in range(0, self.n, size):
            yield self.chunk(first, min(size, self.n - first))

    def chunk(self, first, m):
        from catalog.search import document_parts

        rng, words = self.rng, self.words
        idx = np.minimum(rng.zipf(1.3, (m, self.WORDS)) - 1, len(words) - 1)
        used = {words[k] for k in np.unique(idx)}
        boundary = rng.random(m) < 0.5
        calibration = rng.random(m) < 0.05
        phrase = rng.random(m) < 0.01
        label_first = rng.random(m) < 0.09
        noise_last = rng.random(m) < 0.09
        positions = rng.integers(0, 60, (m, 3))
        model = rng.integers(1, len(ML_MODELS) + 1, m)
        severity = rng.integers(0, len(SEVERITIES), m)
        risk = rng.integers(0, len(RISKS), m)
        status = rng.integers(0, len(STATUSES), m)
        key_lesson = rng.random(m) < 0.002
        n_feats = rng.integers(0, 3, m)
        feats = rng.random((m, len(FEATURES))).argsort(axis=1)[:, :2]
        n_tags = rng.integers(1, 4, m)
        tags = rng.integers(1, N_TAGS + 1, (m, 3))
        findings, links, actions = io.StringIO(), io.StringIO(), io.StringIO()
        fw, lw, aw = csv.writer(findings), csv.writer(links), csv.writer(actions)
        for j in range(m):
            i = first + j
            row = [words[k] for k in idx[j]]
            title = " ".join(row[:7])
            summary = " ".join(row[7:25])
            desc = row[25:85]
            lesson = " ".join(row[85:110])
            if boundary[j] or i in self.quasar:  # "quasar boundary" finds all three
                desc.insert(positions[j, 0], "boundary")
            if calibration[j]:
                desc.insert(positions[j, 1], "calibration")
            if phrase[j]:
                desc.insert(positions[j, 2], "label noise")
            else:
                if label_first[j]:
                    desc.insert(0, "label")
                if noise_last[j]:
                    desc.append("noise")
            description = " ".join(desc)
            if i in self.zeolite:
                title += " zeolite"
            if i in self.quasar:
                summary += " quasar"
            predicates = [
                {"feature": FEATURES[f], "op": ">", "value": 1} for f in feats[j, : n_feats[j]]
            ]
            slice_json = (
                "["
                + ", ".join(
                    f'{{"feature": "{p["feature"]}", "op": ">", "value": 1}}' for p in predicates
                )
                + "]"
            )
            stamp = time.strftime(
                "%Y-%m-%d %H:%M:%S+00",
                time.gmtime(self.start + (i / self.n) * YEARS * 365 * 86400),
            )
            tag_ids = list(dict.fromkeys(tags[j, : n_tags[j]].tolist()))
            action_titles = ["Retrain with " + " ".join(row[:3])] if i % 4 == 0 else []
            parts = document_parts(
                title=title,
                summary=summary,
                lesson=lesson,
                description=description,
                harms="",
                action_titles=action_titles,
                tag_names=sorted(f"tag-{t - 1:03d}" for t in tag_ids),
                slice=predicates,
                ml_model_name=ML_MODELS[model[j] - 1],
            )
            fw.writerow(
                [
                    i + 1,
                    title,
                    summary,
                    description,
                    int(model[j]),
                    slice_json,
                    '{"error_rate": 0.3}',
                    SEVERITIES[severity[j]],
                    RISKS[risk[j]],
                    "",
                    "",
                    "",
                    lesson,
                    "",
                    STATUSES[status[j]],
                    "",
                    bool(key_lesson[j]),
                    stamp,
                    stamp,
                    parts["A"],
                    parts["B"],
                    parts["C"],
                    parts["D"],
                ]
            )
            for t in tag_ids:
                lw.writerow([i + 1, t])
            for action_title in action_titles:
                aw.writerow([i + 1, "retrain", action_title, "", "proposed", stamp, stamp])
        used |= {"boundary", "calibration", "label", "noise", "zeolite", "quasar"}
        return findings, links, actions, used


def _ahead(chunks):
    """The chunks of `chunks`, each generated in a thread while the previous one is being
    written (the database works while Python generates)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


FINDING_COLUMNS = (
    "id, title, summary, description, ml_model_id, slice, evidence, severity, risk_category, "
    "harms, affected_stakeholders, policy_reference, lesson, remaining_gaps, status, "
    "status_note, is_key_lesson, created_at, updated_at"
)


def _secondary_indexes(cursor):
    """(name, definition) of catalog_finding's indexes that back no constraint."""
    cursor.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes AS i WHERE i.tablename = "
        "'catalog_finding' AND i.indexname NOT IN (SELECT conname FROM pg_constraint "
        "WHERE conrelid = 'catalog_finding'::regclass)"
    )
    return cursor.fetchall()


def load(n):
    """Findings in chunks: each chunk is copied into a staging table with the text of each
    weight of its search document (catalog.search.document_parts, the production
    function), then inserted with the document computed as catalog.search.refresh does
    it. The finding table's secondary indexes are dropped for the load and built after
    it, as a bulk import would."""
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from catalog.models import Finding, SearchWord, Tag
    from catalog.search import SEARCH_CONFIG, refresh
    from catalog.search.documents import suggestable_words
    from core.roles import sync_role_groups
    from registry.models import MLModel

    sync_role_groups()
    viewer = User.objects.create_user("bench-viewer", password="x")
    viewer.groups.add(Group.objects.get(name="viewer"))
    for i, name in enumerate(ML_MODELS, start=1):
        MLModel.objects.create(pk=i, name=name)
    Tag.objects.bulk_create(
        [Tag(pk=i + 1, name=f"tag-{i:03d}", slug=f"tag-{i:03d}") for i in range(N_TAGS)]
    )
    weighted = " || ".join(
        f"setweight(to_tsvector('{SEARCH_CONFIG}', s.{label.lower()}), '{label}')"
        for label in "ABCD"
    )
    words = set()
    timings = {"generate (waited for)": 0.0, "copy and insert": 0.0}
    connection.ensure_connection()
    raw = connection.connection
    raw.autocommit = True
    with raw.cursor() as cur:
        indexes = _secondary_indexes(cur)
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        cur.execute(
            "CREATE UNLOGGED TABLE bench_finding_stage AS SELECT "
            f"{FINDING_COLUMNS} FROM catalog_finding WITH NO DATA"
        )
        cur.execute(
            "ALTER TABLE bench_finding_stage ADD COLUMN a text, ADD COLUMN b text, "
            "ADD COLUMN c text, ADD COLUMN d text"
        )
    t0 = time.perf_counter()
    for findings, links, actions, used in _ahead(Generator(n).chunks()):
        t1 = time.perf_counter()
        timings["generate (waited for)"] += t1 - t0
        words |= used
        with raw.cursor() as cur:
            findings.seek(0)
            cur.copy_expert(
                f"COPY bench_finding_stage ({FINDING_COLUMNS}, a, b, c, d) FROM STDIN "
                "WITH (FORMAT csv, NULL '\\N')",
                findings,
            )
            cur.execute(
                f"INSERT INTO catalog_finding ({FINDING_COLUMNS}, search_vector) "  # noqa: S608
                f"SELECT {', '.join(f's.{c.strip()}' for c in FINDING_COLUMNS.split(','))}, "
                f"{weighted} FROM bench_finding_stage AS s; TRUNCATE bench_finding_stage"
            )
            links.seek(0)
            cur.copy_expert(
                "COPY catalog_finding_tags (finding_id, tag_id) FROM STDIN WITH (FORMAT csv)",
                links,
            )
            actions.seek(0)
            cur.copy_expert(
                "COPY remediation_remediationaction (finding_id, kind, title, "
                "description, status, created_at, updated_at) FROM STDIN "
                "WITH (FORMAT csv, NULL '\\N')",
                actions,
            )
        t0 = time.perf_counter()
        timings["copy and insert"] += t0 - t1
    with raw.cursor() as cur:
        cur.execute("DROP TABLE bench_finding_stage")
        cur.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            cur.execute(definition)
        cur.execute(
            "SELECT setval('catalog_finding_id_seq', (SELECT max(id) FROM catalog_finding))"
        )
    t1 = time.perf_counter()
    timings["indexes"] = t1 - t0
    SearchWord.objects.bulk_create(
        [SearchWord(word=w) for w in sorted(suggestable_words({"A": " ".join(words)}))],
        ignore_conflicts=True,
        batch_size=5000,
    )
    # The production code must write the same documents: rewrite a sample with it.
    sample = np.random.default_rng(7).choice(n, min(n, 300), replace=False) + 1
    sample = sorted(int(i) for i in sample)
    before = dict(Finding.objects.filter(pk__in=sample).values_list("pk", "search_vector"))
    refresh(sample)
    after = dict(Finding.objects.filter(pk__in=sample).values_list("pk", "search_vector"))
    same = sum(before[i] == after[i] for i in sample)
    if same != len(sample):
        raise SystemExit(
            f"search documents differ from the production code's: {same}/{len(sample)} match"
        )
    t2 = time.perf_counter()
    with raw.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    timings["VACUUM ANALYZE"] = time.perf_counter() - t2
    print(
        f"loaded {n:,} findings: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + f"; search documents of {len(sample)} findings rewritten by the production code: "
        "identical",
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


def run(runs, *, ilike):
    """Each query on both endpoints: {(label, endpoint): (p50, p95, cpu, found)}."""
    from django.contrib.auth.models import User
    from django.db import connection, reset_queries
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username="bench-viewer"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    figures = {}
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"{'query':26} {'endpoint':5} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms':>8}"
        + (f" {'ILIKE p95':>10} {'x faster':>9}" if ilike else "")
        + "  results"
    )
    for label, q, filters in query_set():
        if ilike:
            # The baseline costs seconds a run: fewer runs, its p95 is about its slowest.
            _, ilike_p95, _ = timed(
                lambda q=q, f=filters: ilike_baseline(q, f), ILIKE_RUNS, warmup=1
            )
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
            figures[(label, endpoint)] = (p50, p95, cpu, found)
            line = f"{label:26} {endpoint:5} {p50:8.1f} {p95:8.1f} {cpu:8.1f}"
            if ilike:
                line += f" {ilike_p95:10.1f} {ilike_p95 / p95:9.1f}"
            print(f"{line}  {found}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    worst = max(figures, key=lambda k: figures[k][1])
    print(f"worst p95: {figures[worst][1]:.1f} ms ({worst[0]} ({worst[1]}))", flush=True)
    return figures


def summary(results):
    """Worst p95 per size and its growth against the target; the growth of each query, in
    p95 and in CPU time per request (the steadier figure when the machine is shared), the
    largest CPU growth first: that query is what breaks first."""
    sizes = sorted(results)
    small, large = sizes[0], sizes[-1]
    print(f"\n== growth: {small:,} -> {large:,} findings ==")
    for n in sizes:
        figures = results[n]
        worst = max(figures, key=lambda k: figures[k][1])
        costly = max(figures, key=lambda k: figures[k][2])
        print(
            f"{n:>11,} findings: worst p95 {figures[worst][1]:8.1f} ms ({worst[0]}, {worst[1]}); "
            f"most CPU {figures[costly][2]:6.1f} ms ({costly[0]}, {costly[1]})"
        )
    if len(sizes) < 2:
        return
    worst_small = max(f[1] for f in results[small].values())
    worst_large = max(f[1] for f in results[large].values())
    ratio = worst_large / worst_small
    verdict = "met" if ratio <= TARGET_GROWTH else "MISSED"
    print(
        f"worst p95 at {large:,} / at {small:,}: {ratio:.2f}x "
        f"(target <= {TARGET_GROWTH}x: {verdict})"
    )
    cpu_small = max(f[2] for f in results[small].values())
    cpu_large = max(f[2] for f in results[large].values())
    print(f"most CPU per request at {large:,} / at {small:,}: {cpu_large / cpu_small:.2f}x")
    rows = []
    for key in results[small]:
        a, b = results[small][key], results[large].get(key)
        if b:
            rows.append((b[2] / a[2] if a[2] else float("nan"), b[1] / a[1], key, a, b))
    rows.sort(key=lambda r: -r[0])
    print(
        f"{'query':26} {'endpoint':5} {'p95 small':>10} {'p95 large':>10} {'x p95':>6} "
        f"{'CPU small':>10} {'CPU large':>10} {'x CPU':>6}  results"
    )
    for cpu_ratio, p95_ratio, (label, endpoint), a, b in rows:
        print(
            f"{label:26} {endpoint:5} {a[1]:10.1f} {b[1]:10.1f} {p95_ratio:6.2f} "
            f"{a[2]:10.1f} {b[2]:10.1f} {cpu_ratio:6.2f}  {a[3]} -> {b[3]}"
        )
    growth, p95_growth, (label, endpoint), a, b = rows[0]
    print(
        f"breaks first: {label} ({endpoint}): CPU per request {a[2]:.1f} -> {b[2]:.1f} ms "
        f"(x{growth:.2f}), p95 {a[1]:.1f} -> {b[1]:.1f} ms (x{p95_growth:.2f})"
    )


def _use_database(name):
    """Point Django's connection at database `name` (the connection is closed first)."""
    from django.db import connections

    connections.close_all()
    connections["default"].settings_dict["NAME"] = name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        default="200000,1000000",
        help="catalog sizes, comma-separated (default 200000,1000000)",
    )
    parser.add_argument("--findings", type=int, help="one size only (same as --sizes N)")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse kept databases")
    parser.add_argument(
        "--ilike-every-size",
        action="store_true",
        help="measure the ILIKE baseline at every size (it takes minutes at 1,000,000)",
    )
    args = parser.parse_args()
    sizes = [args.findings] if args.findings else [int(s) for s in args.sizes.split(",")]
    sizes = sorted(set(sizes))

    os.environ["DATABASE_URL"] = _with_db(_admin_dsn(), f"{BENCH_DB}_{sizes[0]}")
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
        # Every request searches: a page kept from the previous identical request
        # (catalog.freshness) would measure the cache, not the search.
        LIST_CACHE_PAGES="0",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("collectstatic", interactive=False, verbosity=0)
    results = {}
    started = time.perf_counter()
    try:
        for i, n in enumerate(sizes):
            name = f"{BENCH_DB}_{n}"
            print(f"\n== {n:,} findings (database {name}) ==", flush=True)
            connections.close_all()
            exists = _psql_admin(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
            if not (args.reuse and exists):
                _psql_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                _psql_admin(f"CREATE DATABASE {name}")
            _use_database(name)
            if not (args.reuse and exists):
                call_command("migrate", verbosity=0)
                load(n)
            results[n] = run(args.runs, ilike=i == 0 or args.ilike_every_size)
            connections.close_all()
            if not args.keep:
                _psql_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        summary(results)
        print(f"\nbenchmark time: {(time.perf_counter() - started) / 60:.1f} min")
    finally:
        connections.close_all()
        shutil.rmtree(static, ignore_errors=True)
        if not args.keep:
            for n in sizes:
                _psql_admin(f"DROP DATABASE IF EXISTS {BENCH_DB}_{n} WITH (FORCE)")


if __name__ == "__main__":
    main()
