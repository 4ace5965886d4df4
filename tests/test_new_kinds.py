"""The probe kinds slice_share, feature_interaction, ensemble_disagreement and
component_error_rate, and the details.components of every run on an ensemble (DESIGN.md,
"Probe kinds (exact definitions)"), each against a reference computed here with plain
NumPy and scikit-learn.

* slice_share: the slice's rows over the dataset's.
* feature_interaction: Friedman's H² of [a, b] from scikit-learn's brute partial
  dependence on the DESIGN.md grid (quantiles (arange(G) + 0.5) / G of the slice's values)
  over the DESIGN.md sample of the slice's rows, each PD centred by its own mean.
* ensemble_disagreement / component_error_rate / details.components: each component fed
  what the ensemble feeds it, its class ``classes_[argmax(component.predict_proba(X))]``.
"""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    BaggingClassifier,
    ExtraTreesClassifier,
    RandomForestClassifier,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.inspection import partial_dependence
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from boundary import ensembles, stats
from boundary.kinds import ProbeSpec, evaluate_probes, validate_probe
from boundary.slices import ProbeDefinitionError, schema_of

from .factories import skops_upload, toy_frame

FEATURES = ["a", "b", "c", "d"]


def frame(n=900, seed=3, classes=("no", "yes")):
    """Four numeric features; the label depends on a x b (an interaction) and on c."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 4)), columns=FEATURES)
    score = df.a * df.b + 0.7 * df.c + 0.4 * rng.normal(size=n)
    if len(classes) == 2:
        label = np.where(score > 0, classes[1], classes[0])
    else:
        label = np.array(classes)[np.digitize(score, [-0.5, 0.5])]
    df["tag"] = rng.choice(["x", "y"], size=n)  # not a model feature
    df["y"] = label
    return df


def fit(model, df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(df[FEATURES], df["y"])


def run(model, df, kind, params=None, slice_=(), key=None):
    specs = [ProbeSpec(key or kind, kind, list(slice_), params or {}, "<=", 0.5, min_support=1)]
    (result,) = evaluate_probes(model, df, "y", specs, ignored_columns=["tag"])
    return result


SLICE = [{"feature": "d", "op": ">", "value": -0.3}]


def slice_rows(df):
    return np.flatnonzero(df["d"].to_numpy() > -0.3)


# ------------------------------------------------------------------------- slice_share


def test_slice_share_is_the_share_of_the_datasets_rows_with_a_wilson_interval():
    df = frame()
    model = fit(LogisticRegression(), df)
    result = run(model, df, "slice_share", slice_=SLICE)
    k = slice_rows(df).size
    assert result.value == k / len(df)
    assert (result.ci_low, result.ci_high) == stats.wilson(k, len(df))
    assert result.details["rows"] == k and result.details["dataset_rows"] == len(df)
    assert result.status == "failed"  # more than half the rows: over the 0.5 threshold


def test_the_whole_dataset_is_all_of_it():
    df = frame(n=50)
    result = run(fit(LogisticRegression(), df), df, "slice_share")
    assert (result.value, result.ci_low, result.ci_high) == (1.0, stats.wilson(50, 50)[0], 1.0)


# ------------------------------------------------------------------- feature_interaction


def reference_h2(model, df, rows, a, b, grid, sample, seed, pos_label, features=FEATURES):
    """H² by DESIGN.md, with scikit-learn's brute partial dependence."""
    X_slice = df[list(features)].iloc[rows]
    grids = {
        f: np.unique(np.quantile(X_slice[f].to_numpy(), (np.arange(grid) + 0.5) / grid))
        for f in (a, b)
    }
    if len(rows) > sample:
        chosen = np.sort(np.random.default_rng(seed or 0).choice(len(rows), sample, replace=False))
        X_slice = X_slice.iloc[chosen]
    column = list(model.classes_).index(pos_label)

    def pd_of(features):
        out = partial_dependence(
            model,
            X_slice,
            features,
            method="brute",
            kind="average",
            custom_values={f: grids[f] for f in features},
        )
        average = out["average"]
        # A binary model's output is the probability of classes_[1] only.
        if len(model.classes_) == 2:
            average = average[0] if column == 1 else 1 - average[0]
        else:
            average = average[column]
        return average

    pd_ab, pd_a, pd_b = pd_of([a, b]), pd_of([a]), pd_of([b])
    pd_ab = pd_ab - pd_ab.mean()
    pd_a = pd_a - pd_a.mean()
    pd_b = pd_b - pd_b.mean()
    denominator = (pd_ab**2).sum()
    if denominator == 0:
        return 0.0, grids
    return ((pd_ab - pd_a[:, None] - pd_b[None, :]) ** 2).sum() / denominator, grids


INTERACTION_CASES = [
    # (model, params, slice, classes)
    (
        "forest_sampled_slice",
        lambda: RandomForestClassifier(30, max_depth=5, random_state=0),
        {"features": ["a", "b"], "sample": 200, "seed": 7},
        SLICE,
        ("no", "yes"),
    ),
    (
        "forest_whole_table_default_sample",
        lambda: RandomForestClassifier(30, max_depth=5, random_state=0),
        {"features": ["b", "a"], "grid": 6},
        [],
        ("no", "yes"),
    ),
    (
        "mlp_first_class_small_slice",
        lambda: make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=300, random_state=0)),
        {"features": ["a", "c"], "pos_label": "no", "grid": 5},
        [{"feature": "d", "op": ">", "value": 1.0}],
        ("no", "yes"),
    ),
    (
        "multiclass_pos_label",
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        {"features": ["a", "b"], "pos_label": "mid", "grid": 7, "sample": 300},
        [],
        ("low", "mid", "high"),
    ),
]


@pytest.mark.parametrize(
    "make, params, slice_, classes",
    [case[1:] for case in INTERACTION_CASES],
    ids=[case[0] for case in INTERACTION_CASES],
)
def test_feature_interaction_is_friedmans_h2_of_the_brute_partial_dependence(
    make, params, slice_, classes
):
    df = frame(classes=classes)
    model = fit(make(), df)
    result = run(model, df, "feature_interaction", params, slice_)
    assert result.status in ("passed", "failed"), result.error
    inside = np.ones(len(df), dtype=bool)
    for predicate in slice_:
        assert predicate["op"] == ">"
        inside &= df[predicate["feature"]].to_numpy() > predicate["value"]
    rows = np.flatnonzero(inside)
    a, b = params["features"]
    pos_label = params.get("pos_label", classes[-1] if len(classes) == 2 else None)
    expected, grids = reference_h2(
        model,
        df,
        rows,
        a,
        b,
        params.get("grid", 10),
        params.get("sample", 500),
        params.get("seed"),
        pos_label,
    )
    assert result.value == pytest.approx(expected, abs=1e-12, rel=0)
    assert result.details["grid"] == {f: grids[f].tolist() for f in (a, b)}
    assert result.details["rows"] == min(rows.size, params.get("sample", 500))
    assert result.details["pos_label"] == pos_label
    assert 0 <= result.ci_low <= result.ci_high
    # Seeded: the same run gives the same interval.
    again = run(model, df, "feature_interaction", params, slice_)
    assert (again.value, again.ci_low, again.ci_high) == (
        result.value,
        result.ci_low,
        result.ci_high,
    )


def test_a_model_with_an_interaction_has_a_larger_h2_than_an_additive_one():
    df = frame()
    forest = fit(RandomForestClassifier(50, max_depth=6, random_state=0), df)
    additive = fit(LogisticRegression(), df)
    params = {"features": ["a", "b"]}
    assert run(forest, df, "feature_interaction", params).value > 0.2
    assert run(additive, df, "feature_interaction", params).value < 0.01


def test_h2_is_exactly_zero_when_the_partial_dependence_is_flat():
    """A tree that splits on c only: PD_ab is one value, the denominator 0, H² 0."""
    df = frame()
    df["y"] = np.where(df.c > 0, "yes", "no")
    stump = fit(DecisionTreeClassifier(max_depth=1), df)
    result = run(stump, df, "feature_interaction", {"features": ["a", "b"]})
    assert result.value == 0.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)


# ------------------------------------------------------------------------ the ensembles


def voting():
    return VotingClassifier(
        [
            ("lr", LogisticRegression()),
            ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
            ("deep", DecisionTreeClassifier(max_depth=8, random_state=1)),
        ],
        voting="soft",
    )


def stacking():
    return StackingClassifier(
        [
            ("lr", LogisticRegression()),
            ("tree", DecisionTreeClassifier(max_depth=4, random_state=0)),
        ],
        final_estimator=LogisticRegression(),
    )


def bagging():
    return BaggingClassifier(
        DecisionTreeClassifier(max_depth=4),
        n_estimators=6,
        max_features=0.5,
        random_state=0,
    )


def forest():
    return RandomForestClassifier(8, max_depth=5, random_state=0)


def scaled_voting():
    return Pipeline([("scale", StandardScaler()), ("vote", voting())])


def by_hand(model, X):
    """(names, class label of each component on each row) by the DESIGN.md definition."""
    final = model.steps[-1][1] if isinstance(model, Pipeline) else model
    fed = model[:-1].transform(X) if isinstance(model, Pipeline) else X
    if isinstance(final, (VotingClassifier, StackingClassifier)):
        names = [name for name, _ in final.estimators]
        parts = [(est, fed) for est in final.estimators_]
    elif isinstance(final, BaggingClassifier):
        names = list(range(len(final.estimators_)))
        array = np.asarray(fed)
        parts = [
            (est, array[:, cols])
            for est, cols in zip(final.estimators_, final.estimators_features_, strict=True)
        ]
    else:
        names = list(range(len(final.estimators_)))
        array = np.asarray(fed, dtype=np.float32)
        parts = [(est, array) for est in final.estimators_]
    labels = np.array(
        [final.classes_[np.argmax(est.predict_proba(part), axis=1)] for est, part in parts]
    )
    return names, labels


ENSEMBLES = {
    "voting_soft": voting,
    "stacking": stacking,
    "bagging_half_the_features": bagging,
    "random_forest": forest,
    "pipeline_scaler_voting": scaled_voting,
}


@pytest.fixture(scope="module", params=list(ENSEMBLES), ids=list(ENSEMBLES))
def ensemble(request):
    df = frame()
    return fit(ENSEMBLES[request.param](), df), df


def test_bagging_components_read_different_columns(ensemble):
    model, _ = ensemble
    if isinstance(model, BaggingClassifier):
        assert all(len(cols) == 2 for cols in model.estimators_features_)
        assert len({tuple(sorted(cols)) for cols in model.estimators_features_}) > 1


def test_ensemble_disagreement_is_the_share_of_rows_where_the_components_differ(ensemble):
    model, df = ensemble
    _, labels = by_hand(model, df[FEATURES])
    rows = slice_rows(df)
    differ = int((labels[:, rows] != labels[:1, rows]).any(axis=0).sum())
    result = run(model, df, "ensemble_disagreement", slice_=SLICE)
    assert 0 < differ < rows.size  # the case is not trivial
    assert result.value == differ / rows.size
    assert (result.ci_low, result.ci_high) == stats.wilson(differ, rows.size)
    assert result.details["rows_disagreeing"] == differ


def test_component_error_rate_of_each_component(ensemble):
    model, df = ensemble
    names, labels = by_hand(model, df[FEATURES])
    rows = slice_rows(df)
    target = df["y"].to_numpy()[rows]
    for position, name in enumerate(names):
        wrong = int((labels[position, rows] != target).sum())
        result = run(model, df, "component_error_rate", {"component": name}, SLICE)
        assert result.value == wrong / rows.size, name
        assert (result.ci_low, result.ci_high) == stats.wilson(wrong, rows.size)
        assert result.details["component"] == name


def test_every_run_on_an_ensemble_stores_its_components(ensemble):
    model, df = ensemble
    names, labels = by_hand(model, df[FEATURES])
    rows = slice_rows(df)
    target = df["y"].to_numpy()[rows]
    ensemble_pred = model.predict(df[FEATURES])[rows]
    ensemble_wrong = ensemble_pred != target
    expected = []
    for position, name in enumerate(names):
        wrong = labels[position, rows] != target
        expected.append(
            {
                "component": name,
                "error_rate": wrong.sum() / rows.size,
                "agreement": (labels[position, rows] == ensemble_pred).sum() / rows.size,
                "shared_errors": (wrong & ensemble_wrong).sum() / ensemble_wrong.sum(),
            }
        )
    for kind, params in [
        ("slice_error_rate", {}),
        ("margin_density", {}),
        ("slice_share", {}),
        ("ensemble_disagreement", {}),
    ]:
        result = run(model, df, kind, params, SLICE)
        assert result.details["components"] == expected, kind
        json.dumps(result.details)


def test_components_predicted_in_chunks_give_the_same_results(ensemble):
    model, df = ensemble
    kinds = ["slice_error_rate", "ensemble_disagreement", "slice_share"]
    specs = [ProbeSpec(k, k, SLICE, {}, "<=", 0.5) for k in kinds]
    whole = evaluate_probes(model, df, "y", specs, ignored_columns=["tag"])
    chunked = evaluate_probes(model, df, "y", specs, ignored_columns=["tag"], chunk_rows=64)
    for a, b in zip(whole, chunked, strict=True):
        assert (a.value, a.details["components"]) == (b.value, b.details["components"])
    predictions = ensembles.component_predictions(model, df[FEATURES], chunk_rows=100)
    assert predictions.dtype == np.int8
    assert predictions.shape == (len(ensembles.component_names(model)), len(df))


def test_a_multiclass_forest_of_extra_trees():
    df = frame(classes=("low", "mid", "high"))
    model = fit(ExtraTreesClassifier(5, max_depth=4, random_state=0), df)
    _, labels = by_hand(model, df[FEATURES])
    target = df["y"].to_numpy()
    result = run(model, df, "component_error_rate", {"component": 3})
    assert result.value == (labels[3] != target).mean()
    result = run(model, df, "ensemble_disagreement")
    assert result.value == (labels != labels[:1]).any(axis=0).mean()


def test_a_model_that_is_not_an_ensemble_has_no_components_and_refuses_the_ensemble_kinds():
    df = frame()
    model = fit(make_pipeline(StandardScaler(), LogisticRegression()), df)
    assert "components" not in run(model, df, "slice_error_rate").details
    for kind, params in [("ensemble_disagreement", {}), ("component_error_rate", {"component": 0})]:
        result = run(model, df, kind, params)
        assert result.status == "error"
        assert f"{kind} needs an ensemble" in result.error


def test_a_component_the_ensemble_lacks_is_an_error_of_that_run():
    df = frame()
    model = fit(voting(), df)
    result = run(model, df, "component_error_rate", {"component": "knn"})
    assert result.status == "error"
    assert (
        result.error == "component 'knn' is not one of the ensemble's components (lr, tree, deep)"
    )


# ------------------------------------------------------------------- refused parameters

SCHEMA = schema_of(frame().assign(color="red"))
REFUSALS = [
    ("fi_no_features", "feature_interaction", {}, None, "features must name two numeric columns"),
    (
        "fi_one_feature",
        "feature_interaction",
        {"features": ["a"]},
        None,
        "features must name two numeric columns",
    ),
    (
        "fi_unknown_column",
        "feature_interaction",
        {"features": ["a", "zz"]},
        None,
        "features: column 'zz' is not in the dataset",
    ),
    (
        "fi_target",
        "feature_interaction",
        {"features": ["a", "y"]},
        None,
        "features: column 'y' is the target column",
    ),
    (
        "fi_not_numeric",
        "feature_interaction",
        {"features": ["a", "color"]},
        None,
        "features: column 'color' is categorical, not numeric",
    ),
    (
        "fi_twice",
        "feature_interaction",
        {"features": ["a", "a"]},
        None,
        "features must be two different columns, not 'a' twice",
    ),
    (
        "fi_grid_of_one",
        "feature_interaction",
        {"features": ["a", "b"], "grid": 1},
        None,
        "grid must be between 2 and 100, not 1",
    ),
    (
        "fi_grid_not_whole",
        "feature_interaction",
        {"features": ["a", "b"], "grid": 2.5},
        None,
        "grid must be a whole number, not 2.5",
    ),
    (
        "fi_sample_of_one",
        "feature_interaction",
        {"features": ["a", "b"], "sample": 1},
        None,
        "sample must be at least 2, not 1",
    ),
    (
        "fi_too_many_rows",
        "feature_interaction",
        {"features": ["a", "b"], "sample": 100_000},
        None,
        "12,000,000 with sample 100000 and grid 10",
    ),
    (
        "fi_seed",
        "feature_interaction",
        {"features": ["a", "b"], "seed": -1},
        None,
        "seed must be between 0 and",
    ),
    (
        "fi_multiclass_without_pos_label",
        "feature_interaction",
        {"features": ["a", "b"]},
        ["low", "mid", "high"],
        "pos_label is required for feature_interaction on a model with 3 classes",
    ),
    (
        "fi_pos_label_not_a_class",
        "feature_interaction",
        {"features": ["a", "b"], "pos_label": "maybe"},
        ["no", "yes"],
        "pos_label 'maybe' is not one of the model's classes ('no', 'yes')",
    ),
    ("share_unknown_param", "slice_share", {"margin": 0.1}, None, "unknown parameter(s) margin"),
    (
        "disagreement_unknown_param",
        "ensemble_disagreement",
        {"component": "lr"},
        None,
        "unknown parameter(s) component for ensemble_disagreement",
    ),
    ("component_missing", "component_error_rate", {}, None, "component is required"),
    (
        "component_a_list",
        "component_error_rate",
        {"component": ["lr"]},
        None,
        "component must be a name or an index, not ['lr']",
    ),
    (
        "component_a_bool",
        "component_error_rate",
        {"component": True},
        None,
        "component must be a name or an index, not True",
    ),
    (
        "component_negative",
        "component_error_rate",
        {"component": -1},
        None,
        "component must be an index of 0 or more, not -1",
    ),
]


@pytest.mark.parametrize(
    "kind, params, classes, message",
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_bad_parameters_are_refused_by_name(kind, params, classes, message):
    with pytest.raises(ProbeDefinitionError) as refused:
        validate_probe(kind, [], params, "<=", 0.5, SCHEMA, target_column="y", classes=classes)
    assert message in str(refused.value)


KNOWN_COMPONENTS = [
    ("name_not_in_voting", "component_error_rate", {"component": "knn"}, ["lr", "tree"],
     "component 'knn' is not one of the ensemble's components (lr, tree)"),
    ("index_for_voting", "component_error_rate", {"component": 0}, ["lr", "tree"],
     "component 0 is not one of the ensemble's components (lr, tree)"),
    ("index_out_of_range", "component_error_rate", {"component": 7}, [0, 1, 2, 3, 4],
     "component must be the index of one of the ensemble's 5 components (0 to 4), not 7"),
    ("name_for_a_forest", "component_error_rate", {"component": "lr"}, [0, 1],
     "component must be the index of one of the ensemble's 2 components (0 to 1), not 'lr'"),
    ("not_an_ensemble", "ensemble_disagreement", {}, None,
     "ensemble_disagreement needs an ensemble: the model's final step is no VotingClassifier"),
    ("component_of_no_ensemble", "component_error_rate", {"component": 0}, None,
     "component_error_rate needs an ensemble"),
]  # fmt: skip


@pytest.mark.parametrize(
    "kind, params, components, message",
    [case[1:] for case in KNOWN_COMPONENTS],
    ids=[case[0] for case in KNOWN_COMPONENTS],
)
def test_with_the_model_known_a_component_it_lacks_is_refused(kind, params, components, message):
    with pytest.raises(ProbeDefinitionError) as refused:
        validate_probe(kind, [], params, "<=", 0.5, SCHEMA, components=components)
    assert message in str(refused.value)


def test_a_known_component_is_accepted_and_an_index_may_be_written_as_text():
    ok = validate_probe(
        "component_error_rate",
        [],
        {"component": "tree"},
        "<=",
        0.2,
        SCHEMA,
        components=["lr", "tree"],
    )
    assert ok == {"component": "tree"}
    ok = validate_probe(
        "component_error_rate", [], {"component": "3"}, "<=", 0.2, SCHEMA, components=[0, 1, 2, 3]
    )
    assert ok == {"component": 3}
    # The model unknown: any name or index is kept for the run to check.
    ok = validate_probe("component_error_rate", [], {"component": 12}, "<=", 0.2, SCHEMA)
    assert ok == {"component": 12}


def test_the_defaults_of_the_new_kinds():
    from boundary.kinds import DEFAULT_COMPARATOR, default_params

    assert default_params("slice_share") == {}
    assert default_params("feature_interaction") == {
        "features": None,
        "pos_label": None,
        "grid": 10,
        "sample": 500,
        "seed": 0,
    }
    assert default_params("ensemble_disagreement") == {}
    assert default_params("component_error_rate") == {"component": None}
    for kind in ("slice_share", "feature_interaction", "ensemble_disagreement"):
        assert DEFAULT_COMPARATOR[kind] == "<="
    assert DEFAULT_COMPARATOR["component_error_rate"] == "<="


# ----------------------------------------------------------- registered and run for real


def toy_pipeline(final):
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["x1", "x2"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ]
    )
    toy = toy_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Pipeline([("prep", prep), ("clf", final)]).fit(toy.drop(columns="y"), toy["y"])


TOY_MODELS = {
    "voting": lambda: VotingClassifier(
        [("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=3))],
        voting="soft",
    ),
    "stacking": lambda: StackingClassifier(
        [("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=3))]
    ),
    "bagging": lambda: BaggingClassifier(
        DecisionTreeClassifier(max_depth=3), n_estimators=4, max_features=0.6, random_state=0
    ),
    "random_forest": lambda: RandomForestClassifier(6, max_depth=4, random_state=0),
    "mlp": lambda: MLPClassifier((8,), max_iter=200, random_state=0),
}


def register(ml_model, people, name, model):
    from registry.models import ModelVersion

    return ModelVersion.register(
        ml_model=ml_model,
        version=name,
        artifact=skops_upload(model),
        by=people["maintainer"],
    )


def probe_of(finding, dataset, people, kind, params=None, slice_=()):
    from probes.models import Probe

    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind=kind,
        slice=list(slice_),
        params=params or {},
        threshold=0.5,
        min_support=1,
        created_by=people["contributor"],
    )
    probe.full_clean()
    probe.save()
    return probe


def run_rerun(version, probes, capture):
    from probes.models import ProbeRun, Rerun

    with capture(execute=True):
        Rerun.queue(version, trigger="manual", probes=probes)
    return {r.probe_id: r for r in ProbeRun.objects.filter(model_version=version)}


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(TOY_MODELS))
def test_ensembles_and_an_mlp_register_and_run(
    name, people, ml_model, finding, dataset, django_capture_on_commit_callbacks
):
    model = toy_pipeline(TOY_MODELS[name]())
    version = register(ml_model, people, f"{name}-1", model)
    probes = [probe_of(finding, dataset, people, "slice_error_rate")]
    if name != "mlp":
        probes.append(probe_of(finding, dataset, people, "ensemble_disagreement"))
    runs = run_rerun(version, probes, django_capture_on_commit_callbacks)
    for probe in probes:
        run = runs[probe.pk]
        assert run.status in ("passed", "failed"), run.error
        assert ("components" in run.details) is (name != "mlp")


@pytest.mark.django_db
def test_a_registered_voting_version_stores_its_components_as_computed_in_process(
    people, ml_model, finding, dataset, django_capture_on_commit_callbacks
):
    """The run goes through the model's own process (the components request); its numbers
    are those of the same model evaluated in this process."""
    model = toy_pipeline(TOY_MODELS["voting"]())
    version = register(ml_model, people, "vote-1", model)
    high = [{"feature": "x1", "op": ">", "value": 0.2}]
    probes = [
        probe_of(finding, dataset, people, "slice_error_rate", slice_=high),
        probe_of(finding, dataset, people, "slice_share", slice_=high),
        probe_of(finding, dataset, people, "ensemble_disagreement", slice_=high),
        probe_of(finding, dataset, people, "component_error_rate", {"component": "tree"}, high),
        probe_of(finding, dataset, people, "feature_interaction", {"features": ["x1", "x2"]}),
    ]
    runs = run_rerun(version, probes, django_capture_on_commit_callbacks)
    toy = toy_frame()
    specs = [
        ProbeSpec(p.pk, p.kind, p.slice, p.params, p.comparator, p.threshold, p.min_support)
        for p in probes
    ]
    for expected in evaluate_probes(model, toy, "y", specs):
        stored = runs[expected.key]
        assert stored.status == expected.status, stored.error
        assert stored.value == pytest.approx(expected.value, abs=1e-12, rel=0)
        assert stored.details["components"] == expected.details["components"]
        assert [c["component"] for c in stored.details["components"]] == ["lr", "tree"]
    # component_error_rate of "tree" is the error rate details.components gives it.
    tree = runs[probes[3].pk]
    assert tree.value == tree.details["components"][1]["error_rate"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name, kind, params, field, message",
    [
        ("voting", "component_error_rate", {"component": "forest"}, "params", "forest"),
        ("random_forest", "component_error_rate", {"component": 6}, "params", "6"),
        ("mlp", "ensemble_disagreement", {}, "kind", "needs an ensemble"),
        ("mlp", "component_error_rate", {"component": 0}, "kind", "needs an ensemble"),
    ],
)
def test_a_probe_on_a_component_the_registered_model_lacks_is_refused_when_saved(
    name, kind, params, field, message, people, ml_model, finding, dataset
):
    """The components are read from the newest version's skops schema (nothing loaded):
    a probe that could never run is refused at its field, not errored on every rerun."""
    from django.core.exceptions import ValidationError

    from probes.models import Probe

    register(ml_model, people, f"{name}-1", toy_pipeline(TOY_MODELS[name]()))
    with pytest.raises(ValidationError) as refused:
        probe_of(finding, dataset, people, kind, params)
    assert list(refused.value.message_dict) == [field]
    assert message in refused.value.message_dict[field][0]
    assert not Probe.objects.filter(kind=kind).exists()


@pytest.mark.django_db
def test_the_components_are_read_from_the_schema_as_the_loaded_model_names_them(people, ml_model):
    from boundary.ensembles import component_names

    for name, make in TOY_MODELS.items():
        model = toy_pipeline(make())
        version = register(ml_model, people, f"{name}-c", model)
        assert version.schema_components() == component_names(model), name
