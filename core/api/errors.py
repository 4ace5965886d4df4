"""API error shape: JSON with field-level messages, and domain errors mapped to HTTP."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..uploads import DISK_FULL_ERRNOS, InsufficientStorage
from ..workflow import TransitionError

DISK_FULL_MESSAGE = (
    "Not enough disk space on the server to store the upload; nothing was saved. "
    "Ask an administrator to free space, then try again."
)


def exception_handler(exc, context):
    if isinstance(exc, TransitionError):
        return Response({"detail": str(exc)}, status=exc.status_code)
    if isinstance(exc, InsufficientStorage):
        data = _validation_data(exc)
        data["detail"] = next(iter(exc.messages), DISK_FULL_MESSAGE)
        return Response(data, status=status.HTTP_507_INSUFFICIENT_STORAGE)
    if isinstance(exc, DjangoValidationError):
        return Response(_validation_data(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        # e.g. the upload's temporary file while the request is read
        return Response({"detail": DISK_FULL_MESSAGE}, status=status.HTTP_507_INSUFFICIENT_STORAGE)
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is restarting or unreachable: nothing was written; say when to retry.
        return Response(
            {"detail": "The database is unavailable; nothing was saved. Retry in a few seconds."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    return drf_exception_handler(exc, context)


def _validation_data(exc):
    if hasattr(exc, "error_dict"):
        return {k: [m for e in v for m in e.messages] for k, v in exc.error_dict.items()}
    return {"non_field_errors": exc.messages}
