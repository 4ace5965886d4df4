"""The probes section of a finding page: probes × versions, charts, reruns in progress."""

from django import template
from django.utils.safestring import mark_safe

from boundary.charts import value_chart_svg

from ..models import ProbeRun, Rerun

register = template.Library()


@register.inclusion_tag("probes/_finding_probes.html", takes_context=True)
def finding_probes(context, finding):
    """1. The finding's probes and its ML model's versions, oldest first.
    2. The newest finished run per (probe, version) in one query.
    3. One chart per probe: its value across versions with the threshold line."""
    user = context["request"].user
    probes = list(finding.probes.select_related("dataset", "retired_by", "superseded_by"))
    versions = list(finding.ml_model.versions.order_by("registered_at", "pk"))
    cells = ProbeRun.objects.matrix(probes, versions)
    rows = []
    for probe in probes:
        row_cells = [cells.get((probe.pk, v.pk)) for v in versions]
        points = [
            {
                "label": v.version,
                "value": getattr(run, "value", None),
                "status": getattr(run, "status", None),
                "ci_low": getattr(run, "ci_low", None),
                "ci_high": getattr(run, "ci_high", None),
            }
            for v, run in zip(versions, row_cells, strict=True)
        ]
        chart = value_chart_svg(
            points, threshold=probe.threshold, title=f"{probe.get_kind_display()} across versions"
        )
        rows.append(
            {
                "probe": probe,
                "cells": row_cells,
                "chart": mark_safe(chart),  # noqa: S308
                "changeable": probe.may_change(user),
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
        "running": running,
        "can_add_probe": user.has_perm("probes.add_probe"),
        "can_run": user.has_perm("probes.run_probe"),
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
    }
