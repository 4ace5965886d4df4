"""The one CSV writer: every CSV the app hands out is written here.

A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
as a formula (CSV injection), also after leading spaces. Such a text cell is written with a
leading apostrophe, which a spreadsheet shows as text. Numbers stay numbers (`-0.5` is a
number, not a formula); empty values (None, NaN) are empty cells. The text is UTF-8, and
the HTTP answer says so in its content type.
"""

import csv
import io
import math
import numbers

from django.http import HttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CONTENT_TYPE = "text/csv; charset=utf-8"


def safe_cell(value):
    """The value as a spreadsheet should read it: a number stays a number, None and NaN
    are empty, text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Number):
        if isinstance(value, numbers.Real) and math.isnan(value):
            return ""
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) or text.lstrip().startswith(FORMULA_STARTS):
        return "'" + text
    return text


def _write(handle, header, rows):
    writer = csv.writer(handle)
    writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])


def write_csv(header, rows):
    """`rows` (sequences in the order of `header`) as CSV text, every cell made safe."""
    buffer = io.StringIO()
    _write(buffer, header, rows)
    return buffer.getvalue()


def frame_csv(frame):
    """A pandas DataFrame as CSV text (its columns as the header, no index), cells safe."""
    return write_csv(list(frame.columns), frame.itertuples(index=False, name=None))


def csv_response(header, rows, *, filename):
    """An attachment download of `rows`, written row by row into the response."""
    response = HttpResponse(content_type=CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    _write(response, header, rows)
    return response
