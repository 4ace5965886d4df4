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
    response = elsewhere.post("/login/", {"username": "alice", "password": "pw-alice"},
                              REMOTE_ADDR="10.9.8.7")
    assert response.status_code == 302


@pytest.mark.django_db
def test_one_address_cannot_spray_many_usernames(people, fresh_cache, settings):
    settings.LOGIN_FAILURE_LIMIT_PER_IP = 8
    client = client_for(None)
    for i in range(8):
        client.post("/login/", {"username": f"guess{i}", "password": "wrong"})
    assert client.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 429


@pytest.mark.django_db
def test_the_admin_sign_in_is_throttled_too(people, fresh_cache):
    client = client_for(None)
    for _ in range(5):
        assert client.post("/admin/login/", {"username": "admin", "password": "no"}).status_code \
            == 200
    response = client.post("/admin/login/", {"username": "admin", "password": "pw-admin"})
    assert response.status_code == 429


def test_redis_url_puts_the_throttle_counters_in_redis():
    code = ("import os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings';"
            "from django.conf import settings; c=settings.CACHES['default'];"
            "print(c['BACKEND'], c.get('LOCATION'))")
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:6379/5"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60).stdout.split()
    assert out == ["django.core.cache.backends.redis.RedisCache", "redis://127.0.0.1:6379/5"]
    env["REDIS_URL"] = ""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60).stdout.split()
    assert out[0] == "django.core.cache.backends.locmem.LocMemCache"
