"""Input hygiene: the one set of rules every input passes, whatever carries it (the API's
JSON bodies, the web forms' JSON fields, the CSV import's cells, query parameters).

- JSON: NaN, Infinity and -Infinity are refused (PostgreSQL cannot store them and they
  compare with nothing); nesting deeper than JSON_MAX_DEPTH is refused before Python's
  own recursion limit turns it into a server error.
- Text: the NUL character is refused (PostgreSQL text and JSON cannot hold it).
- Integers: bounded to a signed 64-bit column (SQLite and PostgreSQL both stop there);
  a number with thousands of digits is refused by its length, before Python's own limit on
  converting digits turns it into a server error.
- Ids read from a form or a query (`parse_id`) are whole numbers within those bounds.
- JSON carried inside a form field or a CSV cell (a slice, parameters, evidence) follows
  the JSON rules above (`check_embedded_json`); a CSV upload is read as CSV with bounded
  cells before anything imports it (`check_csv`).

Every refusal is an InputError whose message names where the problem is ("params.
changes.age") and what it is, so that a form shows it beside its field and the API
answers 400 with it.
"""

import csv
import io
import json
import math

from django.conf import settings

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
INT_DIGITS = len(str(INT_MAX))
TOO_LARGE = "the number is too large (the limit is ±9,223,372,036,854,775,807)."


class InputError(ValueError):
    """Bad input, refused before anything is saved; `where` names the field or path.
    `code` says which rule refused it ("not_json" when the text is not JSON at all)."""

    def __init__(self, message, where="", code="invalid"):
        self.where = where
        self.code = code
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message


def max_depth():
    return getattr(settings, "JSON_MAX_DEPTH", 32)


def _refuse_constant(name):
    raise InputError(f"{name} is not a number JSON may carry here; give a finite number.")


class _TooManyDigits:
    """An integer too long for int() to convert; check() refuses it with its path."""


def _bounded_int(digits):
    if len(digits.lstrip("-").lstrip("0")) > INT_DIGITS:
        return _TooManyDigits()
    return int(digits)


def loads(text, where=""):
    """Parse JSON text under the rules above; returns the value or raises InputError."""
    if isinstance(text, bytes | bytearray):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"the body is not UTF-8 ({exc.reason} at byte {exc.start}).", where, "not_json"
            ) from exc
    # Cheap and exact: nesting depth is the count of open brackets outside strings. Checked
    # before parsing, so a deeply nested body never reaches the recursive decoder.
    _check_nesting(text, where)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int)
    except InputError as exc:
        raise InputError(exc.message, where) from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
            where,
            "not_json",
        ) from exc
    except RecursionError as exc:  # a guard behind _check_nesting
        raise InputError("nested too deeply.", where) from exc
    check(value, where)
    return value


def _check_nesting(text, where):
    limit = max_depth()
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                raise InputError(f"nested deeper than {limit} levels.", where)
        elif ch in "]}":
            depth -= 1


def check(value, where="", depth=0):
    """Check an already-parsed value (JSON from any source, a form's data) under the rules
    above; returns it unchanged or raises InputError naming the path."""
    if depth > max_depth():
        raise InputError(f"nested deeper than {max_depth()} levels.", where)
    if isinstance(value, str):
        check_text(value, where)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, _TooManyDigits):
        raise InputError(TOO_LARGE, where)
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise InputError(TOO_LARGE, where)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{value} is not a finite number.", where)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(str(key), where)
            check(item, f"{where}.{key}" if where else str(key), depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check(item, f"{where}[{index}]", depth + 1)
    return value


def check_text(text, where=""):
    if "\x00" in text:
        raise InputError("contains a NUL character (\\x00), which cannot be stored.", where)
    return text


def check_integer_text(text, where=""):
    """A query parameter or form value that is written as an integer must fit 64 bits."""
    stripped = text.strip()
    digits = stripped[1:] if stripped[:1] in "+-" else stripped
    if digits.isdigit() and len(digits) >= INT_DIGITS and not _fits(stripped, digits):
        raise InputError(TOO_LARGE, where)
    return text


def _fits(text, digits):
    # Counted before converted: int() refuses thousands of digits with a ValueError.
    if len(digits.lstrip("0")) > INT_DIGITS:
        return False
    try:
        return INT_MIN <= int(text) <= INT_MAX
    except ValueError:  # digits int() does not read ("²"): the field's own check says so
        return True


def parse_id(value, where):
    """The id a form or query names (`where`: its field): an int, or InputError (a 400
    naming the field) for anything that is not a whole number (digits only) within 64
    bits. None and "" give None: the field was left out."""
    if value is None or value == "":
        return None
    text = check_text(str(value), where).strip()
    if not (text.isascii() and text.isdigit()):
        raise InputError(f"{str(value)[:40]!r} is not an id (a whole number).", where)
    check_integer_text(text, where)
    return int(text)


def check_embedded_json(text, where=""):
    """A form field or CSV cell that carries JSON (a slice, parameters, evidence) follows
    the JSON rules above when it parses as JSON; text that is not JSON at all is left to
    the field's own validation (which says so)."""
    if not text.lstrip().startswith(("[", "{")):
        return text
    try:
        loads(text, where)
    except InputError as exc:
        if exc.code != "not_json":
            raise
    return text


def check_csv(file, where="file"):
    """An uploaded CSV (UTF-8) read as CSV before anything imports it: each cell under the
    text rules, JSON in a cell under the JSON rules, a header that names each column once,
    and CSV that the reader cannot split
    (a cell over the csv module's field size limit, a bare carriage return) refused with
    its reason. The file is rewound for the importer; a file that is not UTF-8 text is
    left to the importer, which says so."""
    raw = file.read()
    file.seek(0)
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        return file
    reader = csv.reader(io.StringIO(text))
    try:
        header: list[str] = []
        for number, row in enumerate(reader, start=1):
            if not header and row:
                header = row
                _check_header(row, where)
            for index, cell in enumerate(row):
                column = header[index] if index < len(header) else f"column {index + 1}"
                cell_where = f"{where} row {number}, {column!r}"
                check_text(cell, cell_where)
                check_embedded_json(cell, cell_where)
    except csv.Error as exc:
        raise InputError(
            f"not a CSV file this import can read (row {reader.line_num}: {exc}).", where
        ) from exc
    return file


def _check_header(names, where):
    seen = set()
    for name in names:
        check_text(name, f"{where} header")
        key = name.strip()
        if key and key in seen:
            raise InputError(f"the header names the column {key!r} twice.", where)
        seen.add(key)
