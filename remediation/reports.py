"""Reports for review meetings and governance: the board, the review pack, the evidence
pack of a finding, and which kinds of fix last. Pure queries and pandas; the views only
render what these return."""

import datetime
import hashlib
import io
import json
import numbers
import zipfile
from collections import defaultdict

import pandas as pd
from django.db.models import Count, Q
from django.utils import timezone

from boundary.charts import value_chart_svg
from catalog.choices import FindingStatus, Severity
from catalog.models import Finding
from core.csv import write_csv
from core.models import AuditEvent
from probes.choices import RunStatus
from probes.models import ProbeRun

from .choices import OPEN_ACTION_STATUSES, ActionKind, ActionStatus, Outcome
from .models import Evaluation, RemediationAction, ready_to_resolve

# The board's lanes, in order: one per status, with "implemented" and "verified" split by
# what their evaluations say (board_lane).
NEEDS_REVIEW = "needs_review"
READY_TO_RESOLVE = "ready_to_resolve"
REGRESSED = "regressed"
BOARD_LANES = [
    (ActionStatus.PROPOSED, ActionStatus.PROPOSED.label),
    (ActionStatus.APPROVED, ActionStatus.APPROVED.label),
    (ActionStatus.IN_PROGRESS, ActionStatus.IN_PROGRESS.label),
    (ActionStatus.IMPLEMENTED, "Implemented, awaiting evaluation"),
    (NEEDS_REVIEW, "Needs review"),
    (ActionStatus.VERIFIED, ActionStatus.VERIFIED.label),
    (READY_TO_RESOLVE, "Ready to resolve"),
    (REGRESSED, "Regressed"),
    (ActionStatus.INEFFECTIVE, ActionStatus.INEFFECTIVE.label),
    (ActionStatus.REJECTED, ActionStatus.REJECTED.label),
    (ActionStatus.CANCELLED, ActionStatus.CANCELLED.label),
]


def board_lane(action, fix_evaluation, ready_findings):
    """The lane of one action (DESIGN.md, Workflows):

    - implemented, and its evaluation on the fix version neither held nor regressed
      (inconclusive, narrow): "needs review" — a reviewer decides;
    - verified, and broke on a later version (broke_on_version): "regressed";
    - verified, on a finding that is ready to resolve: "ready to resolve";
    - otherwise its status.
    """
    if (
        action.status == ActionStatus.IMPLEMENTED
        and fix_evaluation is not None
        and fix_evaluation.outcome not in (Outcome.HELD, Outcome.REGRESSED)
    ):
        return NEEDS_REVIEW
    if action.status == ActionStatus.VERIFIED:
        if action.broke_on_version_id:
            return REGRESSED
        if action.finding_id in ready_findings:
            return READY_TO_RESOLVE
    return action.status


def standing_counts(pairs):
    """{(finding_id, version_id): {"passed": n, "all": n}}: how many of each finding's
    active probes pass on the version, by their latest run there (ProbeRun.latest_runs).
    `pairs` are (finding_id, version_id); one query."""
    pairs = set(pairs)
    if not pairs:
        return {}
    runs = ProbeRun.objects.filter(
        probe__active=True, probe__finding_id__in={f for f, _ in pairs}
    ).latest_runs(versions={v for _, v in pairs})
    counts = {}
    for finding_id, version_id, status in runs.values_list(
        "probe__finding_id", "model_version_id", "status"
    ):
        if (finding_id, version_id) in pairs:
            cell = counts.setdefault((finding_id, version_id), {"passed": 0, "all": 0})
            cell["all"] += 1
            cell["passed"] += status == RunStatus.PASSED
    return counts


def board(actions, user):
    """Actions in the board's lanes (board_lane), each with the transitions `user` may take;
    for a fix, where its finding's probes stand on the version that carries it and its
    evaluation there; for a broken fix, the version it broke on and the failing run."""
    fixes = [a for a in actions if a.fixed_in_version_id]
    standing = standing_counts((a.finding_id, a.fixed_in_version_id) for a in fixes)
    wanted = {(a.pk, a.fixed_in_version_id) for a in fixes} | {
        (a.pk, a.broke_on_version_id) for a in fixes if a.broke_on_version_id
    }
    evaluations = {
        (e.action_id, e.model_version_id): e
        for e in Evaluation.objects.filter(
            is_manual=False,
            action_id__in={a for a, _ in wanted},
            model_version_id__in={v for _, v in wanted},
        ).prefetch_related("probe_runs")
    }
    ready = set(
        ready_to_resolve(
            Finding.objects.filter(
                pk__in={a.finding_id for a in actions if a.status == ActionStatus.VERIFIED}
            )
        ).values_list("pk", flat=True)
    )
    lanes = {lane: [] for lane, _ in BOARD_LANES}
    for action in actions:
        action.transitions = action.allowed_transitions(user)
        action.standing = standing.get((action.finding_id, action.fixed_in_version_id))
        action.fix_evaluation = evaluations.get((action.pk, action.fixed_in_version_id))
        if action.broke_on_version_id:
            broke = evaluations.get((action.pk, action.broke_on_version_id))
            runs = broke.probe_runs.all() if broke is not None else []
            failed = [r for r in runs if r.status == RunStatus.FAILED]
            action.failing_run = min(failed, key=lambda r: r.pk) if failed else None
        lanes[board_lane(action, action.fix_evaluation, ready)].append(action)
    return [{"status": lane, "label": label, "actions": lanes[lane]} for lane, label in BOARD_LANES]


def _frame(rows, columns):
    """Rows as a DataFrame in which a column of whole numbers (ids, counts, days) stays whole
    (pandas' nullable Int64) even with empty cells, so pages and exports print "1", never
    "1.0"."""
    rows = list(rows)
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for i, name in enumerate(columns):
        present = [row[i] for row in rows if row[i] is not None]
        if present and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in present
        ):
            frame[name] = pd.array([row[i] for row in rows], dtype="Int64")
    return frame


def review_pack(start, end):
    """What happened between two dates (inclusive), as DataFrames by section.

    1. findings opened (created) in the range, and those resolved / regressed in it
       (from the audit trail of transitions);
    2. actions by status (now), and overdue actions;
    3. evaluations recorded in the range;
    4. where the probes of every finding with a fix under follow-up (an implemented or
       verified action) stand now: each active probe's latest run on its ML model's
       newest version.
    """
    in_range = Q(created_at__date__gte=start, created_at__date__lte=end)
    opened = Finding.objects.filter(in_range).select_related("ml_model", "owner")
    finding_type = AuditEvent.objects.filter(
        content_type__app_label="catalog",
        content_type__model="finding",
        verb=AuditEvent.Verb.TRANSITION,
    ).filter(in_range)
    moved = {
        status: set(finding_type.filter(to_status=status).values_list("object_id", flat=True))
        for status in (FindingStatus.RESOLVED, FindingStatus.REGRESSED)
    }

    def finding_rows(qs):
        return [
            (
                f.pk,
                f.title,
                f.ml_model.name,
                f.severity,
                f.risk_category,
                f.status,
                f.owner.get_username() if f.owner else "",
                f.created_at.date().isoformat(),
            )
            for f in qs
        ]

    finding_cols = [
        "id",
        "title",
        "ml_model",
        "severity",
        "risk_category",
        "status",
        "owner",
        "logged_on",
    ]
    sections = {
        "findings_opened": _frame(finding_rows(opened), finding_cols),
    }
    for status, ids in moved.items():
        qs = Finding.objects.filter(pk__in=[int(i) for i in ids]).select_related(
            "ml_model", "owner"
        )
        sections[f"findings_{status}"] = _frame(finding_rows(qs), finding_cols)
    by_status = (
        RemediationAction.objects.values("status").annotate(n=Count("pk")).order_by("status")
    )
    sections["actions_by_status"] = _frame(
        [(r["status"], r["n"]) for r in by_status], ["status", "actions"]
    )
    overdue = RemediationAction.objects.overdue().select_related("finding", "owner")
    sections["overdue_actions"] = _frame(
        [
            (
                a.pk,
                a.title,
                a.finding.title,
                a.status,
                a.due_date.isoformat(),
                a.owner.get_username() if a.owner else "",
            )
            for a in overdue
        ],
        ["id", "title", "finding", "status", "due_date", "owner"],
    )
    evaluations = Evaluation.objects.filter(in_range).select_related(
        "action__finding", "model_version__ml_model"
    )
    sections["evaluations"] = _frame(
        [
            (
                e.pk,
                e.action.title,
                e.action.finding.title,
                str(e.model_version),
                e.outcome,
                "manual" if e.is_manual else "automatic",
                e.created_at.date().isoformat(),
            )
            for e in evaluations
        ],
        ["id", "action", "finding", "model_version", "outcome", "source", "date"],
    )
    sections["probe_standing"] = _frame(
        _standing_rows(),
        ["finding_id", "finding", "probe", "kind", "model_version", "status", "value", "run"],
    )
    sections["time_to_remediate"] = time_to_remediate(start, end)
    sections["overdue_by_owner"] = overdue_by_owner()
    sections["fix_survival"] = fix_survival()
    sections["risks_expiring"] = risks_expiring()
    return sections


def _days(delta):
    return delta.total_seconds() / 86400


def time_to_remediate(start=None, end=None):
    """Per severity: how many findings were resolved (first resolution, within [start, end]
    when given) and the days from logging to that resolution, median and 90th percentile."""
    first_resolved = {}
    events = AuditEvent.objects.filter(
        content_type__app_label="catalog",
        content_type__model="finding",
        verb=AuditEvent.Verb.TRANSITION,
        to_status=FindingStatus.RESOLVED,
    ).order_by("created_at", "pk")
    for object_id, at in events.values_list("object_id", "created_at"):
        first_resolved.setdefault(int(object_id), at)
    if start is not None:
        first_resolved = {pk: at for pk, at in first_resolved.items() if start <= at.date() <= end}
    days = defaultdict(list)
    for pk, severity, created in Finding.objects.filter(pk__in=first_resolved).values_list(
        "pk", "severity", "created_at"
    ):
        days[severity].append(max(0.0, _days(first_resolved[pk] - created)))
    rows = []
    for severity, label in Severity.choices:
        values = pd.Series(days.get(severity, []), dtype=float)
        rows.append(
            (
                label,
                len(values),
                round(values.median(), 1) if len(values) else None,
                round(values.quantile(0.9), 1) if len(values) else None,
            )
        )
    return _frame(rows, ["severity", "resolved", "median_days", "p90_days"])


def overdue_by_owner(today=None):
    """Open actions past their due date, per owner: how many, the oldest due date and the
    most days overdue, worst first."""
    today = today or timezone.localdate()
    per_owner = defaultdict(list)
    for owner, due in RemediationAction.objects.overdue(today).values_list(
        "owner__username", "due_date"
    ):
        per_owner[owner or "(no owner)"].append(due)
    rows = [
        (owner, len(dues), min(dues).isoformat(), (today - min(dues)).days)
        for owner, dues in per_owner.items()
    ]
    rows.sort(key=lambda r: (-r[1], -r[3], r[0]))
    return _frame(rows, ["owner", "overdue_actions", "oldest_due", "most_days_overdue"])


def fix_survival():
    """Per fix (an action that names the version carrying it, verified or implemented):
    on how many of its ML model's versions registered after the fix version its
    automatic evaluation held, of how many were evaluated, and where it broke."""
    fixes = list(
        RemediationAction.objects.filter(
            fixed_in_version__isnull=False,
            status__in=[ActionStatus.IMPLEMENTED, ActionStatus.VERIFIED],
        )
        .select_related("finding", "fixed_in_version", "broke_on_version")
        .order_by("finding_id", "pk")
    )
    evaluations = defaultdict(list)
    for e in Evaluation.objects.filter(action__in=fixes, is_manual=False).select_related(
        "model_version"
    ):
        evaluations[e.action_id].append(e)
    rows = []
    for action in fixes:
        fix = action.fixed_in_version
        later = [
            e
            for e in evaluations[action.pk]
            if (e.model_version.registered_at, e.model_version.pk) > (fix.registered_at, fix.pk)
        ]
        held = sum(e.outcome == Outcome.HELD for e in later)
        rows.append(
            (
                action.pk,
                action.title,
                action.finding.title,
                action.status,
                str(fix),
                held,
                len(later),
                f"held on {held} of {len(later)} later versions",
                str(action.broke_on_version) if action.broke_on_version else "",
            )
        )
    return _frame(
        rows,
        [
            "id",
            "action",
            "finding",
            "status",
            "fixed_in",
            "held_later",
            "evaluated_later",
            "survival",
            "broke_on",
        ],
    )


RISK_EXPIRY_HORIZON_DAYS = 30


def risks_expiring(today=None, days=RISK_EXPIRY_HORIZON_DAYS):
    """Accepted risks whose acceptance runs out within `days` (30) from today, soonest
    first; at expiry the finding reopens."""
    today = today or timezone.localdate()
    horizon = today + datetime.timedelta(days=days)
    findings = (
        Finding.objects.filter(
            status=FindingStatus.ACCEPTED_RISK,
            accepted_until__isnull=False,
            accepted_until__lte=horizon,
        )
        .select_related("ml_model", "owner")
        .order_by("accepted_until", "pk")
    )
    rows = [
        (
            f.pk,
            f.title,
            f.ml_model.name,
            f.severity,
            f.accepted_until.isoformat(),
            (f.accepted_until - today).days,
            f.owner.get_username() if f.owner else "",
        )
        for f in findings
    ]
    return _frame(
        rows, ["id", "title", "ml_model", "severity", "accepted_until", "days_left", "owner"]
    )


def review_pack_rows(sections):
    """The review pack as one table with a `section` column, so a spreadsheet can filter by
    it: (header, rows), written by core.csv."""
    frames = []
    for name, frame in sections.items():
        framed = frame.copy()
        framed.insert(0, "section", name)
        frames.append(framed)
    combined = pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()
    # A section's columns are empty in the other sections' rows: empty cells, and whole
    # numbers stay whole (Int64 columns, see _frame).
    combined = combined.astype(object).where(combined.notna(), None)
    return list(combined.columns), combined.itertuples(index=False, name=None)


def _standing_rows():
    followed = (
        Finding.objects.filter(
            actions__status__in=[ActionStatus.IMPLEMENTED, ActionStatus.VERIFIED]
        )
        .distinct()
        .select_related("ml_model")
    )
    newest = {f.pk: f.ml_model.latest_version for f in followed}
    wanted = {(fid, v.pk) for fid, v in newest.items() if v is not None}
    if not wanted:
        return []
    runs = (
        ProbeRun.objects.filter(probe__active=True, probe__finding_id__in={f for f, _ in wanted})
        .latest_runs(versions={v for _, v in wanted})
        .select_related("probe__finding", "model_version__ml_model")
        .order_by("probe__finding_id", "probe_id")
    )
    return [
        (
            r.probe.finding_id,
            r.probe.finding.title,
            r.probe_id,
            r.probe.kind,
            str(r.model_version),
            r.status,
            r.value,
            r.pk,
        )
        for r in runs
        if (r.probe.finding_id, r.model_version_id) in wanted
    ]


def effectiveness():
    """Per action kind: fixes implemented, and how their evaluations on later model
    versions came out (held / regressed / inconclusive), with the share that held."""
    rows = {
        kind: {
            "kind": kind,
            "label": label,
            "actions": 0,
            "held": 0,
            "regressed": 0,
            "inconclusive": 0,
            "versions_checked": 0,
        }
        for kind, label in ActionKind.choices
    }
    fixed = RemediationAction.objects.filter(fixed_in_version__isnull=False).select_related(
        "fixed_in_version"
    )
    for action in fixed:
        rows[action.kind]["actions"] += 1
    evaluations = Evaluation.objects.filter(
        action__fixed_in_version__isnull=False, is_manual=False
    ).select_related("model_version", "action__fixed_in_version")
    versions = defaultdict(set)
    for e in evaluations:
        fix = e.action.fixed_in_version
        # Only the fix version and the versions after it say whether a fix lasted.
        if (e.model_version.registered_at, e.model_version.pk) < (fix.registered_at, fix.pk):
            continue
        rows[e.action.kind][e.outcome] += 1
        versions[e.action.kind].add(e.model_version_id)
    result = []
    for kind, row in rows.items():
        judged = row["held"] + row["regressed"]
        row["versions_checked"] = len(versions[kind])
        row["held_share"] = row["held"] / judged if judged else None
        result.append(row)
    return sorted(result, key=lambda r: (-r["actions"], r["label"]))


def _json_bytes(data):
    return json.dumps(data, indent=2, sort_keys=True, default=str).encode()


STANDING_COLUMNS = [
    "probe",
    "kind",
    "model_version",
    "run",
    "status",
    "value",
    "ci_low",
    "ci_high",
    "support",
    "finished_at",
]


def evidence_pack(finding):
    """A zip a governance reviewer can check: finding.json (the finding, its probes,
    every run per version with lineage hashes, where each probe stands on each version,
    actions with their approvals and evaluations, the audit trail), standing.csv (each
    probe's latest run per version), one SVG chart per probe, and MANIFEST.sha256 listing
    the sha256 of every file. Sensitive dataset columns never appear row by row here: the
    pack holds aggregates only."""
    probes = list(finding.probes.select_related("dataset"))
    versions = list(finding.ml_model.versions.order_by("registered_at", "pk"))
    runs = ProbeRun.objects.filter(probe__finding=finding).select_related("model_version")
    actions = list(finding.actions.select_related("owner", "reviewer", "fixed_in_version"))
    action_events = AuditEvent.objects.filter(
        content_type__app_label="remediation",
        content_type__model="remediationaction",
        object_id__in=[str(a.pk) for a in actions],
    ).order_by("created_at", "pk")
    data = {
        "generated_at": timezone.now().isoformat(),
        "finding": AuditEvent.snapshot(finding)
        | {"tags": sorted(t.name for t in finding.tags.all())},
        "ml_model": {"id": finding.ml_model_id, "name": finding.ml_model.name},
        "versions": [
            {
                "id": v.pk,
                "version": v.version,
                "artifact_sha256": v.artifact_sha256,
                "registered_at": v.registered_at.isoformat(),
                "environment": v.environment,
            }
            for v in versions
        ],
        "probes": [p.definition() | {"dataset_sha256": p.dataset.sha256} for p in probes],
        "runs": [
            {
                "id": r.pk,
                "probe": r.probe_id,
                "model_version": r.model_version.version,
                "status": r.status,
                "value": r.value,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "support": r.support,
                "trigger": r.trigger,
                "error": r.error,
                "lineage": r.lineage,
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            }
            for r in runs.order_by("model_version__registered_at", "probe_id", "pk")
        ],
        "actions": [
            AuditEvent.snapshot(a)
            | {
                "evaluations": [
                    {
                        "model_version": str(e.model_version),
                        "outcome": e.outcome,
                        "manual": e.is_manual,
                        "notes": e.notes,
                        "probe_runs": sorted(e.probe_runs.values_list("pk", flat=True)),
                    }
                    for e in a.evaluations.select_related("model_version")
                ]
            }
            for a in actions
        ],
        "approvals": [
            {
                "action": int(e.object_id),
                "by": e.actor_label,
                "at": e.created_at.isoformat(),
                "from": e.from_status,
                "to": e.to_status,
                "note": e.note,
            }
            for e in action_events
            if e.verb == AuditEvent.Verb.TRANSITION
        ],
        "history": [
            {
                "at": e.created_at.isoformat(),
                "by": e.actor_label,
                "verb": e.verb,
                "from": e.from_status,
                "to": e.to_status,
                "note": e.note,
            }
            for e in AuditEvent.objects.for_object(finding).order_by("created_at", "pk")
        ],
    }
    cells = ProbeRun.objects.matrix(probes, versions)
    standing = [
        (
            probe.pk,
            probe.kind,
            v.version,
            run.pk,
            run.status,
            run.value,
            run.ci_low,
            run.ci_high,
            run.support,
            run.finished_at.isoformat() if run.finished_at else "",
        )
        for probe in probes
        for v in versions
        if (run := cells.get((probe.pk, v.pk))) is not None
    ]
    data["standing"] = [dict(zip(STANDING_COLUMNS, row, strict=True)) for row in standing]
    files = {
        "finding.json": _json_bytes(data),
        "standing.csv": write_csv(STANDING_COLUMNS, standing).encode(),
    }
    for probe in probes:
        points = [
            {
                "label": v.version,
                "value": getattr(cells.get((probe.pk, v.pk)), "value", None),
                "status": getattr(cells.get((probe.pk, v.pk)), "status", None),
            }
            for v in versions
        ]
        svg = value_chart_svg(
            points, threshold=probe.threshold, title=f"probe {probe.pk} {probe.kind}"
        )
        if svg:
            files[f"charts/probe-{probe.pk}.svg"] = svg.encode()
    manifest = "".join(
        f"{hashlib.sha256(content).hexdigest()}  {name}\n"
        for name, content in sorted(files.items())
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in sorted(files.items()):
            archive.writestr(name, content)
        archive.writestr("MANIFEST.sha256", manifest)
    return buffer.getvalue()


def open_counts():
    return {
        "open_actions": RemediationAction.objects.filter(status__in=OPEN_ACTION_STATUSES).count(),
        "overdue": RemediationAction.objects.overdue().count(),
        "regressed": Finding.objects.filter(status=FindingStatus.REGRESSED).count(),
    }
