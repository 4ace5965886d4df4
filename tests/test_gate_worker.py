"""The release gate end to end, as a training pipeline uses it: a real qcluster worker
reruns the probes of each newly registered version, and `manage.py gate`, run as its own
process, exits 1 with a JUnit file naming the broken probe, 0 for a good version, and 2
with --wait 0 while the runs are still queued (PostgreSQL: the worker shares the test
database)."""

import subprocess
from xml.etree import ElementTree

import pytest
from django.db import connection

from catalog.models import Finding
from probes.models import Probe
from registry.models import Dataset, ModelVersion

from . import processes
from .factories import csv_upload, fitted_model, skops_upload, toy_frame
from .test_faults import cluster_env, log_dir, started  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="a real worker shares the test database: PostgreSQL only",
    ),
]


def gate(env, ml_model, version, *args):
    return subprocess.run(
        [processes.PYTHON, "manage.py", "gate", ml_model.slug, version, *args],
        cwd=processes.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def register(ml_model, people, name, **model):
    return ModelVersion.register(
        ml_model=ml_model,
        version=name,
        artifact=skops_upload(fitted_model(**model)),
        by=people["maintainer"],
    )


def test_a_pipeline_gates_each_version_on_its_guarded_fix(
    people,
    ml_model,
    cluster_env,  # noqa: F811
    started,  # noqa: F811
    log_dir,  # noqa: F811
    tmp_path,
):
    dataset = Dataset.create_from_upload(
        csv_upload(toy_frame(n=600, seed=3)),
        name="eval",
        target_column="y",
        by=people["contributor"],
    )
    finding = Finding.objects.create(
        title="High x1 misjudged",
        ml_model=ml_model,
        dataset=dataset,
        status="resolved",
        slice=[{"feature": "x1", "op": ">", "value": 0.5}],
        reporter=people["contributor"],
    )
    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind="slice_error_rate",
        slice=finding.slice,
        threshold=0.2,
    )
    probe.full_clean()
    probe.save()
    env = cluster_env(Q_WORKERS=1)

    # No worker yet: the new version's runs wait in the queue.
    register(ml_model, people, "1")
    queued = gate(env, ml_model, "1", "--wait", "0")
    assert queued.returncode == 2, queued.stdout + queued.stderr
    assert "pending" in queued.stdout

    started.append(processes.qcluster("worker", env, log_dir))
    good = gate(env, ml_model, "1", "--wait", "600")
    assert good.returncode == 0, good.stdout + good.stderr

    register(ml_model, people, "2", flip_above=0.5)  # errs exactly where the fix was
    report = tmp_path / "gate.xml"
    bad = gate(env, ml_model, "2", "--wait", "600", "--junit", str(report))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite.get("failures") == "1"
    case = suite.find("testcase")
    assert f"probe {probe.pk}" in case.get("name") and case.find("failure") is not None
    assert "failed: Slice error rate" in case.find("failure").get("message")
