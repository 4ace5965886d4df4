"""Slice text that cannot be read: each message names the character, the token at fault
and the column of the condition being read (DESIGN.md, "Slice text")."""

import pytest

from boundary.slices import SliceSyntaxError, parse

BAD_TEXTS = [
    ("age <", "expected a value for column 'age' at character 6, found the end of the text"),
    (
        "age < 22 income > 3",
        "expected AND or the end of the slice after the condition on 'age' at character 10, "
        "found 'income'",
    ),
    (
        "region == north",
        "expected a value for column 'region' (a number, true, false or \"quoted text\") at "
        "character 11, found 'north'",
    ),
    (
        'region in "north"',
        "expected '(' opening a list of values for column 'region' at character 11, "
        "found '\"north\"'",
    ),
    (
        'region in ("a" "b")',
        "expected ',' or ')' in the list of values for column 'region' at character 16, "
        "found '\"b\"'",
    ),
    ("score between 1 or 2", "expected 'and' for column 'score' at character 17, found 'or'"),
    ("email is nothing", "expected 'null' for column 'email' at character 10, found 'nothing'"),
    (
        "age 22",
        "expected an operator after column 'age' (== != < <= > >= in, not in, between, is "
        "null, is not null) at character 5, found '22'",
    ),
    (
        "and > 3",
        "expected a column name (back-quote it: `name`) at character 1, found 'and'",
    ),
    (
        "mean radius > 14",
        "expected an operator after column 'mean' (== != < <= > >= in, not in, between, is "
        "null, is not null) at character 6, found 'radius'",
    ),
    ("age ~ 3", "unexpected character '~' at character 5"),
    ("`mean radius > 14", "unterminated column name starting at character 1: missing closing `"),
    ('region == "north', 'unterminated string starting at character 11: missing closing "'),
    ('[{"feature": "age"}]', "unexpected character '[' at character 1"),
]


@pytest.mark.parametrize(("text", "message"), BAD_TEXTS, ids=[t for t, _ in BAD_TEXTS])
def test_it_names_the_position_the_token_and_the_column(text, message):
    with pytest.raises(SliceSyntaxError) as caught:
        parse(text)
    assert str(caught.value) == message
