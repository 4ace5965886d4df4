"""Model artifacts: hashes, format detection, refusal of pickles and untrusted types."""

import hashlib
import io
import os
import pickle
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from boundary.artifacts import (
    DEFAULT_TRUSTED_TYPES,
    ArtifactError,
    check_feature_columns,
    detect_format,
    dump_skops,
    load_model,
    sha256_of,
)


def frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.normal(3, 1, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )
    df.loc[::11, "income"] = np.nan
    y = (df.age > 40).astype(int)
    return df, y


def pipeline(classifier, encoder=None):
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
            ("cat", encoder or OneHotEncoder(handle_unknown="ignore"), ["region"]),
        ]
    )
    return make_pipeline(pre, classifier)


@pytest.fixture
def fitted():
    df, y = frame()
    return pipeline(LogisticRegression()).fit(df, y), df


def test_skops_round_trip(tmp_path, fitted):
    model, df = fitted
    path = tmp_path / "model.skops"
    dump_skops(model, path)
    assert detect_format(path) == "skops"
    loaded = load_model(path, expected_sha256=sha256_of(path))
    assert np.array_equal(loaded.predict_proba(df), model.predict_proba(df))
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    "classifier",
    [
        RandomForestClassifier(n_estimators=3, random_state=0),
        GradientBoostingClassifier(n_estimators=3),
        HistGradientBoostingClassifier(max_iter=3),
        DecisionTreeClassifier(),
        CalibratedClassifierCV(LogisticRegression(), cv=3),
    ],
    ids=lambda c: type(c).__name__,
)
@pytest.mark.parametrize("labels", ["binary", "multiclass", "text"])
def test_supported_families_load_with_the_default_allow_list(tmp_path, classifier, labels):
    df, y = frame()
    if labels == "multiclass":
        y = pd.cut(df.age, 3, labels=False)
    elif labels == "text":
        y = np.where(y == 1, "bad", "good")
    model = pipeline(classifier).fit(df, y)
    path = tmp_path / "m.skops"
    dump_skops(model, path)
    assert set(sio.get_untrusted_types(file=path)) <= set(DEFAULT_TRUSTED_TYPES)
    loaded = load_model(path, expected_sha256=sha256_of(path))
    assert np.array_equal(loaded.predict_proba(df), model.predict_proba(df))


def test_hist_gradient_boosting_native_categories_load(tmp_path):
    df, y = frame()
    df["region"] = df["region"].astype("category")
    model = HistGradientBoostingClassifier(max_iter=3, categorical_features="from_dtype")
    model.fit(df, y)
    path = tmp_path / "m.skops"
    dump_skops(model, path)
    loaded = load_model(path, expected_sha256=sha256_of(path))
    assert np.array_equal(loaded.predict_proba(df), model.predict_proba(df))


def test_ordinal_pipeline_loads(tmp_path):
    df, y = frame()
    model = pipeline(GradientBoostingClassifier(n_estimators=2), OrdinalEncoder()).fit(df, y)
    path = tmp_path / "m.skops"
    dump_skops(model, path)
    assert load_model(path, expected_sha256=sha256_of(path)) is not None


def test_allow_list_is_explicit():
    assert all(
        t.startswith(("sklearn.", "numpy.", "functools.partial")) for t in DEFAULT_TRUSTED_TYPES
    )
    assert not any(
        t.startswith(("builtins.eval", "os.", "subprocess.")) for t in DEFAULT_TRUSTED_TYPES
    )


def test_sha256_of_path_and_file_object(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_of(path) == expected
    assert sha256_of(str(path)) == expected
    handle = io.BytesIO(data)
    handle.seek(10)
    assert sha256_of(handle) == expected
    assert handle.tell() == 10


def test_sha_mismatch_is_refused_before_loading(tmp_path, fitted):
    model, _ = fitted
    path = tmp_path / "model.skops"
    dump_skops(model, path)
    with pytest.raises(ArtifactError, match="artifact sha256 mismatch: expected 00+, got "):
        load_model(path, expected_sha256="0" * 64)


def test_pickle_refused_without_opt_in(tmp_path, fitted):
    model, df = fitted
    path = tmp_path / "model.skops"  # the name says skops; the content decides
    joblib.dump(model, path)
    assert detect_format(path) == "pickle"
    with pytest.raises(ArtifactError, match="pickle/joblib artifacts are refused"):
        load_model(path, expected_sha256=sha256_of(path))
    loaded = load_model(path, expected_sha256=sha256_of(path), allow_pickle=True)
    assert np.array_equal(loaded.predict_proba(df), model.predict_proba(df))


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
def test_joblib_files_are_detected_as_pickles(tmp_path, compress):
    path = tmp_path / "m.bin"
    joblib.dump({"a": 1}, path, compress=compress)
    assert detect_format(path) == "pickle"


@pytest.mark.parametrize("protocol", [0, 1, 2, 5])
def test_plain_pickles_of_every_protocol_are_detected(protocol):
    assert detect_format(pickle.dumps({"a": [1, 2]}, protocol=protocol)) == "pickle"


class Sentinel:
    """Unpickling this creates a file: proof that the artifact's code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class OpenSentinel:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("payload", [Sentinel, OpenSentinel])
@pytest.mark.parametrize("name", ["model.pkl", "model.skops", "model.joblib"])
def test_malicious_pickle_never_runs(tmp_path, payload, name):
    sentinel = tmp_path / "pwned"
    path = tmp_path / name
    path.write_bytes(pickle.dumps(payload(str(sentinel))))
    with pytest.raises(ArtifactError, match="refused"):
        load_model(path, expected_sha256=sha256_of(path))
    assert detect_format(path) == "pickle"
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load_model(path, expected_sha256="f" * 64, allow_pickle=True)
    assert not sentinel.exists()


class HomeMadeClassifier(LogisticRegression):
    """A type from outside the allow-list: loading it would import this module."""


def test_untrusted_type_in_skops_file_is_refused(tmp_path):
    df, y = frame()
    model = pipeline(HomeMadeClassifier()).fit(df, y)
    path = tmp_path / "custom.skops"
    dump_skops(model, path)
    with pytest.raises(ArtifactError, match=r"untrusted types: .*HomeMadeClassifier"):
        load_model(path, expected_sha256=sha256_of(path))
    # The caller may extend the list deliberately.
    name = f"{HomeMadeClassifier.__module__}.HomeMadeClassifier"
    loaded = load_model(
        path, expected_sha256=sha256_of(path), trusted_types=[*DEFAULT_TRUSTED_TYPES, name]
    )
    assert isinstance(loaded[-1], HomeMadeClassifier)


def test_an_empty_allow_list_refuses_tree_models(tmp_path):
    df, y = frame()
    path = tmp_path / "tree.skops"
    dump_skops(pipeline(DecisionTreeClassifier()).fit(df, y), path)
    with pytest.raises(ArtifactError, match="sklearn.tree._tree.Tree"):
        load_model(path, expected_sha256=sha256_of(path), trusted_types=[])


def test_neither_skops_nor_pickle_is_unknown(tmp_path):
    text = tmp_path / "model.skops"
    text.write_text("age,income\n1,2\n")
    assert detect_format(text) == "unknown"
    with pytest.raises(ArtifactError, match="unknown artifact format"):
        load_model(text, expected_sha256=sha256_of(text))
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "not a model")
    assert detect_format(archive) == "unknown"
    assert detect_format(b"") == "unknown"
    assert detect_format(archive.read_bytes()) == "unknown"


def test_model_without_predict_proba_is_refused(tmp_path):
    df, _ = frame()
    model = LinearRegression().fit(df[["age"]], df["income"].fillna(0))
    path = tmp_path / "reg.skops"
    dump_skops(model, path)
    with pytest.raises(ArtifactError, match="has no predict_proba"):
        load_model(path, expected_sha256=sha256_of(path))


def test_check_feature_columns_names_the_missing_ones_and_passes_over_extra_ones(fitted):
    model, df = fitted
    check_feature_columns(model, list(df.columns))
    check_feature_columns(model, ["region", "income", "age"])  # order is not the dataset's job
    # A dataset with more columns than the model was fitted on: the model gets its own.
    check_feature_columns(model, ["region", "income", "age", "salary", "notes"])
    with pytest.raises(ArtifactError, match="missing columns: income$"):
        check_feature_columns(model, ["age", "salary", "region"])
    check_feature_columns(object(), ["anything"])  # a model without names is not checked
