"""Reruns by what matters (DESIGN.md): the nightly rerun covers every deployed version and
each ML model's newest version, deployed versions first (production before the others);
within a rerun, the probes of critical findings go to the workers first, then high,
medium, low."""

import pytest

from catalog.models import Finding
from probes.models import Probe, ProbeRun, Rerun
from probes.tasks import SEVERITY_ORDER, nightly_rerun, nightly_versions, plan_chunks
from registry.models import Deployment, MLModel, ModelVersion

from .factories import fitted_model, skops_upload


def register(ml_model, name, people):
    return ModelVersion.register(
        ml_model=ml_model,
        version=name,
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )


@pytest.mark.parametrize(
    ("runs", "chunks"),
    [
        ([(1, 9, "low"), (2, 9, "critical"), (3, 9, "high")], [[2], [3], [1]]),
        (
            [(1, 9, "medium"), (2, 8, "medium"), (3, 9, "critical"), (4, 8, "critical")],
            [[3], [4], [1], [2]],
        ),
        ([(i, 9, "low") for i in range(1, 5)] + [(9, 9, "critical")], [[9], [1, 3], [2, 4]]),
        ([(1, 9), (2, 9), (3, 9)], [[1, 3], [2]]),
    ],
    ids=[
        "one-per-severity",
        "severity-before-dataset",
        "critical-jumps-the-queue",
        "no-severity-as-before",
    ],
)
def test_chunks_go_out_critical_first(runs, chunks):
    assert plan_chunks(runs, size=2) == chunks


def test_severities_are_ranked_as_design_says():
    assert sorted(SEVERITY_ORDER, key=SEVERITY_ORDER.get) == ["critical", "high", "medium", "low"]


def test_the_nightly_rerun_covers_deployed_versions_first(people, ml_model, version, probe):
    v2 = register(ml_model, "2", people)
    v3 = register(ml_model, "3", people)  # the newest, deployed nowhere
    other = MLModel.objects.create(name="another")
    o1 = register(other, "1", people)
    Deployment.record(model_version=version, environment="staging", by=people["maintainer"])
    Deployment.record(model_version=v2, environment="production", by=people["maintainer"])
    Deployment.record(model_version=o1, environment="shadow", by=people["maintainer"])
    assert nightly_versions() == [v2, o1, version, v3]
    reruns = [Rerun.objects.get(pk=pk) for pk in nightly_rerun()]
    assert [r.model_version for r in reruns] == [v2, o1, version, v3]
    assert all(r.trigger == "schedule" for r in reruns)
    # every covered version of the model with probes got a run of its active probe
    assert set(ProbeRun.objects.filter(probe=probe).values_list("model_version", flat=True)) >= {
        v2.pk,
        version.pk,
        v3.pk,
    }


def test_a_rerun_hands_critical_probes_to_the_workers_first(
    people, ml_model, version, dataset, settings
):
    settings.RERUN_CHUNK_SIZE = 1
    probes = {}
    for severity in ("low", "critical", "medium", "high"):
        finding = Finding.objects.create(
            title=severity, ml_model=ml_model, severity=severity, dataset=dataset
        )
        probes[severity] = Probe.objects.create(
            finding=finding, dataset=dataset, kind="slice_error_rate", threshold=0.5
        )
    rerun = Rerun.queue(version, trigger="manual", dispatch=False)
    runs = ProbeRun.objects.filter(rerun=rerun).values_list(
        "pk", "dataset_id", "probe__finding__severity"
    )
    order = [ProbeRun.objects.get(pk=chunk[0]).probe for chunk in plan_chunks(runs)]
    assert order == [probes[s] for s in ("critical", "high", "medium", "low")]
