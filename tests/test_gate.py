"""The release gate (DESIGN.md): a version passes when every active probe that guards a fix
has a run on it that did not fail, is pending while such a run is queued or running, and
fails otherwise; the command's exit status (0, 1, 2) and its JUnit report say the same."""

import datetime
from xml.etree import ElementTree

import pytest
from django.core.management import call_command
from django.utils import timezone

from probes.models import ProbeRun, Rerun
from remediation.gate import decide
from remediation.models import RemediationAction

from .factories import fitted_model, skops_upload


@pytest.fixture
def v2(people, ml_model):
    from registry.models import ModelVersion

    return ModelVersion.register(
        ml_model=ml_model,
        version="2",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )


def guard(finding, how):
    """Make the finding's probes guard a fix: by its status or by an action's."""
    if how in ("resolved", "regressed", "accepted_risk"):
        type(finding).objects.filter(pk=finding.pk).update(status=how)
    elif how in ("implemented", "verified"):
        RemediationAction.objects.filter(
            pk=RemediationAction.objects.create(finding=finding, kind="retrain", title="Retrain").pk
        ).update(status=how)


def run_on(probe, version, status, *, minutes=0, value=0.1):
    """A run of `probe` on `version` with this status, finished `minutes` after now."""
    rerun = Rerun.queue(version, trigger="manual", probes=[probe], dispatch=False)
    run = ProbeRun.objects.get(rerun=rerun, probe=probe)
    finished = status not in ("queued", "running")
    ProbeRun.objects.filter(pk=run.pk).update(
        status=status,
        value=value if finished else None,
        passed={"passed": True, "failed": False}.get(status),
        finished_at=timezone.now() + datetime.timedelta(minutes=minutes) if finished else None,
        error="artifact could not be loaded" if status == "error" else "",
    )
    return run


def gate_command(version, *args):
    try:
        call_command("gate", version.ml_model.slug, version.version, *args)
    except SystemExit as exc:
        return exc.code
    return 0


@pytest.mark.parametrize(
    ("how", "status", "decision"),
    [
        ("resolved", "passed", "pass"),
        ("resolved", "inconclusive", "pass"),
        ("resolved", "failed", "fail"),
        ("resolved", "error", "fail"),
        ("resolved", "queued", "pending"),
        ("resolved", "running", "pending"),
        ("resolved", None, "fail"),
        ("regressed", "failed", "fail"),
        ("accepted_risk", "failed", "fail"),
        ("implemented", "failed", "fail"),
        ("verified", "passed", "pass"),
        ("open", "failed", "pass"),
        ("remediating", "failed", "pass"),
    ],
    ids=lambda v: str(v),
)
def test_the_gate_decides_as_design_says(finding, probe, v2, how, status, decision):
    guard(finding, how)
    if status:
        run_on(probe, v2, status)
    result = decide(v2)
    assert result.decision == decision
    guarded = how not in ("open", "remediating")
    assert len(result.checks) == (1 if guarded else 0)
    if decision != "pass":
        [blocking] = result.as_dict()["blocking"]
        assert blocking["probe"] == probe.pk and blocking["finding"] == finding.pk


def test_the_latest_run_decides_not_any_run(finding, probe, v2):
    guard(finding, "resolved")
    run_on(probe, v2, "failed", minutes=1)
    newest = run_on(probe, v2, "passed", minutes=2)
    assert decide(v2).decision == "pass"
    run_on(probe, v2, "failed", minutes=3)
    result = decide(v2)
    assert result.decision == "fail" and result.blocking[0].run.pk != newest.pk


def test_a_retired_probe_guards_nothing(finding, probe, v2):
    guard(finding, "resolved")
    run_on(probe, v2, "failed")
    type(probe).objects.filter(pk=probe.pk).update(active=False)
    assert decide(v2).decision == "pass"


def test_the_command_exits_0_1_2_and_writes_junit(finding, probe, v2, tmp_path):
    guard(finding, "resolved")
    report = tmp_path / "gate.xml"
    queued = run_on(probe, v2, "queued")
    assert gate_command(v2, "--wait", "0", "--junit", str(report)) == 2
    ProbeRun.objects.filter(pk=queued.pk).update(
        status="failed", value=0.4, passed=False, finished_at=timezone.now()
    )
    assert gate_command(v2, "--junit", str(report)) == 1
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert "0.4" in failure.get("message") and f"probe {probe.pk}" in suite.find("testcase").get(
        "name"
    )
    run_on(probe, v2, "passed", minutes=5)
    assert gate_command(v2, "--junit", str(report)) == 0
    assert ElementTree.parse(report).getroot().find("testsuite").get("failures") == "0"


def test_the_command_names_an_unknown_model_or_version(ml_model, v2):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No ML model 'nope'"):
        call_command("gate", "nope", "1")
    with pytest.raises(CommandError, match="has no version '9'.*versions: "):
        call_command("gate", ml_model.slug, "9")


def test_the_api_answers_the_gate_as_json_and_junit(people, finding, probe, v2):
    from .factories import api_for

    guard(finding, "resolved")
    run = run_on(probe, v2, "failed", value=0.45)
    api = api_for(people["viewer"])
    body = api.get(f"/api/v1/model-versions/{v2.pk}/gate/").json()
    assert body == {
        "model_version": v2.pk,
        "decision": "fail",
        "checked": 1,
        "blocking": [
            {
                "probe": probe.pk,
                "finding": finding.pk,
                "run": run.pk,
                "reason": body["blocking"][0]["reason"],
            }
        ],
    }
    assert "0.45" in body["blocking"][0]["reason"]
    junit = api.get(f"/api/v1/model-versions/{v2.pk}/gate/?format=junit")
    assert junit.status_code == 200 and junit["Content-Type"].startswith("application/xml")
    suite = ElementTree.fromstring(junit.content).find("testsuite")
    assert suite.get("failures") == "1"
    assert api_for(None).get(f"/api/v1/model-versions/{v2.pk}/gate/").status_code in (401, 403)
