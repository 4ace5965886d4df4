"""Every probe kind's value against an independent computation with peer libraries
(scikit-learn's metrics, `sklearn.inspection.partial_dependence`, plain numpy for the group
metrics as fairlearn defines them), to 1e-9, on three models nobody tuned for it:

- a 100-tree random forest (confidences k/100, an ensemble: its components too);
- a pipeline with categorical columns (one-hot + scaling + logistic regression);
- a multiclass model with string labels.

The reference code below never calls the engine's measures: it reads DESIGN.md's
definitions and computes them the plain way, on the slice's rows as the one slice
evaluator (boundary.slices.mask) selects them.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from boundary.kinds import ProbeSpec, evaluate_probes
from boundary.slices import mask as slice_mask

from .test_exact_numbers import reference_ece
from .test_new_kinds import reference_h2

TOL = 1e-9


def forest_case():
    frame = load_breast_cancer(as_frame=True).frame
    frame = frame.rename(columns=lambda c: c.replace(" ", "_"))
    model = RandomForestClassifier(n_estimators=100, random_state=0)
    model.fit(frame.drop(columns="target").iloc[::2], frame["target"].iloc[::2])
    return {
        "model": model,
        "frame": frame,
        "target": "target",
        "slice": [{"feature": "mean_radius", "op": ">", "value": 13.0}],
        "pos_label": 1,
        "group": "big",  # added below: a numeric-derived category
        "interaction": ["mean_radius", "mean_texture"],
        "counterfactual": {"mean_texture": {"add": 3.0}},
    }


def pipeline_case():
    rng = np.random.default_rng(11)
    n = 3000
    frame = pd.DataFrame(
        {
            "age": rng.uniform(18, 70, n).round(1),
            "income": rng.gamma(3.0, 15000, n).round(-2),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    score = (
        0.04 * (40 - frame["age"])
        - frame["income"] / 40000
        + (frame["region"] == "north") * 0.8
        + (frame["plan"] == "pro") * (frame["age"] < 30) * 1.2
    )
    frame["label"] = np.where(rng.random(n) < 1 / (1 + np.exp(-score)), "yes", "no")
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "plan"]),
        ]
    )
    model = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=500))])
    model.fit(frame.drop(columns="label").iloc[:2000], frame["label"].iloc[:2000])
    return {
        "model": model,
        "frame": frame.iloc[2000:].reset_index(drop=True),
        "target": "label",
        "slice": [
            {"feature": "region", "op": "in", "value": ["north", "east"]},
            {"feature": "age", "op": "<", "value": 45},
        ],
        "pos_label": "yes",
        "group": "plan",
        "interaction": ["age", "income"],
        "counterfactual": {"plan": {"set": "pro"}},
    }


def multiclass_case():
    frame = load_wine(as_frame=True).frame.copy()
    frame["target"] = frame["target"].map({0: "a", 1: "b", 2: "c"})
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    model.fit(frame.drop(columns="target").iloc[::2], frame["target"].iloc[::2])
    return {
        "model": model,
        "frame": frame,
        "target": "target",
        "slice": [{"feature": "flavanoids", "op": ">=", "value": 1.0}],
        "pos_label": "b",
        "group": "strong",
        "interaction": ["proline", "alcohol"],
        "counterfactual": {"proline": {"add": 200.0}},
    }


CASES = {"forest": forest_case, "pipeline": pipeline_case, "multiclass": multiclass_case}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request):
    case = CASES[request.param]()
    frame = case["frame"]
    if case["group"] == "big":  # a categorical group column the forest does not read
        frame["big"] = np.where(frame["mean_area"] > 700, "large", "small")
    if case["group"] == "strong":
        frame["strong"] = np.where(frame["alcohol"] > 13, "strong", "light")
    model = case["model"]
    X = frame[list(model.feature_names_in_)]
    proba = model.predict_proba(X)
    case.update(
        name=request.param,
        X=X,
        y=frame[case["target"]].to_numpy(),
        proba=proba,
        pred=model.classes_[proba.argmax(axis=1)],
        mask=slice_mask(frame, case["slice"]),
    )
    return case


def engine_value(case, kind, params=None, slice_=None):
    spec = ProbeSpec(
        key=1,
        kind=kind,
        slice=case["slice"] if slice_ is None else slice_,
        params=params or {},
        comparator="<=",
        threshold=1.0,
        min_support=1,
    )
    (result,) = evaluate_probes(case["model"], case["frame"], case["target"], [spec])
    assert result.status in ("passed", "failed"), result.error
    return result.value


def test_slice_error_rate_and_gap(case):
    wrong = case["pred"] != case["y"]
    rate = wrong[case["mask"]].mean()
    assert engine_value(case, "slice_error_rate") == pytest.approx(rate, abs=TOL, rel=0)
    gap = rate - wrong.mean()
    assert engine_value(case, "slice_error_gap") == pytest.approx(gap, abs=TOL, rel=0)


@pytest.mark.parametrize("margin", [0.1, 0.3])
def test_margin_density(case, margin):
    top2 = np.sort(case["proba"], axis=1)[:, -2:]
    low = (top2[:, 1] - top2[:, 0]) < margin
    expected = low[case["mask"]].mean()
    value = engine_value(case, "margin_density", {"margin": margin})
    assert value == pytest.approx(expected, abs=TOL, rel=0)


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "f1", "roc_auc"])
def test_slice_metric_equals_scikit_learn(case, metric):
    m, pos = case["mask"], case["pos_label"]
    y, pred = case["y"][m], case["pred"][m]
    if metric == "accuracy":
        expected = accuracy_score(y, pred)
    elif metric == "roc_auc":
        column = list(case["model"].classes_).index(pos)
        expected = roc_auc_score(y == pos, case["proba"][m, column])
    else:
        score = {"precision": precision_score, "recall": recall_score, "f1": f1_score}[metric]
        expected = score(y == pos, pred == pos, zero_division=0)
    params = {"metric": metric, "pos_label": pos}
    assert engine_value(case, "slice_metric", params) == pytest.approx(expected, abs=TOL, rel=0)


@pytest.mark.parametrize("bins", [10, 4])
def test_slice_ece_equals_the_definition(case, bins):
    m = case["mask"]
    conf = case["proba"][m].max(axis=1)
    correct = (case["pred"] == case["y"])[m]
    expected = reference_ece(conf, correct, bins)
    value = engine_value(case, "slice_ece", {"bins": bins})
    assert value == pytest.approx(expected, abs=TOL, rel=0)


@pytest.mark.parametrize("metric", ["selection_rate", "tpr", "fpr", "error_rate"])
def test_group_disparity_as_fairlearn_defines_the_group_metrics(case, metric):
    """fairlearn's MetricFrame(...).difference() of selection_rate, true/false positive rate
    and error rate over the groups (of at least min_support rows), by hand."""
    pos = case["pos_label"]
    groups = case["frame"][case["group"]].to_numpy()
    hits, actual = case["pred"] == pos, case["y"] == pos
    values = []
    for g in np.unique(groups):
        rows = groups == g
        if rows.sum() < 30:
            continue
        values.append(
            {
                "selection_rate": hits[rows].mean(),
                "tpr": hits[rows & actual].mean(),
                "fpr": hits[rows & ~actual].mean(),
                "error_rate": (case["pred"] != case["y"])[rows].mean(),
            }[metric]
        )
    expected = max(values) - min(values)
    params = {"group_feature": case["group"], "metric": metric, "pos_label": pos}
    value = engine_value(case, "group_disparity", params, slice_=[])
    assert value == pytest.approx(expected, abs=TOL, rel=0)


def test_counterfactual_flip_rate(case):
    changed = case["X"].copy()
    for feature, change in case["counterfactual"].items():
        if "set" in change:
            changed[feature] = change["set"]
        else:
            changed[feature] = changed[feature] + change["add"]
    after = case["model"].classes_[case["model"].predict_proba(changed).argmax(axis=1)]
    expected = (after != case["pred"])[case["mask"]].mean()
    params = {"changes": case["counterfactual"]}
    value = engine_value(case, "counterfactual_flip_rate", params)
    assert value == pytest.approx(expected, abs=TOL, rel=0)


def test_slice_share(case):
    assert engine_value(case, "slice_share") == pytest.approx(case["mask"].mean(), abs=TOL, rel=0)


def test_feature_interaction_equals_brute_partial_dependence(case):
    a, b = case["interaction"]
    rows = np.flatnonzero(case["mask"])
    model = case["model"]
    expected, _grids = reference_h2(
        model, case["frame"], rows, a, b, 5, 60, 0, case["pos_label"], model.feature_names_in_
    )
    params = {"features": [a, b], "grid": 5, "sample": 60, "pos_label": case["pos_label"]}
    value = engine_value(case, "feature_interaction", params)
    assert value == pytest.approx(expected, abs=TOL, rel=0)


def test_ensemble_components_by_hand():
    """The forest's trees: disagreement, each tree's error rate, both from the trees'
    own predict_proba on the slice (a tree's class: the ensemble's classes_ at its
    argmax)."""
    case = forest_case()
    model, frame = case["model"], case["frame"]
    mask = slice_mask(frame, case["slice"])
    X = frame[list(model.feature_names_in_)].to_numpy()[mask]
    y = frame["target"].to_numpy()[mask]
    votes = np.array([model.classes_[t.predict_proba(X).argmax(axis=1)] for t in model.estimators_])
    disagree = (votes != votes[0]).any(axis=0).mean()
    assert engine_value(case, "ensemble_disagreement") == pytest.approx(disagree, abs=TOL, rel=0)
    for index in (0, 17, 99):
        expected = (votes[index] != y).mean()
        value = engine_value(case, "component_error_rate", {"component": index})
        assert value == pytest.approx(expected, abs=TOL, rel=0), index
