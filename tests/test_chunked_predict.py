"""Predicting in chunks of rows (boundary.predict.CHUNK_ROWS, settings.PREDICT_CHUNK_ROWS):
every row predicted once, in order, into one array, with the numbers of one call over the
whole table: exactly for trees (random forest, HistGradientBoosting), to 1e-12 for a
logistic regression behind a StandardScaler and a OneHotEncoder (a BLAS sum may round its
last bit differently in another batch size). The table has 1,003 rows: no chunk size used
here divides it, and 5,000 is more rows than it has."""

import inspect
import math
import os
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from boundary import artifacts, ensembles, predict
from boundary.kinds import DEFAULT_COMPARATOR, ProbeSpec, evaluate_probes
from boundary.predict import CHUNK_ROWS, probabilities, row_runs

ROWS = 1_003
NUMERIC = ["x0", "x1", "age", "income"]
CATEGORICAL = ["region", "plan"]
FEATURES = NUMERIC + CATEGORICAL
CHUNKS = [97, 100, 5_000]


def table(rows=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x0": rng.normal(size=rows), "x1": rng.normal(size=rows)})
    df["age"] = rng.integers(18, 90, rows)
    df["income"] = rng.lognormal(10, 0.8, rows)
    df["region"] = rng.choice(["north", "south", "east", "west"], rows)
    df["plan"] = rng.choice([f"p{i}" for i in range(6)], rows)
    score = df.x0 + 0.8 * df.x1 * df.x0 - 0.03 * (df.age - 50) + 0.7 * (df.region == "north")
    df["y"] = np.where(score + rng.normal(scale=0.5, size=rows) > 0, "yes", "no")
    df["grade"] = np.array(["low", "mid", "high"])[np.digitize(score, [-0.5, 0.7])]
    df["id"] = np.arange(rows)  # not a model feature
    return df


def encoder(numeric=None):
    return ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
            ("num", numeric or "passthrough", NUMERIC),
        ]
    )


def fitted(kind, target="y"):
    df = table()
    if kind == "forest":
        last = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0)
    elif kind == "boosting":
        last = HistGradientBoostingClassifier(max_iter=40, random_state=0)
    else:
        last = LogisticRegression(max_iter=2000)
    numeric = StandardScaler() if kind == "linear" else None
    model = Pipeline([("prep", encoder(numeric)), ("clf", last)])
    return model.fit(df[FEATURES], df[target])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Many small calls: OpenMP threads that wait on each other at every call of a boosted
    # model make them slow on a busy machine, and change no number.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def models():
    return {
        "forest": fitted("forest"),
        "boosting": fitted("boosting"),
        "linear": fitted("linear"),
        "linear 3 classes": fitted("linear", "grade"),
    }


class RowLog:
    """A model that records the index labels of the rows of every predict_proba call."""

    def __init__(self, model):
        self.model = model
        self.classes_ = model.classes_
        self.feature_names_in_ = model.feature_names_in_
        self.calls = []

    def predict_proba(self, X):
        self.calls.append(X.index.to_list())
        return self.model.predict_proba(X)


def same_arrays(a, b):
    for name in ("proba", "classes", "pred", "margin", "pred_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# ------------------------------------------------------------------------------ the runs


@pytest.mark.parametrize(
    ("n", "chunk", "runs"),
    [
        (10, 3, [(0, 3), (3, 6), (6, 9), (9, 10)]),
        (9, 3, [(0, 3), (3, 6), (6, 9)]),
        (5, 8, [(0, 5)]),
        (5, 0, [(0, 5)]),
        (0, 3, []),
    ],
)
def test_runs_cover_every_row_once_in_order(n, chunk, runs):
    assert list(row_runs(n, chunk)) == runs


def test_predictions_are_chunked_by_default(settings):
    class Half:
        classes_ = np.array([0, 1])

        def __init__(self):
            self.calls = []

        def predict_proba(self, X):
            self.calls.append(len(X))
            return np.full((len(X), 2), 0.5)

    model = Half()
    X = pd.DataFrame({"a": np.zeros(CHUNK_ROWS + 1)})
    predict.predict(model, X)
    assert model.calls == [CHUNK_ROWS, 1]
    for function in (predict.probabilities, predict.predict, ensembles.component_predictions):
        assert inspect.signature(function).parameters["chunk_rows"].default == CHUNK_ROWS
    assert artifacts.Isolation().chunk_rows == CHUNK_ROWS
    if "PREDICT_CHUNK_ROWS" not in os.environ:
        assert settings.PREDICT_CHUNK_ROWS == CHUNK_ROWS


# --------------------------------------------------------------------- one prediction


@pytest.mark.parametrize("kind", ["forest", "boosting"])
@pytest.mark.parametrize("chunk", CHUNKS)
def test_trees_give_exactly_the_one_call_predictions(models, kind, chunk):
    model = models[kind]
    X = table()[FEATURES]
    whole = predict.predict(model, X, chunk_rows=0)
    logged = RowLog(model)
    chunked = predict.predict(logged, X, chunk_rows=chunk)
    same_arrays(chunked, whole)
    assert [len(rows) for rows in logged.calls] == [
        stop - start for start, stop in row_runs(ROWS, chunk)
    ]
    assert sum(logged.calls, []) == X.index.to_list()  # each row once, in order


@pytest.mark.parametrize("kind", ["linear", "linear 3 classes"])
@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_scaled_one_hot_logistic_regression_agrees_to_1e_12(models, kind, chunk):
    model = models[kind]
    X = table()[FEATURES]
    whole = predict.predict(model, X, chunk_rows=0)
    chunked = predict.predict(model, X, chunk_rows=chunk)
    np.testing.assert_allclose(chunked.proba, whole.proba, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chunked.margin, whole.margin, rtol=0, atol=1e-12)
    # No row is within 1e-12 of a tie, so every predicted class is the same.
    assert whole.margin.min() > 1e-9
    np.testing.assert_array_equal(chunked.pred, whole.pred)
    assert chunked.proba.shape == (ROWS, len(model.classes_))


def test_a_frame_given_in_chunks_is_never_copied_whole(models):
    X = table()[FEATURES]
    logged = RowLog(models["boosting"])
    proba = probabilities(logged, X, chunk_rows=100)
    assert [len(rows) for rows in logged.calls] == [100] * 10 + [3]
    assert proba.flags.c_contiguous and proba.shape == (ROWS, 2)


# --------------------------------------------------------------------- whole evaluations

SLICE = [{"feature": "region", "op": "in", "value": ["north", "west"]}]
PARAMS = {
    "group_disparity": {"group_feature": "plan", "min_support": 5},
    "perturbation_flip_rate": {"repeats": 4, "scale": 0.3, "seed": 2},
    "counterfactual_flip_rate": {"changes": {"age": {"add": 15}, "region": {"set": "south"}}},
    "feature_interaction": {"features": ["x0", "x1"], "grid": 4, "sample": 120},
    "slice_metric": {"metric": "roc_auc"},
    "slice_ece": {"bins": 200},
    "component_error_rate": {"component": 3},
}
KINDS = [
    "slice_error_rate",
    "slice_error_gap",
    "margin_density",
    "slice_metric",
    "slice_ece",
    "group_disparity",
    "perturbation_flip_rate",
    "counterfactual_flip_rate",
    "slice_share",
    "feature_interaction",
]
ENSEMBLE_KINDS = ["ensemble_disagreement", "component_error_rate"]


def specs(kinds):
    found = []
    for kind in kinds:
        for where, slice_ in (("all", []), ("slice", SLICE)):
            found.append(
                ProbeSpec(
                    f"{kind} {where}",
                    kind,
                    slice_,
                    PARAMS.get(kind, {}),
                    DEFAULT_COMPARATOR[kind],
                    0.2,
                    min_support=1,
                )
            )
    return found


def evaluated(model, probes, chunk, target="y"):
    results = evaluate_probes(
        model, table(), target, probes, ignored_columns=["id", "grade"], chunk_rows=chunk
    )
    assert all(r.status != "error" for r in results), [r.error for r in results]
    return [replace(r, duration_s=0) for r in results]


@pytest.mark.parametrize("kind", ["forest", "boosting"])
@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_whole_evaluation_of_trees_is_identical_in_chunks(models, kind, chunk):
    probes = specs(KINDS + (ENSEMBLE_KINDS if kind == "forest" else []))
    expected = evaluated(models[kind], probes, 0)
    assert evaluated(models[kind], probes, chunk) == expected
    flips = [r for r in expected if "flip" in r.key]
    assert all(r.value > 0 for r in flips)  # the noise and the changes do move predictions
    if kind == "forest":
        assert all("components" in r.details for r in expected)
    # The same evaluation (the components aside) through a model that logs its calls.
    probes = specs(KINDS)
    whole = RowLog(models[kind])
    expected = evaluated(whole, probes, 0)
    logged = RowLog(models[kind])
    assert evaluated(logged, probes, chunk) == expected
    # Each call of the one-call evaluation (the table, each model-calling probe's frame)
    # became calls on consecutive runs of at most `chunk` of its rows, every row once: no
    # perturbed or changed frame was built over more rows than a chunk.
    assert {ROWS, 4 * int(table().region.isin(["north", "west"]).sum())} <= {
        len(rows) for rows in whole.calls
    }
    assert all(len(rows) <= chunk for rows in logged.calls)
    assert len(logged.calls) == sum(math.ceil(len(rows) / chunk) for rows in whole.calls)
    assert sum(logged.calls, []) == sum(whole.calls, [])


@pytest.mark.parametrize("kind", ["linear", "linear 3 classes"])
def test_a_whole_evaluation_of_a_logistic_regression_agrees_in_chunks(models, kind):
    target = "grade" if "3" in kind else "y"
    kinds = [k for k in KINDS if not (target == "grade" and k == "slice_metric")]
    probes = specs(kinds)
    if target == "grade":
        for i, probe in enumerate(probes):
            if probe.kind in ("group_disparity", "feature_interaction"):
                probes[i] = replace(probe, params={**probe.params, "pos_label": "high"})
    expected = evaluated(models[kind], probes, 0, target)
    for got, want in zip(evaluated(models[kind], probes, 97, target), expected, strict=True):
        assert (got.key, got.status, got.support) == (want.key, want.status, want.support)
        for name in ("value", "ci_low", "ci_high"):
            assert getattr(got, name) == pytest.approx(getattr(want, name), rel=0, abs=1e-12)


def test_the_ece_of_many_bins_is_that_of_the_cells_in_full_width(models):
    from boundary import stats

    model = models["boosting"]
    df = table()
    p = predict.predict(model, df[FEATURES], chunk_rows=0)
    correct = (p.pred == df.y.to_numpy()).astype(np.int64)
    conf = p.proba.max(axis=1)
    for bins in (10, 200):  # bins and cells kept as int8, then as int16
        probe = ProbeSpec("ece", "slice_ece", [], {"bins": bins}, "<=", 0.1, min_support=1)
        (result,) = evaluate_probes(model, df, "y", [probe], ignored_columns=["id", "grade"])
        b, cell, sub = stats.ece_cells(conf, bins)
        value, low, high, _ = stats.ece(conf, correct, b, cell, bins, sub, 0)
        assert (result.value, result.ci_low, result.ci_high) == (value, low, high)


# ---------------------------------------------------------------- a model in its process


def test_a_model_in_its_own_process_is_asked_one_chunk_at_a_time(models, tmp_path):
    path = tmp_path / "forest.skops"
    artifacts.dump_skops(models["forest"], path)
    isolated = artifacts.load_model(
        path, expected_sha256=artifacts.sha256_of(path), isolate=artifacts.Isolation(chunk_rows=97)
    )
    asked = []
    call = isolated._call

    def recording(stage, request, *, limit):
        if request[0] != "load":
            asked.append((request[0], len(request[1])))
        return call(stage, request, limit=limit)

    isolated._call = recording
    try:
        X = table()[FEATURES]
        whole = predict.predict(models["forest"], X, chunk_rows=0)
        same_arrays(predict.predict(isolated, X, chunk_rows=0), whole)
        components = ensembles.component_predictions(models["forest"], X, chunk_rows=0)
        np.testing.assert_array_equal(isolated.component_predictions(X), components)
        sizes = [stop - start for start, stop in row_runs(ROWS, 97)]
        assert asked == [("predict_proba", n) for n in sizes] + [("components", n) for n in sizes]
    finally:
        isolated.close()


@pytest.mark.parametrize("k", [1, 2, 3, 7, 33])
def test_top_probability_is_the_row_maximum_exactly(k):
    from boundary.predict import top_probability

    rng = np.random.default_rng(k)
    proba = rng.dirichlet(np.ones(k), size=5_000) if k > 1 else rng.random((5_000, 1))
    proba[::7] = proba[::7].round(1)  # ties within rows
    proba[3, k - 1] = np.nan  # NaN propagates, wherever it is
    proba[5, 0] = np.nan
    expected = proba.max(axis=1)
    got = top_probability(proba)
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[3]) and np.isnan(got[5])
    assert not np.shares_memory(got, proba)  # a new array: callers may keep it
