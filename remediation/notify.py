"""Telling people a fix stopped holding: in the app, by e-mail, and by signed webhook.

Webhook payload (JSON, POST, `Content-Type: application/json`), documented in the README:
    {"event": "finding.regressed", "finding": {"id", "title", "url", "severity",
     "ml_model", "status"}, "failing_run": {"id", "probe", "kind", "value", "threshold",
     "comparator", "model_version"}, "last_held_version": str|null,
     "broke_on_version": str, "sent_at": ISO-8601}

Header `X-Boundary-Signature: sha256=<hex HMAC-SHA256 of the raw body with
WEBHOOK_SECRET>`; `X-Boundary-Event: finding.regressed`; `X-Boundary-Delivery: <uuid>`.
"""

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mass_mail
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from catalog.models import Finding
from core.roles import REVIEWER
from probes.models import ProbeRun

from . import followup  # a cycle by design: followup notifies; used at call time only
from .models import Notification

log = logging.getLogger(__name__)

WEBHOOK_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)  # waits between attempts; 5 attempts in all
WEBHOOK_TIMEOUT_S = 5


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook goes to the configured address or nowhere: a redirect (to an internal
    address, say) is a failed delivery, not a second request."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def recipients_for(finding, version=None):
    """Who hears of a regression (DESIGN.md): the finding's owner, the owners and named
    reviewers of its actions, every member of the reviewer group, and whoever registered
    the version it broke on; active users only, each once."""
    User = get_user_model()
    who = (
        Q(pk=finding.owner_id)
        | Q(groups__name=REVIEWER)
        | Q(reviewed_actions__finding=finding)
        | Q(owned_actions__finding=finding)
    )
    if version is not None and version.registered_by_id:
        who |= Q(pk=version.registered_by_id)
    return list(User.objects.filter(who).filter(is_active=True).distinct())


def regression_payload(finding, run):
    last_held = followup.last_held_version(finding, before=run.model_version)
    return {
        "event": "finding.regressed",
        "finding": {
            "id": finding.pk,
            "title": finding.title,
            "url": settings.SITE_URL.rstrip("/") + finding.get_absolute_url(),
            "severity": finding.severity,
            "ml_model": finding.ml_model.slug,
            "status": finding.status,
        },
        "failing_run": {
            "id": run.pk,
            "probe": run.probe_id,
            "kind": run.probe.kind,
            "value": run.value,
            "threshold": run.probe.threshold,
            "comparator": run.probe.comparator,
            "model_version": str(run.model_version),
        },
        "last_held_version": str(last_held) if last_held else None,
        "broke_on_version": str(run.model_version),
        "sent_at": timezone.now().isoformat(),
    }


def notify_regression(finding_id, run_id):
    finding = Finding.objects.select_related("ml_model").get(pk=finding_id)
    run = ProbeRun.objects.select_related("probe", "model_version").get(pk=run_id)
    payload = regression_payload(finding, run)
    # A header is one line: a title typed with a line break must not lose the e-mail.
    subject = " ".join(f"Regression: {finding.title} ({run.model_version})".split())
    body = (
        f"The fix for “{finding.title}” no longer holds on {run.model_version}.\n"
        f"Probe #{run.probe_id} ({run.probe.get_kind_display()}) measured {run.value:.4g}; "
        f"the check is {run.probe.comparator} {run.probe.threshold}.\n"
        f"Last held on: {payload['last_held_version'] or 'no earlier version'}.\n"
        f"{payload['finding']['url']}\n"
    )
    people = recipients_for(finding, run.model_version)
    Notification.objects.bulk_create(
        [
            Notification(
                recipient=u,
                finding=finding,
                subject=subject[:200],
                body=body,
                url=finding.get_absolute_url(),
            )
            for u in people
        ]
    )
    # One message per person, so recipients do not see each other's addresses. A mail
    # server that is down must not undo the regression itself: logged, not raised.
    try:
        send_mass_mail(
            [(subject, body, settings.DEFAULT_FROM_EMAIL, [u.email]) for u in people if u.email]
        )
    except Exception:
        log.exception("regression e-mail for finding %s could not be sent", finding_id)
    for url in settings.WEBHOOK_URLS:
        async_task(
            "remediation.notify.deliver_webhook",
            url,
            payload,
            task_name=f"webhook-{finding_id}-{run_id}",
            sync=settings.TASKS_SYNC,
        )


def deliver_webhook(url, payload):
    """POST the payload, signed; retry with exponential backoff on failure.

    Returns the HTTP status of the accepted delivery; raises after the last attempt so the
    task is recorded as failed.
    """
    if not settings.WEBHOOK_SECRET:
        raise RuntimeError(
            "WEBHOOK_SECRET is empty: webhooks are not sent unsigned "
            "(manage.py check --deploy says so too)."
        )
    body = json.dumps(payload, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "BoundaryLedger-Webhook/1",
        "X-Boundary-Event": payload.get("event", ""),
        "X-Boundary-Delivery": str(uuid.uuid4()),
        "X-Boundary-Signature": sign(body, settings.WEBHOOK_SECRET),
    }
    if not url.lower().startswith(("https://", "http://")):
        raise ValueError(f"webhook URL must be http(s): {url!r}")
    last_error = None
    for attempt, wait in enumerate((0.0,) + WEBHOOK_BACKOFF_S, start=1):
        if wait:
            time.sleep(wait)
        # The scheme is checked above: only http(s) URLs from the settings are opened.
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with _OPENER.open(request, timeout=WEBHOOK_TIMEOUT_S) as response:
                if 200 <= response.status < 300:
                    return response.status
                last_error = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}" + (
                " (redirects are not followed)" if 300 <= exc.code < 400 else ""
            )
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        log.warning("webhook %s attempt %d failed: %s", url, attempt, last_error)
    raise RuntimeError(f"webhook {url} failed after {attempt} attempts: {last_error}")
