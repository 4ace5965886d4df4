"""Datasets within bounds (DESIGN.md, "Model artifacts are code"; "Data profiles and
drift"): rows and cells bounded and checked from the Parquet footer before decoding, a
ragged CSV and duplicate column names refused, every per-column check linear; the dataset
page shows its first rows from what was stored at upload, never from the file."""

import io
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from boundary import tables
from registry.models import Dataset

pytestmark = pytest.mark.django_db


def upload(people, content, *, name="limits", target="y", **kwargs):
    if isinstance(content, bytes):
        content = ContentFile(content, name="table.bin")
    return Dataset.create_from_upload(
        content, name=name, target_column=target, by=people["contributor"], **kwargs
    )


def refusal(people, content, **kwargs):
    with pytest.raises(ValidationError) as caught:
        upload(people, content, **kwargs)
    assert Dataset.objects.count() == 0
    return " ".join(caught.value.message_dict["file"])


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if the table is decoded into a DataFrame."""

    def refuse(*args, **kwargs):
        raise AssertionError("the table was decoded before it was checked")

    monkeypatch.setattr(tables, "read_table", refuse)
    monkeypatch.setattr(pd, "read_parquet", refuse)
    monkeypatch.setattr(pd, "read_csv", refuse)


def parquet_of(table, **kwargs):
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **kwargs)
    return buffer.getvalue()


def twenty_million_rows():
    """A Parquet file of 20,000,000 rows of one repeated value, dictionary- and
    run-length-encoded in row groups: a few hundred kilobytes."""
    chunk = pa.table(
        {
            "x": pa.array(np.zeros(1_000_000, dtype=np.int64)),
            "y": pa.array(np.zeros(1_000_000, dtype=np.int8)),
        }
    )
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, chunk.schema, use_dictionary=True, compression="zstd") as writer:
        for _ in range(20):
            writer.write_table(chunk, row_group_size=1_000_000)
    return buffer.getvalue()


# ----------------------------------------------------------------- rows and cells


def test_it_refuses_a_small_parquet_that_decodes_to_too_many_rows_from_its_footer(
    people, no_decoding
):
    data = twenty_million_rows()
    assert len(data) < 1_000_000
    tracemalloc.start()
    try:
        message = refusal(people, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message == (
        "The table has 20,000,000 rows and 2 columns; the limit is "
        "2,000,000 rows (DATASET_MAX_ROWS)."
    )
    assert peak < 20 * 1024 * 1024, peak  # 20 M rows of int64 alone would be 160 MB


def test_it_refuses_a_parquet_over_the_cell_limit_from_its_footer(people, settings, no_decoding):
    settings.DATASET_MAX_CELLS = 1_000
    wide = pa.table({f"c{i}": pa.array(np.arange(60)) for i in range(20)})
    message = refusal(people, parquet_of(wide), target="c0")
    assert message == (
        "The table has 60 rows and 20 columns (1,200 cells); the limit is "
        "1,000 cells (DATASET_MAX_CELLS)."
    )


def test_the_limits_are_read_from_the_environment():
    import os
    import subprocess
    import sys

    script = "import config.settings as s; print(s.DATASET_MAX_ROWS, s.DATASET_MAX_CELLS)"
    for env, expected in [
        ({}, "2000000 50000000"),
        ({"DATASET_MAX_ROWS": "123", "DATASET_MAX_CELLS": "4567"}, "123 4567"),
    ]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DATASET_MAX_")}
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=dict(clean, **env),
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.split() == expected.split()


def csv_rows(n, columns=("a", "b", "y")):
    lines = [",".join(columns)] + [",".join(str(i) for _ in columns) for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("max_rows", "max_cells", "rows", "message"),
    [
        (
            100,
            None,
            101,
            "The table has more than 100 rows; the limit is 100 rows (DATASET_MAX_ROWS).",
        ),
        (
            100,
            None,
            5_000,
            "The table has more than 100 rows; the limit is 100 rows (DATASET_MAX_ROWS).",
        ),
        (
            None,
            60,
            21,
            "The table has more than 20 rows and 3 columns (more than 60 "
            "cells); the limit is 60 cells (DATASET_MAX_CELLS).",
        ),
    ],
    ids=["one-row-over", "far-over", "cells-over"],
)
def test_it_refuses_a_csv_over_the_limits_while_counting(
    people, settings, no_decoding, max_rows, max_cells, rows, message
):
    if max_rows is not None:
        settings.DATASET_MAX_ROWS = max_rows
    if max_cells is not None:
        settings.DATASET_MAX_CELLS = max_cells
    assert refusal(people, csv_rows(rows)) == message


@pytest.mark.parametrize(
    ("max_rows", "max_cells", "rows"), [(100, 10**9, 100), (10**9, 60, 20)], ids=["rows", "cells"]
)
def test_it_accepts_a_csv_exactly_at_the_limits(people, settings, max_rows, max_cells, rows):
    settings.DATASET_MAX_ROWS, settings.DATASET_MAX_CELLS = max_rows, max_cells
    dataset = upload(people, csv_rows(rows))
    assert dataset.row_count == rows
    settings.DATASET_MAX_ROWS = rows - 1
    message = refusal_of_second_upload(people, csv_rows(rows))
    assert "the limit is" in message


def refusal_of_second_upload(people, data):
    with pytest.raises(ValidationError) as caught:
        upload(people, data, name="second")
    return " ".join(caught.value.message_dict["file"])


# ----------------------------------------------------------------- ragged CSV


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # pandas reads the extra leading field as the index and shifts every column.
        (
            "a,b,y\n1,2,3,0\n4,5,6,1\n",
            "Row 2 of the file (the header is row 1) has 4 fields where the header has 3",
        ),
        # pandas pads the short row with a missing value.
        (
            "a,b,y\n1,2,0\n4,5\n6,7,1\n",
            "Row 3 of the file (the header is row 1) has 2 fields where the header has 3",
        ),
        (
            "a,b,y\n1,2,0\n4,5,1\n6,7,0\n8,9,1,extra\n",
            "Row 5 of the file (the header is row 1) has 4 fields where the header has 3",
        ),
        (
            "a,b,y\n1,2,0,\n3,4,1,\n",
            "Row 2 of the file (the header is row 1) has 4 fields where the header has 3",
        ),
        (
            "a,b,y\r\n1,2,0\r\n3\r\n",
            "Row 3 of the file (the header is row 1) has 1 field where the header has 3",
        ),
        (
            'a,b,y\n"x\ny",2,0\n3,4\n',
            "Row 3 of the file (the header is row 1) has 2 fields where the header has 3",
        ),
    ],
    ids=[
        "first-row-one-too-many",
        "short-row",
        "long-row-later",
        "trailing-delimiter",
        "crlf-short-row",
        "after-a-quoted-newline",
    ],
)
def test_it_refuses_a_ragged_csv_with_the_row_number(people, text, message):
    refused = refusal(people, text.encode())
    assert refused.startswith(message), refused


def test_blank_lines_quoted_commas_and_newlines_are_not_ragged(people):
    """A regular CSV passes the row check (pandas then decodes it as before); a short row
    after it does not."""
    text = 'a,b,y\n1,"x, y",0\n\n   \n2,"two\nlines",1\n3,"""q""",0'
    dataset = upload(people, text.encode())
    assert dataset.row_count == 3
    assert dataset.read()["b"].tolist() == ["x, y", "two\nlines", '"q"']
    assert refusal_of_second_upload(people, b"a,b,y\n1,2,0\n3,4\n").startswith("Row 3")


# ----------------------------------------------------------------- column names


@pytest.mark.parametrize(
    ("header", "duplicates"),
    [(["a", "b", "a", "y"], "a"), (["y", "b", "b", "y", "c"], "b, y")],
    ids=["one", "two"],
)
def test_it_refuses_duplicate_csv_column_names_before_decoding(
    people, no_decoding, header, duplicates
):
    text = ",".join(header) + "\n" + ",".join("1" for _ in header) + "\n"
    assert refusal(people, text.encode()) == (
        f"The table has duplicate column names: {duplicates}."
    )


def test_it_refuses_duplicate_parquet_column_names_before_decoding(people, no_decoding):
    table = pa.table([pa.array([1, 2]), pa.array([3, 4]), pa.array([0, 1])], names=["x", "x", "y"])
    assert refusal(people, parquet_of(table)) == "The table has duplicate column names: x."


def wide_header(n, *, repeat=None):
    names = [f"c{i}" for i in range(n)] + ["y"]
    if repeat is not None:
        names[-2] = repeat
    return names


def test_a_20000_column_header_with_a_repeat_is_refused_before_decoding(people, no_decoding):
    names = wide_header(20_000, repeat="c7")
    text = ",".join(names) + "\n" + ",".join("1" for _ in names) + "\n"
    assert refusal(people, text.encode()) == "The table has duplicate column names: c7."


def test_a_20000_column_table_is_accepted_up_to_the_cell_limit(people, settings):
    names = wide_header(20_000)
    row = ",".join("1" for _ in names)
    settings.DATASET_MAX_CELLS = 3 * len(names)
    sensitive = names[:5000:2]
    text = ",".join(names) + "\n" + "\n".join([row] * 3) + "\n"
    dataset = upload(
        people,
        SimpleUploadedFile("wide.csv", text.encode()),
        sensitive_columns=sensitive,
        ignored_columns=names[1:5000:2],
    )
    assert dataset.row_count == 3 and len(dataset.columns) == 20_001
    assert dataset.sensitive_columns == sensitive
    assert dataset.ignored_columns == names[1:5000:2]
    text += row + "\n"
    assert refusal_of_second_upload(people, text.encode()) == (
        "The table has more than 3 rows and 20,001 columns (more than 60,003 cells); the "
        "limit is 60,003 cells (DATASET_MAX_CELLS)."
    )


def test_duplicates_are_counted_not_compared_pairwise():
    names = [f"c{i}" for i in range(200_000)] + ["c5", "c9", "c5"]
    assert tables.duplicate_names(names) == ["c5", "c9"]
