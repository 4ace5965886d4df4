"""What a probe run stores beyond its value, as pages show it: the breakdown of an
ensemble's components (``details.components``, DESIGN.md "Probe kinds") and the
interaction surface of a ``feature_interaction`` run (its stored partial dependences).

Both read the run's stored details only; nothing here calls a model or reads a dataset.
Details that are absent or not of the stored shape (an older run, a hand-edited row) show
nothing rather than an error.
"""

import math

import numpy as np
from django import template
from django.utils.safestring import mark_safe

from boundary.charts import grid_label, heatmap_svg
from boundary.measures import interaction_surface

register = template.Library()

# A grid with more cells than this is drawn, but not also written out as a table.
TABLE_MAX_CELLS = 900
INTERACTION_LABEL = "PD_ab − PD_a − PD_b"


def _details(run):
    details = getattr(run, "details", None)
    return details if isinstance(details, dict) else {}


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def component_name(name):
    """A component as the ensemble knows it: its name (Voting/Stacking) or "#index"."""
    if isinstance(name, int) and not isinstance(name, bool):
        return f"#{name}"
    return str(name)


def component_breakdown(run):
    """The run's ``details.components`` as table rows, or None when it has none.

    {"rows": [{"name", "error_rate", "agreement", "shared_errors", "worst"}], "worst":
    [names], "error": details.components_error}. The component(s) with the highest slice
    error rate are the worst, unless every component errs as often (nothing stands out).
    """
    details = _details(run)
    stored = details.get("components")
    error = details.get("components_error") or ""
    if not isinstance(stored, list):
        stored = []
    rows = [
        {
            "name": component_name(item.get("component")),
            "error_rate": _number(item.get("error_rate")),
            "agreement": _number(item.get("agreement")),
            "shared_errors": _number(item.get("shared_errors")),
            "worst": False,
        }
        for item in stored
        if isinstance(item, dict)
    ]
    if not rows and not error:
        return None
    rates = {row["error_rate"] for row in rows if row["error_rate"] is not None}
    if len(rates) > 1:
        for row in rows:
            row["worst"] = row["error_rate"] == max(rates)
    return {
        "run": run,
        "rows": rows,
        "worst": [row["name"] for row in rows if row["worst"]],
        "worst_rate": max(rates) if len(rates) > 1 else None,
        "error": str(error),
    }


def _grid_values(value, size=None):
    if not isinstance(value, list) or not value or (size is not None and len(value) != size):
        return None
    numbers = [_number(v) for v in value]
    return None if any(v is None for v in numbers) else numbers


def interaction_map(run, kind):
    """The interaction surface of a run of a probe of ``kind``: None unless that is
    feature_interaction.

    1. Read the stored grids of a and b and the partial dependences PD_ab, PD_a, PD_b.
       A run without them (it ran before they were stored) gives {"missing": True}.
    2. The surface is ``boundary.measures.interaction_surface``: PD_ab − PD_a − PD_b,
       each centred, per cell (what H² sums the squares of).
    3. The heatmap (``boundary.charts.heatmap_svg``) with a on the y axis and b on the x
       axis; each cell's tooltip adds the joint partial dependence PD_ab. The same values
       as table rows (a's grid values down, b's across) for grids of up to
       TABLE_MAX_CELLS cells.
    """
    if kind != "feature_interaction":
        return None
    details = _details(run)
    features, grid = details.get("features"), details.get("grid")
    if not (isinstance(features, list) and len(features) == 2 and isinstance(grid, dict)):
        return None
    a, b = (str(name) for name in features)
    grid_a, grid_b = _grid_values(grid.get(a)), _grid_values(grid.get(b))
    if grid_a is None or grid_b is None:
        return None
    pd_a = _grid_values(details.get("pd_a"), len(grid_a))
    pd_b = _grid_values(details.get("pd_b"), len(grid_b))
    stored_ab = details.get("pd_ab")
    pd_ab = None
    if isinstance(stored_ab, list) and len(stored_ab) == len(grid_a):
        lines = [_grid_values(line, len(grid_b)) for line in stored_ab]
        pd_ab = None if any(line is None for line in lines) else lines
    pos_label = details.get("pos_label")
    base = {"run": run, "a": a, "b": b, "pos_label": pos_label}
    if pd_a is None or pd_b is None or pd_ab is None:
        return {**base, "missing": True}
    surface = interaction_surface(np.array(pd_ab), np.array(pd_a), np.array(pd_b)).tolist()
    notes = [[f"joint P({pos_label}) {value:.3f}" for value in line] for line in pd_ab]
    svg = heatmap_svg(
        surface,
        grid_a,
        grid_b,
        row_title=a,
        column_title=b,
        title=(
            f"Interaction of {a} and {b} on P({pos_label}), run #{run.pk}: "
            f"{INTERACTION_LABEL}, each centred"
        ),
        legend_title=f"{INTERACTION_LABEL} (probability of {pos_label})",
        cell_notes=notes,
    )
    table = None
    if len(grid_a) * len(grid_b) <= TABLE_MAX_CELLS:
        table = [
            {
                "a": value_a,
                "cells": [
                    {"b": value_b, "interaction": surface[i][j], "joint": pd_ab[i][j]}
                    for j, value_b in enumerate(grid_b)
                ],
            }
            for i, value_a in enumerate(grid_a)
        ]
    peak = max((abs(v) for line in surface for v in line), default=0.0)
    return {
        **base,
        "missing": False,
        "svg": mark_safe(svg),  # noqa: S308 - built from escaped text by boundary.charts
        "grid_a": grid_a,
        "grid_b": grid_b,
        "table": table,
        "cells": len(grid_a) * len(grid_b),
        "peak": peak,
        "label": INTERACTION_LABEL,
    }


def run_insight(run, version, kind):
    """The component breakdown and interaction surface of one run (of a probe of
    ``kind``, on ``version``), or None when it has neither."""
    if run is None:
        return None
    components, interaction = component_breakdown(run), interaction_map(run, kind)
    if components is None and interaction is None:
        return None
    return {"version": version, "run": run, "components": components, "interaction": interaction}


@register.filter
def percent(value, decimals=1):
    """0.3125 -> "31.3%"; None -> "—"."""
    number = _number(value)
    if number is None:
        return "—"
    return f"{100 * number:.{int(decimals)}f}%"


@register.filter
def grid_value(value):
    """A grid value as the heatmap's axes print it (3 significant digits)."""
    number = _number(value)
    return "—" if number is None else grid_label(number)


@register.filter
def signed(value, decimals=4):
    """0.01234 -> "+0.0123"; the sign always shown (the interaction's direction)."""
    number, decimals = _number(value), int(decimals)
    if number is None:
        return "—"
    if abs(number) < 0.5 * 10**-decimals:
        return f"{0:.{decimals}f}"  # never "-0.0000"
    return f"{number:+.{decimals}f}"
