"""A crafted artifact cannot take the worker down (DESIGN.md, "Model artifacts are code"):
the model is loaded and run in a child process with a memory limit, inline tasks included;
one that crashes or exhausts memory while loading or predicting fails its runs with a clear
error once, without being retried, and the worker goes on. Normal models give the same
results as when they ran in the worker itself."""

import os
import re
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import skops.io as sio
from django.core.files.base import ContentFile

from boundary import artifacts, engine
from probes.models import Probe, ProbeRun, Rerun
from registry.models import ModelVersion

from .factories import fitted_model, skops_upload, toy_frame

pytestmark = pytest.mark.django_db(transaction=True)  # reruns start after the commit

CRASH = re.compile(r"^the model crashed while predicting \(signal (\d+)\)$")


def tree_pipeline(frame=None):
    """The factories' pipeline with a decision tree at its end."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    frame = toy_frame() if frame is None else frame
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["x1", "x2"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                    ]
                ),
            ),
            ("clf", DecisionTreeClassifier(max_depth=4, random_state=0)),
        ]
    )
    return model.fit(frame.drop(columns="y"), frame["y"])


def corrupted_tree():
    """Allow-listed types only, but every split points at a child far outside the tree's
    arrays: predicting reads unmapped memory and the process dies of a signal."""
    model = tree_pipeline()
    tree = model.named_steps["clf"].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    split = nodes["left_child"] >= 0
    nodes["left_child"][split] = 2**40
    nodes["right_child"][split] = 2**40
    state["nodes"] = nodes
    tree.__setstate__(state)
    return model


@pytest.fixture
def probes(people, finding, dataset):
    """Probes of several kinds on the finding's dataset: two of them call the model again."""
    made = []
    for kind, slice_, params, threshold in [
        ("slice_error_rate", [{"feature": "x1", "op": ">", "value": 0.5}], {}, 0.2),
        ("margin_density", [], {}, 0.5),
        ("slice_ece", [], {}, 0.2),
        ("perturbation_flip_rate", [], {"features": ["x1"]}, 0.5),
        ("counterfactual_flip_rate", [], {"changes": {"color": {"set": "red"}}}, 0.5),
    ]:
        probe = Probe(
            finding=finding,
            dataset=dataset,
            kind=kind,
            slice=slice_,
            params=params,
            threshold=threshold,
            created_by=people["contributor"],
        )
        probe.full_clean()
        probe.save()
        made.append(probe)
    return made


def register(people, ml_model, model, version):
    return ModelVersion.register(
        ml_model=ml_model, version=version, by=people["maintainer"], artifact=skops_upload(model)
    )


def test_a_model_that_crashes_while_predicting_fails_its_runs_once(people, ml_model, probes):
    me = os.getpid()
    crashing = register(people, ml_model, corrupted_tree(), "crafted")
    assert os.getpid() == me  # the test process (the inline worker) is alive
    runs = list(ProbeRun.objects.filter(model_version=crashing))
    assert len(runs) == len(probes)
    for run in runs:
        assert run.status == "error" and run.passed is None
        crash = CRASH.match(run.error)
        assert crash, run.error
        assert int(crash.group(1)) in (signal.SIGSEGV, signal.SIGBUS)
        assert run.attempts == 1
    assert Rerun.objects.get(model_version=crashing).finished_at is not None
    # The worker goes on with the next version.
    healthy = register(people, ml_model, tree_pipeline(), "healthy")
    statuses = set(ProbeRun.objects.filter(model_version=healthy).values_list("status", flat=True))
    assert statuses <= {"passed", "failed", "inconclusive"}, statuses


def test_a_crash_is_not_retried_by_another_delivery(people, ml_model, probes):
    from probes.tasks import run_chunk

    crashing = register(people, ml_model, corrupted_tree(), "crafted")
    rerun = Rerun.objects.get(model_version=crashing)
    before = list(
        ProbeRun.objects.filter(rerun=rerun).values_list("pk", "status", "attempts", "finished_at")
    )
    run_chunk(rerun.pk, [pk for pk, *_ in before])
    after = list(
        ProbeRun.objects.filter(rerun=rerun).values_list("pk", "status", "attempts", "finished_at")
    )
    assert after == before
    assert {status for _, status, *_ in after} == {"error"}


def zygote_address_space(tmp_path):
    """The address space of the process every model's process is forked from, once it has
    imported what it preloads (a first model loaded through it shows that it has)."""
    path = tmp_path / "warm-up.skops"
    artifacts.dump_skops(fitted_model(), path)
    artifacts.load_model(
        path, expected_sha256=artifacts.sha256_of(path), isolate=artifacts.Isolation()
    ).close()
    with open(f"/proc/{artifacts._fork_server().process.pid}/status") as status:
        kilobytes = int(re.search(r"VmSize:\s+(\d+) kB", status.read()).group(1))
    return kilobytes * 1024


def memory_hungry():
    """A pipeline whose coefficients take 100 MB unpacked; the file is under 1 MB (compressed
    about 150 to 1, under the refusal ratio)."""
    model = fitted_model()
    pattern = np.random.default_rng(0).integers(0, 256, size=1000, dtype=np.uint8)
    model.named_steps["clf"].coef_ = np.frombuffer(
        np.tile(pattern, 100_000).tobytes(), dtype=np.float64
    ).reshape(1, -1)
    return ContentFile(
        sio.dumps(model, compression=zipfile.ZIP_DEFLATED, compresslevel=1), name="hungry.skops"
    )


def test_a_model_that_exhausts_its_memory_while_loading_fails_its_runs_once(
    people, ml_model, probes, settings, tmp_path
):
    limit = zygote_address_space(tmp_path) + 64 * 1024 * 1024
    settings.ARTIFACT_MEMORY_LIMIT_BYTES = limit
    artifact = memory_hungry()
    assert artifact.size < 1024 * 1024
    hungry = ModelVersion.register(
        ml_model=ml_model, version="hungry", artifact=artifact, by=people["maintainer"]
    )
    runs = list(ProbeRun.objects.filter(model_version=hungry))
    assert len(runs) == len(probes)
    message = (
        f"the model ran out of memory while loading (limit {limit:,} bytes, "
        "ARTIFACT_MEMORY_LIMIT_BYTES)"
    )
    assert [(r.status, r.error, r.attempts) for r in runs] == [("error", message, 1)] * len(runs)
    settings.ARTIFACT_MEMORY_LIMIT_BYTES = 4 * 1024**3
    healthy = register(people, ml_model, fitted_model(), "healthy")
    assert not ProbeRun.objects.filter(model_version=healthy, status="error").exists()


@pytest.mark.parametrize("chunk_rows", [0, 57], ids=["one-call", "chunked"])
def test_results_are_those_of_the_model_run_in_the_worker(
    people, ml_model, probes, dataset, settings, monkeypatch, chunk_rows
):
    settings.PREDICT_CHUNK_ROWS = chunk_rows
    loaded = []
    real_load = artifacts.load_model
    monkeypatch.setattr(
        artifacts, "load_model", lambda *a, **k: loaded.append(real_load(*a, **k)) or loaded[-1]
    )
    model = fitted_model(flip_above=0.8)
    version = register(people, ml_model, model, "v2")
    [isolated] = loaded
    assert isinstance(isolated, artifacts.IsolatedModel)
    assert isolated.pid is None  # the rerun finished: its model's process has ended
    runs = {r.probe_id: r for r in ProbeRun.objects.filter(model_version=version)}
    specs = [
        engine.ProbeSpec(
            key=p.pk,
            kind=p.kind,
            slice=p.slice,
            params=p.params,
            comparator=p.comparator,
            threshold=p.threshold,
            min_support=p.min_support,
        )
        for p in probes
    ]
    in_worker = engine.evaluate_probes(model, dataset.read(), "y", specs, chunk_rows=chunk_rows)
    for result in in_worker:
        run = runs[result.key]
        assert (run.status, run.value, run.ci_low, run.ci_high, run.support) == (
            result.status,
            result.value,
            result.ci_low,
            result.ci_high,
            result.support,
        )


def test_the_model_runs_in_another_process_with_the_memory_limit(tmp_path):
    path = tmp_path / "model.skops"
    artifacts.dump_skops(fitted_model(), path)
    model = artifacts.load_model(
        path,
        expected_sha256=artifacts.sha256_of(path),
        isolate=artifacts.Isolation(memory_limit=3 * 1024**3),
    )
    try:
        assert model.pid != os.getpid()
        with open(f"/proc/{model.pid}/limits") as limits:
            line = next(line for line in limits if line.startswith("Max address space"))
        assert line.split()[3:5] == [str(3 * 1024**3)] * 2
        frame = toy_frame().drop(columns="y")
        np.testing.assert_array_equal(
            model.predict_proba(frame), fitted_model().predict_proba(frame)
        )
        assert list(model.classes_) == [0, 1]
        assert list(model.feature_names_in_) == ["x1", "x2", "color"]
        with pytest.raises(ValueError, match="columns are missing"):
            model.predict_proba(frame[["x1"]])  # the model's own error, by its own class
    finally:
        pid = model.pid
        model.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_sha256_is_checked_in_the_child_before_loading(tmp_path):
    path = tmp_path / "model.skops"
    artifacts.dump_skops(fitted_model(), path)
    with pytest.raises(artifacts.ArtifactError, match="sha256 mismatch"):
        artifacts.load_model(path, expected_sha256="0" * 64, isolate=artifacts.Isolation())


def test_a_time_limit_in_the_worker_ends_the_models_process(tmp_path, settings):
    """A model that hangs: the alarm that ends the task in the worker kills the child too."""
    from .hanging_model import hanging_model

    path = tmp_path / "hang.skops"
    artifacts.dump_skops(hanging_model(toy_frame(), block_alarm=True), path)
    model = artifacts.load_model(
        path,
        expected_sha256=artifacts.sha256_of(path),
        isolate=artifacts.Isolation(),
        trusted_types=[*artifacts.DEFAULT_TRUSTED_TYPES, "tests.hanging_model.HangingPipeline"],
    )
    pid = model.pid

    class TimeLimit(Exception):
        pass

    def alarm(signum, frame):
        raise TimeLimit

    previous = signal.signal(signal.SIGALRM, alarm)
    frame = toy_frame().drop(columns="y").assign(x2=1e9)
    try:
        signal.alarm(1)
        with pytest.raises(TimeLimit):
            model.predict_proba(frame)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert model.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_memory_limit_is_read_from_the_environment():
    script = "import config.settings as s; print(s.ARTIFACT_MEMORY_LIMIT_BYTES)"
    clean = {k: v for k, v in os.environ.items() if k != "ARTIFACT_MEMORY_LIMIT_BYTES"}
    for env, expected in [({}, 4 * 1024**3), ({"ARTIFACT_MEMORY_LIMIT_BYTES": "999"}, 999)]:
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=dict(clean, **env),
            capture_output=True,
            text=True,
            check=True,
        )
        assert int(out.stdout) == expected


# --- the offline introspection: scans, maps, sweeps and the moved-problem check -------------


def _job(kind):
    """(make a queued job of `kind` for a finding on a version, the task a worker runs)."""
    from introspection import tasks
    from introspection.models import BoundaryMap, SliceScan, StressSweep
    from introspection.scans import check_sweep

    def row(model, finding, version, **fields):
        return model.objects.create(
            finding=finding,
            model_version=version,
            dataset=finding.dataset,
            slice=finding.slice,
            **fields,
        )

    return {
        "scan": (lambda f, v: SliceScan.queue(v, f.dataset, dispatch=False), tasks.run_scan),
        "map": (
            lambda f, v: row(BoundaryMap, f, v, feature_x="x1", feature_y="x2"),
            tasks.draw_map,
        ),
        "sweep": (
            lambda f, v: row(
                StressSweep, f, v, kind="noise", params=check_sweep(f, "noise", v, "")
            ),
            tasks.run_sweep,
        ),
    }[kind]


def _evaluation(people, finding, version):
    from remediation.models import Evaluation, RemediationAction

    action, _ = RemediationAction.objects.get_or_create(
        finding=finding,
        defaults={
            "kind": "retrain",
            "title": "Retrain with more high-x1 rows",
            "owner": people["contributor"],
            "created_by": people["contributor"],
        },
    )
    return Evaluation.objects.create(action=action, model_version=version, outcome="inconclusive")


@pytest.mark.parametrize("kind", ["scan", "map", "sweep"])
def test_a_job_whose_model_crashes_while_predicting_fails_once_and_the_worker_goes_on(
    people, ml_model, finding, kind
):
    make, run = _job(kind)
    me = os.getpid()
    crashing = register(people, ml_model, corrupted_tree(), "crafted")
    job = make(finding, crashing)
    assert run(job.pk) == "error"
    assert os.getpid() == me  # the test process (the inline worker) is alive
    job.refresh_from_db()
    assert (job.status, job.finished_at is not None) == ("error", True)
    crash = CRASH.match(job.error)
    assert crash, job.error
    assert int(crash.group(1)) in (signal.SIGSEGV, signal.SIGBUS)
    assert "ModelCrashed" in job.traceback
    # Another delivery of the same job does not run the model again.
    assert run(job.pk) == "error"
    # The worker goes on: the next job, on a sound model, is done.
    healthy = make(finding, finding.model_version)
    assert run(healthy.pk) == "done"
    healthy.refresh_from_db()
    assert (healthy.status, healthy.error) == ("done", "")


def test_a_scan_whose_model_exhausts_its_memory_while_loading_fails_with_the_limit(
    people, ml_model, finding, settings, tmp_path
):
    make, run = _job("scan")
    limit = zygote_address_space(tmp_path) + 64 * 1024 * 1024
    settings.ARTIFACT_MEMORY_LIMIT_BYTES = limit
    hungry = ModelVersion.register(
        ml_model=ml_model, version="hungry", artifact=memory_hungry(), by=people["maintainer"]
    )
    scan = make(finding, hungry)
    assert run(scan.pk) == "error"
    scan.refresh_from_db()
    assert (scan.status, scan.error, scan.progress_text) == (
        "error",
        f"the model ran out of memory while loading (limit {limit:,} bytes, "
        "ARTIFACT_MEMORY_LIMIT_BYTES)",
        "Failed",
    )
    healthy = make(finding, finding.model_version)
    assert run(healthy.pk) == "done"


def test_a_moved_problem_check_on_a_model_that_crashes_records_that_it_could_not_run(
    people, ml_model, finding
):
    from introspection.tasks import check_moved_problem

    crashing = register(people, ml_model, corrupted_tree(), "crafted")
    evaluation = _evaluation(people, finding, crashing)
    assert check_moved_problem(evaluation.pk) == "error"
    evaluation.refresh_from_db()
    check = evaluation.details["moved_problem"]
    assert check["verdict"] == "error"
    crash = re.fullmatch(
        r"The check could not run: the model crashed while predicting \(signal (\d+)\)",
        check["text"],
    )
    assert crash, check["text"]
    assert int(crash.group(1)) in (signal.SIGSEGV, signal.SIGBUS)
    assert evaluation.outcome == "inconclusive"
    # The next check, of a sound model, runs.
    healthy = _evaluation(people, finding, finding.model_version)
    assert check_moved_problem(healthy.pk) in {"clear", "persists", "nearby", "moved", "spread"}


def test_introspection_runs_each_model_in_a_child_process_and_ends_it(
    people, ml_model, finding, monkeypatch
):
    from introspection.tasks import check_moved_problem

    loaded = []
    real_load = artifacts.load_model
    monkeypatch.setattr(
        artifacts, "load_model", lambda *a, **k: loaded.append(real_load(*a, **k)) or loaded[-1]
    )
    version = finding.model_version
    for kind in ("scan", "map", "sweep"):
        make, run = _job(kind)
        assert run(make(finding, version).pk) == "done", kind
    assert check_moved_problem(_evaluation(people, finding, version).pk) != "error"
    assert len(loaded) == 4
    for model in loaded:
        assert isinstance(model, artifacts.IsolatedModel)
        assert model.pid is None  # the job finished: its model's process has ended
