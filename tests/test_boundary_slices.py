"""Slice text: ``describe`` writes what DESIGN.md shows, ``parse`` reads it back, and
``parse(describe(s)) == s`` for every valid slice; ``mask`` follows the engine's semantics."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from boundary.slices import (
    SLICE_OPS,
    ProbeDefinitionError,
    SliceSyntaxError,
    describe,
    mask,
    parse,
    schema_of,
    validate,
)

DESIGN_SLICE = [
    {"feature": "age", "op": "<", "value": 22},
    {"feature": "income", "op": "<=", "value": 20000},
    {"feature": "region", "op": "in", "value": ["north", "south"]},
    {"feature": "score", "op": "between", "value": [0.2, 0.4]},
    {"feature": "email", "op": "is_null"},
]
DESIGN_TEXT = (
    'age < 22 AND income <= 20000 AND region in ("north", "south") AND score between 0.2 '
    "and 0.4 AND email is null"
)


def typed(value):
    """A value with its type spelled out, so that 1, 1.0 and True compare unequal."""
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, float):
        return ("float", math.copysign(1.0, value), repr(value))
    return (type(value).__name__, value)


# ------------------------------------------------------------------------------ describe


def test_describe_writes_the_design_example():
    assert describe(DESIGN_SLICE) == DESIGN_TEXT


@pytest.mark.parametrize(
    ("predicates", "text"),
    [
        ([], "whole dataset"),
        (None, "whole dataset"),
        ([{"feature": "email", "op": "not_null"}], "email is not null"),
        ([{"feature": "plan", "op": "not_in", "value": ["gold"]}], 'plan not in ("gold")'),
        ([{"feature": "plan", "op": "!=", "value": "gold"}], 'plan != "gold"'),
        ([{"feature": "grade", "op": "==", "value": 1}], "grade == 1"),
        ([{"feature": "vip", "op": "==", "value": True}], "vip == true"),
        ([{"feature": "mean radius", "op": ">", "value": 14}], "`mean radius` > 14"),
        ([{"feature": "x", "op": ">=", "value": 22.0}], "x >= 22.0"),
        ([{"feature": "x", "op": "<", "value": 0.1 + 0.2}], "x < 0.30000000000000004"),
        ([{"feature": "x", "op": "<", "value": 1e-300}], "x < 1e-300"),
        ([{"feature": "x", "op": ">", "value": -3}], "x > -3"),
        (
            [{"feature": "name", "op": "==", "value": 'say "hi" \\ bye'}],
            'name == "say \\"hi\\" \\\\ bye"',
        ),
        ([{"feature": "in", "op": "==", "value": "x"}], '`in` == "x"'),
        ([{"feature": "a`b", "op": "is_null"}], "`a\\`b` is null"),
        ([{"feature": "2nd", "op": "is_null"}], "`2nd` is null"),
        (
            [{"feature": "d", "op": ">=", "value": "2024-01-31T00:00:00"}],
            'd >= "2024-01-31T00:00:00"',
        ),
    ],
)
def test_describe_examples(predicates, text):
    assert describe(predicates) == text
    assert parse(text) == (predicates or [])


def test_describe_unwraps_numpy_scalars():
    assert describe([{"feature": "x", "op": "<", "value": np.float64(0.5)}]) == "x < 0.5"
    assert describe([{"feature": "x", "op": "==", "value": np.int64(3)}]) == "x == 3"


# --------------------------------------------------------------------------------- parse


def test_parse_reads_the_design_example():
    assert parse(DESIGN_TEXT) == DESIGN_SLICE


@pytest.mark.parametrize(
    ("text", "predicates"),
    [
        ("", []),
        ("   ", []),
        ("whole dataset", []),
        ("  Whole   Dataset ", []),
        (
            "age<22 and income>=3",
            [
                {"feature": "age", "op": "<", "value": 22},
                {"feature": "income", "op": ">=", "value": 3},
            ],
        ),
        (
            "age < 22 And x is NOT null",
            [{"feature": "age", "op": "<", "value": 22}, {"feature": "x", "op": "not_null"}],
        ),
        ("x = 3", [{"feature": "x", "op": "==", "value": 3}]),
        ("x BETWEEN 1 AND 2.5", [{"feature": "x", "op": "between", "value": [1, 2.5]}]),
        ("c NOT IN ('a', \"b\")", [{"feature": "c", "op": "not_in", "value": ["a", "b"]}]),
        ("flag == TRUE", [{"feature": "flag", "op": "==", "value": True}]),
        ("x > -.5", [{"feature": "x", "op": ">", "value": -0.5}]),
        ("x > 1e3", [{"feature": "x", "op": ">", "value": 1000.0}]),
    ],
)
def test_parse_examples(text, predicates):
    assert typed(parse(text)) == typed(predicates)


@pytest.mark.parametrize(
    ("text", "position", "token"),
    [
        ("age ~ 3", 5, "'~'"),
        ("age < 22 AND", 13, "the end of the text"),
        ("age < 22 income > 3", 10, "'income'"),
        ("age <", 6, "the end of the text"),
        ("region == north", 11, "'north'"),
        ('region in "north"', 11, "'\"north\"'"),
        ('region in ("north" "south")', 20, "'\"south\"'"),
        ("x between 1 or 2", 13, "'or'"),
        ("x is nothing", 6, "'nothing'"),
        ("and > 3", 1, "'and'"),
        ('"x" > 3', 1, "'\"x\"'"),
        ("`x > 3", 1, "missing closing `"),
        ('x == "abc', 6, 'missing closing "'),
        ("x == 3 $", 8, "'$'"),
    ],
)
def test_parse_errors_name_the_position_and_token(text, position, token):
    with pytest.raises(SliceSyntaxError) as caught:
        parse(text)
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, ProbeDefinitionError)
    assert error.position == position
    assert f"character {position}" in str(error)
    assert token in str(error)


# ------------------------------------------------------------- parse(describe(s)) == s

names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.sampled_from(
        [
            "and",
            "AND",
            "in",
            "not",
            "is",
            "null",
            "between",
            "true",
            "False",
            "mean radius",
            "a`b",
            "c\\d",
            "é",
            "x y z",
            "whole dataset",
            "1x",
        ]
    ),
    st.text(min_size=1, max_size=12),
)
scalars = st.one_of(
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.booleans(),
)
numbers = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))


def _unique(values):
    out = []
    for value in values:
        if not any(typed(value) == typed(o) for o in out):
            out.append(value)
    return out


@st.composite
def predicates(draw):
    feature = draw(names)
    op = draw(st.sampled_from(SLICE_OPS))
    if op in ("is_null", "not_null"):
        return {"feature": feature, "op": op}
    if op == "between":
        low, high = sorted([draw(numbers), draw(numbers)])
        return {"feature": feature, "op": op, "value": [low, high]}
    if op in ("in", "not_in"):
        values = _unique(draw(st.lists(scalars, min_size=1, max_size=4)))
        return {"feature": feature, "op": op, "value": values}
    return {"feature": feature, "op": op, "value": draw(scalars)}


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(predicates(), max_size=5))
@example(DESIGN_SLICE)
@example([{"feature": "x", "op": "==", "value": -0.0}])
@example([{"feature": "x", "op": "==", "value": 10**30}])
@example([{"feature": "x", "op": "in", "value": [1, 1.5, "1", True]}])
@example([{"feature": "s", "op": "==", "value": '\\"\n\t`'}])
def test_parse_inverts_describe(slice_):
    text = describe(slice_)
    assert typed(parse(text)) == typed(slice_), text


def test_parse_inverts_describe_on_validated_slices():
    df = pd.DataFrame(
        {
            "age": [20, 30, 40],
            "mean radius": [1.5, 2.5, np.nan],
            "region": ["north", "south", None],
            "vip": [True, False, True],
            "seen": pd.to_datetime(["2024-01-01", "2024-02-01", None]),
        }
    )
    schema = schema_of(df)
    raw = [
        {"feature": "age", "op": "between", "value": ["20", 35.0]},
        {"feature": "mean radius", "op": ">", "value": "1.25"},
        {"feature": "region", "op": "not_in", "value": ["east", "east", "west"]},
        {"feature": "vip", "op": "==", "value": "true"},
        {"feature": "seen", "op": "<", "value": "2024-03-01"},
        {"feature": "region", "op": "not_null"},
    ]
    slice_ = validate(raw, schema)
    assert validate(parse(describe(slice_)), schema) == slice_
    assert typed(parse(describe(slice_))) == typed(slice_)
    assert mask(df, parse(describe(slice_))).tolist() == mask(df, raw).tolist()


# ------------------------------------------------------------------------------- mask


def test_categorical_values_compare_as_their_text():
    """The engine's semantics: `grade == 1` on the categories "1", "2", "x", "1"."""
    df = pd.DataFrame({"grade": ["1", "2", "x", "1"]})
    assert mask(df, [{"feature": "grade", "op": "==", "value": 1}]).tolist() == [1, 0, 0, 1]
    assert mask(df, [{"feature": "grade", "op": "in", "value": [2, "x"]}]).tolist() == [0, 1, 1, 0]
    assert mask(df, parse("grade != 1")).tolist() == [0, 1, 1, 0]


def test_mask_refuses_what_does_not_fit_and_names_the_column():
    df = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]})
    with pytest.raises(ProbeDefinitionError, match="column 'nope' is not in the dataset"):
        mask(df, parse("nope == 1"))
    with pytest.raises(ProbeDefinitionError, match="does not fit categorical column 'c'"):
        mask(df, parse('c < "b"'))
