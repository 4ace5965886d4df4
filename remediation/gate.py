"""The release gate: may this model version ship?

DESIGN.md: a version passes when every active probe that guards a fix (its finding is
resolved, regressed or an accepted risk, or has an implemented or verified action) has a
run on that version that did not fail; it is pending while such a run is queued or
running; it fails otherwise. "Did not fail" is the probe's latest run (ProbeRun.objects.
latest_runs) being passed or inconclusive (a `confident` probe on a small slice, a
suppressed sensitive slice); a failed run, a run that could not be evaluated (error) and
no run at all block the version.

The API (`GET model-versions/{id}/gate/`, `?format=junit`), the `gate` command and the
version page all call `decide(version)`.
"""

from dataclasses import dataclass, field
from xml.etree import ElementTree

from django.db.models import Q

from boundary import slices
from catalog.choices import FindingStatus
from probes.choices import RunStatus
from probes.models import Probe, ProbeRun

from .choices import ActionStatus

PASS, FAIL, PENDING = "pass", "fail", "pending"
GUARDED_STATUSES = (FindingStatus.RESOLVED, FindingStatus.REGRESSED, FindingStatus.ACCEPTED_RISK)
FIXED_ACTION_STATUSES = (ActionStatus.IMPLEMENTED, ActionStatus.VERIFIED)
HOLDING_RUN_STATUSES = (RunStatus.PASSED, RunStatus.INCONCLUSIVE)
UNFINISHED_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass
class Check:
    probe: Probe
    run: ProbeRun | None  # the latest finished run on the version, if any
    pending: bool  # a run of the probe on the version is queued or running
    reason: str = ""  # why it blocks ("" when it holds)

    @property
    def holds(self):
        return not self.reason


@dataclass
class Decision:
    version: object
    decision: str
    checks: list = field(default_factory=list)

    @property
    def blocking(self):
        return [c for c in self.checks if not c.holds]

    def as_dict(self):
        return {
            "model_version": self.version.pk,
            "decision": self.decision,
            "checked": len(self.checks),
            "blocking": [
                {
                    "probe": c.probe.pk,
                    "finding": c.probe.finding_id,
                    "run": c.run.pk if c.run else None,
                    "reason": c.reason,
                }
                for c in self.blocking
            ],
        }

    def junit(self):
        """JUnit XML, one test case per guarding probe (a CI server shows it as is)."""
        name = f"release gate: {self.version}"
        failures = sum(1 for c in self.checks if not c.holds and not c.pending)
        suite = ElementTree.Element(
            "testsuite",
            {
                "name": name,
                "tests": str(len(self.checks)),
                "failures": str(failures),
                "errors": "0",
                "skipped": str(sum(1 for c in self.checks if c.pending and not c.holds)),
            },
        )
        for c in self.checks:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                {
                    "classname": f"finding {c.probe.finding_id}: {c.probe.finding.title}",
                    "name": f"probe {c.probe.pk}: {c.probe.get_kind_display()} "
                    f"on {slices.describe(c.probe.slice)}",
                },
            )
            if c.holds:
                continue
            tag = "skipped" if c.pending else "failure"
            ElementTree.SubElement(case, tag, {"message": c.reason}).text = c.reason
        suites = ElementTree.Element("testsuites", {"name": name})
        suites.append(suite)
        return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True)


def guarding_probes(ml_model_id):
    """Active probes that guard a fix of this ML model, oldest first."""
    return (
        Probe.objects.filter(active=True, finding__ml_model_id=ml_model_id)
        .filter(
            Q(finding__status__in=GUARDED_STATUSES)
            | Q(finding__actions__status__in=FIXED_ACTION_STATUSES)
        )
        .select_related("finding", "dataset")
        .distinct()
        .order_by("finding_id", "pk")
    )


def decide(version):
    """The gate decision for `version`, with one Check per guarding probe."""
    probes = list(guarding_probes(version.ml_model_id))
    latest = {
        run.probe_id: run for run in ProbeRun.objects.latest_runs(probes=probes, versions=[version])
    }
    unfinished = set(
        ProbeRun.objects.filter(
            probe__in=probes, model_version=version, status__in=UNFINISHED_RUN_STATUSES
        ).values_list("probe_id", flat=True)
    )
    checks = []
    for probe in probes:
        run = latest.get(probe.pk)
        pending = probe.pk in unfinished
        if run is not None and run.status in HOLDING_RUN_STATUSES:
            reason = ""
        elif pending:
            reason = "a run on this version is still queued or running"
        elif run is None:
            reason = "no run on this version"
        elif run.status == RunStatus.FAILED:
            reason = f"failed: {probe.get_kind_display()} {_value(run.value)} ({_rule(probe)})"
        else:
            reason = f"could not be evaluated: {run.error or run.status}"
        checks.append(Check(probe=probe, run=run, pending=pending, reason=reason))
    if all(c.holds for c in checks):
        decision = PASS
    elif any(c.pending and not c.holds for c in checks):
        decision = PENDING
    else:
        decision = FAIL
    return Decision(version=version, decision=decision, checks=checks)


def _rule(probe):
    if probe.comparator == "no_worse_than_baseline":
        return f"must be no worse than the baseline, ±{probe.tolerance:g}"
    return f"must be {probe.comparator} {_value(probe.threshold)}"


def _value(number):
    return "—" if number is None else f"{number:.4g}"
