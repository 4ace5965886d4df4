"""Probe engine: each kind against hand-computed and independent reference numbers."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from boundary import slices, stats
from boundary.kinds import (
    DEFAULT_COMPARATOR,
    PROBE_KINDS,
    ProbeDefinitionError,
    ProbeSpec,
    default_params,
    evaluate_probes,
    validate_probe,
)
from boundary.predict import predict
from boundary.slices import mask as slice_mask
from boundary.slices import schema_of
from boundary.slices import validate as validate_slice

# ----------------------------------------------------------------------------- fixtures

# Kinds that only run on an ensemble (tests/test_new_kinds.py); the models here are not.
ENSEMBLE_ONLY = ("ensemble_disagreement", "component_error_rate")
# Kinds that call the model again beyond the one prediction of the dataset.
MODEL_CALLING = ("perturbation_flip_rate", "counterfactual_flip_rate", "feature_interaction")


class ScoreModel:
    """P(yes) is the clipped 'score' column; ties (0.5) go to 'no', the first class."""

    classes_ = np.array(["no", "yes"])

    def predict_proba(self, X):
        p = np.clip(X["score"].to_numpy(dtype=float), 0.0, 1.0)
        return np.column_stack([1 - p, p])


class CountingModel:
    """Wraps a model and records every predict_proba call and its row count."""

    def __init__(self, model, fail_on_call=None):
        self.model = model
        self.classes_ = model.classes_
        self.calls = []
        self.fail_on_call = fail_on_call

    def predict_proba(self, X):
        self.calls.append(len(X))
        if self.fail_on_call == len(self.calls):
            raise RuntimeError("model exploded")
        return self.model.predict_proba(X)


def tiny():
    # pred 'yes' for rows 0, 1, 2, 7; wrong on rows 1, 3, 7.
    return pd.DataFrame(
        {
            "age": [20, 25, 30, 35, 40, 45, 50, 55],
            "city": ["a", "a", "b", "b", "a", "b", "a", "b"],
            "score": [0.92, 0.83, 0.56, 0.44, 0.27, 0.18, 0.04, 0.61],
            "y": ["yes", "no", "yes", "yes", "no", "no", "no", "no"],
        }
    )


def run_one(kind, params=None, slice=(), comparator=None, threshold=0.5, df=None, **kw):
    df = tiny() if df is None else df
    spec = ProbeSpec(
        "k",
        kind,
        list(slice),
        params or {},
        comparator or DEFAULT_COMPARATOR[kind],
        threshold,
        min_support=kw.pop("min_support", 1),
        **kw,
    )
    model = kw.pop("model", None) or ScoreModel()
    (result,) = evaluate_probes(model, df, "y", [spec])
    return result


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer(as_frame=True)
    df = data.frame.copy()
    X = df.drop(columns="target")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, df.target)
    df["size"] = np.where(df["mean radius"] > 15, "large", "small")
    df.loc[df["mean texture"] > 25, "size"] = "rough"
    return model, df


@pytest.fixture(scope="module")
def wine():
    data = load_wine(as_frame=True)
    df = data.frame.copy()
    X = df.drop(columns="target")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
    model.fit(X, df.target)
    return model, df


def evaluate(model, df, *specs, ignored=("size",)):
    return evaluate_probes(model, df, "target", list(specs), ignored_columns=ignored)


def spec(kind, params=None, slice=(), threshold=0.5, **kw):
    return ProbeSpec(
        kw.pop("key", kind),
        kind,
        list(slice),
        params or {},
        kw.pop("comparator", DEFAULT_COMPARATOR[kind]),
        threshold,
        min_support=kw.pop("min_support", 1),
        **kw,
    )


# ------------------------------------------------------------- hand-computed, tiny table


def test_error_rate_by_hand():
    result = run_one("slice_error_rate", slice=[{"feature": "age", "op": "<", "value": 40}])
    assert result.value == pytest.approx(0.5)  # rows 0-3, wrong on 1 and 3
    assert result.support == 4
    assert result.details["errors"] == 2
    assert result.ci_low < 0.5 < result.ci_high


def test_error_gap_by_hand():
    result = run_one("slice_error_gap", slice=[{"feature": "age", "op": "<", "value": 40}])
    assert result.value == pytest.approx(0.5 - 3 / 8)
    assert result.details["dataset_error_rate"] == pytest.approx(3 / 8)
    assert result.seed == 0


def test_margin_density_by_hand():
    # |2p - 1| < 0.15 only for 0.56 and 0.44.
    result = run_one("margin_density", {"margin": 0.15})
    assert result.value == pytest.approx(2 / 8)
    assert run_one("margin_density").value == 0.0  # default margin 0.1


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("accuracy", 5 / 8),
        ("precision", 2 / 4),  # predicted yes: 0, 1, 2, 7; right on 0, 2
        ("recall", 2 / 3),  # yes rows 0, 2, 3
        ("f1", 4 / 7),
        ("roc_auc", 11 / 15),  # 0.92 beats 5 negatives, 0.56 and 0.44 beat 3 each
    ],
)
def test_slice_metric_by_hand(metric, expected):
    result = run_one("slice_metric", {"metric": metric})
    assert result.value == pytest.approx(expected)
    assert result.ci_low <= result.value <= result.ci_high
    if metric != "accuracy":
        assert result.details["pos_label"] == "yes"  # classes_[1] by default


def test_slice_metric_pos_label_other_class():
    # For 'no': predicted no on 3, 4, 5, 6, right on 4, 5, 6.
    result = run_one("slice_metric", {"metric": "precision", "pos_label": "no"})
    assert result.value == pytest.approx(3 / 4)


def test_ece_by_hand():
    # conf .92 .83 .56 .56 .73 .82 .96 .61; per bin |correct - sum conf|:
    # bin 9: |2 - 1.88|, bin 8: |1 - 1.65|, bin 7: |1 - .73|, bin 6: |0 - .61|, bin 5: |1 - 1.12|
    result = run_one("slice_ece")
    assert result.value == pytest.approx((0.12 + 0.65 + 0.27 + 0.61 + 0.12) / 8)
    assert [b["bin"] for b in result.details["bins"]] == [5, 6, 7, 8, 9]
    assert result.ci_low <= result.value <= result.ci_high


def test_ece_single_bin_and_confidence_one():
    df = tiny()
    df.loc[0, "score"] = 1.0  # confidence exactly 1.0 belongs to the last bin
    result = run_one("slice_ece", {"bins": 2}, df=df)
    conf = np.maximum(df.score, 1 - df.score)
    assert result.value == pytest.approx(abs(5 / 8 - conf.mean()))
    assert [b["bin"] for b in result.details["bins"]] == [1]


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("selection_rate", 0.0),  # a: rows 0, 1 of 4 predicted yes; b: rows 2, 7 of 4
        ("error_rate", 0.25),  # a: 1 of 4 wrong, b: 2 of 4
        ("tpr", 0.5),  # a: 1 of 1 positive found, b: 1 of 2
        ("fpr", 0.5 - 1 / 3),  # a: 1 of 3 negatives predicted yes, b: 1 of 2
    ],
)
def test_group_disparity_by_hand(metric, expected):
    params = {"group_feature": "city", "metric": metric, "min_support": 2}
    result = run_one("group_disparity", params)
    assert result.value == pytest.approx(expected)
    assert result.details["groups_qualifying"] == 2


def test_group_disparity_too_few_groups_is_inconclusive():
    params = {"group_feature": "city", "min_support": 5}
    result = run_one("group_disparity", params)
    assert result.status == "inconclusive"
    assert result.value is None
    assert "fewer than 2 groups" in result.error


def test_perturbation_by_hand():
    # Rows at exactly 0.5 are predicted 'no' (tie) and flip exactly when their noise is
    # positive; the others sit far beyond the tiny noise.
    df = tiny()
    df.loc[[2, 5], "score"] = 0.5
    params = {"features": ["score"], "scale": 1e-4, "repeats": 3, "seed": 7}
    result = run_one("perturbation_flip_rate", params, df=df)
    noise = np.random.default_rng(7).standard_normal((3 * 8, 1))
    at_tie = np.tile(np.isin(np.arange(8), [2, 5]), 3)
    expected = np.count_nonzero((noise[:, 0] > 0) & at_tie) / 24
    assert result.value == pytest.approx(expected)
    assert 0 < expected < 0.25
    assert result.details["pairs"] == 24
    assert result.details["noise_sd"]["score"] == pytest.approx(1e-4 * df.score.std(ddof=1))
    assert result.seed == 7


def test_perturbation_default_features_are_numeric():
    result = run_one("perturbation_flip_rate", {"scale": 1e-6})
    assert result.details["features"] == ["age", "score"]
    assert result.value == 0.0


def test_counterfactual_by_hand():
    # +0.3: 0.44 -> 0.74 and 0.27 -> 0.57 flip to yes; 0.18 -> 0.48 stays no.
    added = run_one("counterfactual_flip_rate", {"changes": {"score": {"add": 0.3}}})
    assert added.value == pytest.approx(2 / 8)
    # set 0: every 'yes' prediction (rows 0, 1, 2, 7) flips.
    put = run_one("counterfactual_flip_rate", {"changes": {"score": {"set": "0"}}})
    assert put.value == pytest.approx(4 / 8)
    assert put.details["flips"] == 4


def test_counterfactual_on_slice_and_category_set():
    df = tiny()
    df["city"] = df["city"].astype("category")
    result = run_one(
        "counterfactual_flip_rate",
        {"changes": {"city": {"set": "b"}}},
        slice=[{"feature": "city", "op": "==", "value": "a"}],
        df=df,
    )
    assert result.value == 0.0 and result.support == 4
    refused = run_one("counterfactual_flip_rate", {"changes": {"city": {"set": "zz"}}}, df=df)
    assert refused.status == "error" and "not a category of column 'city'" in refused.error


# ------------------------------------------------- independent references, real datasets


def test_real_error_rate_gap_and_margin(cancer):
    model, df = cancer
    X = df.drop(columns=["target", "size"])
    pred = model.predict(X)
    proba = model.predict_proba(X)
    in_slice = (df["mean radius"] > 13).to_numpy()
    wrong = pred != df.target.to_numpy()
    s = [{"feature": "mean radius", "op": ">", "value": 13}]
    rate, gap, dens = evaluate(
        model,
        df,
        spec("slice_error_rate", slice=s),
        spec("slice_error_gap", slice=s),
        spec("margin_density", {"margin": 0.6}, slice=s),
    )
    assert rate.value == pytest.approx(wrong[in_slice].mean())
    assert gap.value == pytest.approx(wrong[in_slice].mean() - wrong.mean())
    assert dens.value == pytest.approx((np.abs(proba[:, 1] - proba[:, 0]) < 0.6)[in_slice].mean())
    for r in (rate, gap, dens):
        assert r.ci_low <= r.value <= r.ci_high


@pytest.mark.parametrize("pos_label", [1, 0])
def test_real_slice_metrics_match_sklearn(cancer, pos_label):
    model, df = cancer
    s = [{"feature": "mean texture", "op": "between", "value": [15, 25]}]
    part = df[df["mean texture"].between(15, 25)]
    Xp = part.drop(columns=["target", "size"])
    y, pred = part.target, model.predict(Xp)
    col = list(model.classes_).index(pos_label)
    expected = {
        "accuracy": (pred == y).mean(),
        "precision": precision_score(y, pred, pos_label=pos_label),
        "recall": recall_score(y, pred, pos_label=pos_label),
        "f1": f1_score(y, pred, pos_label=pos_label),
        "roc_auc": roc_auc_score(y == pos_label, model.predict_proba(Xp)[:, col]),
    }
    specs = [
        spec("slice_metric", {"metric": m, "pos_label": pos_label}, slice=s, key=m)
        for m in expected
    ]
    for result in evaluate(model, df, *specs):
        assert result.value == pytest.approx(expected[result.key], abs=1e-12), result.key
        assert result.ci_low <= result.value <= result.ci_high
        assert result.support == len(part)


def reference_ece(conf, correct, bins):
    """Loop over [lo, hi) bins, the last one closed."""
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (conf >= lo) & ((conf < hi) if b < bins - 1 else (conf <= hi))
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


@pytest.mark.parametrize("bins", [1, 5, 10, 15])
def test_real_ece_matches_loop(cancer, bins):
    model, df = cancer
    X = df.drop(columns=["target", "size"])
    proba = model.predict_proba(X)
    conf = proba.max(axis=1)
    correct = model.classes_[proba.argmax(axis=1)] == df.target.to_numpy()
    (result,) = evaluate(model, df, spec("slice_ece", {"bins": bins}))
    assert result.value == pytest.approx(reference_ece(conf, correct, bins), abs=1e-12)
    assert result.ci_low <= result.value <= result.ci_high


@pytest.mark.parametrize("metric", ["selection_rate", "tpr", "fpr", "error_rate"])
def test_real_group_disparity_matches_groupby(cancer, metric):
    model, df = cancer
    X = df.drop(columns=["target", "size"])
    frame = pd.DataFrame({"g": df["size"], "y": df.target, "p": model.predict(X)})
    frame = frame[df["mean smoothness"].to_numpy() < 0.11]
    frame = frame[frame.groupby("g").g.transform("size") >= 30]

    def per_group(g):
        if metric == "selection_rate":
            return (g.p == 1).mean()
        if metric == "tpr":
            return (g.p[g.y == 1] == 1).mean()
        if metric == "fpr":
            return (g.p[g.y == 0] == 1).mean()
        return (g.p != g.y).mean()

    values = frame.groupby("g")[["y", "p"]].apply(per_group).dropna()
    params = {"group_feature": "size", "metric": metric}
    s = [{"feature": "mean smoothness", "op": "<", "value": 0.11}]
    (result,) = evaluate(model, df, spec("group_disparity", params, slice=s))
    assert result.value == pytest.approx(values.max() - values.min(), abs=1e-12)
    assert {g["group"] for g in result.details["groups"]} == set(values.index)
    assert result.ci_low <= result.value <= result.ci_high


def test_real_perturbation_matches_repeat_loop(cancer):
    model, df = cancer
    X = df.drop(columns=["target", "size"])
    features = ["mean radius", "mean texture", "worst area"]
    rows = np.flatnonzero((df["size"] == "small").to_numpy())
    base = model.predict(X.iloc[rows])
    noise = np.random.default_rng(3).standard_normal((4 * rows.size, 3))
    flips = 0
    for r in range(4):
        changed = X.iloc[rows].copy()
        for j, f in enumerate(features):
            sd = 0.3 * X[f].std()
            changed[f] = changed[f] + noise[r * rows.size : (r + 1) * rows.size, j] * sd
        flips += np.count_nonzero(model.predict(changed) != base)
    params = {"features": features, "scale": 0.3, "repeats": 4, "seed": 3}
    s = [{"feature": "size", "op": "==", "value": "small"}]
    (result,) = evaluate(model, df, spec("perturbation_flip_rate", params, slice=s))
    assert flips > 0
    assert result.value == pytest.approx(flips / (4 * rows.size))
    assert result.details["flips"] == flips


def test_real_counterfactual_matches_manual(cancer):
    model, df = cancer
    X = df.drop(columns=["target", "size"])
    rows = (df["mean area"] >= 500).to_numpy()
    changed = X[rows].copy()
    changed["worst radius"] = changed["worst radius"] + 4
    changed["mean concavity"] = 0.05
    expected = np.mean(model.predict(changed) != model.predict(X[rows]))
    changes = {"worst radius": {"add": 4}, "mean concavity": {"set": 0.05}}
    s = [{"feature": "mean area", "op": ">=", "value": 500}]
    (result,) = evaluate(model, df, spec("counterfactual_flip_rate", {"changes": changes}, slice=s))
    assert expected > 0
    assert result.value == pytest.approx(expected)


def test_multiclass_wine(wine):
    model, df = wine
    X = df.drop(columns="target")
    proba = model.predict_proba(X)
    pred = model.predict(X)
    y = df.target.to_numpy()
    top2 = np.sort(proba, axis=1)[:, -2:]
    specs = [
        spec("slice_metric", {"metric": "accuracy"}, key="accuracy"),
        spec("slice_metric", {"metric": "precision", "pos_label": 2}, key="precision"),
        spec("slice_metric", {"metric": "recall", "pos_label": "1"}, key="recall"),
        spec("slice_metric", {"metric": "roc_auc", "pos_label": 1}, key="roc_auc"),
        spec("margin_density", {"margin": 0.5}, key="margin"),
        spec("slice_ece", {"bins": 8}, key="ece"),
        spec("slice_metric", {"metric": "f1"}, key="f1_without_pos_label"),
    ]
    results = {r.key: r for r in evaluate(model, df, *specs, ignored=())}
    assert results["accuracy"].value == pytest.approx((pred == y).mean())
    assert results["precision"].value == pytest.approx(
        precision_score(y, pred, labels=[2], average=None)[0]
    )
    assert results["recall"].value == pytest.approx(
        recall_score(y, pred, labels=[1], average=None)[0]
    )
    assert results["roc_auc"].value == pytest.approx(roc_auc_score(y == 1, proba[:, 1]))
    assert results["margin"].value == pytest.approx(((top2[:, 1] - top2[:, 0]) < 0.5).mean())
    assert results["margin"].value > 0
    assert results["ece"].value == pytest.approx(
        reference_ece(proba.max(axis=1), pred == y, 8), abs=1e-12
    )
    assert results["f1_without_pos_label"].status == "error"
    assert "pos_label is required" in results["f1_without_pos_label"].error


def test_multiclass_group_error_rate_needs_no_pos_label(wine):
    model, df = wine
    df = df.assign(band=np.where(df.alcohol > 13, "strong", "light"))
    params = {"group_feature": "band", "metric": "error_rate", "min_support": 10}
    (result,) = evaluate(model, df, spec("group_disparity", params), ignored=("band",))
    assert result.status in ("passed", "failed")
    pred = model.predict(df.drop(columns=["target", "band"]))
    rates = pd.Series(pred != df.target).groupby(df.band).mean()
    assert result.value == pytest.approx(rates.max() - rates.min())


# ----------------------------------------------------------------------- intervals


def test_bootstrap_is_seeded(cancer):
    model, df = cancer
    a, b, c = evaluate(
        model,
        df,
        spec("slice_metric", {"metric": "roc_auc", "seed": 5}, key="a"),
        spec("slice_metric", {"metric": "roc_auc", "seed": 5}, key="b"),
        spec("slice_metric", {"metric": "roc_auc", "seed": 6}, key="c"),
    )
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert a.seed == 5


def test_auc_bootstrap_matches_row_resampling(cancer):
    # The cell bootstrap must agree with a plain row bootstrap up to Monte-Carlo noise.
    model, df = cancer
    X = df.drop(columns=["target", "size"])
    score = model.predict_proba(X)[:, 1]
    label = df.target.to_numpy() == 1
    rng = np.random.default_rng(0)
    aucs = []
    for _ in range(400):
        i = rng.integers(0, len(df), len(df))
        aucs.append(roc_auc_score(label[i], score[i]))
    low, high = np.percentile(aucs, [2.5, 97.5])
    (result,) = evaluate(model, df, spec("slice_metric", {"metric": "roc_auc"}))
    assert result.ci_low == pytest.approx(low, abs=0.004)
    assert result.ci_high == pytest.approx(high, abs=0.004)


def test_wilson_interval_known_value():
    low, high = stats.wilson(3, 8)  # from the Wilson score formula, z = 1.96
    assert low == pytest.approx(0.1368, abs=1e-4)
    assert high == pytest.approx(0.6943, abs=1e-4)


# ----------------------------------------------------------- calls and predicate cache


def test_one_predict_call_for_prediction_only_probes(cancer):
    model, df = cancer
    counting = CountingModel(model)
    kinds = [k for k in PROBE_KINDS if k not in MODEL_CALLING + ENSEMBLE_ONLY]
    params = {"group_disparity": {"group_feature": "size"}}
    specs = [spec(k, params.get(k)) for k in kinds] * 3
    results = evaluate(counting, df, *specs)
    assert counting.calls == [len(df)]
    assert all(r.status in ("passed", "failed") for r in results)


def test_one_extra_call_per_perturbation_probe_on_slice_rows_only(cancer):
    model, df = cancer
    counting = CountingModel(model)
    s = [{"feature": "size", "op": "==", "value": "small"}]
    n = int((df["size"] == "small").sum())
    evaluate(
        counting,
        df,
        spec("slice_error_rate"),
        spec("perturbation_flip_rate", {"repeats": 3}, slice=s),
        spec("counterfactual_flip_rate", {"changes": {"mean radius": {"add": 1}}}, slice=s),
        spec("slice_metric", {"metric": "f1"}),
    )
    assert counting.calls == [len(df), 3 * n, n]


def test_given_predictions_skip_the_model(cancer):
    model, df = cancer
    counting = CountingModel(model)
    predictions = predict(model, df.drop(columns=["target", "size"]))
    evaluate_probes(counting, df, "target", [spec("slice_error_rate")], predictions=predictions)
    assert counting.calls == []


def test_identical_predicates_are_computed_once(cancer, monkeypatch):
    model, df = cancer
    calls = []
    original = slices._predicate_mask

    def counting_mask(column, op, value):
        calls.append((op, value))
        return original(column, op, value)

    monkeypatch.setattr(slices, "_predicate_mask", counting_mask)
    a = {"feature": "mean radius", "op": ">", "value": 12}
    same = {"feature": "mean radius", "op": ">", "value": "12"}  # normalises to the same
    b = {"feature": "size", "op": "in", "value": ["small", "large"]}
    results = evaluate(
        model,
        df,
        spec("slice_error_rate", slice=[a]),
        spec("margin_density", slice=[same, b]),
        spec("slice_metric", slice=[b, a]),
        spec("slice_ece", slice=[a]),
    )
    assert sorted(calls, key=str) == sorted([(">", 12), ("in", ["small", "large"])], key=str)
    assert results[1].support == results[2].support


def test_on_result_called_for_each_probe(cancer):
    model, df = cancer
    seen = []
    specs = [
        spec("slice_error_rate", key=1),
        spec("counterfactual_flip_rate", {"changes": {"mean radius": {"add": 1}}}, key=2),
        spec("slice_ece", key=3),
    ]
    results = evaluate_probes(
        model, df, "target", specs, ignored_columns=["size"], on_result=lambda r: seen.append(r.key)
    )
    assert sorted(seen) == [1, 2, 3]
    assert seen[0] == 2  # model-calling probes run first
    assert [r.key for r in results] == [1, 2, 3]  # results keep the order of the specs


# ----------------------------------------------------------------- statuses and errors


def test_empty_slice_is_an_error_never_passed():
    result = run_one("slice_error_rate", slice=[{"feature": "age", "op": ">", "value": 99}])
    assert result.status == "error"
    assert result.error == "slice is empty"
    assert result.support == 0 and result.value is None


def test_low_support_is_inconclusive_with_value():
    result = run_one("slice_error_rate", min_support=30)
    assert result.status == "inconclusive"
    assert result.value == pytest.approx(3 / 8)
    assert "below the minimum of 30" in result.error


def test_undefined_metric_is_inconclusive_with_reason():
    s = [{"feature": "y", "op": "==", "value": "no"}]  # one class only
    result = run_one("slice_metric", {"metric": "roc_auc"}, slice=s)
    assert result.status == "inconclusive"
    assert "one class" in result.error
    precision = run_one(
        "slice_metric",
        {"metric": "precision"},
        slice=[{"feature": "score", "op": "<", "value": 0.3}],
    )
    assert precision.status == "inconclusive" and "precision is undefined" in precision.error


@pytest.mark.parametrize(
    ("comparator", "threshold", "status"),
    [
        ("<=", 0.375, "passed"),
        ("<=", 0.37, "failed"),
        (">=", 0.375, "passed"),
        (">=", 0.4, "failed"),
    ],
)
def test_threshold_comparators(comparator, threshold, status):
    result = run_one("slice_error_rate", comparator=comparator, threshold=threshold)
    assert result.status == status
    assert result.details["decision"]


@pytest.mark.parametrize(
    ("kind", "params", "baseline", "tolerance", "status"),
    [
        ("slice_error_rate", {}, 0.375, 0.0, "passed"),  # value 0.375, not worse
        ("slice_error_rate", {}, 0.30, 0.05, "failed"),  # worse by 0.075 > 0.05
        ("slice_error_rate", {}, 0.30, 0.08, "passed"),
        ("slice_metric", {"metric": "accuracy"}, 0.70, 0.05, "failed"),  # 0.625 < 0.65
        ("slice_metric", {"metric": "accuracy"}, 0.65, 0.05, "passed"),
        ("slice_metric", {"metric": "accuracy"}, 0.50, 0.0, "passed"),  # better
    ],
)
def test_no_worse_than_baseline(kind, params, baseline, tolerance, status):
    result = run_one(
        kind,
        params,
        comparator="no_worse_than_baseline",
        threshold=None,
        baseline_value=baseline,
        tolerance=tolerance,
    )
    assert result.status == status


def test_no_worse_than_baseline_without_baseline_is_inconclusive():
    result = run_one("slice_error_rate", comparator="no_worse_than_baseline", threshold=None)
    assert result.status == "inconclusive"
    assert "no baseline" in result.error


def test_no_worse_than_baseline_passes_on_the_baseline_version_itself():
    result = run_one(
        "slice_error_rate", comparator="no_worse_than_baseline", threshold=None, is_baseline=True
    )
    assert result.status == "passed" and "is the baseline" in result.details["decision"]


def test_broken_probe_does_not_stop_the_others():
    model = CountingModel(ScoreModel(), fail_on_call=2)
    specs = [
        spec("perturbation_flip_rate", key="boom"),
        spec("slice_error_rate", slice=[{"feature": "gone", "op": "==", "value": 1}], key="gone"),
        spec("slice_error_rate", key="fine"),
    ]
    results = evaluate_probes(model, tiny(), "y", specs)
    assert [r.status for r in results] == ["error", "error", "passed"]
    assert "model exploded" in results[0].error
    assert results[1].error == "column 'gone' is not in the dataset"


def test_failed_prediction_marks_every_probe():
    model = CountingModel(ScoreModel(), fail_on_call=1)
    results = evaluate_probes(model, tiny(), "y", [spec("slice_error_rate"), spec("slice_ece")])
    assert [r.status for r in results] == ["error", "error"]
    assert "model exploded" in results[0].error


def test_missing_target_column_refused():
    with pytest.raises(ProbeDefinitionError, match="target column 'label'"):
        evaluate_probes(ScoreModel(), tiny(), "label", [])


# ------------------------------------------------------------------------- validation

SCHEMA = {
    "age": "numeric",
    "sex": "categorical",
    "vip": "boolean",
    "at": "datetime",
    "y": "numeric",
}


@pytest.mark.parametrize(
    ("predicate", "message"),
    [
        ({"feature": "agee", "op": "<", "value": 3}, "column 'agee' is not in the dataset"),
        (
            {"feature": "sex", "op": "<", "value": "f"},
            "operator '<' does not fit categorical column 'sex'",
        ),
        ({"feature": "vip", "op": ">=", "value": True}, "does not fit boolean column 'vip'"),
        ({"feature": "age", "op": "like", "value": 3}, "unknown operator 'like' for column 'age'"),
        ({"feature": "age", "op": "between", "value": [5]}, "'between' on column 'age'"),
        ({"feature": "age", "op": "between", "value": [9, 5]}, "low 9 is above high 5"),
        ({"feature": "age", "op": "between", "value": 5}, "'between' on column 'age'"),
        ({"feature": "sex", "op": "in", "value": []}, "non-empty list"),
        ({"feature": "sex", "op": "not_in", "value": "f"}, "non-empty list"),
        ({"feature": "age", "op": "<", "value": "old"}, "numeric column 'age'"),
        ({"feature": "age", "op": "<", "value": None}, "column 'age' is missing"),
        ({"feature": "age", "op": "<", "value": float("nan")}, "finite"),
        ({"feature": "age", "op": "is_null", "value": 3}, "takes no value"),
        ({"feature": "vip", "op": "==", "value": "maybe"}, "boolean column 'vip'"),
        ({"feature": "at", "op": ">", "value": "not a date"}, "datetime column 'at'"),
        ({"feature": "age", "op": "<", "value": 3, "extra": 1}, "unknown keys: extra"),
        ({"op": "<", "value": 3}, "names no column"),
        ({"feature": "age", "op": "==", "value": [1, 2]}, "single value"),
    ],
)
def test_bad_slices_name_the_problem(predicate, message):
    with pytest.raises(ProbeDefinitionError, match=message.replace("(", r"\(")):
        validate_slice([predicate], SCHEMA)


def test_slice_must_be_a_list():
    with pytest.raises(ProbeDefinitionError, match="list of predicates"):
        validate_slice({"feature": "age"}, SCHEMA)


def test_validate_slice_normalises():
    out = validate_slice(
        [
            {"feature": "age", "op": "<", "value": "22"},
            {"feature": "age", "op": "between", "value": ["1.5", 3.0]},
            {"feature": "vip", "op": "==", "value": "true"},
            {"feature": "sex", "op": "in", "value": ["f", "m", "f"]},
            {"feature": "at", "op": ">=", "value": "2024-01-02"},
            {"feature": "age", "op": "is_null"},
        ],
        SCHEMA,
    )
    assert out == [
        {"feature": "age", "op": "<", "value": 22},
        {"feature": "age", "op": "between", "value": [1.5, 3]},
        {"feature": "vip", "op": "==", "value": True},
        {"feature": "sex", "op": "in", "value": ["f", "m"]},
        {"feature": "at", "op": ">=", "value": "2024-01-02T00:00:00"},
        {"feature": "age", "op": "is_null"},
    ]
    assert validate_slice(None, SCHEMA) == []


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("slice_metric", {"metric": "auc"}, "metric must be one of"),
        ("slice_metric", {"metrics": "f1"}, "unknown parameter"),
        ("margin_density", {"margin": 0}, r"margin must be in \(0, 1\]"),
        ("margin_density", {"margin": 1.5}, r"margin must be in \(0, 1\]"),
        ("margin_density", {"margin": "wide"}, "margin must be a number"),
        ("slice_ece", {"bins": 0}, "bins must be between 1"),
        ("slice_ece", {"bins": 2.5}, "bins must be a whole number"),
        ("group_disparity", {}, "group_feature is required"),
        ("group_disparity", {"group_feature": "region"}, "column 'region' is not in the dataset"),
        ("group_disparity", {"group_feature": "y"}, "target column"),
        ("group_disparity", {"group_feature": "sex", "metric": "auc"}, "metric must be one of"),
        ("group_disparity", {"group_feature": "sex", "min_support": 0}, "min_support"),
        ("perturbation_flip_rate", {"repeats": 0}, "repeats must be between 1"),
        ("perturbation_flip_rate", {"scale": -1}, "scale must be above 0"),
        ("perturbation_flip_rate", {"features": ["nope"]}, "column 'nope' is not in the dataset"),
        ("perturbation_flip_rate", {"features": ["sex"]}, "column 'sex' is categorical"),
        ("perturbation_flip_rate", {"features": []}, "non-empty list"),
        ("perturbation_flip_rate", {"seed": -1}, "seed must be between 0"),
        ("counterfactual_flip_rate", {}, "changes must name at least one column"),
        ("counterfactual_flip_rate", {"changes": {"nope": {"set": 1}}}, "column 'nope' is not"),
        ("counterfactual_flip_rate", {"changes": {"sex": {"add": 1}}}, "'add' does not fit"),
        ("counterfactual_flip_rate", {"changes": {"age": {"mul": 2}}}, "needs"),
        ("counterfactual_flip_rate", {"changes": {"age": {"set": "x"}}}, "numeric column 'age'"),
        ("counterfactual_flip_rate", {"changes": {"y": {"set": 1}}}, "target column"),
    ],
)
def test_bad_params_are_refused(kind, params, message):
    with pytest.raises(ProbeDefinitionError, match=message):
        validate_probe(kind, [], params, "<=", 0.1, SCHEMA, target_column="y")


def test_bad_kind_comparator_threshold_and_pos_label():
    with pytest.raises(ProbeDefinitionError, match="unknown probe kind"):
        validate_probe("nonsense", [], {}, "<=", 0.1, SCHEMA)
    with pytest.raises(ProbeDefinitionError, match="comparator must be one of"):
        validate_probe("slice_error_rate", [], {}, "<", 0.1, SCHEMA)
    with pytest.raises(ProbeDefinitionError, match="threshold is required"):
        validate_probe("slice_error_rate", [], {}, "<=", None, SCHEMA)
    with pytest.raises(ProbeDefinitionError, match="threshold must be a number"):
        validate_probe("slice_error_rate", [], {}, "<=", "high", SCHEMA)
    with pytest.raises(ProbeDefinitionError, match="pos_label 7 is not one of"):
        validate_probe(
            "slice_metric", [], {"metric": "f1", "pos_label": 7}, ">=", 0.5, SCHEMA, classes=[0, 1]
        )
    with pytest.raises(ProbeDefinitionError, match="pos_label is required for metric 'recall'"):
        validate_probe(
            "slice_metric", [], {"metric": "recall"}, ">=", 0.5, SCHEMA, classes=[0, 1, 2]
        )
    with pytest.raises(ProbeDefinitionError, match="column 'agee'"):
        validate_probe(
            "slice_error_rate", [{"feature": "agee", "op": "<", "value": 1}], {}, "<=", 0.1, SCHEMA
        )


def test_validate_probe_fills_defaults_and_normalises():
    assert validate_probe("margin_density", [], None, "<=", "0.2", SCHEMA) == {"margin": 0.1}
    out = validate_probe(
        "slice_metric",
        [],
        {"metric": "f1", "pos_label": "1"},
        ">=",
        0.5,
        SCHEMA,
        classes=np.array([0, 1]),
    )
    assert out == {"metric": "f1", "pos_label": 1, "seed": 0}
    assert validate_probe("slice_ece", [], {}, "no_worse_than_baseline", None, SCHEMA) == {
        "bins": 10,
        "seed": 0,
    }
    cf = validate_probe(
        "counterfactual_flip_rate",
        [],
        {"changes": {"age": {"add": "2"}, "vip": {"set": "no"}}},
        "<=",
        0.1,
        SCHEMA,
    )
    assert cf == {"changes": {"age": {"add": 2}, "vip": {"set": False}}}
    pert = validate_probe("perturbation_flip_rate", [], {"features": "age"}, "<=", 0.1, SCHEMA)
    assert pert == {"scale": 0.05, "features": ["age"], "repeats": 5, "seed": 0}


def test_default_params_cover_every_kind():
    for kind in PROBE_KINDS:
        assert isinstance(default_params(kind), dict)
        assert DEFAULT_COMPARATOR[kind] in ("<=", ">=")
    assert default_params("margin_density") == {"margin": 0.1}
    assert default_params("slice_ece")["bins"] == 10
    assert default_params("perturbation_flip_rate") == {
        "scale": 0.05,
        "features": None,
        "repeats": 5,
        "seed": 0,
    }
    default_params("slice_metric")["metric"] = "f1"  # a copy, not the module's dict
    assert default_params("slice_metric")["metric"] == "accuracy"
    with pytest.raises(ProbeDefinitionError):
        default_params("nope")


# ------------------------------------------------------------------- schema and masks


def mixed_frame():
    return pd.DataFrame(
        {
            "num": [1.0, 2.0, np.nan, 4.0, 5.0],
            "int": [1, 2, 3, 4, 5],
            "nullable": pd.array([1, None, 3, 4, None], dtype="Int64"),
            "text": ["a", "b", None, "a", "c"],
            "cat": pd.Categorical(["x", "y", "x", None, "y"]),
            "code": ["1", "2", "3", "1", "2"],
            "flag": [True, False, True, False, True],
            "when": pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-03-01", "2024-04-01"]),
            "objnum": pd.Series([1, 2, 3, 4, 5], dtype=object),
        }
    )


def test_schema_of():
    assert schema_of(mixed_frame()) == {
        "num": "numeric",
        "int": "numeric",
        "nullable": "numeric",
        "text": "categorical",
        "cat": "categorical",
        "code": "categorical",
        "flag": "boolean",
        "when": "datetime",
        "objnum": "numeric",
    }


@pytest.mark.parametrize(
    ("predicate", "rows"),
    [
        ({"feature": "num", "op": "<", "value": 4}, [0, 1]),
        ({"feature": "num", "op": "!=", "value": 2}, [0, 2, 3, 4]),  # NaN satisfies !=
        ({"feature": "num", "op": "between", "value": [2, 4]}, [1, 3]),  # inclusive
        ({"feature": "num", "op": "in", "value": [1, 5]}, [0, 4]),
        ({"feature": "num", "op": "not_in", "value": [1, 5]}, [1, 2, 3]),
        ({"feature": "num", "op": "is_null"}, [2]),
        ({"feature": "int", "op": ">=", "value": 4.5}, [4]),
        ({"feature": "int", "op": "is_null"}, []),
        ({"feature": "nullable", "op": ">", "value": 1}, [2, 3]),
        ({"feature": "nullable", "op": "not_null"}, [0, 2, 3]),
        ({"feature": "text", "op": "==", "value": "a"}, [0, 3]),
        ({"feature": "text", "op": "!=", "value": "a"}, [1, 2, 4]),
        ({"feature": "text", "op": "in", "value": ["b", "c", "zz"]}, [1, 4]),
        ({"feature": "text", "op": "not_in", "value": ["a"]}, [1, 2, 4]),
        ({"feature": "text", "op": "is_null"}, [2]),
        ({"feature": "text", "op": "==", "value": "missing"}, []),
        ({"feature": "cat", "op": "==", "value": "y"}, [1, 4]),
        ({"feature": "cat", "op": "not_null"}, [0, 1, 2, 4]),
        ({"feature": "code", "op": "==", "value": 1}, [0, 3]),  # number matches its text
        ({"feature": "flag", "op": "==", "value": "false"}, [1, 3]),
        ({"feature": "when", "op": ">", "value": "2024-01-15"}, [1, 3, 4]),
        ({"feature": "when", "op": "between", "value": ["2024-02-01", "2024-03-01"]}, [1, 3]),
        ({"feature": "when", "op": "is_null"}, [2]),
        ({"feature": "objnum", "op": "<=", "value": 2}, [0, 1]),
    ],
)
def test_slice_mask_ops(predicate, rows):
    df = mixed_frame()
    assert np.flatnonzero(slice_mask(df, [predicate])).tolist() == rows


def test_slice_mask_matches_pandas_on_real_data(cancer):
    _, df = cancer
    s = [
        {"feature": "mean radius", "op": ">", "value": 12},
        {"feature": "size", "op": "in", "value": ["small", "rough"]},
        {"feature": "mean texture", "op": "between", "value": [14, 22]},
    ]
    expected = (
        (df["mean radius"] > 12)
        & df["size"].isin(["small", "rough"])
        & df["mean texture"].between(14, 22)
    )
    assert (slice_mask(df, s) == expected.to_numpy()).all()
    assert slice_mask(df, []).all()


def test_slice_mask_on_arrays_and_cache():
    arrays = {"a": np.array([1, 2, 3, 4]), "b": np.array(["x", "y", "x", "y"], dtype=object)}
    cache = {}
    s = [{"feature": "a", "op": ">", "value": 1}, {"feature": "b", "op": "==", "value": "x"}]
    assert slice_mask(arrays, s, cache).tolist() == [False, False, True, False]
    first = {k: v for k, v in cache.items() if k[0] == "predicate"}
    assert len(first) == 2
    # The cached masks are not modified by combining them.
    assert slice_mask(arrays, s[:1], cache).tolist() == [False, True, True, True]
    with pytest.raises(ProbeDefinitionError, match="column 'c'"):
        slice_mask(arrays, [{"feature": "c", "op": "is_null"}])


def test_datetime_slice_on_timezone_aware_column():
    df = pd.DataFrame(
        {"t": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 12:00"]).tz_localize("UTC")}
    )
    assert slice_mask(
        df, [{"feature": "t", "op": "<", "value": "2024-01-01T11:00:00+00:00"}]
    ).tolist() == [
        True,
        False,
    ]


def test_predict_margin_and_ties():
    X = pd.DataFrame({"score": [0.5, 0.9, 0.2]})
    out = predict(ScoreModel(), X)
    assert out.pred.tolist() == ["no", "yes", "no"]  # a tie goes to the first class
    assert out.margin == pytest.approx([0.0, 0.8, 0.6])
    assert out.proba.shape == (3, 2)


def test_unknown_target_values_count_as_errors():
    df = tiny()
    df.loc[0, "y"] = None
    result = run_one("slice_error_rate", df=df)
    assert result.value == pytest.approx(4 / 8)
    assert result.details["rows_with_unknown_target"] == 1


def test_results_are_json_friendly(cancer):
    import json

    model, df = cancer
    params = {
        "group_disparity": {"group_feature": "size"},
        "counterfactual_flip_rate": {"changes": {"mean radius": {"add": 2}}},
        "feature_interaction": {"features": ["mean radius", "mean texture"]},
    }
    specs = [spec(k, params.get(k)) for k in PROBE_KINDS if k not in ENSEMBLE_ONLY]
    for result in evaluate(model, df, *specs):
        json.dumps(result.details)
        assert result.status in ("passed", "failed"), (result.key, result.error)
        assert result.duration_s >= 0
        assert math.isfinite(result.value)


def test_columns_follow_the_models_order(cancer):
    model, df = cancer
    shuffled = df[list(reversed(df.columns))]
    (result,) = evaluate(model, shuffled, spec("slice_error_rate"))
    (reference,) = evaluate(model, df, spec("slice_error_rate"))
    assert result.status in ("passed", "failed")
    assert result.value == reference.value


class AgeParityModel:
    """Predicts 'yes' for even ages; it sees the dtype it is given."""

    classes_ = np.array(["no", "yes"])

    def __init__(self):
        self.dtypes = []

    def predict_proba(self, X):
        self.dtypes.append(X["age"].dtype)
        even = (X["age"].to_numpy() % 2 == 0).astype(float)
        return np.column_stack([1 - even, even])


def test_counterfactual_integer_add_keeps_integers():
    model = AgeParityModel()
    (result,) = evaluate_probes(
        model, tiny(), "y", [spec("counterfactual_flip_rate", {"changes": {"age": {"add": 1}}})]
    )
    assert result.value == 1.0  # every age changes parity
    assert model.dtypes[-1].kind == "i"


# ------------------------------------------------------------------ chunked prediction


class RowLog:
    """Wraps a model and records the index labels of the rows of every predict_proba call."""

    def __init__(self, model):
        self.model = model
        self.classes_ = model.classes_
        self.calls = []

    def predict_proba(self, X):
        self.calls.append(X.index.to_list())
        return self.model.predict_proba(X)


@pytest.fixture(scope="module")
def cancer_trees(cancer):
    # Trees predict each row exactly the same in any batch (BLAS-based models can differ
    # in the last bit between batch sizes).
    from sklearn.ensemble import HistGradientBoostingClassifier

    _, df = cancer
    X = df.drop(columns=["target", "size"])
    return HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, df.target), df


def test_predict_in_chunks_predicts_every_row_once_into_the_same_arrays(cancer_trees):
    model, df = cancer_trees
    X = df.drop(columns=["target", "size"])
    logged = RowLog(model)
    chunked = predict(logged, X, chunk_rows=100)
    assert [len(rows) for rows in logged.calls] == [100] * 5 + [69]
    assert sum(logged.calls, []) == X.index.to_list()  # each row once, in order
    whole = predict(model, X)
    np.testing.assert_array_equal(chunked.proba, whole.proba)
    np.testing.assert_array_equal(chunked.pred, whole.pred)
    np.testing.assert_array_equal(chunked.margin, whole.margin)
    np.testing.assert_array_equal(chunked.pred_index, whole.pred_index)


def test_chunked_evaluation_gives_the_one_call_results(cancer_trees):
    model, df = cancer_trees
    s = [{"feature": "size", "op": "==", "value": "small"}]
    n = int((df["size"] == "small").sum())
    params = {
        "group_disparity": {"group_feature": "size"},
        "perturbation_flip_rate": {"repeats": 3, "scale": 0.3},
        "counterfactual_flip_rate": {"changes": {"worst area": {"add": 800}}},
        "feature_interaction": {
            "features": ["worst area", "mean texture"],
            "grid": 3,
            "sample": 60,
        },
    }
    kinds = [k for k in PROBE_KINDS if k not in ENSEMBLE_ONLY]
    specs = [spec(k, params.get(k)) for k in kinds]
    specs += [spec(k, params.get(k), slice=s, key=f"{k} on small") for k in kinds]
    whole = RowLog(model)
    expected = evaluate(whole, df, *specs)
    logged = RowLog(model)
    results = evaluate_probes(logged, df, "target", specs, ignored_columns=["size"], chunk_rows=100)
    for got, want in zip(results, expected, strict=True):
        assert replace(got, duration_s=0) == replace(want, duration_s=0)
    assert all(r.status != "error" for r in results)
    assert all(r.value > 0 for r in results if "flip" in r.key)
    # Each call of the one-call run (the dataset, then each model-calling probe's frame)
    # became calls on consecutive runs of at most 100 of its rows: every row once.
    assert {len(df), 3 * n} <= {len(rows) for rows in whole.calls}
    assert all(len(rows) <= 100 for rows in logged.calls)
    assert len(logged.calls) == sum(math.ceil(len(rows) / 100) for rows in whole.calls)
    assert sum(logged.calls, []) == sum(whole.calls, [])


def test_group_disparity_over_many_groups(cancer):
    # More groups than the narrowest code type can multiply by the cell width unwidened.
    model, df = cancer
    df = df.copy()
    df["bucket"] = (df["mean area"].rank(method="first").astype(int) % 60).map("b{:02d}".format)
    X = df.drop(columns=["target", "size", "bucket"])
    predicted = pd.Series(model.predict(X), index=df.index)
    rates = (predicted == 1).groupby(df["bucket"]).mean()
    params = {"group_feature": "bucket", "min_support": 5}
    (result,) = evaluate_probes(
        model,
        df,
        "target",
        [spec("group_disparity", params)],
        ignored_columns=["size", "bucket"],
    )
    assert result.details["groups_qualifying"] == 60
    assert result.value == pytest.approx(rates.max() - rates.min())
