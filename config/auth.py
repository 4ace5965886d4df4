"""Sign-in throttling: after LOGIN_FAILURE_LIMIT failed attempts for one username from one
address within LOGIN_FAILURE_WINDOW_S seconds, further attempts get a 429 page until the
window has passed. A looser per-address limit (LOGIN_FAILURE_LIMIT_PER_IP) stops one
address from trying many usernames.

Counters live in Django's cache: the per-process memory cache by default, Redis when
REDIS_URL is set, so that every web process of a deployment shares them. A successful
sign-in clears the username's counter. The wrapper is used for every password form:
the site's /login/ and the admin's.
"""

import hashlib
from functools import wraps

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.shortcuts import render
from django.utils import timezone


def _limits():
    return (
        getattr(settings, "LOGIN_FAILURE_LIMIT", 5),
        getattr(settings, "LOGIN_FAILURE_LIMIT_PER_IP", 50),
        getattr(settings, "LOGIN_FAILURE_WINDOW_S", 300),
    )


def client_address(request):
    """The address the request came from. Behind TRUSTED_PROXIES proxies (nginx in front of
    gunicorn: 1) every request arrives from the proxy, so the client is the address the
    outermost trusted proxy appended to X-Forwarded-For; anything left of it was written
    by the client and is not believed."""
    hops = getattr(settings, "TRUSTED_PROXIES", 0)
    if hops > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= hops:
            return forwarded[-hops][:64]
    return request.META.get("REMOTE_ADDR") or "unknown"


def _key(*parts):
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()
    return f"login-failures:{digest}"


def throttle_keys(request):
    """(key for this username from this address, key for this address)."""
    address = client_address(request)
    username = str(request.POST.get("username", "")).strip().lower()[:150]
    return _key("user", address, username), _key("ip", address)


def blocked_for(request):
    """Seconds until this request may try again, or 0 when it is not blocked."""
    per_user, per_ip, window = _limits()
    now = timezone.now().timestamp()
    wait = 0
    for key, limit in zip(throttle_keys(request), (per_user, per_ip), strict=True):
        if (cache.get(key) or 0) >= limit:
            first = cache.get(key + ":since") or now
            wait = max(wait, int(first + window - now) + 1)
    return max(wait, 0)


def record_failure(request):
    """Count one failure; the window runs from the first failure and expires with it.
    add + incr keeps the count right when several processes fail at once."""
    _, _, window = _limits()
    now = timezone.now().timestamp()
    for key in throttle_keys(request):
        if cache.add(key + ":since", now, timeout=window):
            cache.set(key, 0, timeout=window)
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr: start a new window
            cache.set(key, 1, timeout=window)


def clear_failures(request):
    key = throttle_keys(request)[0]
    cache.delete_many([key, key + ":since"])


def too_many_attempts(request, wait):
    minutes = max(1, (wait + 59) // 60)
    response = render(
        request,
        "registration/too_many_attempts.html",
        {"wait_seconds": wait, "wait_minutes": minutes},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


def throttled_login(view):
    """Wrap a login view: refuse POSTs while blocked, count failures, clear on success."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        wait = blocked_for(request)
        if wait:
            return too_many_attempts(request, wait)
        response = view(request, *args, **kwargs)
        # A successful sign-in redirects with the user attached to the request.
        signed_in = response.status_code in (301, 302, 303) and request.user.is_authenticated
        if signed_in:
            clear_failures(request)
        else:
            record_failure(request)
        return response

    return wrapped


login_view = throttled_login(auth_views.LoginView.as_view())
