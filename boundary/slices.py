"""Slices: which rows a slice selects, and how a slice is written as text.

A slice is a list of predicates ``{"feature", "op", "value"}`` ANDed together; the empty
list is the whole dataset. This module is the one home of those rules (DESIGN.md, "One
truth"): every probe, scan, map, sweep and neighbourhood check selects its rows with
``mask``, and every page, form and export writes or reads slice text with ``describe`` /
``parse``.

* ``validate(slice, schema)`` checks a slice against a dataset's column kinds and returns
  it normalised (values coerced to the column's type, duplicates in lists dropped).
* ``mask(table, slice)`` is the boolean row mask. Missing values follow pandas' NumPy
  semantics: a missing value satisfies no comparison (``== < <= > >= between in``) and
  satisfies their negations (``!=`` and ``not_in``), like ``df[df.x != 3]`` on a float
  column; ``between`` is inclusive on both ends, like ``Series.between``. Categorical and
  boolean columns compare a value with the column's values as they are or as their text
  (a number matches its text form and back: ``grade == 1`` selects the rows holding
  ``"1"``), since a category read from a CSV file may be either.
* ``describe(slice)`` writes ``age < 22 AND income <= 20000 AND region in ("north",
  "south") AND score between 0.2 and 0.4 AND email is null``: ``not_null`` is ``is not
  null``, ``not_in`` is ``not in (...)``; a name that is not a plain identifier (or is a
  keyword) is back-quoted (`` `mean radius` > 14 ``); strings are double-quoted with ``"``
  and ``\\`` escaped by a backslash; numbers are written so that they read back exactly
  (ints as ints, floats as their ``repr``); booleans are ``true`` / ``false``; the empty
  slice is ``whole dataset``.
* ``parse(text)`` reads that text back (keywords such as AND are case-insensitive;
  ``whole dataset`` and empty text are ``[]``); ``parse(describe(s)) == s`` for every
  valid slice. A text it cannot read raises ``SliceSyntaxError`` naming the character
  position, the token at fault and the column of the condition it was reading.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import numpy as np
import pandas as pd

__all__ = [
    "COLUMN_TYPES",
    "SLICE_OPS",
    "ProbeDefinitionError",
    "SliceSyntaxError",
    "describe",
    "mask",
    "parse",
    "schema_of",
    "validate",
]

SLICE_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "not_null")
COLUMN_TYPES = ("numeric", "categorical", "boolean", "datetime")

_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_ORDER_OPS = {"<", "<=", ">", ">=", "between"}
_NULL_OPS = {"is_null", "not_null"}
_LIST_OPS = {"in", "not_in"}
_OPS_BY_TYPE = {
    "numeric": set(SLICE_OPS),
    "datetime": set(SLICE_OPS),
    "categorical": set(SLICE_OPS) - _ORDER_OPS,
    "boolean": set(SLICE_OPS) - _ORDER_OPS,
}


class ProbeDefinitionError(ValueError):
    """A probe or slice definition that cannot be evaluated; the message names the culprit."""


class SliceSyntaxError(ProbeDefinitionError):
    """Slice text that cannot be read; ``position`` is the 1-based character at fault."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position


# ---------------------------------------------------------------------------------------
# Column kinds and values
# ---------------------------------------------------------------------------------------


def _column_type(values: pd.Series) -> str:
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "numeric"
    if pd.api.types.is_object_dtype(dtype):
        # Object columns hold whatever was put in them; look at the values.
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred == "boolean":
            return "boolean"
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "numeric"
        if inferred in ("datetime", "datetime64"):
            return "datetime"
    return "categorical"


def schema_of(df: pd.DataFrame) -> dict[str, str]:
    """Map each column to "numeric", "categorical", "boolean" or "datetime"."""
    return {col: _column_type(df[col]) for col in df.columns}


def _err(message: str) -> ProbeDefinitionError:
    return ProbeDefinitionError(message)


def number(value: Any, what: str) -> int | float:
    """Coerce a JSON/form value to a finite int or float, refusing booleans."""
    if isinstance(value, (bool, np.bool_)):
        raise _err(f"{what} must be a number, not {value!r}")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise _err(f"{what} must be a number, not {value!r}") from None
    if not isinstance(value, (int, float)):
        raise _err(f"{what} must be a number, not {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _err(f"{what} must be a finite number, not {value!r}")
        if value.is_integer() and abs(value) < 2**53:
            # 22.0 and 22 are the same predicate; one spelling keeps cache keys equal.
            return int(value)
    return value


def coerce_value(ctype: str, feature: str, value: Any) -> Any:
    """Normalise one predicate (or change) value for a column of type ``ctype``."""
    if value is None:
        raise _err(f"value for column '{feature}' is missing (use is_null / not_null)")
    if ctype == "numeric":
        return number(value, f"value {value!r} for numeric column '{feature}'")
    if ctype == "boolean":
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, np.integer)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no"):
            return False
        raise _err(f"value {value!r} for boolean column '{feature}' is not true or false")
    if ctype == "datetime":
        try:
            stamp = pd.Timestamp(value)
        except (TypeError, ValueError):
            raise _err(f"value {value!r} for datetime column '{feature}' is not a date") from None
        if pd.isna(stamp):
            raise _err(f"value for column '{feature}' is missing (use is_null / not_null)")
        return stamp.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise _err(f"value for column '{feature}' is missing (use is_null / not_null)")
    if not isinstance(value, (str, int, float, bool)):
        raise _err(f"value {value!r} for categorical column '{feature}' is not a single value")
    return value


def _order_key(ctype: str, value: Any) -> Any:
    return pd.Timestamp(value) if ctype == "datetime" else value


def validate(slice: list[dict] | None, schema: dict[str, str]) -> list[dict]:
    """Check a slice against a dataset schema and return it normalised.

    1. The slice must be a list (None means the whole dataset) of predicate objects with
       the keys ``feature``, ``op`` and (except for is_null / not_null) ``value``.
    2. The feature must be a column of the dataset and the op must fit its type (no order
       comparisons on categorical or boolean columns).
    3. Values are coerced to the column's type: numeric strings to numbers, "true"/"false"
       to booleans, dates to ISO strings; ``between`` takes ``[low, high]`` with
       ``low <= high``; ``in`` / ``not_in`` take a non-empty list (duplicates dropped).
    """
    if slice is None:
        return []
    if not isinstance(slice, (list, tuple)):
        raise _err("slice must be a list of predicates")
    normalised = []
    for position, predicate in enumerate(slice, start=1):
        if not isinstance(predicate, Mapping):
            raise _err(f"predicate {position} must be an object with feature, op and value")
        unknown = set(predicate) - {"feature", "op", "value"}
        if unknown:
            raise _err(f"predicate {position} has unknown keys: {', '.join(sorted(unknown))}")
        feature = predicate.get("feature")
        if not isinstance(feature, str) or not feature:
            raise _err(f"predicate {position} names no column (feature)")
        if feature not in schema:
            raise _err(f"column '{feature}' is not in the dataset")
        op = predicate.get("op")
        if op not in SLICE_OPS:
            raise _err(
                f"unknown operator {op!r} for column '{feature}' (allowed: {', '.join(SLICE_OPS)})"
            )
        ctype = schema[feature]
        if op not in _OPS_BY_TYPE.get(ctype, ()):
            raise _err(f"operator '{op}' does not fit {ctype} column '{feature}'")
        value = predicate.get("value")
        if op in _NULL_OPS:
            if value is not None:
                raise _err(f"operator '{op}' on column '{feature}' takes no value")
            normalised.append({"feature": feature, "op": op})
            continue
        if op == "between":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise _err(f"'between' on column '{feature}' needs a value [low, high]")
            low, high = (coerce_value(ctype, feature, v) for v in value)
            if _order_key(ctype, low) > _order_key(ctype, high):
                raise _err(f"'between' on column '{feature}': low {low!r} is above high {high!r}")
            value = [low, high]
        elif op in _LIST_OPS:
            if not isinstance(value, (list, tuple)) or not value:
                raise _err(f"'{op}' on column '{feature}' needs a non-empty list of values")
            value = list(dict.fromkeys(coerce_value(ctype, feature, v) for v in value))
        else:
            if isinstance(value, (list, tuple, dict)):
                raise _err(f"operator '{op}' on column '{feature}' takes a single value")
            value = coerce_value(ctype, feature, value)
        normalised.append({"feature": feature, "op": op, "value": value})
    return normalised


# ---------------------------------------------------------------------------------------
# Row masks
# ---------------------------------------------------------------------------------------


def small_codes(codes: np.ndarray, count: int) -> np.ndarray:
    """Codes from -2 to ``count - 1`` in the narrowest signed integer type.

    Factorised columns and class indices stay in memory for a whole probe run (and are
    there when the model-calling probes predict, the memory peak); int8 instead of int64
    is an eighth of it. Widen them before any arithmetic.
    """
    for dtype in (np.int8, np.int16, np.int32):
        if count <= np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes


class _Column:
    """A column encoded once for fast predicates: NumPy values, or factorised codes."""

    __slots__ = ("_lookup", "codes", "ctype", "isnull", "labels", "tz", "values")

    ctype: str
    # Either ``codes`` and ``labels`` (categorical and boolean columns) or ``values`` are
    # set; ``isnull`` only for values that can be missing, ``tz`` only for aware dates.
    values: np.ndarray | None
    isnull: np.ndarray | None
    codes: np.ndarray | None
    labels: list[Any] | None
    _lookup: dict[Any, int] | None
    tz: Any

    def __init__(self, series: pd.Series, ctype: str):
        self.ctype = ctype
        self.values = self.isnull = self.codes = self.labels = self._lookup = self.tz = None
        if ctype == "numeric":
            if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf":
                values = series.to_numpy()
            else:
                values = pd.to_numeric(series, errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
            self.values = values
            self.isnull = np.isnan(values) if values.dtype.kind == "f" else None
        elif ctype == "datetime":
            if not pd.api.types.is_datetime64_any_dtype(series.dtype):
                series = pd.to_datetime(series, errors="coerce")
            self.tz = getattr(series.dtype, "tz", None)
            if self.tz is not None:
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            self.values = series.to_numpy()
            self.isnull = np.isnat(self.values)
        else:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            self.codes = small_codes(codes, len(uniques))
            self.labels = list(uniques)

    def lookup(self, value: Any) -> int:
        """Code of ``value`` in this column (a number also matches its text, and back)."""
        if self._lookup is None:
            assert self.labels is not None, "lookup is for a factorised column"
            self._lookup = {}
            for code, label in enumerate(self.labels):
                label = label.item() if isinstance(label, np.generic) else label
                self._lookup.setdefault(label, code)
        for candidate in self._candidates(value):
            found: int | None
            try:
                found = self._lookup.get(candidate)
            except TypeError:
                found = None
            if found is not None:
                return found
        return -2  # matches no row (-1 is the missing-value code)

    @staticmethod
    def _candidates(value: Any) -> Iterator[Any]:
        yield value
        if not isinstance(value, str):
            yield str(value)
        else:
            try:
                as_number = number(value, "value")
            except ProbeDefinitionError:
                return
            yield as_number
            yield float(as_number)

    def datetime_value(self, value: Any) -> np.datetime64:
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        elif self.tz is not None:
            # A naive date on an aware column means the column's own wall-clock time.
            stamp = stamp.tz_localize(self.tz).tz_convert("UTC").tz_localize(None)
        return np.datetime64(stamp.to_datetime64())


class _Table:
    """Uniform column access over a DataFrame or a mapping of equal-length arrays."""

    def __init__(self, data: pd.DataFrame | Mapping[str, Any]):
        if isinstance(data, pd.DataFrame):
            self._frame = data
            self.columns = list(data.columns)
            self.n = len(data)
        elif isinstance(data, Mapping):
            self._frame = None
            self._arrays = data
            self.columns = list(data)
            lengths = {len(v) for v in data.values()}
            if len(lengths) > 1:
                raise ValueError("arrays of different lengths")
            self.n = lengths.pop() if lengths else 0
        else:
            raise TypeError("a slice mask needs a DataFrame or a mapping of column arrays")

    def series(self, name: str) -> pd.Series:
        if self._frame is not None:
            return self._frame[name]
        values = self._arrays[name]
        return values if isinstance(values, pd.Series) else pd.Series(values)

    def schema(self) -> dict[str, str]:
        return {name: _column_type(self.series(name)) for name in self.columns}


def _schema(table: _Table, cache: dict) -> dict[str, str]:
    schema = cache.get(("schema",))
    if schema is None:
        schema = cache[("schema",)] = table.schema()
    return schema


def _cached_column(table: _Table, name: str, ctype: str, cache: dict) -> _Column:
    key = ("column", name)
    column = cache.get(key)
    if column is None:
        column = cache[key] = _Column(table.series(name), ctype)
    return column


def _identity(value: Any) -> Any:
    return value


def _predicate_mask(column: _Column, op: str, value: Any) -> np.ndarray:
    """Rows of one encoded column that satisfy one normalised predicate."""
    if column.codes is not None:
        codes = column.codes
        assert column.labels is not None  # set together with codes
        if op == "is_null":
            return codes == -1
        if op == "not_null":
            return codes != -1
        if op in _LIST_OPS:
            table = np.zeros(len(column.labels) + 2, dtype=bool)
            for item in value:
                code = column.lookup(item)
                if code >= 0:
                    table[code] = True
            # codes -1 (missing) indexes the last slot, which stays False.
            hit = table[codes]
            return hit if op == "in" else ~hit
        hit = codes == column.lookup(value)
        return hit if op == "==" else ~hit
    values = column.values
    assert values is not None  # a column without codes has values
    if op == "is_null":
        return column.isnull.copy() if column.isnull is not None else np.zeros(len(values), bool)
    if op == "not_null":
        return ~column.isnull if column.isnull is not None else np.ones(len(values), bool)
    convert = column.datetime_value if column.ctype == "datetime" else _identity
    if op == "between":
        low, high = convert(value[0]), convert(value[1])
        return (values >= low) & (values <= high)
    if op in _LIST_OPS:
        hit = np.isin(values, np.array([convert(v) for v in value]))
        return hit if op == "in" else ~hit
    value = convert(value)
    if op == "==":
        return values == value
    if op == "!=":
        return values != value
    if op == "<":
        return values < value
    if op == "<=":
        return values <= value
    if op == ">":
        return values > value
    return values >= value


def mask(
    df_or_arrays: pd.DataFrame | Mapping[str, Any],
    slice: list[dict] | None,
    cache: dict | None = None,
) -> np.ndarray:
    """Boolean mask of the rows in a slice (predicates ANDed; the empty slice is all rows).

    1. The slice is validated and normalised against the table's schema (a column the
       table lacks or an op that does not fit its type raises ProbeDefinitionError).
    2. Each predicate is evaluated on the column encoded once as NumPy arrays (factorised
       codes for categorical and boolean columns), and kept in ``cache`` so that the same
       predicate in another probe, candidate or neighbourhood costs nothing.
    3. The predicate masks are ANDed.

    A ``cache`` belongs to one table: reuse it only with the same ``df_or_arrays``.
    """
    cache = {} if cache is None else cache
    table = _Table(df_or_arrays)
    schema = _schema(table, cache)
    result: np.ndarray | None = None
    for predicate in validate(slice, schema):
        key = ("predicate", json.dumps(predicate, sort_keys=True, default=str))
        hit = cache.get(key)
        if hit is None:
            feature = predicate["feature"]
            column = _cached_column(table, feature, schema[feature], cache)
            hit = cache[key] = _predicate_mask(column, predicate["op"], predicate.get("value"))
        result = hit.copy() if result is None else np.logical_and(result, hit, out=result)
    if result is None:
        result = np.ones(table.n, dtype=bool)
    return result


def column_codes(
    df_or_arrays: pd.DataFrame | Mapping[str, Any], feature: str, cache: dict
) -> tuple[np.ndarray, list]:
    """Factorised codes (-1 for missing) and labels of a column, computed once per cache
    (the groups of ``group_disparity`` are the values ``mask`` sees)."""
    table = _Table(df_or_arrays)
    column = _cached_column(table, feature, _schema(table, cache)[feature], cache)
    if column.codes is not None:
        assert column.labels is not None  # set together with codes
        return column.codes, column.labels
    key = ("groups", feature)
    if key not in cache:
        codes, uniques = pd.factorize(pd.Series(column.values), use_na_sentinel=True)
        cache[key] = (small_codes(codes, len(uniques)), list(uniques))
    return cache[key]


# ---------------------------------------------------------------------------------------
# Slice text
# ---------------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = frozenset({"and", "in", "not", "is", "null", "between", "true", "false"})
_OP_WORDS = {"in": "in", "not_in": "not in"}


def _quoted(text: str, quote: str) -> str:
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def _name_text(feature: Any) -> str:
    feature = str(feature)
    if _IDENTIFIER.fullmatch(feature) and feature.lower() not in _KEYWORDS:
        return feature
    return _quoted(feature, "`")


def _value_text(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if not isinstance(value, str) and hasattr(value, "isoformat"):
        value = value.isoformat()
    return _quoted(str(value), '"')


def describe(predicates: list[dict] | None) -> str:
    """The slice as text (see the module docstring); the empty slice is ``whole dataset``."""
    if not predicates:
        return "whole dataset"
    parts = []
    for predicate in predicates:
        name, op = _name_text(predicate["feature"]), predicate["op"]
        value: Any = predicate.get("value")  # absent for the null ops
        if op == "is_null":
            parts.append(f"{name} is null")
        elif op == "not_null":
            parts.append(f"{name} is not null")
        elif op == "between":
            parts.append(f"{name} between {_value_text(value[0])} and {_value_text(value[1])}")
        elif op in _LIST_OPS:
            items = ", ".join(_value_text(v) for v in value)
            parts.append(f"{name} {_OP_WORDS[op]} ({items})")
        elif op in _COMPARISONS:
            parts.append(f"{name} {op} {_value_text(value)}")
        else:
            raise _err(f"unknown operator {op!r} for column '{predicate['feature']}'")
    return " AND ".join(parts)


_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>==|!=|<=|>=|<|>|=)
      | (?P<punct>[(),])""",
    re.VERBOSE,
)


def _scan_quoted(text: str, start: int) -> tuple[str, int]:
    """The content of the quoted token at ``start`` (backslash escapes the next
    character) and the index after its closing quote."""
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif char == quote:
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    what = "column name" if quote == "`" else "string"
    raise SliceSyntaxError(
        f"unterminated {what} starting at character {start + 1}: missing closing {quote}",
        start + 1,
    )


def _tokens(text: str) -> list[tuple[str, Any, int, str]]:
    """(kind, value, 1-based position, source text) of each token, then an end token."""
    tokens: list[tuple[str, Any, int, str]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "\"'":
            value, end = _scan_quoted(text, i)
            tokens.append(("string", value, i + 1, text[i:end]))
            i = end
            continue
        if char == "`":
            value, end = _scan_quoted(text, i)
            tokens.append(("name", value, i + 1, text[i:end]))
            i = end
            continue
        match = _TOKEN.match(text, i)
        if match is None:
            raise SliceSyntaxError(f"unexpected character {char!r} at character {i + 1}", i + 1)
        kind, source = match.lastgroup, match.group()
        assert kind is not None  # every alternative of _TOKEN is a named group
        if kind == "number":
            plain = re.fullmatch(r"-?\d+", source)
            tokens.append(("number", int(source) if plain else float(source), i + 1, source))
        elif kind == "word":
            tokens.append(("word", source, i + 1, source))
        elif kind != "space":
            tokens.append((kind, source, i + 1, source))
        i = match.end()
    tokens.append(("end", None, len(text) + 1, "end of text"))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.at = 0
        self.column = ""  # the column of the predicate being read, named in errors

    def of_column(self) -> str:
        return f" for column {self.column!r}" if self.column else ""

    def peek(self) -> tuple[str, Any, int, str]:
        return self.tokens[self.at]

    def take(self) -> tuple[str, Any, int, str]:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, expected: str, token: tuple[str, Any, int, str] | None = None) -> NoReturn:
        kind, _, position, source = token or self.peek()
        found = "the end of the text" if kind == "end" else repr(source)
        raise SliceSyntaxError(
            f"expected {expected} at character {position}, found {found}", position
        )

    def keyword(self, word: str) -> bool:
        kind, value, _, _ = self.peek()
        if kind == "word" and value.lower() == word:
            self.at += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            self.fail(f"'{word}'{self.of_column()}")

    def feature(self) -> str:
        token = self.take()
        kind, value, _, _ = token
        if kind == "name" and value:
            return value
        if kind == "word" and value.lower() not in _KEYWORDS:
            return value
        if kind in ("word", "string"):
            self.fail("a column name (back-quote it: `name`)", token)
        self.fail("a column name", token)

    def value(self) -> Any:
        token = self.take()
        kind, value, _, _ = token
        if kind in ("number", "string"):
            return value
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind == "word" and value.lower() not in _KEYWORDS:
            self.fail(f'a value{self.of_column()} (a number, true, false or "quoted text")', token)
        self.fail(f"a value{self.of_column()}", token)

    def values(self) -> list:
        token = self.take()
        if token[0] != "punct" or token[1] != "(":
            self.fail(f"'(' opening a list of values{self.of_column()}", token)
        items = [self.value()]
        while True:
            token = self.take()
            if token[0] == "punct" and token[1] == ",":
                items.append(self.value())
            elif token[0] == "punct" and token[1] == ")":
                return items
            else:
                self.fail(f"',' or ')' in the list of values{self.of_column()}", token)

    def predicate(self) -> dict:
        self.column = ""
        feature = self.column = self.feature()
        token = self.peek()
        if token[0] == "op":
            self.take()
            op = "==" if token[1] == "=" else token[1]
            return {"feature": feature, "op": op, "value": self.value()}
        if self.keyword("in"):
            return {"feature": feature, "op": "in", "value": self.values()}
        if self.keyword("not"):
            self.expect("in")
            return {"feature": feature, "op": "not_in", "value": self.values()}
        if self.keyword("between"):
            low = self.value()
            self.expect("and")
            return {"feature": feature, "op": "between", "value": [low, self.value()]}
        if self.keyword("is"):
            negated = self.keyword("not")
            self.expect("null")
            return {"feature": feature, "op": "not_null" if negated else "is_null"}
        self.fail(
            f"an operator after column {feature!r} (== != < <= > >= in, not in, "
            "between, is null, is not null)"
        )


def parse(text: str | None) -> list[dict]:
    """The predicates of a slice text (the inverse of ``describe``), not yet validated
    against a schema: pass the result to ``validate``. Raises ``SliceSyntaxError``."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise SliceSyntaxError("slice text must be a string", 1)
    if " ".join(text.split()).lower() in ("", "whole dataset"):
        return []
    parser = _Parser(text)
    predicates = [parser.predicate()]
    while parser.keyword("and"):
        predicates.append(parser.predicate())
    if parser.peek()[0] != "end":
        parser.fail(f"AND or the end of the slice after the condition on {parser.column!r}")
    return predicates
