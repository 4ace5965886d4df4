"""Input hygiene: the one set of rules every input passes, whatever carries it (the API's
JSON bodies, the web forms' JSON fields, the CSV import's cells, query parameters).

- JSON: NaN, Infinity and -Infinity are refused (PostgreSQL cannot store them and they
  compare with nothing); nesting deeper than JSON_MAX_DEPTH is refused before Python's
  own recursion limit turns it into a server error.
- Text: the NUL character is refused (PostgreSQL text and JSON cannot hold it).
- Integers: bounded to a signed 64-bit column (SQLite and PostgreSQL both stop there).

Every refusal is an InputError whose message names where the problem is ("params.
changes.age") and what it is, so that a form shows it beside its field and the API
answers 400 with it.
"""

import json
import math

from django.conf import settings

INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class InputError(ValueError):
    """Bad input, refused before anything is saved; `where` names the field or path."""

    def __init__(self, message, where=""):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message


def max_depth():
    return getattr(settings, "JSON_MAX_DEPTH", 32)


def _refuse_constant(name):
    raise InputError(f"{name} is not a number JSON may carry here; give a finite number.")


def loads(text, where=""):
    """Parse JSON text under the rules above; returns the value or raises InputError."""
    if isinstance(text, bytes | bytearray):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"the body is not UTF-8 ({exc.reason} at byte {exc.start}).", where
            ) from exc
    # Cheap and exact: nesting depth is the count of open brackets outside strings. Checked
    # before parsing, so a deeply nested body never reaches the recursive decoder.
    _check_nesting(text, where)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except InputError as exc:
        raise InputError(exc.message, where) from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).", where
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
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise InputError(
                "the number is too large (the limit is ±9,223,372,036,854,775,807).", where
            )
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
    if stripped.lstrip("+-").isdigit() and len(stripped) > 18:
        try:
            number = int(stripped)
        except ValueError:
            return text
        if not INT_MIN <= number <= INT_MAX:
            raise InputError(
                "the number is too large (the limit is ±9,223,372,036,854,775,807).", where
            )
    return text
