"""Model artifacts: hashing, format detection and safe loading.

A pickled model runs arbitrary code when it is loaded, so artifacts are stored in the skops
format and loaded with an explicit allow-list of types. The sha256 recorded at registration
is checked on the very bytes that are then loaded (the file is read once), so a file
swapped between the check and the load cannot slip through. Plain pickle / joblib files
are refused unless the caller opts in (the deployment's policy decides when).

Allow-listed types can still be crafted: a fitted tree whose child indices point outside its
arrays makes scikit-learn's compiled code read wild memory and the process die of a signal,
and a model can be built to exhaust memory. So a worker loads and runs a model in a child
process (``load_model(..., isolate=Isolation(...))``, see IsolatedModel) with a memory limit;
a child that dies is reported as ModelCrashed, and the worker goes on.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import errno
import hashlib
import io
import json
import os
import pickle
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import skops.io as sio

from . import ensembles
from .predict import CHUNK_ROWS, probabilities, row_runs


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
    # MLPClassifier keeps the state of its stochastic solver ("adam", "sgd"): arrays and
    # numbers only.
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
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
    "sklearn.ensemble._bagging.BaggingClassifier",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
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


def _node_attribute(node: Any, name: str) -> Any:
    """The schema node of attribute ``name`` of an object node, or None."""
    state = node.get("content") if isinstance(node, dict) else None
    attributes = state.get("content") if isinstance(state, dict) else None
    return attributes.get(name) if isinstance(attributes, dict) else None


def _pipeline_step(node: Any, index: int) -> Any:
    """A Pipeline's first (0) or last (-1) step, followed down nested pipelines; any other
    node itself."""
    while isinstance(node, dict) and node.get("__class__") == "Pipeline":
        steps = _node_attribute(node, "steps")
        items = steps.get("content") if isinstance(steps, dict) else None
        if not items:
            return None
        pair = items[index].get("content") if isinstance(items[index], dict) else None
        node = pair[1] if isinstance(pair, list) and len(pair) == 2 else None
    return node


def _schema_attribute(source: Any, name: str, step: int) -> list | None:
    """Attribute ``name`` of a skops artifact's model (a pipeline's step ``step``), read
    from its schema and numpy members without loading the model (no code runs; numpy's
    loader without pickles); None when the schema does not say."""
    import numpy as np

    data = _read_bytes(source)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
            node = _node_attribute(_pipeline_step(schema, step), name)
            if not isinstance(node, dict):
                return None
            if node.get("__loader__") == "NdArrayNode" and node.get("file"):
                array = np.load(io.BytesIO(archive.read(node["file"])), allow_pickle=False)
                return array.tolist()
            if isinstance(node.get("content"), list):  # an object array or a list: JSON items
                return [json.loads(item["content"]) for item in node["content"]]
    except (KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None
    return None


def artifact_classes(source: str | os.PathLike | bytes | BinaryIO) -> list | None:
    """The ``classes_`` a skops artifact's model (a pipeline's final step) was fitted with,
    read without loading it (_schema_attribute); None when the schema does not say."""
    return _schema_attribute(source, "classes_", -1)


def artifact_features(source: str | os.PathLike | bytes | BinaryIO) -> list | None:
    """The columns a skops artifact's model was fitted on (``feature_names_in_`` of the
    model, or of a pipeline's first step), read without loading it; None when unknown."""
    return _schema_attribute(source, "feature_names_in_", 0)


# The ensembles whose components are named (the rest are numbered), as in
# boundary.ensembles.components.
_NAMED_ENSEMBLES = ("VotingClassifier", "StackingClassifier")
_NUMBERED_ENSEMBLES = ("BaggingClassifier", "RandomForestClassifier", "ExtraTreesClassifier")


def artifact_components(source: str | os.PathLike | bytes | BinaryIO) -> list | None:
    """The components of a skops artifact's ensemble, as ``ensembles.component_names``
    gives them once loaded (names for Voting/Stacking without the dropped ones, indices
    otherwise), read from the schema without loading it; None when its final step is no
    ensemble. Raises ArtifactError when the schema cannot be read (a pickle artifact,
    a corrupt file)."""
    data = _read_bytes(source)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"the artifact's schema cannot be read: {exc}") from exc
    final = _pipeline_step(schema, -1)
    kind = final.get("__class__") if isinstance(final, dict) else None
    try:
        if kind in _NAMED_ENSEMBLES:
            names = []
            for pair in _node_attribute(final, "estimators")["content"]:
                name, estimator = pair["content"]
                if estimator.get("is_json") and estimator.get("content") == '"drop"':
                    continue
                names.append(json.loads(name["content"]))
            return names
        if kind in _NUMBERED_ENSEMBLES:
            return list(range(len(_node_attribute(final, "estimators_")["content"])))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"the artifact's ensemble cannot be read: {exc}") from exc
    return None


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
    isolate: Isolation | None = None,
) -> Any:
    """Load a model artifact after checking its hash and the types it would create.

    With ``isolate``, the steps below run in a child process and the model returned is an
    IsolatedModel standing for the one loaded there (a crash while loading raises
    ModelCrashed).

    1. Read the file once and compare its sha256 with ``expected_sha256``.
    2. Detect the format from the bytes.
    3. skops: with ``max_unpacked_bytes``, refuse an archive that would unpack to more
       (check_archive); every type skops does not trust by itself must be in
       ``trusted_types`` (default DEFAULT_TRUSTED_TYPES), else the load is refused naming
       the others.
    4. pickle / joblib: refused unless ``allow_pickle`` (it runs the file's code).
    5. The model must have predict_proba.
    """
    if isolate is not None:
        return IsolatedModel(
            path,
            isolation=isolate,
            expected_sha256=expected_sha256,
            trusted_types=None if trusted_types is None else list(trusted_types),
            allow_pickle=allow_pickle,
            max_unpacked_bytes=max_unpacked_bytes,
        )
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
    """Refuse a dataset that lacks a column the model was fitted on (its
    ``feature_names_in_``). Columns it has beyond those are not the model's business: the
    model is given its own ``feature_names_in_`` (boundary.predict.feature_columns), so a
    model fitted on a subset of a dataset's columns runs on that dataset."""
    expected = getattr(model, "feature_names_in_", None)
    if expected is None:
        return
    given = {str(c) for c in columns}
    missing = [str(c) for c in expected if str(c) not in given]
    if missing:
        raise ArtifactError(
            "dataset does not match the model's features; missing columns: " + ", ".join(missing)
        )


# --------------------------------------------------------------------------------------
# Models in a child process
# --------------------------------------------------------------------------------------


class ModelCrashed(ArtifactError):
    """The process running a model died while loading it or predicting: killed by a signal
    (a crash) or out of memory. The same artifact would do it again: not worth a retry."""


@dataclass(frozen=True)
class Isolation:
    """How load_model runs a model in a child process: at most ``memory_limit`` bytes of
    address space (RLIMIT_AS; None: no limit), and each predict_proba (and an ensemble's
    component predictions) in requests on at most ``chunk_rows`` consecutive rows, each one
    call in the child (boundary.predict.row_runs; 0: one request)."""

    memory_limit: int | None = None
    chunk_rows: int = CHUNK_ROWS


# The exit status of a child that ran out of memory (it may not be able to say so).
_EXIT_OUT_OF_MEMORY = 86
_LENGTH = struct.Struct("!Q")
# The largest description of a loaded model (its classes and feature names) accepted.
_DESCRIPTION_LIMIT = 64 << 20
# What a child may send back: numpy arrays and plain data, nothing that runs code.
_DATA_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
    }
)


class _ProtocolError(Exception):
    pass


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _DATA_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(payload)))
    sock.sendall(payload)


def _recv_exactly(sock: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None  # the other end has gone
        got += n
    return buffer


def _recv(sock: socket.socket, limit: int | None = None) -> bytearray | None:
    """One message; None when the other end closed first. A message over `limit` bytes
    is a protocol error (a child must not make its parent allocate at will)."""
    head = _recv_exactly(sock, _LENGTH.size)
    if head is None:
        return None
    (size,) = _LENGTH.unpack(head)
    if limit is not None and size > limit:
        raise _ProtocolError(f"an answer of {size:,} bytes where at most {limit:,} fit")
    return _recv_exactly(sock, size)


def _plain_args(exc: BaseException) -> tuple:
    if all(isinstance(a, (str, int, float, bool, type(None))) for a in exc.args):
        return tuple(exc.args)
    return (str(exc),)


def _remote_exception(name: str, args: tuple) -> Exception:
    """An exception raised in the child, raised again in the parent under its own name:
    the built-in class itself, else a ModelRaised subclass of that name."""
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        with contextlib.suppress(Exception):  # a class with another signature
            return cls(*args)
    return type(name, (ModelRaised,), {})(*args)


class ModelRaised(Exception):
    """An exception the model raised in its process (the class is named after it)."""


def _death(stage: str, code: int | None, memory_limit: int | None) -> str:
    if code == _EXIT_OUT_OF_MEMORY:
        limit = f"{memory_limit:,} bytes" if memory_limit else "no limit"
        return (
            f"the model ran out of memory while {stage} "
            f"(limit {limit}, ARTIFACT_MEMORY_LIMIT_BYTES)"
        )
    if code is not None and code < 0:
        return f"the model crashed while {stage} (signal {-code})"
    if code is None:
        return f"the model's process stopped while {stage}"
    return f"the model's process exited with status {code} while {stage}"


# ---------------------------------------------------------------- the child's side


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies (PR_SET_PDEATHSIG)."""
    # Not Linux: the closed socket ends an idle child instead.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


def _out_of_memory(exc: BaseException) -> bool:
    """Memory ran out somewhere in this exception's chain: a MemoryError, or a library's
    own words for it (zlib, for one, raises its own error when it cannot allocate)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MemoryError) or (
            isinstance(seen, OSError) and seen.errno == errno.ENOMEM
        ):
            return True
        text = str(seen).lower()
        if "unable to allocate" in text or "cannot allocate memory" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(model: Any) -> dict:
    import numpy as np

    found: dict[str, Any] = {}
    for name in ("classes_", "feature_names_in_"):
        try:
            value = getattr(model, name)
        except AttributeError:
            continue
        found[name] = np.asarray(value)
    # Plain names (str) or indices (int), or None: the model is not an ensemble.
    found["component_names"] = ensembles.component_names(model)
    return found


def _serve_model(sock: socket.socket, memory_limit: int | None, parent: int) -> None:
    """The child: load the model when asked, then answer requests until the parent closes
    the socket: ("predict_proba", X, chunk_rows), the model's probabilities, and
    ("components", X, chunk_rows), an ensemble's per-component class indices
    (boundary.ensembles.component_predictions). Replies are pickles of numpy arrays and
    plain data only."""
    _die_with_parent(parent)
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    model = None
    try:
        while True:
            message = _recv(sock)
            if message is None:
                return
            request = pickle.loads(message)  # noqa: S301 (sent by the parent)
            try:
                if request[0] == "load":
                    model = load_model(**request[1])
                    reply: tuple = ("ok", _describe(model))
                elif request[0] == "components":
                    _, X, chunk_rows = request
                    found = ensembles.component_predictions(model, X, chunk_rows=chunk_rows)
                    reply = ("ok", found)
                else:
                    _, X, chunk_rows = request
                    reply = ("ok", probabilities(model, X, chunk_rows=chunk_rows))
            except Exception as exc:
                if _out_of_memory(exc):
                    raise MemoryError from exc
                if isinstance(exc, ArtifactError):
                    reply = ("refused", str(exc))
                else:  # the model's own error, raised again in the parent
                    reply = ("raised", type(exc).__name__, _plain_args(exc))
            del request
            _send(sock, pickle.dumps(reply, protocol=5))
            del reply
    except MemoryError:
        os._exit(_EXIT_OUT_OF_MEMORY)


def _preloaded_modules() -> list[str]:
    """The modules of the supported model families, imported once by the fork server so
    that each child starts with them loaded."""
    modules = {name.rpartition(".")[0] for name in DEFAULT_TRUSTED_TYPES}
    return ["numpy", "pandas", *sorted(m for m in modules if m.startswith("sklearn"))]


def _fork_server_main(fd: int) -> None:
    """The fork server: a process that imported the libraries once and forks a child per
    model on request (its parent's only way to reach it is the control socket `fd`).

    Requests (JSON, one per packet): {"op": "fork", "memory_limit"} with a socket passed
    along (the child's end), answered with the child's pid; {"op": "kill", "pid"};
    {"op": "wait", "pid", "block"}, answered with the exit status (as subprocess reports
    it: -N for signal N), or null while it runs. When the parent goes, the control socket
    closes and this process ends, and with it every child (PR_SET_PDEATHSIG)."""
    import importlib

    for module in _preloaded_modules():
        try:
            importlib.import_module(module)
        except Exception:  # noqa: S112 (a module a child then imports itself)
            continue
    control = socket.socket(fileno=fd)
    finished: dict[int, int] = {}
    me = os.getpid()
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(control, 4096, 1)
        except OSError:
            return
        if not message:
            return
        command = json.loads(message)
        answer: dict[str, Any] = {}
        if command["op"] == "fork":
            pid = os.fork()
            if pid == 0:
                control.close()
                status = 0
                try:
                    _serve_model(socket.socket(fileno=fds[0]), command["memory_limit"], me)
                except BaseException as exc:  # noqa: B036 (the child's last word is its status)
                    status = _EXIT_OUT_OF_MEMORY if _out_of_memory(exc) else 1
                os._exit(status)
            for descriptor in fds:
                os.close(descriptor)
            answer = {"pid": pid}
        elif command["op"] == "kill":
            if command["pid"] not in finished:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(command["pid"], signal.SIGKILL)
        elif command["op"] == "wait":
            pid = command["pid"]
            code = finished.pop(pid, None)
            if code is None:
                try:
                    done, status = os.waitpid(pid, 0 if command["block"] else os.WNOHANG)
                    code = os.waitstatus_to_exitcode(status) if done else None
                except ChildProcessError:
                    code = None
            answer = {"code": code}
        _reap(finished)
        control.send(json.dumps(answer).encode())


def _reap(finished: dict[int, int]) -> None:
    """Collect children that ended unasked (kept for a later "wait", a bounded number)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        finished[pid] = os.waitstatus_to_exitcode(status)
        while len(finished) > 1000:
            finished.pop(next(iter(finished)))


# ---------------------------------------------------------------- the parent's side


class _ForkServer:
    """The parent's handle on its fork server (one per process, started on first use)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = (
            "import json, sys; sys.path[:0] = json.loads(sys.argv[2]); "
            "from boundary.artifacts import _fork_server_main; "
            "_fork_server_main(int(sys.argv[1]))"
        )
        try:
            self.process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed code)
                [sys.executable, "-c", code, str(theirs.fileno()), json.dumps(sys.path)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.control = ours
        self.owner = os.getpid()
        self.broken = False
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return not self.broken and self.owner == os.getpid() and self.process.poll() is None

    def _ask(self, command: dict, fds: Iterable[int] = ()) -> dict:
        with self.lock:
            try:
                socket.send_fds(self.control, [json.dumps(command).encode()], list(fds))
                reply = self.control.recv(4096)
            except BaseException:
                self.broken = True  # an answer may be left unread: never reuse this channel
                raise
        if not reply:
            self.broken = True
            raise OSError("the model fork server has stopped")
        return json.loads(reply)

    def fork(self, memory_limit: int | None) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair()
        try:
            pid = self._ask({"op": "fork", "memory_limit": memory_limit}, [theirs.fileno()])
        finally:
            theirs.close()
        return pid["pid"], ours

    def kill(self, pid: int) -> None:
        self._ask({"op": "kill", "pid": pid})

    def wait(self, pid: int, *, block: bool) -> int | None:
        return self._ask({"op": "wait", "pid": pid, "block": block})["code"]

    def close(self) -> None:
        self.broken = True
        self.control.close()
        if self.owner == os.getpid():
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_server: _ForkServer | None = None
_server_lock = threading.Lock()


def _fork_server() -> _ForkServer:
    global _server
    with _server_lock:
        if _server is None or not _server.alive():
            if _server is not None and _server.owner == os.getpid():
                _server.close()
            _server = _ForkServer()
        return _server


def _end_child(server: _ForkServer, pid: int, sock: socket.socket, *, grace: float = 0.0):
    """Close the child's socket, give it `grace` seconds to end, then kill it; its exit
    status (None when unknown)."""
    sock.close()
    if not server.alive():
        return None  # the fork server has gone, and its children with it
    try:
        deadline = time.monotonic() + grace
        while True:
            code = server.wait(pid, block=False)
            if code is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        if code is None:
            server.kill(pid)
            code = server.wait(pid, block=True)
        return code
    except OSError:
        return None


def _rows(X: Any, start: int, stop: int) -> Any:
    """Rows ``start`` to ``stop`` of a frame or an array (a view, not a copy)."""
    return X.iloc[start:stop] if hasattr(X, "iloc") else X[start:stop]


class IsolatedModel:
    """A model loaded and run in a child process, standing in for it in the parent.

    It has the model's ``classes_`` and ``feature_names_in_`` (when the model has them) and
    its ``predict_proba``, answered by the child one request of at most ``chunk_rows``
    consecutive rows at a time, so that neither process ever holds more than one request's
    rows as a message (a pickle of the whole table would be a second copy of it);
    of an ensemble, ``component_names`` (None: not an ensemble) and
    ``component_predictions`` (boundary.ensembles), computed there too;
    the parent never holds the model. The child is forked from a fork server that imported
    numpy, pandas and scikit-learn once, limited to ``memory_limit`` bytes of address space.

    A child that dies while loading or predicting raises ModelCrashed saying so (the signal,
    or that memory ran out); the next request starts a new child. An error of the model is
    raised again under its class's name. An interruption in the parent (a task's time
    limit) kills the child. close() ends it.
    """

    classes_: Any
    feature_names_in_: Any
    component_names: list | None = None

    def __init__(self, path: str | os.PathLike, *, isolation: Isolation, **load: Any) -> None:
        self.isolation = isolation
        self._load = dict(load, path=str(path))
        self.pid: int | None = None
        self._sock: socket.socket | None = None
        self._server: _ForkServer | None = None
        self._finalizer: weakref.finalize | None = None
        self._start()

    def _start(self) -> None:
        server = _fork_server()
        self.pid, self._sock = server.fork(self.isolation.memory_limit)
        self._server = server
        self._finalizer = weakref.finalize(self, _end_child, server, self.pid, self._sock)
        described = self._call("loading", ("load", self._load), limit=_DESCRIPTION_LIMIT)
        for name, value in described.items():
            setattr(self, name, value)

    def _alive(self) -> bool:
        if self._sock is None or self._server is None or not self._server.alive():
            return False
        readable, _, _ = select.select([self._sock], [], [], 0)
        return not readable  # an idle child says nothing: a readable socket has closed

    def predict_proba(self, X: Any) -> Any:
        """The probabilities of the rows of ``X``, one request per run of rows, into one
        array (one reply as it is when there is one run, or the model has no classes)."""
        import numpy as np

        classes = getattr(self, "classes_", None)
        runs = list(row_runs(len(X), self.isolation.chunk_rows))
        if classes is None:  # nothing to check a reply's size against
            return self._ask("predicting", "predict_proba", X, None)
        if len(runs) <= 1:
            return self._ask("predicting", "predict_proba", X, 8 * len(classes))
        proba = np.empty((len(X), len(classes)), dtype=np.float64)
        for start, stop in runs:
            part = np.asarray(
                self._ask("predicting", "predict_proba", _rows(X, start, stop), 8 * len(classes))
            )
            if part.shape != (stop - start, len(classes)):
                raise ValueError(
                    f"predict_proba returned shape {part.shape}, "
                    f"expected ({stop - start}, {len(classes)})"
                )
            proba[start:stop] = part
        return proba

    def component_predictions(self, X: Any) -> Any:
        """Each component's class index for each row of ``X``, computed in the child
        (boundary.ensembles.component_predictions), one request per run of rows."""
        import numpy as np

        classes = getattr(self, "classes_", None)
        names = self.component_names or []
        dtype = ensembles.code_dtype(len(classes) if classes is not None else 1)
        width = max(len(names), 1) * dtype.itemsize
        stage = "predicting its components"
        runs = list(row_runs(len(X), self.isolation.chunk_rows))
        if len(runs) <= 1:
            return self._ask(stage, "components", X, width)
        found = np.empty((len(names), len(X)), dtype=dtype)
        for start, stop in runs:
            part = np.asarray(self._ask(stage, "components", _rows(X, start, stop), width))
            if part.shape != (len(names), stop - start):
                raise ValueError(
                    f"component predictions of shape {part.shape}, expected "
                    f"({len(names)}, {stop - start})"
                )
            found[:, start:stop] = part
        return found

    def _ask(self, stage: str, what: str, X: Any, bytes_per_row: int | None) -> Any:
        """One request about the rows of ``X`` (a new child first if the last one died);
        the reply may hold ``bytes_per_row`` per row and 1 MiB besides (None: no limit)."""
        if not self._alive():
            self.close()
            self._start()
        request = (what, X, self.isolation.chunk_rows)
        limit = None if bytes_per_row is None else len(X) * bytes_per_row + (1 << 20)
        return self._call(stage, request, limit=limit)

    def _call(self, stage: str, request: tuple, *, limit: int | None) -> Any:
        assert self._sock is not None and self._server is not None and self.pid is not None
        try:
            _send(self._sock, pickle.dumps(request, protocol=5))
            message = _recv(self._sock, limit)
        except (BrokenPipeError, ConnectionResetError):
            message = None
        except _ProtocolError as exc:
            self.close()
            raise ModelCrashed(f"the model's process answered wrongly while {stage}: {exc}")
        except BaseException:
            self.close()  # interrupted (a time limit): the child must not go on
            raise
        if message is None:
            code = _end_child(self._server, self.pid, self._sock, grace=5.0)
            self._forget_child()
            raise ModelCrashed(_death(stage, code, self.isolation.memory_limit))
        try:
            reply = _DataUnpickler(io.BytesIO(message)).load()
        except Exception as exc:
            self.close()
            raise ModelCrashed(
                f"the model's process answered wrongly while {stage}: {exc}"
            ) from None
        if reply[0] == "ok":
            return reply[1]
        if reply[0] == "refused":
            raise ArtifactError(reply[1])
        raise _remote_exception(reply[1], tuple(reply[2]))

    def _forget_child(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
        self.pid = self._sock = self._server = self._finalizer = None

    def close(self) -> None:
        """End the child (the model goes with it)."""
        if self._finalizer is not None:
            self._finalizer()
        self._forget_child()
