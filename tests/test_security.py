"""Security: who may reach what, CSRF, production settings, uploads, sign-in throttling,
escaping of user text, security headers, and artifacts that must never be executed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache

from .factories import client_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


# --- sign-in throttling -----------------------------------------------------------------


@pytest.mark.django_db
def test_sign_in_is_paused_after_five_failures(people, fresh_cache):
    client = client_for(None)
    for _ in range(5):
        response = client.post("/login/", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
        assert b"didn&#x27;t match" in response.content or b"didn't match" in response.content
    blocked = client.post("/login/", {"username": "alice", "password": "pw-alice"})
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    assert b"Too many sign-in attempts" in blocked.content
    assert b"try again in 5 minutes" in blocked.content
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not locked out by alice's failures.
    other = client.post("/login/", {"username": "bob", "password": "pw-bob"})
    assert other.status_code == 302


@pytest.mark.django_db
def test_the_pause_ends_with_the_window(people, fresh_cache, settings):
    settings.LOGIN_FAILURE_WINDOW_S = 1
    client = client_for(None)
    for _ in range(5):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    assert client.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 429
    import time

    time.sleep(2.1)
    assert client.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302


@pytest.mark.django_db
def test_a_success_clears_the_failures(people, fresh_cache):
    client = client_for(None)
    for _ in range(4):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    assert client.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302
    client.post("/logout/")
    for _ in range(4):
        assert client.post("/login/", {"username": "alice", "password": "x"}).status_code == 200
    assert client.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302


@pytest.mark.django_db
def test_usernames_are_counted_case_insensitively_and_per_address(people, fresh_cache):
    client = client_for(None)
    for name in ["alice", "ALICE", "Alice ", "alice", "aLice"]:
        client.post("/login/", {"username": name, "password": "wrong"})
    assert client.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 429
    elsewhere = client_for(None)
    response = elsewhere.post(
        "/login/", {"username": "alice", "password": "pw-alice"}, REMOTE_ADDR="10.9.8.7"
    )
    assert response.status_code == 302


@pytest.mark.django_db
def test_one_address_cannot_spray_many_usernames(people, fresh_cache, settings):
    settings.LOGIN_FAILURE_LIMIT_PER_IP = 8
    client = client_for(None)
    for i in range(8):
        client.post("/login/", {"username": f"guess{i}", "password": "wrong"})
    assert client.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 429


@pytest.mark.django_db
def test_behind_a_proxy_the_throttle_counts_by_the_forwarded_client(people, fresh_cache, settings):
    """Every request comes from nginx (127.0.0.1): without TRUSTED_PROXIES one client's
    failures would lock everyone out; with it, each client is counted on its own, and a
    client cannot escape its count by sending its own X-Forwarded-For."""
    settings.TRUSTED_PROXIES = 1
    settings.LOGIN_FAILURE_LIMIT_PER_IP = 6
    client = client_for(None)

    def attempt(forwarded, password="wrong"):
        return client.post(
            "/login/",
            {"username": "alice", "password": password},
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_FORWARDED_FOR=forwarded,
        )

    for i in range(5):
        attempt(f"{i}.6.6.6, 203.0.113.9")  # spoofed left part, same real client
    assert attempt("1.1.1.1, 203.0.113.9", "pw-alice").status_code == 429
    assert attempt("198.51.100.4", "pw-alice").status_code == 302
    client.post("/logout/")
    for i in range(6):
        client.post(
            "/login/",
            {"username": f"guess{i}", "password": "wrong"},
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_FORWARDED_FOR="203.0.113.50",
        )
    assert attempt("203.0.113.51", "pw-alice").status_code == 302


@pytest.mark.django_db
def test_the_admin_sign_in_is_throttled_too(people, fresh_cache):
    client = client_for(None)
    for _ in range(5):
        assert (
            client.post("/admin/login/", {"username": "admin", "password": "no"}).status_code == 200
        )
    response = client.post("/admin/login/", {"username": "admin", "password": "pw-admin"})
    assert response.status_code == 429


def test_redis_url_puts_the_throttle_counters_in_redis():
    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings';"
        "from django.conf import settings; c=settings.CACHES['default'];"
        "print(c['BACKEND'], c.get('LOCATION'))"
    )
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:6379/5"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert out == ["django.core.cache.backends.redis.RedisCache", "redis://127.0.0.1:6379/5"]
    env["REDIS_URL"] = ""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert out[0] == "django.core.cache.backends.locmem.LocMemCache"


# --- the world every matrix runs against -------------------------------------------------

XSS = "<script>alert('xss')</script><img src=x onerror=alert(1)>\"'&"
RAW_MARKERS = ("<script>alert(", "<img src=x onerror")


def build_world(people, text="plain"):
    """One object of every kind, with `text` in every free-text field a page may show."""
    import pandas as pd
    from django.core.files.base import ContentFile

    from catalog.models import Finding, Tag
    from probes.models import Probe, ProbeRun, Rerun
    from registry.models import Dataset, MLModel, ModelVersion
    from remediation.models import Evaluation, Notification, RemediationAction

    from .factories import fitted_model, skops_upload, toy_frame

    contributor, reviewer = people["contributor"], people["reviewer"]
    for user in people.values():
        user.first_name, user.last_name = text[:150], text[:150]
        user.save()
    ml_model = MLModel.objects.create(name=f"m {text}"[:120], slug="world-model", description=text)
    frame = toy_frame()
    frame[text] = frame["x2"]  # a column named with the text: shown in schema and preview
    dataset = Dataset.create_from_upload(
        ContentFile(frame.to_csv(index=False).encode(), name=f"{text}.csv"),
        name=f"d {text}"[:120],
        version=text[:40],
        target_column="y",
        description=text,
        by=contributor,
    )
    plain = Dataset.create_from_upload(
        ContentFile(toy_frame().to_csv(index=False).encode(), name="plain.csv"),
        name="plain",
        target_column="y",
        by=contributor,
    )
    version = ModelVersion.register(
        ml_model=ml_model,
        version=text[:40],
        artifact=skops_upload(fitted_model(), name=text),
        notes=text,
        by=people["maintainer"],
        training_dataset=plain,
    )
    finding = Finding(
        title=text[:200],
        summary=text[:500],
        description=text,
        ml_model=ml_model,
        model_version=version,
        dataset=dataset,
        slice=[{"feature": "color", "op": "in", "value": [text, "red"]}],
        evidence={text: text},
        harms=text,
        affected_stakeholders=text,
        policy_reference=text[:200],
        lesson=text,
        remaining_gaps=text,
        owner=contributor,
        reporter=contributor,
        status_note=text,
    )
    finding.full_clean()
    finding.save()
    finding.tags.set(Tag.from_names([text[:60], "calibration"]))
    probe = Probe(
        finding=finding,
        dataset=plain,
        kind="counterfactual_flip_rate",
        slice=[{"feature": "color", "op": "==", "value": text}],
        params={"changes": {"color": {"set": text}}},
        threshold=0.5,
        created_by=contributor,
    )
    probe.full_clean()
    probe.save()
    rerun = Rerun.queue(version, trigger="manual", by=contributor, probes=[probe], dispatch=False)
    ProbeRun.objects.filter(rerun=rerun).update(
        status="error", error=text, finished_at=rerun.created_at
    )
    action = RemediationAction.objects.create(
        finding=finding,
        kind="relabeling",
        title=text[:200],
        description=text,
        owner=contributor,
        reviewer=reviewer,
        created_by=contributor,
    )
    action.transition_to("approved", by=reviewer, note=text)
    evaluation = Evaluation.objects.create(
        action=action,
        model_version=version,
        outcome="held",
        notes=text,
        is_manual=True,
        created_by=reviewer,
    )
    for user in people.values():
        Notification.objects.create(
            recipient=user,
            finding=finding,
            subject=text[:200],
            body=text,
            url=finding.get_absolute_url(),
        )
    finding.transition_to("remediating", by=contributor, note=text)
    return {
        "ml_model": ml_model,
        "dataset": dataset,
        "version": version,
        "finding": finding,
        "probe": probe,
        "rerun": rerun,
        "action": action,
        "evaluation": evaluation,
        "tag": Tag.objects.get(name=text[:60].strip().lower()) if text.strip() else None,
        "people": people,
        "frame": pd.DataFrame(),
    }


# --- which role may reach which page -----------------------------------------------------

ROLES = ["viewer", "contributor", "reviewer", "maintainer", "admin"]
EVERYONE = ["anonymous", "nobody", *ROLES]
READERS = frozenset(ROLES)
SIGNED_IN = frozenset(["nobody", *ROLES])
PUBLIC = "public"


class Page:
    """How one URL name is protected: `access` are the roles that pass its role check
    (PUBLIC: no sign-in needed); `methods` are those it answers (others: 405)."""

    def __init__(self, access, methods=("GET",), args=lambda w: []):
        self.access, self.methods, self.args = access, set(methods), args


def _pk(key):
    return lambda w: [w[key].pk]


def _scan(w):
    from introspection.models import SliceScan

    return [SliceScan.objects.get_or_create(model_version=w["version"], dataset=w["dataset"])[0].pk]


def _boundary_map(w):
    from django.core.files.base import ContentFile

    from introspection.models import BoundaryMap

    m, created = BoundaryMap.objects.get_or_create(
        finding=w["finding"],
        model_version=w["version"],
        feature_x="x1",
        feature_y="x2",
        defaults={"dataset": w["finding"].dataset, "status": "done"},
    )
    if created:
        m.image.save("map.png", ContentFile(b"\x89PNG\r\n\x1a\n"))
    return [m.pk]


# Every named URL of the site must be listed here (the test below fails otherwise): a new
# page is classified when it is added. The API is classified by operation further down.
PAGES = {
    "dashboard": Page(SIGNED_IN),
    "healthz": Page(PUBLIC),
    "favicon": Page(PUBLIC),
    "login": Page(PUBLIC, ("GET", "POST")),
    "logout": Page(PUBLIC, ("POST",)),
    "api-schema": Page(PUBLIC),
    "api-docs": Page(PUBLIC),
    "catalog:finding_list": Page(READERS),
    "catalog:finding_create": Page({"contributor", "admin"}, ("GET", "POST")),
    "catalog:finding_detail": Page(READERS, args=_pk("finding")),
    "catalog:finding_edit": Page({"contributor", "admin"}, ("GET", "POST"), _pk("finding")),
    "catalog:finding_transition": Page(READERS, ("POST",), _pk("finding")),
    "catalog:finding_import": Page({"contributor", "admin"}, ("GET", "POST")),
    "catalog:finding_export": Page(READERS),
    # Each ticked finding is changed only where its edit rule lets the user (table.py).
    "catalog:finding_bulk": Page(READERS, ("POST",)),
    "catalog:slice_text": Page(READERS),
    "catalog:lessons": Page(READERS),
    "catalog:onboarding": Page(READERS),
    "catalog:tag_list": Page(READERS),
    "catalog:similar": Page(READERS, args=_pk("finding")),
    "ledger:start_here": Page(READERS),
    "ledger:heatmap": Page(READERS),
    "catalog:export_findings": Page(READERS, args=lambda w: ["csv"]),
    "catalog:import_findings": Page({"contributor", "admin"}, ("GET", "POST")),
    "ledger:export_catalog": Page(READERS),
    "ledger:import_catalog": Page({"admin"}, ("GET", "POST")),
    "catalog:finding_key_lesson": Page({"reviewer", "admin"}, ("POST",), _pk("finding")),
    "registry:mlmodel_list": Page(READERS),
    "registry:mlmodel_create": Page({"maintainer", "admin"}, ("GET", "POST")),
    "registry:mlmodel_detail": Page(READERS, args=lambda w: [w["ml_model"].slug]),
    "registry:version_register": Page(
        {"maintainer", "admin"}, ("GET", "POST"), lambda w: [w["ml_model"].slug]
    ),
    "registry:deployment_create": Page(
        {"maintainer", "admin"}, ("POST",), lambda w: [w["ml_model"].slug]
    ),
    "registry:version_detail": Page(READERS, args=_pk("version")),
    "ledger:version_compare": Page(READERS),
    "probes:version_run": Page(
        {"contributor", "reviewer", "maintainer", "admin"}, ("POST",), _pk("version")
    ),
    "probes:probe_create": Page({"contributor", "admin"}, ("GET", "POST"), _pk("finding")),
    "probes:finding_run": Page(
        {"contributor", "reviewer", "maintainer", "admin"}, ("POST",), _pk("finding")
    ),
    "probes:rerun_progress": Page(READERS, args=_pk("rerun")),
    "probes:probe_detail": Page(READERS, args=_pk("probe")),
    # Who may revise or retire depends on the finding's status (Probe.change_refusal).
    "probes:probe_revise": Page(READERS, ("GET", "POST"), _pk("probe")),
    "probes:probe_retire": Page(READERS, ("POST",), _pk("probe")),
    "registry:dataset_list": Page(READERS),
    "registry:dataset_upload": Page({"contributor", "maintainer", "admin"}, ("GET", "POST")),
    "registry:dataset_detail": Page(READERS, args=_pk("dataset")),
    "registry:dataset_columns": Page(READERS, args=_pk("dataset")),
    "registry:dataset_profile": Page(
        {"contributor", "maintainer", "admin"}, ("POST",), _pk("dataset")
    ),
    "registry:dataset_drift": Page(READERS, args=_pk("dataset")),
    "introspection:scan_new": Page(
        {"contributor", "reviewer", "maintainer", "admin"}, ("GET", "POST"), _pk("version")
    ),
    "introspection:scan_detail": Page(READERS, args=_scan),
    "introspection:scan_progress": Page(READERS, args=_scan),
    "introspection:scan_log": Page({"contributor", "admin"}, ("POST",), lambda w: [_scan(w)[0], 0]),
    "introspection:scan_dismiss": Page(
        {"contributor", "admin"}, ("POST",), lambda w: [_scan(w)[0], 0]
    ),
    "introspection:scan_restore": Page(
        {"contributor", "admin"}, ("POST",), lambda w: [_scan(w)[0], 1]
    ),
    "introspection:finding_maps": Page(
        {"contributor", "reviewer", "maintainer", "admin"}, ("POST",), _pk("finding")
    ),
    "introspection:finding_sweeps": Page(
        {"contributor", "reviewer", "maintainer", "admin"}, ("POST",), _pk("finding")
    ),
    "introspection:finding_introspection_progress": Page(READERS, args=_pk("finding")),
    "introspection:map_image": Page(READERS, args=_boundary_map),
    "introspection:sweep_point_probe": Page({"contributor", "admin"}, ("POST",), lambda w: [1, 0]),
    "introspection:dataset_sensitive": Page(
        {"contributor", "maintainer", "admin"}, ("POST",), _pk("dataset")
    ),
    "remediation:action_create": Page({"contributor", "admin"}, ("POST",), _pk("finding")),
    "remediation:action_transition": Page(READERS, ("POST",), _pk("action")),
    # Its owner, its named reviewer or a reviewer (RemediationAction.edit_refusal).
    "remediation:action_edit": Page(READERS, ("GET", "POST"), _pk("action")),
    "remediation:evaluation_create": Page({"reviewer", "admin"}, ("POST",), _pk("action")),
    "remediation:board": Page(READERS),
    "remediation:review_pack": Page(READERS),
    "remediation:effectiveness": Page(READERS),
    "remediation:audit_log": Page(READERS),
    "remediation:notifications": Page(SIGNED_IN, ("GET", "POST")),
    "remediation:evidence_pack": Page(READERS, args=_pk("finding")),
}


def site_patterns():
    """(route, qualified name, callback) of every URL pattern, walking includes."""
    from django.urls import URLResolver, get_resolver

    def walk(patterns, prefix, namespace):
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = ":".join(x for x in (namespace, p.namespace) if x) or None
                yield from walk(p.url_patterns, prefix + str(p.pattern), ns)
            else:
                name = f"{namespace}:{p.name}" if namespace and p.name else p.name
                yield prefix + str(p.pattern), name, p.callback

    yield from walk(get_resolver().url_patterns, "", None)


def is_api_route(callback):
    from rest_framework.viewsets import ViewSetMixin

    cls = getattr(callback, "cls", None)
    return cls is not None and issubclass(cls, ViewSetMixin)


def site_pages():
    """The named site URLs to check: not the admin (checked on its own) nor the API
    viewsets (checked per operation)."""
    pages = []
    for route, name, callback in site_patterns():
        if route.startswith("admin/") or is_api_route(callback):
            continue
        pages.append((route, name))
    return pages


def test_every_page_is_classified():
    unclassified = [f"{route} (name={name!r})" for route, name in site_pages() if name not in PAGES]
    assert not unclassified, (
        "Pages missing from PAGES in tests/test_security.py (say who may reach them): "
        + ", ".join(unclassified)
    )


def _client(who, people, **kwargs):
    from django.test import Client

    client = Client(**kwargs)
    if who != "anonymous":
        client.force_login(people[who])
    return client


def _expect(page, who, method, response, url):
    status = response.status_code
    where = (url, who, method, status)
    if page.access == PUBLIC:
        if method not in page.methods:
            assert status == 405 or (method == "POST" and status == 200), where
        else:
            assert status < 500 and status not in (401, 403, 405), where
        return
    if who == "anonymous":
        assert status == 302 and response["Location"].startswith("/login/?next="), where
    elif who not in page.access:
        assert status == 403, where
    elif method not in page.methods:
        # A read-only page may answer a POST like a GET (it changes nothing) or refuse it.
        assert status == 405 or (method == "POST" and status == 200), where
    else:
        assert status < 500 and status not in (401, 403, 405), where
        if status == 302:
            assert not response["Location"].startswith("/login/"), where


@pytest.mark.django_db
def test_every_page_lets_in_exactly_the_roles_it_should(people, fresh_cache):
    from django.urls import reverse

    world = build_world(people)
    checked = 0
    for _route, name in site_pages():
        page = PAGES[name]
        url = reverse(name, args=page.args(world))
        for who in EVERYONE:
            for method in ("GET", "POST"):
                client = _client(who, people)
                response = client.get(url) if method == "GET" else client.post(url, {})
                _expect(page, who, method, response, url)
                checked += 1
    assert checked >= 30 * len(EVERYONE) * 2


@pytest.mark.django_db
def test_the_admin_is_for_staff_only(people):
    from django.contrib import admin
    from django.urls import reverse

    urls = [reverse("admin:index")] + [
        reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist")
        for m in admin.site._registry
    ]
    for url in urls:
        for who in ["anonymous", "nobody", *ROLES[:-1]]:
            response = _client(who, people).get(url)
            assert response.status_code == 302, (url, who)
            assert response["Location"].startswith("/admin/login/"), (url, who)
        assert _client("admin", people).get(url).status_code == 200, url


# --- which role may call which API operation ---------------------------------------------

WRITE_FINDINGS = {"contributor", "admin"}
RUNNERS = {"contributor", "reviewer", "maintainer", "admin"}
API = {
    "findings_create": WRITE_FINDINGS,
    "findings_update": WRITE_FINDINGS,
    "findings_partial_update": WRITE_FINDINGS,
    "findings_transition_create": READERS,
    "findings_key_lesson_create": {"reviewer", "admin"},
    "tags_create": {"contributor", "admin"},
    "ml_models_create": {"maintainer", "admin"},
    "ml_models_update": {"maintainer", "admin"},
    "ml_models_partial_update": {"maintainer", "admin"},
    "datasets_create": {"contributor", "maintainer", "admin"},
    "datasets_partial_update": {"admin"},
    "model_versions_create": {"maintainer", "admin"},
    "model_versions_partial_update": {"admin"},
    "model_versions_run_create": RUNNERS,
    "model_versions_scan_create": RUNNERS,
    "deployments_create": {"maintainer", "admin"},
    "scans_log_create": WRITE_FINDINGS,
    "scans_dismiss_create": WRITE_FINDINGS,
    "scan_dismissals_restore_create": WRITE_FINDINGS,
    "probes_create": {"contributor", "admin"},
    "probes_update": {"contributor", "admin"},
    "probes_partial_update": {"contributor", "admin"},
    "probes_run_create": RUNNERS,
    # The world's finding is being remediated: its probes are a contributor's or a
    # reviewer's to revise or retire.
    "probes_revise_create": {"contributor", "reviewer", "admin"},
    "probes_retire_create": {"contributor", "reviewer", "admin"},
    "actions_create": {"contributor", "admin"},
    # The world's action is bob's (contributor), rita (reviewer) its named reviewer.
    "actions_update": {"contributor", "reviewer", "admin"},
    "actions_partial_update": {"contributor", "reviewer", "admin"},
    "actions_transition_create": READERS,
    "evaluations_create": {"reviewer", "admin"},
    "notifications_list": SIGNED_IN,
    "notifications_retrieve": SIGNED_IN,
    "notifications_read_create": SIGNED_IN,
    "notifications_read_all_create": SIGNED_IN,
}


def api_operations():
    """(method, path template, operationId) of every operation in the OpenAPI schema."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, op["operationId"]


def api_access(method, operation_id):
    """Reads are for every role; every write must be listed in API."""
    if operation_id in API:
        return API[operation_id]
    if method == "GET" and operation_id.endswith(("_list", "_retrieve")):
        return READERS
    return None


def test_every_api_operation_is_classified():
    missing = [f"{m} {p} ({op})" for m, p, op in api_operations() if api_access(m, op) is None]
    assert not missing, "Operations missing from API in tests/test_security.py: " + ", ".join(
        missing
    )


def test_every_api_route_is_in_the_schema():
    from django.urls import resolve

    in_schema = {resolve(path.replace("{id}", "1")).func.cls for _, path, _ in api_operations()}
    routed = {cb.cls for _, _, cb in site_patterns() if is_api_route(cb)}
    assert routed <= in_schema, routed - in_schema


def _object_id(path, world):
    from django.urls import resolve

    cls = resolve(path.replace("{id}", "1")).func.cls
    queryset = getattr(cls, "queryset", None)
    model = queryset.model if queryset is not None else cls.serializer_class.Meta.model
    first = model.objects.order_by("pk").first()
    return first.pk if first else 1


@pytest.mark.django_db
def test_every_api_operation_lets_in_exactly_the_roles_it_should(people):
    from rest_framework.test import APIClient

    world = build_world(people)
    checked = 0
    for method, path, op in api_operations():
        allowed = api_access(method, op)
        url = path.replace("{id}", str(_object_id(path, world)))
        for who in EVERYONE:
            client = APIClient()
            if who != "anonymous":
                client.force_authenticate(people[who])
            response = client.generic(method, url, "{}", content_type="application/json")
            status = response.status_code
            where = (method, url, who, status, response.content[:200])
            if who == "anonymous":
                assert status == 401, where
            elif who in allowed:
                assert status < 500 and status not in (401, 403, 405), where
            else:
                assert status == 403, where
            checked += 1
    assert checked >= 40 * len(EVERYONE)


# --- CSRF ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_form_post_needs_the_csrf_token(people, fresh_cache):
    from django.urls import reverse

    world = build_world(people)
    checked = 0
    for _route, name in site_pages():
        page = PAGES[name]
        if "POST" not in page.methods:
            continue
        url = reverse(name, args=page.args(world))
        who = "anonymous" if page.access == PUBLIC else sorted(page.access)[0]
        client = _client(who, people, enforce_csrf_checks=True)
        response = client.post(url, {})
        assert response.status_code == 403, (url, who, response.status_code)
        assert b"CSRF" in response.content, url
        checked += 1
    assert checked >= 10


@pytest.mark.django_db
def test_a_post_with_the_token_passes_the_csrf_check(people, fresh_cache):
    client = _client("anonymous", people, enforce_csrf_checks=True)
    client.get("/login/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/login/", {"username": "alice", "password": "pw-alice", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


@pytest.mark.django_db
def test_the_api_needs_the_csrf_token_with_a_session_but_not_with_a_token(people, ml_model):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people["contributor"])
    response = client.post(
        "/api/v1/findings/", {"title": "t", "ml_model": ml_model.pk}, format="json"
    )
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    token = Token.objects.create(user=people["contributor"])
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.post(
        "/api/v1/findings/", {"title": "t", "ml_model": ml_model.pk}, format="json"
    )
    assert response.status_code == 201, response.content


# --- production settings -----------------------------------------------------------------


def test_deploy_check_is_clean_with_production_settings(tmp_path):
    import secrets

    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "ledger.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://ledger.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests for their run only
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    # The same check does flag a development configuration, so it can fail.
    env["DEBUG"] = "1"
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "DEBUG" in result.stdout + result.stderr


# --- security headers and the content security policy -----------------------------------


def _html_pages(world):
    from django.urls import reverse

    for _route, name in site_pages():
        page = PAGES[name]
        if "GET" in page.methods and name not in ("logout",):
            yield name, reverse(name, args=page.args(world))


INLINE = [
    (r"<script(?![^>]*\bsrc=)[^>]*>", "an inline <script>"),
    (r"<style\b", "a <style> block"),
    (r"\sstyle\s*=", "a style= attribute"),
    (r"\son[a-z]+\s*=", "an on...= event handler"),
    (r"javascript:", "a javascript: URL"),
]


@pytest.mark.django_db
def test_every_page_sends_the_security_headers_and_nothing_the_policy_would_block(
    people, fresh_cache
):
    import re

    world = build_world(people)
    for who in ("admin", "viewer", "anonymous"):
        client = _client(who, people)
        for name, url in _html_pages(world):
            response = client.get(url)
            if response.status_code in (302, 403):
                continue
            assert response.status_code == 200, (url, who, response.status_code)
            assert response["X-Content-Type-Options"] == "nosniff", url
            assert response["X-Frame-Options"] == "DENY", url
            assert response["Referrer-Policy"] == "same-origin", url
            csp = response["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, url
            if name == "api-docs":
                continue  # Swagger UI bootstraps inline; it shows no user text
            assert "'unsafe-inline'" not in csp and "script-src 'self'" in csp, url
            if not response["Content-Type"].startswith("text/html"):
                continue
            body = response.content.decode()
            for pattern, what in INLINE:
                match = re.search(pattern, body, re.IGNORECASE)
                assert match is None, f"{url} has {what}: {body[match.start() :][:120]!r}"


# --- user text is escaped everywhere it is shown -----------------------------------------


@pytest.mark.django_db
def test_script_in_every_text_field_is_shown_as_text_on_every_page(people, fresh_cache):
    world = build_world(people, text=XSS)
    escaped_on = set()
    # Search results highlight the matched words inside the user's text.
    searches = [
        ("catalog:finding_list", f"/catalog/?q={q}")
        for q in ("alert", "script xss", "onerror", '"img src"')
    ]
    for who in ("admin", "viewer", "contributor", "reviewer"):
        client = _client(who, people)
        for name, url in [*_html_pages(world), *searches]:
            response = client.get(url)
            if response.status_code in (302, 403):
                continue
            assert response.status_code == 200, (url, who, response.status_code)
            body = response.content.decode(errors="replace")
            kind = response["Content-Type"]
            if kind.startswith("text/html"):
                for marker in RAW_MARKERS:
                    assert marker not in body, f"{url} ({who}) renders {marker!r} raw"
                if "&lt;script&gt;alert(" in body:
                    escaped_on.add(name)
            else:
                assert not kind.startswith(("text/html", "image/svg")), (url, kind)
    must_show = {
        "catalog:finding_list",
        "catalog:finding_detail",
        "registry:mlmodel_detail",
        "registry:dataset_detail",
        "registry:version_detail",
        "remediation:board",
        "remediation:notifications",
        "dashboard",
    }
    present = {name for name in must_show if name in PAGES}
    assert present - escaped_on == set(), present - escaped_on


@pytest.mark.django_db
def test_the_api_returns_user_text_as_json_data(people):
    from .factories import api_for

    world = build_world(people, text=XSS)
    response = api_for(people["viewer"]).get(f"/api/v1/findings/{world['finding'].pk}/")
    assert response["Content-Type"] == "application/json"
    assert response.json()["title"] == XSS[:200]
    assert response["X-Content-Type-Options"] == "nosniff"


# --- uploads -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_uploads_are_stored_under_generated_names(people, ml_model, settings):
    import re

    from django.core.files.base import ContentFile

    from registry.models import Dataset, ModelVersion

    from .factories import api_for, fitted_model, skops_upload, toy_frame

    api = api_for(people["maintainer"])
    for i, name in enumerate(
        [
            "../../../etc/passwd.csv",
            "<script>x</script>.csv",
            "C:\\Windows\\evil.csv",
            "a" * 300 + ".csv",
        ]
    ):
        response = api.post(
            "/api/v1/datasets/",
            {
                "name": f"n{i}",
                "target_column": "y",
                "file": ContentFile(toy_frame().to_csv(index=False).encode(), name=name),
            },
            format="multipart",
        )
        assert response.status_code == 201, response.content
        stored = Dataset.objects.get(pk=response.json()["id"])
        assert re.fullmatch(r"datasets/[0-9a-f]{32}\.csv", stored.file.name), stored.file.name
        assert Path(stored.file.path).resolve().is_relative_to(Path(settings.MEDIA_ROOT).resolve())
        assert "/" not in stored.original_filename and stored.original_filename[:2] != ".."
    response = api.post(
        "/api/v1/model-versions/",
        {
            "ml_model": ml_model.pk,
            "version": "1",
            "artifact": skops_upload(fitted_model(), name="../../model.pkl"),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    stored = ModelVersion.objects.get(pk=response.json()["id"])
    assert re.fullmatch(r"artifacts/[0-9a-f]{32}\.skops", stored.artifact.name)
    assert stored.artifact_format == "skops"  # judged by content, not by ".pkl"


@pytest.mark.django_db
def test_uploads_are_judged_by_content_not_by_name(people):
    import io

    from django.core.files.base import ContentFile

    from registry.models import Dataset

    from .factories import api_for, toy_frame

    api = api_for(people["contributor"])
    buffer = io.BytesIO()
    toy_frame().to_parquet(buffer)
    response = api.post(
        "/api/v1/datasets/",
        {
            "name": "parquet-named-csv",
            "target_column": "y",
            "file": ContentFile(buffer.getvalue(), name="table.csv"),
        },
        format="multipart",
    )
    assert response.status_code == 201 and response.json()["file_format"] == "parquet"
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
    response = api.post(
        "/api/v1/datasets/",
        {
            "name": "png-named-csv",
            "target_column": "y",
            "file": ContentFile(png, name="t.csv"),
        },
        format="multipart",
    )
    assert response.status_code == 400 and "neither CSV nor Parquet" in response.content.decode()
    assert Dataset.objects.filter(name="png-named-csv").count() == 0


@pytest.mark.django_db
def test_an_artifact_over_the_limit_is_refused(people, ml_model, settings):
    from registry.models import ModelVersion

    from .factories import api_for, fitted_model, skops_upload

    settings.UPLOAD_MAX_BYTES = 1000
    response = api_for(people["maintainer"]).post(
        "/api/v1/model-versions/",
        {
            "ml_model": ml_model.pk,
            "version": "1",
            "artifact": skops_upload(fitted_model()),
        },
        format="multipart",
    )
    assert response.status_code in (400, 413)
    assert "limit is" in response.content.decode()
    assert ModelVersion.objects.count() == 0


@pytest.mark.django_db
def test_an_oversized_body_gets_413_before_it_is_read(people, ml_model, settings):
    import json

    from catalog.models import Finding

    from .factories import api_for

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"title": "t" * 20_000, "ml_model": ml_model.pk})
    response = api_for(people["contributor"]).generic(
        "POST", "/api/v1/findings/", body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["detail"].endswith("the limit is 10000 bytes.")
    page = client_for(people["contributor"]).post(
        "/catalog/findings/new/",
        "title=" + "t" * 20_000,
        content_type="application/x-www-form-urlencoded",
    )
    assert page.status_code == 413 and b"limit is 10000 bytes" in page.content
    # Text fields of a multipart form are held to the same limit by Django itself.
    page = client_for(people["contributor"]).post("/catalog/findings/new/", {"title": "t" * 20_000})
    assert page.status_code == 400
    assert Finding.objects.count() == 0
    settings.UPLOAD_MAX_BYTES = 1000
    response = api_for(people["contributor"]).generic(
        "POST",
        "/api/v1/datasets/",
        b"x" * (1024 * 1024 + 2000),
        content_type="multipart/form-data; boundary=zzz",
    )
    assert response.status_code == 413


# --- artifacts that would run code are refused without running it ------------------------

SENTINEL_ENV = "BOUNDARY_LEDGER_TEST_SENTINEL"


def touch_sentinel(*args, **kwargs):
    """What a malicious artifact would run on load: it leaves a file behind."""
    Path(os.environ[SENTINEL_ENV]).write_text("executed")
    return args[0] if args else None


class Booby:
    def __reduce__(self):
        return (touch_sentinel, ("pickle",))

    def __setstate__(self, state):
        touch_sentinel()


@pytest.fixture
def sentinel(tmp_path, monkeypatch):
    path = tmp_path / "executed.txt"
    monkeypatch.setenv(SENTINEL_ENV, str(path))
    yield path
    assert not path.exists(), "a malicious artifact ran code"


@pytest.mark.django_db(transaction=True)
def test_a_pickle_upload_is_refused_and_never_unpickled(people, ml_model, sentinel):
    import pickle

    from django.core.files.base import ContentFile

    from registry.models import ModelVersion

    from .factories import api_for

    blob = pickle.dumps(Booby())
    for name in ("model.skops", "model.pkl", "model.joblib"):
        response = api_for(people["maintainer"]).post(
            "/api/v1/model-versions/",
            {
                "ml_model": ml_model.pk,
                "version": name,
                "artifact": ContentFile(blob, name=name),
            },
            format="multipart",
        )
        assert response.status_code == 400
        assert "Pickle/joblib artifacts are refused" in response.content.decode()
    assert ModelVersion.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def store_unchecked(ml_model, blob, version):
    """An artifact stored as registration did before it checked types (or slipped past it):
    the file under a generated name, its sha256, and a rerun of the model's probes."""
    import hashlib

    from django.core.files.base import ContentFile

    from core.uploads import store_upload
    from probes.models import Rerun
    from registry.models import ModelVersion

    mv = ModelVersion(
        ml_model=ml_model,
        version=version,
        artifact_format="skops",
        artifact_sha256=hashlib.sha256(blob).hexdigest(),
    )
    store_upload(mv.artifact, ContentFile(blob, name="m.skops"))
    mv.save()
    Rerun.queue(mv, trigger="registration")
    return mv


def evil_pipeline(command="true"):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from .factories import fitted_model

    return Pipeline(
        [
            ("boom", FunctionTransformer(func=touch_sentinel)),
            ("sys", FunctionTransformer(func=os.system, kw_args={"command": command})),
            ("model", fitted_model()),
        ]
    )


def test_a_skops_artifact_with_untrusted_code_is_refused_at_registration(
    people, ml_model, probe, sentinel
):
    """Registration reads the skops file's type list (never loading it) and refuses an
    untrusted one by name: nothing is stored, no run is queued."""
    import skops.io as sio
    from django.core.files.base import ContentFile

    from probes.models import ProbeRun
    from registry.models import ModelVersion

    from .factories import api_for

    response = api_for(people["maintainer"]).post(
        "/api/v1/model-versions/",
        {
            "ml_model": ml_model.pk,
            "version": "evil",
            "artifact": ContentFile(sio.dumps(evil_pipeline()), name="m.skops"),
        },
        format="multipart",
    )
    assert response.status_code == 400, response.content
    message = response.json()["artifact"][0]
    assert "untrusted types" in message and "touch_sentinel" in message
    assert "system" in message
    assert not ModelVersion.objects.filter(version="evil").exists()
    assert not ProbeRun.objects.filter(model_version__version="evil").exists()


def test_a_stored_artifact_with_untrusted_code_is_refused_by_the_worker(
    people, ml_model, probe, sentinel, django_capture_on_commit_callbacks
):
    """An artifact that got past registration (stored before types were checked there) is
    still refused when the worker would load it: the run errors, naming the types."""
    import skops.io as sio

    from probes.models import ProbeRun

    with django_capture_on_commit_callbacks(execute=True):
        mv = store_unchecked(ml_model, sio.dumps(evil_pipeline()), "evil")
    run = ProbeRun.objects.get(model_version=mv)
    assert run.status == "error" and run.passed is None
    assert "untrusted types" in run.error
    assert "touch_sentinel" in run.error and "system" in run.error
