"""The catalog told as lessons: a finding's timeline, similar findings, the Start-here page,
an ML model's history and the risk heatmaps. Read-only; every function costs a fixed number
of queries."""

from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, Count, Q
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils.http import urlencode

from catalog.choices import FindingStatus, RiskCategory, Severity
from catalog.models import Finding
from catalog.search import STOP_WORDS, slice_features, tokens
from core.models import AuditEvent
from probes.models import ProbeRun
from registry.models import MLModel
from remediation.choices import ActionStatus, Outcome
from remediation.models import RemediationAction

VERBS = {
    "approved": "approved it",
    "rejected": "rejected it",
    "in_progress": "started the work",
    "implemented": "marked it implemented",
    "verified": "verified it",
    "ineffective": "found it ineffective",
    "cancelled": "cancelled it",
}


# -- a finding's timeline ----------------------------------------------------------------


def _evidence_text(evidence):
    if not isinstance(evidence, dict) or not evidence:
        return ""
    parts = []
    for key, value in list(evidence.items())[:6]:
        if isinstance(value, float):
            value = f"{value:.3g}"
        elif isinstance(value, (dict, list)):
            continue
        parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts)


def timeline(finding, actions):
    """What happened to `finding`, oldest first, in sentences for someone who was not there.

    `actions` are the finding's actions with their evaluations prefetched (the finding page
    has them already). Steps: discovery on a version with its evidence; each action's
    proposal and transitions (from the audit trail); each evaluation on a later version;
    the finding's own status changes; and where it stands now.
    """

    where = f" on {finding.model_version}" if finding.model_version_id else ""
    slice_text = finding.slice_text
    evidence = _evidence_text(finding.evidence)
    text = f"Logged by {finding.reporter or 'someone'}: the problem shows{where}"
    text += f" in the slice {slice_text}" if finding.slice else " across the whole dataset"
    if finding.dataset_id:
        text += f", measured on {finding.dataset}"
    text += "."
    if evidence:
        text += f" Evidence: {evidence}."
    steps = [
        {"when": finding.created_at, "kind": "discovered", "title": "Discovered", "text": text}
    ]

    action_ct = ContentType.objects.get_for_model(RemediationAction)
    finding_ct = ContentType.objects.get_for_model(Finding)
    by_id = {a.pk: a for a in actions}
    events = AuditEvent.objects.filter(
        Q(content_type=action_ct, object_id__in=[str(pk) for pk in by_id])
        | Q(content_type=finding_ct, object_id=str(finding.pk), verb="transition")
    ).order_by("created_at", "pk")
    for e in events:
        if e.content_type_id == finding_ct.id:
            label = (
                FindingStatus(e.to_status).label
                if e.to_status in FindingStatus.values
                else e.to_status
            )
            who = (
                "the system, after a probe failed on a newer version"
                if e.actor_label == "system"
                else e.actor_label
            )
            steps.append(
                {
                    "when": e.created_at,
                    "kind": f"status-{e.to_status}",
                    "title": f"Finding {label.lower()}",
                    "text": f"Moved from {e.from_status.replace('_', ' ')} to "
                    f"{e.to_status.replace('_', ' ')} by {who}."
                    + (f" “{e.note}”" if e.note else ""),
                }
            )
            continue
        action = by_id.get(int(e.object_id))
        if action is None:
            continue
        if e.verb == "create":
            steps.append(
                {
                    "when": e.created_at,
                    "kind": "action",
                    "title": f"Action proposed: {action.title}",
                    "text": f"{e.actor_label} proposed a "
                    f"{action.get_kind_display().lower()} action."
                    + (f" {action.description[:300]}" if action.description else ""),
                    "anchor": f"action-{action.pk}",
                }
            )
        elif e.verb == "transition":
            text = f"{e.actor_label} {VERBS.get(e.to_status, 'moved it to ' + e.to_status)}."
            if e.to_status == "implemented" and action.fixed_in_version_id:
                text = f"{e.actor_label} shipped the fix in {action.fixed_in_version}."
            if e.note:
                text += f" “{e.note}”"
            steps.append(
                {
                    "when": e.created_at,
                    "kind": f"action-{e.to_status}",
                    "title": f"{action.title}: {e.to_status.replace('_', ' ')}",
                    "text": text,
                    "anchor": f"action-{action.pk}",
                }
            )
    for action in actions:
        for ev in action.evaluations.all():
            steps.append(
                {
                    "when": ev.created_at,
                    "kind": f"evaluation-{ev.outcome}",
                    "title": f"Evaluated on {ev.model_version}: {ev.get_outcome_display()}",
                    "text": f"The fix “{action.title}” {_outcome_text(ev.outcome)} on "
                    f"{ev.model_version}." + (f" {ev.notes}" if ev.notes else ""),
                    "anchor": f"action-{action.pk}",
                }
            )
    # Where each probe stands on each version: its latest run (a probe may have run
    # several times on one version: at registration, by hand, at night).
    runs = (
        ProbeRun.objects.filter(probe__finding=finding)
        .latest_runs()
        .order_by("model_version__registered_at", "model_version_id")
        .values_list("model_version__ml_model__name", "model_version__version", "status")
    )
    per_version = {}
    for model_name, version, status in runs:
        counts = per_version.setdefault(f"{model_name} v{version}", {"passed": 0, "all": 0})
        counts["all"] += 1
        counts["passed"] += status == "passed"
    steps.sort(key=lambda s: s["when"])
    gaps = finding.remaining_gaps.strip()
    now = f"The finding is {finding.get_status_display().lower()}."
    if finding.status_note:
        now += f" {finding.status_note}"
    if per_version:
        now += (
            " Its probes so far: "
            + "; ".join(f"on {v}, {c['passed']} of {c['all']} pass" for v, c in per_version.items())
            + "."
        )
    steps.append(
        {
            "when": None,
            "kind": f"now status-{finding.status}",
            "title": "Where it stands",
            "text": now,
            "gaps": gaps,
        }
    )
    return steps


def _outcome_text(outcome):
    return {"held": "held", "regressed": "did not hold (regressed)"}.get(
        outcome, "was inconclusive"
    )


# -- similar findings --------------------------------------------------------------------

SIMILAR_CANDIDATES = 100


def similar_findings(finding, n=5):
    """Findings of any ML model that read like this one, best first.

    1. Candidates: the findings matching any of this one's title words, tags or slice
       features (an `or` search, bounded to SIMILAR_CANDIDATES ranked matches).
    2. TF-IDF over their title, summary, lesson, description, tags and slice features, with
       scikit-learn; cosine similarity to this finding; the top `n` above a floor.
    Six queries, whatever the size of the catalog.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import linear_kernel

    tags = [t.name for t in finding.tags.all()]
    features = slice_features(finding.slice)
    words = [
        w
        for w in tokens(" ".join([finding.title, *tags, *features]))
        if w not in STOP_WORDS and len(w) > 2
    ]
    words = list(dict.fromkeys(words))[:12]
    if not words:
        return []
    results = Finding.objects.exclude(pk=finding.pk).find(
        " or ".join(words), limit=SIMILAR_CANDIDATES
    )
    ids = [c.pk for c in results.candidates[:SIMILAR_CANDIDATES]]
    if not ids:
        return []
    tag_names = {}
    for fid, name in Finding.tags.through.objects.filter(finding_id__in=ids).values_list(
        "finding_id", "tag__name"
    ):
        tag_names.setdefault(fid, []).append(name)
    rows = list(
        Finding.objects.filter(pk__in=ids).values_list(
            "pk", "title", "summary", "lesson", "description", "slice"
        )
    )

    def text(title, summary, lesson, description, slice_, names):
        feats = " ".join(slice_features(slice_))
        return " ".join(
            [title, title, summary, lesson, description[:2000], " ".join(names), feats, feats]
        )

    docs = [
        text(
            finding.title, finding.summary, finding.lesson, finding.description, finding.slice, tags
        )
    ]
    docs += [text(*row[1:], tag_names.get(row[0], [])) for row in rows]
    try:
        matrix = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(docs)
    except ValueError:  # only stop words
        return []
    scores = linear_kernel(matrix[0:1], matrix[1:]).ravel()
    best = sorted(zip(scores, (row[0] for row in rows), strict=True), key=lambda p: (-p[0], -p[1]))
    best = [(score, pk) for score, pk in best[:n] if score >= 0.05]
    chosen = Finding.objects.filter(pk__in=[pk for _, pk in best]).select_related("ml_model")
    by_pk = {f.pk: f for f in chosen}
    out = []
    for score, pk in best:
        cand = by_pk[pk]
        cand.similarity = round(float(score), 2)
        cand.shared_tags = sorted(set(tags) & set(tag_names.get(pk, [])))
        out.append(cand)
    return out


SUGGESTION_FINDINGS = 10


def suggestions(finding, n=10):
    """Fixes tried on similar findings, with their record, best first: "which fixes held
    on findings like this one?"

    1. The similar findings (similar_findings), up to SUGGESTION_FINDINGS.
    2. Their live actions (not cancelled or rejected), each with how many automatic
       evaluations held and regressed.
    3. Best first: similarity × the action's smoothed success rate, (held + 1) /
       (held + regressed + 2), so a fix that held on three retrains of a close finding
       comes before an untested one and far before one that regressed.
    Four queries beyond similar_findings'.
    """
    similar = similar_findings(finding, n=SUGGESTION_FINDINGS)
    by_pk = {f.pk: f for f in similar}
    actions = (
        RemediationAction.objects.filter(finding__in=list(by_pk))
        .exclude(status__in=[ActionStatus.CANCELLED, ActionStatus.REJECTED])
        .annotate(
            held=Count(
                "evaluations",
                filter=Q(evaluations__outcome=Outcome.HELD, evaluations__is_manual=False),
            ),
            regressed=Count(
                "evaluations",
                filter=Q(evaluations__outcome=Outcome.REGRESSED, evaluations__is_manual=False),
            ),
        )
    )
    rows = []
    for action in actions:
        similarity = by_pk[action.finding_id].similarity
        score = similarity * (action.held + 1) / (action.held + action.regressed + 2)
        rows.append(
            {
                "action": action.pk,
                "finding": action.finding_id,
                "finding_title": by_pk[action.finding_id].title,
                "kind": action.kind,
                "kind_label": action.get_kind_display(),
                "title": action.title,
                "status": action.status,
                "similarity": similarity,
                "held": action.held,
                "regressed": action.regressed,
                "score": round(score, 4),
            }
        )
    rows.sort(key=lambda r: (-r["score"], -r["similarity"], r["action"]))
    return rows[:n]


# -- Start here ------------------------------------------------------------------------

READING_PATH_LENGTH = 5


def start_here():
    """Key lessons, a reading path per ML model, and what a newcomer needs to begin.

    A model's reading path is its key lessons, then its first high or critical findings
    that have a written lesson, then any other with a lesson, oldest first: how the
    model's story unfolded. Each query
    walks an index (key lessons: a partial index; a model's findings: by creation date).
    """

    key = list(
        Finding.objects.filter(is_key_lesson=True)
        .select_related("ml_model")
        .order_by("ml_model__name", "created_at")[:30]
    )
    paths = []
    for model in MLModel.objects.order_by("name"):
        steps = [f for f in key if f.ml_model_id == model.pk][:READING_PATH_LENGTH]
        # Then severe findings with a lesson, then any with a lesson, oldest first.
        for severities in ([Severity.CRITICAL, Severity.HIGH], Severity.values):
            if len(steps) >= READING_PATH_LENGTH:
                break
            steps += list(
                Finding.objects.filter(ml_model=model, is_key_lesson=False, severity__in=severities)
                .exclude(lesson="")
                .exclude(pk__in=[f.pk for f in steps])
                .order_by("created_at", "id")[: READING_PATH_LENGTH - len(steps)]
            )
        paths.append({"model": model, "steps": steps})
    return {"key_lessons": key, "paths": paths}


# -- heatmaps --------------------------------------------------------------------------


def _cell_link(base, **params):
    query = base.copy()
    for key, value in params.items():
        query[key] = value
    return reverse("catalog:finding_list") + "?" + query.urlencode()


def heatmaps(queryset, base):
    """Severity x risk category and ML model x status counts, each cell a catalog link
    (`base`: the other filters in force, kept in every link)."""

    sev_risk = {
        (s, r): n
        for s, r, n in queryset.order_by()
        .values_list("severity", "risk_category")
        .annotate(n=Count("*"))
        .values_list("severity", "risk_category", "n")
    }
    model_status = {
        (m, s): n
        for m, s, n in queryset.order_by()
        .values_list("ml_model_id", "status")
        .annotate(n=Count("*"))
        .values_list("ml_model_id", "status", "n")
    }
    severities = list(reversed(Severity.choices))
    risk_rows = [
        {
            "label": label,
            "cells": [
                {
                    "n": sev_risk.get((value, risk), 0),
                    "link": _cell_link(base, severity=value, risk_category=risk),
                    "title": f"{label} · {risk_label}",
                }
                for risk, risk_label in RiskCategory.choices
            ],
            "total": sum(sev_risk.get((value, r), 0) for r in RiskCategory.values),
            "link": _cell_link(base, severity=value),
        }
        for value, label in severities
    ]
    models = MLModel.objects.order_by("name")
    if base.get("ml_model", "").isdigit():
        models = models.filter(pk=int(base["ml_model"]))
    models = {m.pk: m for m in models}
    model_rows = [
        {
            "label": m.name,
            "cells": [
                {
                    "n": model_status.get((m.pk, st), 0),
                    "link": _cell_link(base, ml_model=str(m.pk), status=st),
                    "title": f"{m.name} · {st_label}",
                }
                for st, st_label in FindingStatus.choices
            ],
            "total": sum(model_status.get((m.pk, s), 0) for s in FindingStatus.values),
            "link": _cell_link(base, ml_model=str(m.pk)),
        }
        for m in models.values()
    ]
    return {
        "risk_columns": RiskCategory.choices,
        "risk_rows": risk_rows,
        "risk_peak": max(sev_risk.values(), default=0),
        "status_columns": FindingStatus.choices,
        "model_rows": model_rows,
        "model_peak": max(model_status.values(), default=0),
        "total": sum(sev_risk.values()),
    }


# -- an ML model's history -------------------------------------------------------------


def model_history(ml_model):
    """Findings by status, regressions, lessons and versions of one ML model."""

    findings = Finding.objects.filter(ml_model=ml_model)
    counts = dict(
        findings.order_by().values_list("status").annotate(n=Count("*")).values_list("status", "n")
    )
    catalog = reverse("catalog:finding_list")
    by_status = [
        {
            "value": v,
            "label": label,
            "n": counts.get(v, 0),
            "link": catalog + "?" + urlencode({"ml_model": ml_model.pk, "status": v}),
        }
        for v, label in FindingStatus.choices
    ]
    finding_ct = ContentType.objects.get_for_model(Finding)
    regressions = list(
        AuditEvent.objects.filter(
            content_type=finding_ct,
            to_status=FindingStatus.REGRESSED,
            object_id__in=findings.annotate(text_id=Cast("pk", CharField())).values("text_id"),
        ).order_by("-created_at")[:10]
    )
    titles = dict(
        findings.filter(pk__in=[int(e.object_id) for e in regressions]).values_list("pk", "title")
    )
    for e in regressions:
        e.finding_title = titles.get(int(e.object_id), e.object_repr)
        e.finding_url = reverse("catalog:finding_detail", args=[int(e.object_id)])
    # Key lessons first, then the newest severe findings with a lesson (index walks).
    lessons = list(findings.filter(is_key_lesson=True).order_by("-created_at")[:8])
    for severities in ([Severity.CRITICAL, Severity.HIGH], Severity.values):
        if len(lessons) >= 8:
            break
        lessons += list(
            findings.filter(is_key_lesson=False, severity__in=severities)
            .exclude(lesson="")
            .exclude(pk__in=[f.pk for f in lessons])
            .order_by("-created_at", "-id")[: 8 - len(lessons)]
        )
    versions = list(
        ml_model.versions.annotate(
            discovered=Count("findings", distinct=True),
            held=Count("evaluations", filter=Q(evaluations__outcome="held"), distinct=True),
            regressed=Count(
                "evaluations", filter=Q(evaluations__outcome="regressed"), distinct=True
            ),
        ).order_by("registered_at", "pk")
    )
    return {
        "by_status": by_status,
        "total": sum(counts.values()),
        "regressions": regressions,
        "lessons": lessons,
        "versions": versions,
        "catalog_link": catalog + "?" + urlencode({"ml_model": ml_model.pk}),
    }
