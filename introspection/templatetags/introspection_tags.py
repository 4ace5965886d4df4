"""Introspection sections of other pages: a finding's boundary maps and stress sweeps,
a version's slice scans, a dataset's sensitive columns."""

from django import template
from django.utils.safestring import mark_safe

from boundary.scan_charts import sweep_chart_svg
from core.jobs import FINISHED_JOB_STATUSES

from ..forms import BoundaryMapForm, SensitiveColumnsForm, SweepForm
from ..models import BoundaryMap, SliceScan, StressSweep, SweepKind
from ..scans import changed_share, default_map_axes, numeric_features

register = template.Library()

SWEEPS_SHOWN = 6


def _map_rows(finding, versions):
    """One row per pair of axes: the map of each version (or None), and for each map the
    share of the grid whose decision differs from the previous version's map."""
    by_axes = {}
    for m in finding.boundary_maps.select_related("model_version"):
        by_axes.setdefault((m.feature_x, m.feature_y), {})[m.model_version_id] = m
    rows = []
    for (fx, fy), maps in sorted(by_axes.items()):
        cells, previous = [], None
        for version in versions:
            m = maps.get(version.pk)
            moved = None
            if m is not None and m.status == "done":
                if previous is not None:
                    moved = changed_share(previous.summary, m.summary)
                previous = m
            cells.append({"version": version, "map": m, "moved": moved})
        missing = sum(1 for c in cells if c["map"] is None)
        rows.append({"feature_x": fx, "feature_y": fy, "cells": cells, "missing": missing})
    return rows


def _sweep_items(finding):
    items = []
    for sweep in finding.sweeps.select_related("model_version")[:SWEEPS_SHOWN]:
        x_key = "scale" if sweep.kind == SweepKind.NOISE else "value"
        xlabel = "noise (× std)" if sweep.kind == SweepKind.NOISE else sweep.feature
        chart = sweep_chart_svg(
            sweep.points or [], x_key, xlabel=xlabel, title=f"{sweep}: share of decisions that flip"
        )
        points = [
            dict(p, index=i, number=i + 1, x=p.get(x_key)) for i, p in enumerate(sweep.points or [])
        ]
        items.append(
            {
                "sweep": sweep,
                "chart": mark_safe(chart),  # noqa: S308
                "points": points,
            }
        )
    return items


@register.inclusion_tag("introspection/_finding_maps.html", takes_context=True)
def finding_maps(context, finding):
    """The "did the boundary move?" and stress-sweep sections of a finding page."""

    request = context["request"]
    user = request.user
    versions = list(finding.ml_model.versions.order_by("registered_at", "pk"))
    features = numeric_features(finding.dataset) if finding.dataset else []
    axes = default_map_axes(finding)
    map_form = BoundaryMapForm(
        features=features,
        auto_id="map_%s",
        initial={"feature_x": axes[0] if axes else "", "feature_y": axes[1] if axes else ""},
    )
    sweep_form = None
    if finding.dataset is not None:
        sweep_form = SweepForm(
            finding=finding,
            auto_id="sweep_%s",
            initial={
                "kind": SweepKind.NOISE,
                "model_version": versions[-1].pk if versions else None,
            },
        )
    pending = (
        BoundaryMap.objects.filter(finding=finding)
        .exclude(status__in=FINISHED_JOB_STATUSES)
        .exists()
        or StressSweep.objects.filter(finding=finding)
        .exclude(status__in=FINISHED_JOB_STATUSES)
        .exists()
    )
    return {
        "finding": finding,
        "versions": versions,
        "map_rows": _map_rows(finding, versions),
        "map_form": map_form,
        "can_map": bool(finding.dataset and len(features) >= 2),
        "sweeps": _sweep_items(finding),
        "sweep_form": sweep_form,
        "sensitive": set(finding.dataset.sensitive_columns) if finding.dataset else set(),
        "pending": pending,
        "can_run": user.has_perm("probes.run_probe"),
        "can_add_probe": user.has_perm("probes.add_probe"),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("introspection/_version_scans.html", takes_context=True)
def version_scans(context, version):
    """A version's recent slice scans and the button that starts one."""
    user = context["request"].user
    scans = SliceScan.objects.filter(model_version=version).select_related("dataset")[:10]
    return {"version": version, "scans": scans, "can_scan": user.has_perm("probes.run_probe")}


@register.inclusion_tag("introspection/_dataset_sensitive.html", takes_context=True)
def dataset_sensitivity(context, dataset):
    """Who may change them sees a checkbox per column; everyone sees the current marks."""

    user = context["request"].user
    can_edit = user.has_perm("registry.add_dataset")
    return {
        "dataset": dataset,
        "form": SensitiveColumnsForm(dataset=dataset) if can_edit else None,
        "scans": SliceScan.objects.filter(dataset=dataset).select_related(
            "model_version__ml_model"
        )[:10],
        "csrf_token": context.get("csrf_token"),
    }


@register.filter
def pct(value):
    """0.1234 -> "12.3%"; empty for a missing value."""
    if value is None or value == "":
        return "—"
    try:
        return f"{100 * float(value):.1f}%"
    except (TypeError, ValueError):
        return "—"
