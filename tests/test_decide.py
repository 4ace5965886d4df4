"""How a probe's value is decided (DESIGN.md, "Probe kinds": "Decision (params-independent
field `decide`): `point` (default) compares the value with the threshold; `confident` fails
only when the whole interval is on the wrong side, passes only when it is wholly on the
right side, and is `inconclusive` when the interval straddles the threshold").

On the tiny table of test_engine the whole-table error rate is 3/8 = 0.375 with a Wilson
interval of about [0.137, 0.694], and the accuracy 5/8 = 0.625 with about [0.306, 0.863].
"""

import pytest

from boundary import stats
from probes.models import Probe, ProbeRun, Rerun

from .factories import api_for
from .test_engine import run_one

ERROR_LOW, ERROR_HIGH = stats.wilson(3, 8)


def test_the_interval_is_what_the_cases_below_assume():
    assert 0.13 < ERROR_LOW < 0.14 and 0.69 < ERROR_HIGH < 0.70


@pytest.mark.parametrize(
    "threshold, point, confident",
    [
        (0.80, "passed", "passed"),  # the whole interval is below
        (0.50, "passed", "inconclusive"),  # the value is below, the interval straddles
        (0.30, "failed", "inconclusive"),  # the value is above, the interval straddles
        (0.10, "failed", "failed"),  # the whole interval is above
    ],
)
def test_a_lower_is_better_probe(threshold, point, confident):
    assert run_one("slice_error_rate", threshold=threshold).status == point
    result = run_one("slice_error_rate", threshold=threshold, decide="confident")
    assert result.status == confident
    assert result.value == 0.375  # the value is reported whatever the decision
    if confident == "inconclusive":
        assert "straddles" in result.error


@pytest.mark.parametrize(
    "threshold, point, confident",
    [
        (0.20, "passed", "passed"),
        (0.60, "passed", "inconclusive"),
        (0.70, "failed", "inconclusive"),
        (0.90, "failed", "failed"),
    ],
)
def test_a_higher_is_better_probe(threshold, point, confident):
    params = {"metric": "accuracy"}
    assert run_one("slice_metric", params, threshold=threshold).status == point
    result = run_one("slice_metric", params, threshold=threshold, decide="confident")
    assert result.status == confident


@pytest.mark.parametrize(
    "baseline, tolerance, point, confident",
    [
        (0.30, 0.0, "failed", "inconclusive"),
        (0.30, 0.5, "passed", "passed"),  # the limit 0.8 is above the whole interval
        (0.05, 0.0, "failed", "failed"),
        (0.375, 0.0, "passed", "inconclusive"),
    ],
)
def test_no_worse_than_baseline(baseline, tolerance, point, confident):
    common = {
        "comparator": "no_worse_than_baseline",
        "threshold": None,
        "baseline_value": baseline,
        "tolerance": tolerance,
    }
    assert run_one("slice_error_rate", **common).status == point
    assert run_one("slice_error_rate", decide="confident", **common).status == confident


def test_on_its_baseline_version_a_confident_probe_passes_as_a_point_one_does():
    common = {"comparator": "no_worse_than_baseline", "threshold": None, "is_baseline": True}
    assert run_one("slice_error_rate", decide="confident", **common).status == "passed"


def test_an_unknown_decision_rule_is_an_error_that_names_it():
    result = run_one("slice_error_rate", decide="lucky")
    assert result.status == "error"
    assert "decide must be one of point, confident, not 'lucky'" in result.error


# --- Stored probes ---------------------------------------------------------------------------

pytestmark = pytest.mark.django_db


def test_a_probe_is_saved_with_its_decision_rule_and_a_bad_one_is_refused_by_field(
    people, finding, dataset
):
    api = api_for(people["contributor"])
    body = {
        "finding": finding.pk,
        "dataset": dataset.pk,
        "kind": "slice_error_rate",
        "slice": [{"feature": "x1", "op": ">", "value": 0.5}],
        "threshold": 0.2,
    }
    bad = api.post("/api/v1/probes/", {**body, "decide": "lucky"}, format="json")
    assert bad.status_code == 400 and "decide" in bad.json()
    assert not Probe.objects.exists()
    made = api.post("/api/v1/probes/", {**body, "decide": "confident"}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["decide"] == "confident"
    probe = Probe.objects.get()
    assert probe.definition()["decide"] == "confident"
    default = api.post("/api/v1/probes/", body, format="json")
    assert default.json()["decide"] == "point"


def test_a_stored_run_is_decided_on_its_interval(
    people, probe, version, django_capture_on_commit_callbacks
):
    """The same probe, point and confident, on the same version: the run of each follows
    its own rule (the rerun runs inline here)."""
    with django_capture_on_commit_callbacks(execute=True):
        Rerun.queue(version, trigger="manual", probes=[probe])
    point = ProbeRun.objects.get(probe=probe)
    low, high = point.ci_low, point.ci_high
    assert low < point.value < high
    # A threshold between the value and the interval's far end straddles.
    for threshold, expected in [(high + 0.01, "passed"), ((point.value + high) / 2, None)]:
        twin = Probe(
            finding=probe.finding,
            dataset=probe.dataset,
            kind=probe.kind,
            slice=probe.slice,
            threshold=threshold,
            decide="confident",
            created_by=people["contributor"],
        )
        twin.full_clean()
        twin.save()
        with django_capture_on_commit_callbacks(execute=True):
            Rerun.queue(version, trigger="manual", probes=[twin])
        run = ProbeRun.objects.get(probe=twin)
        assert run.value == point.value
        assert run.status == (expected or "inconclusive"), run.error
        if expected is None:
            assert "straddles" in run.error
