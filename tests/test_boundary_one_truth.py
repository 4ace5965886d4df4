"""One truth (DESIGN.md): every rule has exactly one home, and a second implementation is a
defect even when it agrees today.

1. Source checks over every Python file of the project (outside .venv and migrations):
   no other Wilson interval than ``boundary/stats.py``'s, no other slice evaluator or slice
   writer than ``boundary/slices.py``'s, no other ``.predict_proba(`` call than
   ``boundary/predict.py``'s (tests and benchmarks call models directly). Each detector is
   also run on a planted second copy, so that it is known to fire.
2. Behaviour: on a table with numeric, categorical, boolean and missing values, a probe, a
   boundary map, both stress sweeps, the neighbourhood check and the slice scan select
   exactly the rows of ``slices.mask``.
"""

import ast
import functools
import io
import os
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boundary import slices
from boundary.kinds import ProbeSpec, evaluate_probes
from boundary.maps import boundary_grid, render_boundary_map
from boundary.neighbourhood import neighbourhood_check
from boundary.scan import find_weak_slices
from boundary.sweeps import counterfactual_sweep, noise_sweep

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {"migrations", "__pycache__", "node_modules", "var"}
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()


@functools.cache
def project_files():
    """(path relative to the root, parsed module) of every Python file of the project."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(folder) / name
            rel = path.relative_to(ROOT).as_posix()
            if not name.endswith(".py") or rel == THIS_FILE:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
            except SyntaxError:
                continue  # a file Python cannot read defines nothing (its own tests fail)
            found.append((rel, tree))
    return tuple(found)


def functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def named(fn, pattern):
    """The function's name matches; a test named after what it tests does not count."""
    return not fn.name.startswith("test_") and re.search(pattern, fn.name, re.I)


# ------------------------------------------------------------------- the detectors


def _constants_in(node):
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)}


def _is_sqrt_call(node):
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name == "sqrt"


def _looks_like_wilson(fn):
    """The Wilson score formula's shape: a square root and denominators 2n and 4n²
    (``z² / (2n)`` and ``z² / (4n²)``)."""
    has_sqrt = any(_is_sqrt_call(n) for n in ast.walk(fn))
    denominators = [
        _constants_in(n.right)
        for n in ast.walk(fn)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)
    ]
    return has_sqrt and any(2 in d for d in denominators) and any(4 in d for d in denominators)


def wilson_copies(rel, tree):
    if rel == "boundary/stats.py":
        return []
    return [
        f"{rel}:{fn.lineno} {fn.name}"
        for fn in functions(tree)
        if named(fn, "wilson") or _looks_like_wilson(fn)
    ]


SLICE_RULE_NAMES = (
    r"slice_mask|apply_slice|slice_to_text|describe_slice|predicate_mask|parse_slice"
    r"|slice_from_text|text_to_slice"
)


def _handles_every_slice_op(fn):
    """A function that spells out the slice ops itself (an evaluator, a writer or a
    parser of predicates): it names between, in / not_in and the null ops."""
    strings = {c for c in _constants_in(fn) if isinstance(c, str)}
    return {"between", "not_in"} <= strings and bool({"is_null", "not_null"} & strings)


def slice_rule_copies(rel, tree):
    if rel == "boundary/slices.py":
        return []
    # Tests and benchmarks spell out the ops to build slices; product code must not.
    product = not rel.startswith(("tests/", "benchmarks/"))
    return [
        f"{rel}:{fn.lineno} {fn.name}"
        for fn in functions(tree)
        if named(fn, SLICE_RULE_NAMES) or (product and _handles_every_slice_op(fn))
    ]


def predict_proba_calls(rel, tree):
    if rel == "boundary/predict.py" or rel.startswith(("tests/", "benchmarks/")):
        return []
    return [
        f"{rel}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "predict_proba"
    ]


DETECTORS = {
    "Wilson interval": wilson_copies,
    "slice evaluator or writer": slice_rule_copies,
    "predict_proba call": predict_proba_calls,
}


@pytest.mark.parametrize("rule", list(DETECTORS))
def test_each_rule_has_one_home(rule):
    detect = DETECTORS[rule]
    found = [hit for rel, tree in project_files() for hit in detect(rel, tree)]
    assert found == [], f"a second {rule} (its home is in boundary/): {found}"


def test_the_homes_are_where_the_detectors_look():
    """The detectors recognise the one implementation, so they would see a copy of it."""
    trees = dict(project_files())
    stats, slices_, predict = (
        trees["boundary/stats.py"],
        trees["boundary/slices.py"],
        trees["boundary/predict.py"],
    )
    assert any(_looks_like_wilson(fn) for fn in functions(stats) if fn.name == "wilson")
    assert wilson_copies("boundary/other.py", stats)
    assert slice_rule_copies("boundary/other.py", slices_)
    assert predict_proba_calls("boundary/other.py", predict)


PLANTED = {
    "Wilson interval": [
        """
        def interval(k, n, z=1.96):
            p = k / n
            denom = 1 + z * z / n
            centre = (p + z * z / (2 * n)) / denom
            half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
            return centre - half, centre + half
        """,
        "def wilson_interval(errors, n):\n    return 0.0, 1.0\n",
    ],
    "slice evaluator or writer": [
        "def apply_slice(df, slice):\n    return df\n",
        "def slice_to_text(predicates):\n    return ''\n",
        """
        def rows(df, pred):
            op, value = pred["op"], pred.get("value")
            if op == "is_null":
                return df[pred["feature"]].isna()
            if op == "between":
                return df[pred["feature"]].between(*value)
            if op in ("in", "not_in"):
                hit = df[pred["feature"]].isin(value)
                return hit if op == "in" else ~hit
            return df[pred["feature"]] == value
        """,
    ],
    "predict_proba call": [
        "def scores(model, X):\n    return model.predict_proba(X)[:, 1]\n",
    ],
}


@pytest.mark.parametrize(
    ("rule", "source"), [(rule, src) for rule, srcs in PLANTED.items() for src in srcs]
)
def test_a_planted_second_copy_is_found(rule, source):
    tree = ast.parse(textwrap.dedent(source))
    assert DETECTORS[rule]("introspection/planted.py", tree)


# ------------------------------------------------------------------ behaviour parity


class RecordingModel:
    """P(1) rises with age; records the `rowid` of every row it is asked about."""

    classes_ = np.array([0, 1])

    def __init__(self):
        self.calls = []

    def predict_proba(self, X):
        self.calls.append(X["rowid"].to_numpy().copy())
        p = 1.0 / (1.0 + np.exp(-(X["age"].to_numpy(dtype=float) - 45.0) / 4.0))
        return np.column_stack([1.0 - p, p])


FEATURES = ["rowid", "age", "income", "grade", "region", "vip"]


def parity_table(n=400, seed=5):
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, n).round(0)
    income[rng.random(n) < 0.15] = np.nan
    grade = rng.choice(np.array(["1", "2", "x", None], dtype=object), n, p=[0.4, 0.3, 0.2, 0.1])
    region = rng.choice(np.array(["north", "south", "east", None], dtype=object), n)
    df = pd.DataFrame(
        {
            "rowid": np.arange(n),
            "age": rng.integers(18, 80, n),
            "income": income,
            "grade": grade,
            "region": region,
            "vip": rng.random(n) < 0.3,
        }
    )
    df["y"] = (rng.random(n) < 0.5).astype(int)
    return df


PARITY_SLICES = [
    [],
    [{"feature": "grade", "op": "==", "value": 1}],  # categorical text vs number
    [{"feature": "grade", "op": "in", "value": [2, "x"]}],
    [{"feature": "grade", "op": "!=", "value": 1}],  # missing values satisfy !=
    [{"feature": "region", "op": "not_in", "value": ["north"]}],
    [{"feature": "income", "op": "is_null"}],
    [{"feature": "income", "op": ">", "value": 20000}],  # missing values do not
    [{"feature": "income", "op": "not_null"}, {"feature": "age", "op": "<", "value": 40}],
    [
        {"feature": "age", "op": "between", "value": [30, 50]},
        {"feature": "vip", "op": "==", "value": "true"},
    ],
    slices.parse('grade == "1" AND region in ("south", "east") AND age >= 30'),
]


@pytest.mark.parametrize("slice_", PARITY_SLICES, ids=slices.describe)
def test_probes_maps_sweeps_and_neighbourhoods_select_the_rows_of_slices_mask(slice_):
    df = parity_table()
    expected = slices.mask(df, slice_)
    rows = np.flatnonzero(expected)
    assert 0 < rows.size < len(df) or not slice_

    # A probe: its support, and the rows its counterfactual sends to the model.
    model = RecordingModel()
    spec = ProbeSpec(
        "cf",
        "counterfactual_flip_rate",
        slice_,
        {"changes": {"age": {"add": 0}}},
        "<=",
        1.0,
        min_support=0,
    )
    (result,) = evaluate_probes(model, df, "y", [spec])
    assert result.status == "passed" and result.support == rows.size
    assert model.calls[-1].tolist() == rows.tolist()

    # A boundary map: its slice support, and the rows its held values come from.
    summary = render_boundary_map(
        RecordingModel(),
        df,
        "y",
        "age",
        "income",
        slice=slice_ or None,
        path_or_buffer=io.BytesIO(),
        feature_columns=FEATURES,
        resolution=4,
        max_points=0,
    )
    assert summary["slice_support"] == (rows.size if slice_ else None)
    grid = boundary_grid(
        RecordingModel(), df, "age", "income", slice=slice_, feature_columns=FEATURES, resolution=4
    )
    assert grid["base_row"]["rowid"] == round(float(np.median(rows)))

    # Both stress sweeps: the unperturbed rows come first in their one model call.
    model = RecordingModel()
    points = noise_sweep(model, df, FEATURES, slice_, scales=(0.1,), repeats=2, features=["age"])
    assert points[0]["n"] == 2 * rows.size
    assert model.calls[0][: rows.size].tolist() == rows.tolist()
    model = RecordingModel()
    points = counterfactual_sweep(model, df, FEATURES, slice_, "age", values=[20, 70])
    assert [p["n"] for p in points] == [rows.size, rows.size]
    assert model.calls[0][: rows.size].tolist() == rows.tolist()

    # The neighbourhood check: the slice's own support and errors.
    pred = (df["age"] > 45).astype(int).to_numpy()
    report = neighbourhood_check(df, df["y"], pred, slice_, min_support=5)
    assert report["slice_support"] == rows.size
    wrong = pred != df["y"].to_numpy()
    assert report["slice_error_rate"] == pytest.approx(wrong[expected].mean())


def test_the_scan_reports_the_rows_of_slices_mask():
    df = parity_table(n=3000, seed=6)
    planted = slices.parse("grade == 1 AND income is null")
    region = slices.mask(df, planted)
    rng = np.random.default_rng(7)
    y = df["y"].to_numpy()
    wrong = (rng.random(len(df)) < 0.05) | (region & (rng.random(len(df)) < 0.9))
    pred = np.where(wrong, 1 - y, y)
    found = find_weak_slices(df[FEATURES[1:]], y, pred, min_support=20)
    assert found
    for candidate in found:
        rows = slices.mask(df, candidate["slice"])
        assert candidate["support"] == int(rows.sum())
        assert candidate["errors"] == int(wrong[rows].sum())
        assert candidate["description"] == slices.describe(candidate["slice"])
        assert slices.parse(candidate["description"]) == candidate["slice"]
    best = slices.mask(df, found[0]["slice"])
    assert np.count_nonzero(best & region) / np.count_nonzero(best | region) > 0.8
