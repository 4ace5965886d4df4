"""Logging helpers: a routine refusal or a missing page is one line, not a traceback."""

import logging


class OneLineClientErrors(logging.Filter):
    """Turn django.request's records of 4xx answers (PermissionDenied, Http404, a CSRF
    failure...) into one line, `403 GET /path user=name: Forbidden (Permission denied)`,
    without the traceback: they are what a server answers every day, not faults. Records
    of 5xx answers keep their traceback."""

    def filter(self, record):
        status = getattr(record, "status_code", None)
        request = getattr(record, "request", None)
        if status is None or not 400 <= status < 500 or request is None:
            return True
        if not getattr(record, "one_line", False):  # a record may pass here twice
            reason = record.getMessage().split(":", 1)[0]
            record.msg = "%s %s %s user=%s: %s"
            record.args = (status, request.method, request.path, _who(request), reason)
            record.exc_info = record.exc_text = None
            record.one_line = True
        return True


def _who(request):
    user = getattr(request, "user", None)  # absent when a middleware refused the request
    try:
        if user is not None and user.is_authenticated:
            return user.get_username()
    except Exception:  # noqa: BLE001 - a log line never fails the request it describes
        return "?"
    return "anonymous" if user is not None else "-"
