"""A version against another of the same ML model: what changed for each probe.

`compare(a, b)` pairs every probe that has a latest run on either version (ProbeRun.objects.
latest_runs) and sorts it into passed, failed, newly failing, newly passing and
inconclusive (statuses of b, the newer one, against a). The version page shows it against
the previous version, with the release gate's decision and a banner when a guarded fix
broke; the compare page shows any two versions side by side.
"""

from dataclasses import dataclass, field

from probes.choices import RunStatus
from probes.models import Probe, ProbeRun

from .gate import decide

CATEGORIES = ("newly_failing", "failed", "newly_passing", "passed", "inconclusive")
LABELS = {
    "newly_failing": "Newly failing",
    "failed": "Failed",
    "newly_passing": "Newly passing",
    "passed": "Passed",
    "inconclusive": "Inconclusive or error",
}


@dataclass
class Row:
    probe: Probe
    before: ProbeRun | None
    after: ProbeRun | None
    category: str


@dataclass
class Comparison:
    older: object
    newer: object
    rows: list = field(default_factory=list)

    def counts(self):
        return {c: sum(1 for r in self.rows if r.category == c) for c in CATEGORIES}

    def counted(self):
        counts = self.counts()
        return [(c, LABELS[c], counts[c]) for c in CATEGORIES]


def category(before, after):
    if after is None or after.status not in (RunStatus.PASSED, RunStatus.FAILED):
        return "inconclusive"
    was = before.status if before is not None else None
    if after.status == RunStatus.FAILED:
        return "newly_failing" if was == RunStatus.PASSED else "failed"
    return "newly_passing" if was == RunStatus.FAILED else "passed"


def previous_version(version):
    return (
        version.ml_model.versions.filter(registered_at__lte=version.registered_at)
        .exclude(pk=version.pk)
        .order_by("-registered_at", "-pk")
        .first()
    )


def compare(older, newer):
    """Every probe with a latest run on either version; newest trouble first."""
    latest = ProbeRun.objects.latest_runs(versions=[v for v in (older, newer) if v])
    runs = {(r.probe_id, r.model_version_id): r for r in latest.select_related("probe")}
    probe_ids = sorted({probe for probe, _ in runs})
    probes = {
        p.pk: p for p in Probe.objects.filter(pk__in=probe_ids).select_related("finding", "dataset")
    }
    rows = []
    for pk in probe_ids:
        before = runs.get((pk, older.pk)) if older else None
        after = runs.get((pk, newer.pk))
        rows.append(Row(probes[pk], before, after, category(before, after)))
    rows.sort(key=lambda r: (CATEGORIES.index(r.category), r.probe.finding_id, r.probe.pk))
    return Comparison(older, newer, rows)


def release_summary(version):
    """The version page's panel: the gate, the comparison with the previous version, and
    the guarded fixes that broke here (the banner)."""
    gate = decide(version)
    comparison = compare(previous_version(version), version)
    broken = [c for c in gate.blocking if c.run is not None and c.run.status == RunStatus.FAILED]
    return {"gate": gate, "comparison": comparison, "broken": broken}
