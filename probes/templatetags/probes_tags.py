"""The probes section of a finding page (probes × versions, charts, reruns in progress) and
the words a probe's definition is shown in, on that section and on the probe's own page."""

from django import template
from django.utils.safestring import mark_safe

from boundary import engine
from boundary.charts import value_chart_svg
from core.templatetags.core_tags import term_value

from ..choices import Comparator
from ..models import ProbeRun, Rerun
from .run_details import run_insight

register = template.Library()

# A probe's parameters by the names a reader knows them by (DESIGN.md, "Probe kinds").
PARAM_LABELS = {
    "margin": "Margin below which a decision is near the boundary",
    "metric": "Measure",
    "pos_label": "Positive class",
    "seed": "Random seed",
    "bins": "Confidence bins",
    "group_feature": "Groups by",
    "min_support": "Minimum rows per group",
    "scale": "Noise (× each feature's standard deviation)",
    "features": "Features",
    "repeats": "Repeats per row",
    "changes": "Changes applied",
    "sample": "Rows sampled",
    "grid": "Grid points per feature",
    "component": "Ensemble component",
}
METRIC_LABELS = {
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "f1": "F1 score",
    "roc_auc": "ROC AUC",
    "selection_rate": "selection rate (share predicted positive)",
    "tpr": "true positive rate",
    "fpr": "false positive rate",
    "error_rate": "error rate",
}
# What an unset parameter means.
PARAM_DEFAULTS = {
    "pos_label": "the model's second class",
    "features": "every numeric feature",
}


def version_name(version):
    """A model version as its name on charts and column heads: "v3"."""
    return f"v{version.version}"


def _change_text(feature, change):
    if isinstance(change, dict) and "set" in change:
        return f"{feature} set to {term_value(change['set'])}"
    if isinstance(change, dict) and "add" in change:
        amount = change["add"]
        sign = "minus" if isinstance(amount, (int, float)) and amount < 0 else "plus"
        return f"{feature} {sign} {term_value(abs(amount) if sign == 'minus' else amount)}"
    return f"{feature}: {term_value(change)}"


def _param_text(name, value):
    if value is None and name in PARAM_DEFAULTS:
        return PARAM_DEFAULTS[name]
    if name == "metric":
        return METRIC_LABELS.get(value, term_value(value))
    if name == "changes" and isinstance(value, dict):
        return "; ".join(_change_text(f, c) for f, c in value.items()) or "none"
    return term_value(value)


@register.filter
def probe_params(probe):
    """[(label, value)] of a probe's parameters in words: `features: income, debt_ratio`,
    never the stored Python/JSON form."""
    return [
        (PARAM_LABELS.get(name, name.replace("_", " ").capitalize()), _param_text(name, value))
        for name, value in (probe.params or {}).items()
    ]


@register.filter
def probe_check(probe):
    """The probe's pass rule in words: "≤ 0.2", "no worse than the baseline (± 0.01)"."""
    if probe.comparator == "no_worse_than_baseline":
        tolerance = f" (tolerance {term_value(probe.tolerance)})" if probe.tolerance else ""
        return f"no worse than the baseline{tolerance}"
    sign = {"<=": "≤", ">=": "≥"}.get(probe.comparator, probe.comparator)
    return f"{sign} {term_value(probe.threshold)}"


def chart_points(versions, runs):
    """The points of a probe's value chart: one per version, named like "v3"."""
    return [
        {
            "label": version_name(v),
            "value": getattr(run, "value", None),
            "status": getattr(run, "status", None),
            "ci_low": getattr(run, "ci_low", None),
            "ci_high": getattr(run, "ci_high", None),
        }
        for v, run in zip(versions, runs, strict=True)
    ]


def probe_chart(probe, versions, runs):
    """A probe's value across versions (boundary.charts.value_chart_svg), safe to insert.
    A probe compared with its baseline draws the limit the baseline's run sets: its value
    plus (or, for a measure where higher is better, minus) the tolerance."""
    threshold, comparator, label = probe.threshold, probe.comparator, "threshold"
    if comparator == Comparator.NO_WORSE:
        comparator, label = engine.DEFAULT_COMPARATOR[probe.kind], "baseline limit"
        baseline = dict(zip([v.pk for v in versions], runs, strict=True)).get(
            probe.finding.model_version_id
        )
        value = getattr(baseline, "value", None)
        threshold = None
        if value is not None:
            tolerance = probe.tolerance or 0.0
            threshold = value + tolerance if comparator == "<=" else value - tolerance
    chart = value_chart_svg(
        chart_points(versions, runs),
        threshold=threshold,
        comparator=comparator,
        threshold_label=label,
        title=f"{probe.get_kind_display()} of probe #{probe.pk} across versions",
        y_label=probe.get_kind_display(),
    )
    return mark_safe(chart)  # noqa: S308


def also_rows(probe, versions, elsewhere):
    """A probe's runs on each of its `also_on` datasets: [{dataset, cells (one per
    version: its latest run there, or None)}], from ProbeRun.objects.also_matrix."""
    rows = []
    for dataset in sorted(probe.also_on.all(), key=lambda d: d.pk):
        by_version = {
            v.pk: next(
                (r for r in elsewhere.get((probe.pk, v.pk), []) if r.dataset_id == dataset.pk),
                None,
            )
            for v in versions
        }
        rows.append({"dataset": dataset, "cells": [by_version[v.pk] for v in versions]})
    return rows


@register.inclusion_tag("probes/_finding_probes.html", takes_context=True)
def finding_probes(context, finding):
    """1. The finding's probes and its ML model's versions, oldest first.
    2. The newest finished run per (probe, version) in one query.
    3. One chart per probe: its value across versions with the threshold line.
    4. Per probe, inside its latest run on the newest version it has run on: an
       ensemble's components, a feature interaction's surface (run_details)."""
    user = context["request"].user
    probes = list(
        finding.probes.select_related("dataset", "retired_by", "superseded_by").prefetch_related(
            "also_on"
        )
    )
    versions = list(finding.ml_model.versions.order_by("registered_at", "pk"))
    cells = ProbeRun.objects.matrix(probes, versions)
    elsewhere = ProbeRun.objects.also_matrix(probes, versions)
    rows = []
    for probe in probes:
        row_cells = [cells.get((probe.pk, v.pk)) for v in versions]
        newest = next(
            ((v, run) for v, run in zip(versions[::-1], row_cells[::-1], strict=True) if run),
            (None, None),
        )
        rows.append(
            {
                "probe": probe,
                "cells": row_cells,
                "chart": probe_chart(probe, versions, row_cells),
                "changeable": probe.may_change(user),
                "insight": run_insight(newest[1], newest[0], probe.kind),
                "also": also_rows(probe, versions, elsewhere),
            }
        )
    running = [
        {"rerun": r, "progress": r.progress()}
        for r in Rerun.unfinished_for(finding.ml_model_id).select_related("model_version")
        if r.runs.filter(probe__finding=finding).exists()
    ]
    return {
        "finding": finding,
        "versions": versions,
        "rows": rows,
        "insights": any(row["insight"] for row in rows),
        "running": running,
        "can_add_probe": user.has_perm("probes.add_probe"),
        "can_run": user.has_perm("probes.run_probe"),
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
    }
