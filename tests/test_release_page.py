"""A version's page against the previous version (DESIGN.md, issue "Remediation that tells
the truth"): passed, failed, newly failing, newly passing and inconclusive counts, the
release gate, a banner when a guarded fix broke; and any two versions compared."""

import datetime

import pytest
from django.utils import timezone

from probes.models import Probe, ProbeRun, Rerun
from registry.models import MLModel, ModelVersion
from remediation.release import compare

from .factories import client_for, fitted_model, skops_upload


def run_on(probe, version, status, value=0.1):
    rerun = Rerun.queue(version, trigger="manual", probes=[probe], dispatch=False)
    run = ProbeRun.objects.get(rerun=rerun, probe=probe)
    ProbeRun.objects.filter(pk=run.pk).update(
        status=status, value=value, finished_at=timezone.now()
    )
    return run


@pytest.fixture
def world(people, ml_model, version, finding, probe, dataset):
    v2 = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )
    others = []
    for threshold in (0.3, 0.4, 0.5, 0.6):
        p = Probe(
            finding=finding,
            dataset=dataset,
            kind="slice_error_rate",
            slice=probe.slice,
            threshold=threshold,
        )
        p.full_clean()
        p.save()
        others.append(p)
    # probe: passed -> failed (newly failing); others[0]: failed -> passed (newly passing);
    # others[1]: passed -> passed; others[2]: failed -> failed; others[3]: -> inconclusive.
    for p, before, after in [
        (probe, "passed", "failed"),
        (others[0], "failed", "passed"),
        (others[1], "passed", "passed"),
        (others[2], "failed", "failed"),
        (others[3], "passed", "inconclusive"),
    ]:
        run_on(p, version, before)
        run_on(p, v2, after, value=0.45)
    return {"v1": version, "v2": v2, "probe": probe, "others": others}


def test_each_probe_is_sorted_into_what_changed(world):
    counts = compare(world["v1"], world["v2"]).counts()
    assert counts == {
        "newly_failing": 1,
        "failed": 1,
        "newly_passing": 1,
        "passed": 1,
        "inconclusive": 1,
    }
    first = compare(world["v1"], world["v2"]).rows[0]
    assert first.probe == world["probe"] and first.category == "newly_failing"


def test_the_version_page_has_the_gate_the_counts_and_the_banner(world, finding, people):
    type(finding).objects.filter(pk=finding.pk).update(status="resolved")  # guards a fix
    page = client_for(people["viewer"]).get(world["v2"].get_absolute_url()).content.decode()
    assert "A guarded fix broke on" in page and f"probe #{world['probe'].pk}" in page
    assert "Release gate:" in page and ">fail<" in page
    assert "Newly failing: <strong>1</strong>" in page
    assert "Newly passing: <strong>1</strong>" in page


def test_no_banner_while_nothing_guarded_broke(world, people):
    page = client_for(people["viewer"]).get(world["v2"].get_absolute_url()).content.decode()
    assert "A guarded fix broke" not in page and ">pass<" in page


def test_two_versions_side_by_side(world, people):
    client = client_for(people["viewer"])
    page = client.get(f"/versions/compare/?a={world['v2'].pk}&b={world['v1'].pk}")
    html = page.content.decode()
    assert page.status_code == 200 and "Newly failing: <strong>1</strong>" in html  # ordered
    other = ModelVersion.register(
        ml_model=MLModel.objects.create(name="other"),
        version="1",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )
    mixed = client.get(f"/versions/compare/?a={other.pk}&b={world['v1'].pk}").content.decode()
    assert "is not a version of" in mixed and "Compare two versions of one ML model" in mixed
    assert client.get("/versions/compare/?a=x&b=").status_code == 200


def test_the_previous_version_is_the_one_registered_before(world, ml_model, people):
    from remediation.release import previous_version

    v3 = ModelVersion.register(
        ml_model=ml_model,
        version="3",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )
    ModelVersion.objects.filter(pk=v3.pk).update(
        registered_at=world["v2"].registered_at + datetime.timedelta(seconds=1)
    )
    v3.refresh_from_db()
    assert previous_version(v3) == world["v2"] and previous_version(world["v1"]) is None
