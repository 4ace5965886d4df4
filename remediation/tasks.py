"""Remediation's scheduled work: accepted risks that expire.

Task entry points are named by path in stored schedules (remediation/migrations/
0005_risk_expiry_schedule.py): keep `expire_accepted_risks` where it is.
"""

import logging

from django.conf import settings
from django.core.mail import send_mass_mail
from django.utils import timezone

from catalog.choices import FindingStatus
from catalog.models import Finding
from core.workflow import SYSTEM, TransitionError

from .models import Notification
from .notify import recipients_for

log = logging.getLogger(__name__)


def expire_accepted_risks(today=None):
    """Every accepted risk whose `accepted_until` is today or earlier moves back to open
    (by the system, with the expiry in the audit note), and its people are told: the
    finding's owner and reporter, its actions' reviewers and the reviewer group, in the app
    and by e-mail. A finding someone else moved meanwhile is left alone. Returns the ids
    of the findings reopened."""
    today = today or timezone.localdate()
    reopened = []
    for finding in Finding.objects.risk_expired(today).select_related("reporter"):
        until = finding.accepted_until
        try:
            finding.transition_to(
                FindingStatus.OPEN,
                by=SYSTEM,
                expected=FindingStatus.ACCEPTED_RISK,
                note=f"The risk acceptance expired on {until.isoformat()}: the finding is "
                "open again.",
            )
        except TransitionError:
            continue  # moved by someone else since the query: theirs stands
        notify_risk_expired(finding, until)
        reopened.append(finding.pk)
    return reopened


def notify_risk_expired(finding, until):
    subject = " ".join(f"Risk acceptance expired: {finding.title}".split())
    url = settings.SITE_URL.rstrip("/") + finding.get_absolute_url()
    body = (
        f"The accepted risk of “{finding.title}” expired on {until.isoformat()}; the finding "
        f"is open again and needs a decision: remediate it or accept the risk anew.\n{url}\n"
    )
    people = {user.pk: user for user in recipients_for(finding)}
    if finding.reporter is not None and finding.reporter.is_active:
        people.setdefault(finding.reporter.pk, finding.reporter)
    Notification.objects.bulk_create(
        [
            Notification(
                recipient=user,
                finding=finding,
                subject=subject[:200],
                body=body,
                url=finding.get_absolute_url(),
            )
            for user in people.values()
        ]
    )
    # A mail server that is down must not undo the expiry itself: logged, not raised.
    try:
        send_mass_mail(
            [
                (subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
                for user in people.values()
                if user.email
            ]
        )
    except Exception:
        log.exception("risk-expiry e-mail for finding %s could not be sent", finding.pk)
