"""Filters every page may use: Markdown, numbers, heat shades, workflow button words."""

from django import template

from ..markdown import render_markdown

register = template.Library()

VERBS = {
    "approved": "Approve",
    "rejected": "Reject",
    "in_progress": "Start work",
    "implemented": "Mark implemented",
    "verified": "Verify",
    "ineffective": "Mark ineffective",
    "cancelled": "Cancel",
    "remediating": "Start remediating",
    "resolved": "Resolve",
    "accepted_risk": "Accept the risk",
    "regressed": "Mark regressed",
}


@register.filter
def transition_verb(status):
    return VERBS.get(status, str(status).replace("_", " ").capitalize())


@register.filter(name="markdown")
def markdown_filter(text):
    """Long free text (a description, a lesson, a note) as sanitised Markdown HTML."""
    return render_markdown(text)


@register.filter
def thousands(value):
    """1000 -> "1,000"."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value


@register.filter
def heat(value, peak):
    """The shade class (heat-0 .. heat-5) of a count, relative to the largest count."""
    try:
        value, peak = int(value), int(peak)
    except (TypeError, ValueError):
        return "heat-0"
    if value <= 0 or peak <= 0:
        return "heat-0"
    return f"heat-{min(5, 1 + (4 * value) // peak)}"
