from django.conf import settings
from django.core.checks import Error, register


@register()
def task_timeout_below_retry(app_configs, **kwargs):
    """django-q2 hands a task to another worker after `retry` seconds; if that is not
    longer than `timeout`, a slow rerun runs twice at once."""
    q = getattr(settings, "Q_CLUSTER", {})
    timeout, retry = q.get("timeout"), q.get("retry")
    if timeout is None or retry is None or retry <= timeout:
        return [
            Error(
                f"Q_CLUSTER retry ({retry}) must be greater than timeout ({timeout}).",
                hint="Set Q_RETRY above Q_TIMEOUT (for example timeout 600, retry 720).",
                id="probes.E001",
            )
        ]
    return []
