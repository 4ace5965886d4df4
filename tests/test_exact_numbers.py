"""The stored numbers are exactly DESIGN.md's definitions, at their edges too.

- `slice_ece` bins with the edges `numpy.arange(B + 1) / B`: a confidence of exactly 0.6 or
  0.7 opens its own bin (with `linspace` edges, 0.6000000000000001 put it a bin too low; a
  100-tree random forest gives k/100 all the time).
- Wilson intervals hold the value and are exactly 0 at k = 0 and exactly 1 at k = n.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier

from boundary import stats
from boundary.kinds import ProbeSpec, evaluate_probes


def reference_ece(conf, correct, bins, edges_of=None):
    """DESIGN.md's ECE, written plainly: bin b holds edges[b] <= c < edges[b+1], c = 1.0 in
    the last bin; the sum over non-empty bins of (n_b / n) * |acc_b - conf_b|."""
    edges = np.arange(bins + 1) / bins if edges_of is None else edges_of(0, 1, bins + 1)
    total = 0.0
    for b in range(bins):
        last = b == bins - 1
        inside = (conf >= edges[b]) & ((conf < edges[b + 1]) | (last & (conf == 1.0)))
        if inside.any():
            total += inside.sum() / conf.size * abs(correct[inside].mean() - conf[inside].mean())
    return total


@pytest.mark.parametrize("bins", [10, 5, 20])
def test_bin_edges_are_exact_multiples(bins):
    k = np.arange(bins + 1)
    conf = k / bins  # every edge itself, 1.0 included
    b, _cell, _sub = stats.ece_cells(conf, bins)
    assert b.tolist() == [*range(bins), bins - 1]


def test_confidences_of_exactly_six_and_seven_tenths_open_their_bins():
    b, _cell, _sub = stats.ece_cells(np.array([0.6, 0.7, 0.5999999, 0.69, 0.99, 1.0]), 10)
    assert b.tolist() == [6, 7, 5, 6, 9, 9]


@pytest.fixture(scope="module")
def forest():
    data = load_breast_cancer(as_frame=True)
    frame = data.frame
    model = RandomForestClassifier(n_estimators=100, random_state=0)  # pure leaves: k/100
    model.fit(frame.drop(columns="target").iloc[::2], frame["target"].iloc[::2])
    return model, frame


@pytest.mark.parametrize("bins", [10, 7])
def test_slice_ece_of_a_forest_equals_the_definition(forest, bins):
    model, frame = forest
    proba = model.predict_proba(frame.drop(columns="target"))
    conf = proba.max(axis=1)
    assert np.isin(conf, np.arange(101) / 100).all()  # k/100, as feared
    assert np.isin([0.6, 0.7], conf).any()  # the edges that linspace got wrong occur
    correct = (model.classes_[proba.argmax(axis=1)] == frame["target"].to_numpy()).astype(float)
    spec = ProbeSpec("ece", "slice_ece", [], {"bins": bins}, "<=", 0.5, min_support=1)
    (result,) = evaluate_probes(model, frame, "target", [spec])
    assert result.value == pytest.approx(reference_ece(conf, correct, bins), abs=1e-12)
    if bins == 10:  # linspace's edges would have given another number on this forest
        assert abs(reference_ece(conf, correct, bins, np.linspace) - result.value) > 1e-6


@pytest.mark.parametrize("n", [1, 2, 13, 30, 1000])
def test_wilson_at_the_ends_is_exact(n):
    assert stats.wilson(0, n)[0] == 0.0
    assert stats.wilson(n, n)[1] == 1.0
    for k in range(0, n + 1, max(1, n // 50)):
        low, high = stats.wilson(k, n)
        assert 0.0 <= low <= k / n <= high <= 1.0


def test_the_reported_cases():
    assert stats.wilson(13, 13)[1] == 1.0
    assert stats.wilson(0, 7)[0] == 0.0
    assert stats.wilson(0, 0) == (None, None)


def test_a_run_with_no_errors_reports_an_interval_from_exactly_zero():
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.9, 0.8], "y": [0, 0, 1, 1]})

    class Perfect:
        classes_ = np.array([0, 1])

        def predict_proba(self, X):
            p = (X["x"].to_numpy() > 0.5).astype(float)
            return np.column_stack([1 - p, p])

    spec = ProbeSpec("e", "slice_error_rate", [], {}, "<=", 0.1, min_support=1)
    (result,) = evaluate_probes(Perfect(), frame, "y", [spec])
    assert (result.value, result.ci_low) == (0.0, 0.0)
    assert result.ci_high > 0.0


def _ece_interval_by_matrix(conf, correct, bins, seed):
    """The bootstrap interval with an explicit (codes x bins) summing matrix: the plain
    form of what stats.ece sums by reshaping (fine at few bins, gigabytes at 10,000)."""
    b, cell, sub = stats.ece_cells(conf, bins)
    n_codes = 2 * bins * sub
    code = cell * 2 + correct
    counts = np.bincount(code, minlength=n_codes).astype(np.float64)
    conf_sum = np.bincount(code, weights=conf, minlength=n_codes)
    mean_conf = np.divide(conf_sum, counts, out=np.zeros(n_codes), where=counts > 0)
    signed = np.tile([0.0, 1.0], bins * sub) - mean_conf
    to_bin = np.zeros((n_codes, bins))
    to_bin[np.arange(n_codes), np.arange(n_codes) // (2 * sub)] = 1.0
    return stats.bootstrap(
        counts, lambda d: np.abs((d * signed) @ to_bin).sum(axis=1) / d.sum(axis=1), seed
    )


@pytest.mark.parametrize("bins", [1, 3, 10, 64])
def test_ece_interval_sums_each_bin_s_cells(bins):
    rng = np.random.default_rng(bins)
    conf = rng.uniform(0.5, 1.0, 3000)
    correct = (rng.uniform(size=3000) < conf).astype(np.int64)
    b, cell, sub = stats.ece_cells(conf, bins)
    value, low, high, _table = stats.ece(conf, correct, b, cell, bins, sub, seed=4)
    assert value == pytest.approx(reference_ece(conf, correct, bins), abs=1e-12)
    expected = _ece_interval_by_matrix(conf, correct, bins, seed=4)
    assert (low, high) == pytest.approx(expected, abs=1e-12)


def test_ece_at_the_most_bins_allowed_stays_small_in_memory():
    import tracemalloc

    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 20_000)
    correct = (rng.uniform(size=20_000) < conf).astype(np.int64)
    b, cell, sub = stats.ece_cells(conf, 10_000)
    tracemalloc.start()
    try:
        value, low, high, _table = stats.ece(conf, correct, b, cell, 10_000, sub, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0 <= value <= 1 and 0 <= low <= high <= 1
    # Resamples x codes (200 x 20,000 floats) a few times over; a codes x bins matrix
    # would be 1.6 GB.
    assert peak < 200 * 2**20


@pytest.mark.parametrize("case", ["uniform", "ties", "zeros", "signed_zero", "nan", "negative"])
def test_stable_order_is_numpy_s_stable_argsort(case):
    rng = np.random.default_rng(7)
    scores = rng.uniform(size=20_000)
    if case == "ties":
        scores = scores.round(2)  # k/100, as a forest gives
    elif case == "zeros":
        scores[::3] = 0.0
        scores[::5] = 1.0
    elif case == "signed_zero":
        scores[::3] = 0.0
        scores[1::7] = -0.0  # ties with 0.0: the original order must stay
    elif case == "nan":
        scores[::11] = np.nan
    elif case == "negative":
        scores -= 0.5
    expected = np.argsort(scores, kind="stable")
    np.testing.assert_array_equal(stats.stable_order(scores), expected)
