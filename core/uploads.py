"""Storing uploaded files: a generated name, no partial file left behind, a full disk
reported as such, stored files that never change, and a duplicate upload turned into the
same clear message as the check before it."""

import contextlib
import errno
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models

# errno values that mean the disk is full: no space left, quota exceeded, file too large.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class InsufficientStorage(ValidationError):
    """An upload could not be written because the disk (or a quota) is full. Nothing was
    kept; forms show the message, the API answers 507."""


def store_upload(fieldfile, content):
    """Write an upload under a generated name. On any failure the partial file is
    removed; a full disk becomes InsufficientStorage naming the field."""
    field = fieldfile.field
    name = field.generate_filename(fieldfile.instance, "upload")
    try:
        fieldfile.name = fieldfile.storage.save(name, content, max_length=field.max_length)
    except OSError as exc:
        with contextlib.suppress(OSError):
            fieldfile.storage.delete(name)
        if exc.errno in DISK_FULL_ERRNOS:
            raise InsufficientStorage(
                {
                    field.name: "Not enough disk space on the server to store this file; "
                    "nothing was saved. Ask an administrator to free space, then upload "
                    "it again."
                }
            ) from exc
        raise
    setattr(fieldfile.instance, field.attname, fieldfile.name)
    fieldfile._committed = True


@contextlib.contextmanager
def refuse_duplicate(taken, message):
    """Turn the unique constraint's IntegrityError into the same clear message as the check
    before it: two uploads of one version at the same moment both pass that check."""
    try:
        yield
    except IntegrityError as exc:
        if taken.exists():
            raise ValidationError(message) from exc
        raise


if TYPE_CHECKING:
    _ModelBase = models.Model
else:
    _ModelBase = object  # a plain mixin at run time: migrations name it as a base


class ImmutableFileMixin(_ModelBase):
    """Refuses to change the stored file or its hash once the row exists."""

    immutable_fields: tuple[str, ...] = ()

    def save(self, *args, **kwargs):
        if not self._state.adding and self.pk:
            stored = (
                type(self)
                ._default_manager.filter(pk=self.pk)
                .values(*self.immutable_fields)
                .first()
            )
            if stored:
                for name in self.immutable_fields:
                    value: Any = getattr(self, name)
                    value = value.name if hasattr(value, "name") else value
                    if stored[name] != value:
                        raise ValidationError(
                            {name: f"{name} cannot change once stored; register a new one."}
                        )
        super().save(*args, **kwargs)
