"""Model artifacts: hashing, format detection and safe loading.

A pickled model runs arbitrary code when it is loaded, so artifacts are stored in the skops
format and loaded with an explicit allow-list of types. The sha256 recorded at registration
is checked on the very bytes that are then loaded (the file is read once), so a file
swapped between the check and the load cannot slip through. Plain pickle / joblib files
are refused unless the caller opts in (the deployment's policy decides when).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import skops.io as sio


class ArtifactError(Exception):
    """An artifact that must not or cannot be loaded; the message says why."""


_CHUNK = 1 << 20

# Types that skops does not trust on its own but that fitted scikit-learn models of the
# supported families contain, found with skops.io.get_untrusted_types on real fitted
# Pipelines (ColumnTransformer, SimpleImputer, StandardScaler, OneHotEncoder,
# OrdinalEncoder) ending in each classifier below, with binary, multiclass and string
# labels. Only plain data holders and scikit-learn internals are listed; nothing that
# can import or call arbitrary code.
_REPORTED_UNTRUSTED = [
    # numpy dtype objects (every fitted estimator stores some, e.g. in classes_).
    "numpy.dtype",
    # Fitted trees of DecisionTree / RandomForest / ExtraTrees / GradientBoosting.
    "sklearn.tree._tree.Tree",
    # Fitted trees of HistGradientBoostingClassifier.
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # HistGradientBoostingClassifier with native categorical features keeps a
    # FunctionTransformer(partial(check_array, ...)); a partial can only wrap objects that
    # are themselves trusted, and check_array only validates an array.
    "functools.partial",
    "sklearn.utils.validation.check_array",
    # CalibratedClassifierCV's per-fold calibrators.
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    # scikit-learn's own container (a dict with attribute access): VotingClassifier and
    # StackingClassifier keep their fitted estimators in one (named_estimators_).
    "sklearn.utils._bunch.Bunch",
]

# The estimators themselves are trusted by skops already; they are listed so that the
# allow-list reads as the complete set of model families the app supports.
_SUPPORTED_ESTIMATORS = [
    "sklearn.pipeline.Pipeline",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.RobustScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.ensemble._voting.VotingClassifier",
    "sklearn.ensemble._stacking.StackingClassifier",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.Interval",
]

DEFAULT_TRUSTED_TYPES: list[str] = _SUPPORTED_ESTIMATORS + _REPORTED_UNTRUSTED


def sha256_of(path_or_fileobj: str | os.PathLike | BinaryIO) -> str:
    """Hex sha256 of a file, read in chunks.

    A file object is hashed from its start and left at the position it had.
    """
    digest = hashlib.sha256()
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        with open(path_or_fileobj, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        return digest.hexdigest()
    fileobj = path_or_fileobj
    position = fileobj.tell() if fileobj.seekable() else None
    if position is not None:
        fileobj.seek(0)
    for chunk in iter(lambda: fileobj.read(_CHUNK), b""):
        digest.update(chunk)
    if position is not None:
        fileobj.seek(position)
    return digest.hexdigest()


# Compressed joblib files are pickles in a zlib / gzip / bz2 / xz / lz4 wrapper.
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x04\x22\x4d\x18", b"ZF")
_ZLIB_MAGIC = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")
# First opcodes of protocol 0/1 pickles (protocol 2+ starts with PROTO, 0x80).
_PICKLE_V0_FIRST = b"(]}cILSVNFGKMJUXTqhj)"


def _read_bytes(path_or_bytes: Any) -> bytes:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)
    if isinstance(path_or_bytes, (str, os.PathLike)):
        return Path(path_or_bytes).read_bytes()
    if hasattr(path_or_bytes, "read"):
        position = path_or_bytes.tell() if path_or_bytes.seekable() else None
        if position is not None:
            path_or_bytes.seek(0)
        data = path_or_bytes.read()
        if position is not None:
            path_or_bytes.seek(position)
        return data
    raise TypeError("expected a path, bytes or a binary file object")


def detect_format(path_or_bytes: str | os.PathLike | bytes | BinaryIO) -> str:
    """ "skops", "pickle" or "unknown", judged by content and never by file name.

    A skops file is a zip archive holding schema.json; a pickle starts with the PROTO
    opcode (protocol 2+) or, for protocol 0/1, with a pickle opcode and ends with STOP;
    compressed joblib files count as pickles since loading them unpickles.
    """
    data = _read_bytes(path_or_bytes)
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return "skops" if "schema.json" in archive.namelist() else "unknown"
        except zipfile.BadZipFile:
            return "unknown"
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return "pickle"
    if data.startswith(_COMPRESSED_MAGIC) or data[:2] in _ZLIB_MAGIC:
        return "pickle"
    if data and data[:1] in [bytes([b]) for b in _PICKLE_V0_FIRST] and data.endswith(b"."):
        return "pickle"
    return "unknown"


# A member of a skops archive this much larger than its compressed size is refused as a zip
# bomb (deflate reaches about 1000:1 on zeros; the arrays and JSON of real models, about 10:1)
# once it unpacks to more than RATIO_CHECKED_FROM bytes.
MAX_COMPRESSION_RATIO = 200
RATIO_CHECKED_FROM = 1 << 20


def check_archive(source: str | os.PathLike | bytes | BinaryIO, *, max_unpacked_bytes: int) -> None:
    """Refuse a skops archive that would unpack to more than ``max_unpacked_bytes`` bytes
    in all, or with a member compressed more than MAX_COMPRESSION_RATIO to one.

    Judged from the archive's directory alone: nothing is unpacked. (Reading a member never
    yields more than the size the directory declares for it.)
    """
    data = _read_bytes(source)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ArtifactError(f"artifact is not a readable skops file: {exc}") from exc
    unpacked = sum(member.file_size for member in members)
    if unpacked > max_unpacked_bytes:
        raise ArtifactError(
            f"artifact unpacks to {unpacked:,} bytes; the limit is {max_unpacked_bytes:,} "
            "bytes (ARTIFACT_MAX_UNPACKED_BYTES)"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_CHECKED_FROM and ratio > MAX_COMPRESSION_RATIO:
            raise ArtifactError(
                f"artifact member {member.filename} unpacks to {member.file_size:,} bytes "
                f"from {member.compress_size:,} ({ratio:,.0f} to 1); more than "
                f"{MAX_COMPRESSION_RATIO} to 1 is refused"
            )


def untrusted_types(
    source: str | os.PathLike | bytes | BinaryIO, trusted_types: Iterable[str] | None = None
) -> list[str]:
    """The types of a skops file that ``trusted_types`` (default DEFAULT_TRUSTED_TYPES)
    does not list and skops does not trust by itself, sorted; read from the file's schema,
    without loading it."""
    data = _read_bytes(source)
    trusted = set(DEFAULT_TRUSTED_TYPES if trusted_types is None else trusted_types)
    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a corrupt archive is a refused artifact
        raise ArtifactError(f"artifact is not a readable skops file: {exc}") from exc
    return sorted(set(found) - trusted)


def check_skops(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    max_unpacked_bytes: int,
    trusted_types: Iterable[str] | None = None,
) -> None:
    """The checks of a skops artifact at registration, before anything is unpacked:
    its unpacked size (check_archive), then its types against the allow-list, refused by
    name."""
    data = _read_bytes(source)
    check_archive(data, max_unpacked_bytes=max_unpacked_bytes)
    refused = untrusted_types(data, trusted_types)
    if refused:
        raise ArtifactError("artifact contains untrusted types: " + ", ".join(refused))


def dump_skops(model: Any, path: str | os.PathLike) -> None:
    """Write ``model`` in the skops format, replacing ``path`` only once fully written."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    try:
        partial.write_bytes(sio.dumps(model))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def load_model(
    path: str | os.PathLike,
    *,
    expected_sha256: str,
    trusted_types: Iterable[str] | None = None,
    allow_pickle: bool = False,
    max_unpacked_bytes: int | None = None,
) -> Any:
    """Load a model artifact after checking its hash and the types it would create.

    1. Read the file once and compare its sha256 with ``expected_sha256``.
    2. Detect the format from the bytes.
    3. skops: with ``max_unpacked_bytes``, refuse an archive that would unpack to more
       (check_archive); every type skops does not trust by itself must be in
       ``trusted_types`` (default DEFAULT_TRUSTED_TYPES), else the load is refused naming
       the others.
    4. pickle / joblib: refused unless ``allow_pickle`` (it runs the file's code).
    5. The model must have predict_proba.
    """
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    expected = (expected_sha256 or "").strip().lower()
    if actual != expected:
        raise ArtifactError(
            f"artifact sha256 mismatch: expected {expected or '(none)'}, got {actual}"
        )
    kind = detect_format(data)
    if kind == "skops":
        if max_unpacked_bytes is not None:
            check_archive(data, max_unpacked_bytes=max_unpacked_bytes)
        trusted = sorted(DEFAULT_TRUSTED_TYPES if trusted_types is None else trusted_types)
        refused = untrusted_types(data, trusted)
        if refused:
            raise ArtifactError("artifact contains untrusted types: " + ", ".join(refused))
        try:
            model = sio.loads(data, trusted=trusted)
        except Exception as exc:  # report any load failure as the artifact's
            raise ArtifactError(
                f"artifact could not be loaded: {type(exc).__name__}: {exc}"
            ) from exc
    elif kind == "pickle":
        if not allow_pickle:
            raise ArtifactError(
                "pickle/joblib artifacts are refused: loading one runs arbitrary code; "
                "store the model in the skops format"
            )
        import joblib  # imported only on the opted-in path

        try:
            model = joblib.load(io.BytesIO(data))
        except Exception as exc:
            raise ArtifactError(
                f"artifact could not be loaded: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        raise ArtifactError("unknown artifact format: expected a skops file")
    if not hasattr(model, "predict_proba"):
        raise ArtifactError(f"model {type(model).__name__} has no predict_proba")
    return model


def check_feature_columns(model: Any, columns: Iterable[str]) -> None:
    """Refuse a dataset whose columns differ from those the model was fitted on."""
    expected = getattr(model, "feature_names_in_", None)
    if expected is None:
        return
    expected = [str(c) for c in expected]
    given = [str(c) for c in columns]
    missing = [c for c in expected if c not in set(given)]
    extra = [c for c in given if c not in set(expected)]
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing columns: " + ", ".join(missing))
        if extra:
            parts.append("unexpected columns: " + ", ".join(extra))
        raise ArtifactError("dataset does not match the model's features; " + "; ".join(parts))
