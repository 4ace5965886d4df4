"""What the catalog's own tables alone decide, kept per web process until they change.

The database moves the catalog's version (`CatalogVersion`: an epoch drawn when its row
is created and a number) on every write to the findings, the tags, the links between
them and the ML models, by triggers, whoever writes. A page of the findings API with no
filter that reads another table is a function of those tables and of its URL (so is
the catalog page's body, catalog.views.CARDS): `ListPages` keeps its
rendered bytes with the version they were computed at and answers the same URL again
while the version has not moved, without searching or serializing anything.

Inside a transaction the version is not read (None): the transaction may see its own
writes, and a rollback would take them back while another write reuses their number.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from django.db import DatabaseError, connections

Version = tuple[str, int]


def version(using: str = "default") -> Version | None:
    """The catalog's committed version, or None when it cannot key anything (inside a
    transaction, or no row yet)."""
    connection = connections[using]
    if connection.in_atomic_block:
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT epoch, number FROM catalog_catalogversion WHERE id = 1")
            row = cursor.fetchone()
    except DatabaseError:  # not migrated yet: nothing is kept
        return None
    return (row[0], int(row[1])) if row else None


class Page:
    """A rendered response or part of one (bytes, or the SafeString a template rendered):
    its content, content type and entity tag."""

    __slots__ = ("content", "content_type", "etag")

    def __init__(self, content: bytes | str, content_type: str):
        self.content = content
        self.content_type = content_type
        raw = content.encode() if isinstance(content, str) else content
        self.etag = '"' + hashlib.blake2b(raw, digest_size=16).hexdigest() + '"'


class ListPages:
    """At most `size` pages, each under its key with the version it was computed at;
    the least recently used goes first. Shared by the threads of one process."""

    def __init__(self, size: int):
        self.size = size
        self._pages: OrderedDict[tuple, tuple[Version, Page]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, at: Version) -> Page | None:
        with self._lock:
            kept = self._pages.get(key)
            if kept is None or kept[0] != at:
                return None
            self._pages.move_to_end(key)
            return kept[1]

    def put(self, key: tuple, at: Version, page: Page) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._pages[key] = (at, page)
            self._pages.move_to_end(key)
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
