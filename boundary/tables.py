"""Reading and checking uploaded tables (CSV or Parquet), free of Django."""

import hashlib
import io
from dataclasses import dataclass

import pandas as pd

from .slices import schema_of

PARQUET_MAGIC = b"PAR1"


class DatasetError(ValueError):
    def __init__(self, message, field="file"):
        super().__init__(message)
        self.field = field


@dataclass
class TableInfo:
    file_format: str
    sha256: str
    size_bytes: int
    row_count: int
    columns: list


def read_table(source, file_format):
    if file_format == "parquet":
        return pd.read_parquet(source)
    return pd.read_csv(source)


def sniff_format(head: bytes):
    """'parquet' or 'csv' from the first bytes; None when it is neither (binary data)."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        if exc.start < len(head) - 4:
            return None
    return "csv"


def _csv_header(upload):
    """The CSV's first row as written, before pandas renames repeated names."""
    import csv

    upload.seek(0)
    first = upload.readline()
    upload.seek(0)
    text = first.decode("utf-8-sig", errors="replace") if isinstance(first, bytes) else first
    return next(csv.reader([text]), [])


def column_schema(df, *, sensitive=(), ignored=()):
    kinds = schema_of(df)
    return [
        {
            "name": str(name),
            "dtype": str(df[name].dtype),
            "kind": kinds[name],
            "sensitive": name in sensitive,
            "ignored": name in ignored,
        }
        for name in df.columns
    ]


def inspect_upload(upload, *, target_column, max_bytes, sensitive_columns=(), ignored_columns=()):
    """Check an uploaded table and describe it.

    1. Size: refuse an empty file or one over `max_bytes`.
    2. Format from the content: Parquet by its magic bytes, otherwise UTF-8 text read as CSV.
    3. Parse it; refuse no rows, a missing target column, unknown sensitive/ignored names.
    4. Hash the bytes and infer the column schema.
    """
    upload.seek(0, io.SEEK_END)
    size = upload.tell()
    upload.seek(0)
    if size == 0:
        raise DatasetError("The file is empty.")
    if size > max_bytes:
        raise DatasetError(f"The file is {size} bytes; the limit is {max_bytes} bytes.")
    fmt = sniff_format(upload.read(4096))
    upload.seek(0)
    if fmt is None:
        raise DatasetError("The file is neither CSV nor Parquet.")
    digest = hashlib.sha256()
    for chunk in iter(lambda: upload.read(1 << 20), b""):
        digest.update(chunk)
    upload.seek(0)
    try:
        df = read_table(upload, fmt)
    except Exception as exc:  # pandas raises many kinds for a malformed table
        raise DatasetError(f"The file could not be read as {fmt.upper()}: {exc}") from exc
    finally:
        upload.seek(0)
    if df.shape[1] == 0 or len(df) == 0:
        raise DatasetError("The table has no rows.")
    names = [str(c) for c in df.columns]
    header = _csv_header(upload) if fmt == "csv" else names
    # pandas renames a repeated CSV header ("x", "x.1"), so the raw header is checked.
    duplicates = sorted({c for c in [*header, *names] if header.count(c) > 1
                         or names.count(c) > 1})
    if duplicates:
        raise DatasetError(f"The table has duplicate column names: {', '.join(duplicates)}.")
    df.columns = names
    target_column = (target_column or "").strip()
    if not target_column:
        raise DatasetError("A target column is required.", field="target_column")
    if target_column not in df.columns:
        raise DatasetError(
            f"The target column '{target_column}' is not in the file "
            f"(columns: {', '.join(names[:20])}).",
            field="target_column",
        )
    for label, chosen in (("sensitive", sensitive_columns), ("ignored", ignored_columns)):
        unknown = [c for c in chosen if c not in df.columns]
        if unknown:
            raise DatasetError(
                f"The {label} column(s) {', '.join(unknown)} are not in the file.",
                field=f"{label}_columns",
            )
    if target_column in ignored_columns:
        raise DatasetError("The target column cannot be ignored.", field="ignored_columns")
    return TableInfo(
        file_format=fmt,
        sha256=digest.hexdigest(),
        size_bytes=size,
        row_count=len(df),
        columns=column_schema(df, sensitive=set(sensitive_columns), ignored=set(ignored_columns)),
    )
