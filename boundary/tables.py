"""Reading and checking uploaded tables (CSV or Parquet), free of Django.

A table is checked before pandas decodes it: a small compressed file can decode to a table
far larger than itself, and a ragged CSV decodes without an error into the wrong table. So
the Parquet footer gives the rows and columns before any page is read, and a CSV is counted
row by row with Arrow's parser, stopping as soon as it is past the limit, refusing a row with
more or fewer fields than the header. Every check on the columns is linear in their number.
"""

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from .slices import schema_of

PARQUET_MAGIC = b"PAR1"
# The dataset page shows this many first rows (DESIGN.md: pages never re-read the file).
PREVIEW_ROWS = 20
# Arrow reads a CSV in blocks of this size; a row longer than a block is read again with
# the whole file as one block.
_CSV_BLOCK = 1 << 20


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
    # The first rows as the dataset page shows them (see table_preview).
    preview: dict = field(default_factory=dict)


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
    upload.seek(0)
    first = upload.readline()
    upload.seek(0)
    text = first.decode("utf-8-sig", errors="replace") if isinstance(first, bytes) else first
    return next(csv.reader([text]), [])


def duplicate_names(names: Iterable) -> list[str]:
    """The names that occur more than once, sorted (a Counter: linear in the names)."""
    return sorted(str(name) for name, count in Counter(names).items() if count > 1)


def _refuse_duplicates(names):
    duplicates = duplicate_names(names)
    if duplicates:
        raise DatasetError(f"The table has duplicate column names: {', '.join(duplicates)}.")


def _refuse_shape(rows, columns, *, max_rows, max_cells, exact=True):
    """Refuse more than `max_rows` rows or `max_cells` cells (None: no limit). With `exact`
    false, `rows` is how far counting went before it stopped past a limit."""
    more = "" if exact else "more than "
    if max_rows is not None and rows > max_rows:
        shape = f"{rows:,} rows and {columns:,} columns" if exact else f"{more}{max_rows:,} rows"
        raise DatasetError(
            f"The table has {shape}; the limit is {max_rows:,} rows (DATASET_MAX_ROWS)."
        )
    if max_cells is not None and rows * columns > max_cells:
        counted = rows if exact else max_cells // max(columns, 1)
        raise DatasetError(
            f"The table has {more}{counted:,} rows and {columns:,} columns "
            f"({more}{counted * columns:,} cells); the limit is {max_cells:,} cells "
            "(DATASET_MAX_CELLS)."
        )


def _check_parquet(upload, *, max_rows, max_cells):
    """Rows, columns and column names from the Parquet footer, before any page is decoded.

    The cells counted are rows x the file's columns (an index pandas stored included)."""
    upload.seek(0)
    try:
        parquet = pq.ParquetFile(upload)
        rows, columns = parquet.metadata.num_rows, parquet.metadata.num_columns
        names = [str(name) for name in parquet.schema_arrow.names]
    except Exception as exc:  # a corrupt footer: pyarrow raises several kinds
        raise DatasetError(f"The file could not be read as PARQUET: {exc}") from exc
    finally:
        upload.seek(0)
    _refuse_shape(rows, columns, max_rows=max_rows, max_cells=max_cells)
    _refuse_duplicates(names)


def _count_csv_rows(upload, size, *, limit):
    """The CSV's data rows, counted with Arrow's parser (blank lines skipped, as pandas does);
    counting stops once past `limit` (None: no limit). A row with more or fewer fields than
    the header is refused with its row number: pandas would read one field too many as the
    index, or pad a short row with missing values, without a word."""
    invalid = []

    def on_invalid(row):
        if not row.text.strip():
            return "skip"  # a line of spaces is a blank line to pandas
        invalid.append(row)
        return "error"

    block = _CSV_BLOCK
    while True:
        upload.seek(0)
        rows = -1  # the header is the first row Arrow reads
        try:
            reader = pa_csv.open_csv(
                upload,
                read_options=pa_csv.ReadOptions(
                    autogenerate_column_names=True, use_threads=False, block_size=block
                ),
                parse_options=pa_csv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=on_invalid
                ),
                # Only the first column is converted (as text): the parse checks every row.
                convert_options=pa_csv.ConvertOptions(
                    include_columns=["f0"], column_types={"f0": pa.string()}
                ),
            )
            for batch in reader:
                rows += batch.num_rows
                if limit is not None and rows > limit:
                    break
            return rows
        except pa.ArrowInvalid as exc:
            if invalid:
                row = invalid[0]
                fields = "field" if row.actual_columns == 1 else "fields"
                raise DatasetError(
                    f"Row {row.number} of the file (the header is row 1) has "
                    f"{row.actual_columns} {fields} where the header has "
                    f"{row.expected_columns}: every row needs one value per column."
                ) from exc
            if "straddl" in str(exc) and block <= size:
                block = size + 1  # a row longer than a block: the file as one block
                continue
            raise DatasetError(f"The file could not be read as CSV: {exc}") from exc
        finally:
            upload.seek(0)


def _check_csv(upload, size, *, max_rows, max_cells):
    header = _csv_header(upload)
    _refuse_duplicates(header)
    if not header:
        return  # pandas says what is wrong with a file without a header
    limit = max_rows
    if max_cells is not None:
        by_cells = max_cells // len(header)
        limit = by_cells if limit is None else min(limit, by_cells)
    rows = _count_csv_rows(upload, size, limit=limit)
    if limit is not None and rows > limit:
        _refuse_shape(rows, len(header), max_rows=max_rows, max_cells=max_cells, exact=False)


def column_schema(df, *, sensitive=(), ignored=()):
    kinds = schema_of(df)
    sensitive, ignored = set(sensitive), set(ignored)
    return [
        {
            "name": str(name),
            "dtype": str(dtype),
            "kind": kinds[name],
            "sensitive": name in sensitive,
            "ignored": name in ignored,
        }
        for name, dtype in df.dtypes.items()
    ]


def table_preview(df, *, hidden=(), rows=PREVIEW_ROWS):
    """What the dataset page shows: the first `rows` rows without the `hidden` (sensitive)
    columns, used in computations but never shown row by row; a missing value is ""."""
    frame = df.head(rows)
    hidden = set(hidden)
    columns = [c for c in frame.columns if c not in hidden]
    shown = frame[columns]
    return {
        "columns": [str(c) for c in columns],
        "hidden": sorted(hidden),
        "rows": shown.astype(object).where(shown.notna(), "").values.tolist(),
    }


def inspect_upload(
    upload,
    *,
    target_column,
    max_bytes,
    max_rows=None,
    max_cells=None,
    sensitive_columns=(),
    ignored_columns=(),
):
    """Check an uploaded table and describe it.

    1. Size: refuse an empty file or one over `max_bytes`.
    2. Format from the content: Parquet by its magic bytes, otherwise UTF-8 text read as CSV.
    3. Before decoding: refuse duplicate column names, more than `max_rows` rows or
       `max_cells` cells (Parquet: from the footer; CSV: counted while parsing, stopping
       past the limit) and a ragged CSV (a row with more or fewer fields than the header).
    4. Parse it; refuse no rows, a missing target column, unknown sensitive/ignored names.
    5. Hash the bytes, infer the column schema and keep the first rows for the page.
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
    if fmt == "parquet":
        _check_parquet(upload, max_rows=max_rows, max_cells=max_cells)
    else:
        _check_csv(upload, size, max_rows=max_rows, max_cells=max_cells)
    try:
        df = read_table(upload, fmt)
    except Exception as exc:  # pandas raises many kinds for a malformed table
        raise DatasetError(f"The file could not be read as {fmt.upper()}: {exc}") from exc
    finally:
        upload.seek(0)
    if df.shape[1] == 0 or len(df) == 0:
        raise DatasetError("The table has no rows.")
    _refuse_shape(len(df), df.shape[1], max_rows=max_rows, max_cells=max_cells)
    names = [str(c) for c in df.columns]
    # pandas renames a repeated CSV header ("x", "x.1"): the raw header was checked above.
    _refuse_duplicates(names)
    df.columns = names
    present = set(names)
    target_column = (target_column or "").strip()
    if not target_column:
        raise DatasetError("A target column is required.", field="target_column")
    if target_column not in present:
        raise DatasetError(
            f"The target column '{target_column}' is not in the file "
            f"(columns: {', '.join(names[:20])}).",
            field="target_column",
        )
    for label, chosen in (("sensitive", sensitive_columns), ("ignored", ignored_columns)):
        unknown = [c for c in chosen if c not in present]
        if unknown:
            raise DatasetError(
                f"The {label} column(s) {', '.join(unknown)} are not in the file.",
                field=f"{label}_columns",
            )
    if target_column in set(ignored_columns):
        raise DatasetError("The target column cannot be ignored.", field="ignored_columns")
    return TableInfo(
        file_format=fmt,
        sha256=digest.hexdigest(),
        size_bytes=size,
        row_count=len(df),
        columns=column_schema(df, sensitive=sensitive_columns, ignored=ignored_columns),
        preview=table_preview(df, hidden=sensitive_columns),
    )
