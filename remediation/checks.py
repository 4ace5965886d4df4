from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def webhooks_are_signed(app_configs, **kwargs):
    """A webhook signed with an empty key proves nothing to its receiver: deliveries need
    WEBHOOK_SECRET (and are refused without it, see remediation/notify.py)."""
    if settings.WEBHOOK_URLS and not settings.WEBHOOK_SECRET:
        return [
            Error(
                "WEBHOOK_URLS is set but WEBHOOK_SECRET is empty: receivers could not tell "
                "a regression notice from a forged one.",
                hint="Set WEBHOOK_SECRET to a long random value shared with each receiver.",
                id="remediation.E001",
            )
        ]
    return []
