"""Dataset profiles and slice shares on pages, from stored results only (no page reads a
dataset file): `{% dataset_profile dataset %}` on the dataset page, `{% slice_shares
finding %}` on a finding page, `|sig` for a number shown with a few significant digits."""

from django import template

from ..models import SliceShare

register = template.Library()

QUANTILE_LABELS = (
    ("p1", "1st percentile"),
    ("p5", "5th percentile"),
    ("p25", "Lower quartile"),
    ("p50", "Median"),
    ("p75", "Upper quartile"),
    ("p95", "95th percentile"),
    ("p99", "99th percentile"),
)
# The histogram's drawing box (SVG user units): 20 bars of BAR_WIDTH, CHART_HEIGHT tall.
BAR_WIDTH = 10
CHART_HEIGHT = 60
# A finding page counts its slice in at most this many datasets of its ML model.
SLICE_SHARE_DATASETS = 20


@register.filter
def sig(value, digits=4):
    """A number with `digits` significant digits ("—" for none); integers in full."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{int(digits)}g}"


@register.filter
def percent(value):
    """A share in [0, 1] as a percentage with three significant digits ("—" for none)."""
    if value is None:
        return "—"
    return f"{value * 100:.3g}%"


def _bars(histogram):
    """Geometry of a histogram's bars, heights relative to the fullest bin."""
    counts, edges = histogram["counts"], histogram["edges"]
    fullest = max(counts) or 1
    bars = []
    for i, count in enumerate(counts):
        height = (CHART_HEIGHT - 2) * count / fullest
        bars.append(
            {
                # Attribute values as text: a localized number would not be SVG.
                "x": str(i * BAR_WIDTH),
                "y": f"{CHART_HEIGHT - height:.2f}",
                "width": str(BAR_WIDTH - 1),
                "height": f"{height:.2f}",
                "count": count,
                "low": sig(edges[i]),
                "high": sig(edges[i + 1]),
            }
        )
    return bars


def _shown_column(column, meta):
    shown = dict(column, sensitive=bool(meta.get("sensitive")), target=meta.get("target"))
    if column.get("histogram"):
        shown["bars"] = _bars(column["histogram"])
        shown["chart_width"] = BAR_WIDTH * len(column["histogram"]["counts"])
    if column.get("quantiles"):
        shown["quantile_rows"] = [
            (label, column["quantiles"].get(key)) for key, label in QUANTILE_LABELS
        ]
    if "top" in column:
        shown["top_rows"] = column["top"]
        shown["listed"] = sum(t["count"] for t in column["top"]) + column["other"]["count"]
    return shown


@register.inclusion_tag("registry/_profile.html", takes_context=True)
def dataset_profile(context, dataset):
    """The dataset's stored profile per column; without one, a note and (for whoever may
    add datasets) a button that queues it."""
    request = context.get("request")
    stored = dataset.page_profile()
    meta = {
        c["name"]: {"sensitive": c.get("sensitive"), "target": c["name"] == dataset.target_column}
        for c in dataset.columns
    }
    columns = [_shown_column(c, meta.get(c["name"], {})) for c in (stored or {}).get("columns", [])]
    return {
        "dataset": dataset,
        "profile": stored,
        "columns": columns,
        "chart_height": CHART_HEIGHT,
        "can_compute": bool(request and request.user.has_perm("registry.add_dataset")),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("registry/_slice_shares.html")
def slice_shares(finding):
    """The share of rows of the finding's slice in each dataset of its ML model (the ML
    model's own rule, MLModel.datasets), newest first. Counts are stored results; one not
    counted yet is handed to a worker and shows as being computed."""
    if not finding.slice:
        return {"finding": finding, "whole": True, "shares": []}
    datasets = finding.ml_model.datasets()[:SLICE_SHARE_DATASETS]
    shares = []
    for dataset in datasets:
        share = SliceShare.request(dataset, finding.slice)
        if not share.is_finished:
            # Counted inline when tasks run in this process: read what it stored.
            share.refresh_from_db()
        share.dataset = dataset
        shares.append(share)
    return {
        "finding": finding,
        "whole": False,
        "shares": shares,
        "suppressed_message": SliceShare.suppressed_message,
    }
