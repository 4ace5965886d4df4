"""Panels that read across every app, for the pages of lower apps: a finding's story and
similar findings, an ML model's history."""

from django import template

from .. import story

register = template.Library()


@register.inclusion_tag("ledger/_mlmodel_history.html")
def mlmodel_history(ml_model):
    """An ML model's history (findings by status, regressions, lessons, versions), for the
    ML model's page."""
    return {"ml_model": ml_model, "history": story.model_history(ml_model)}


@register.inclusion_tag("ledger/_timeline.html")
def finding_timeline(finding):
    """From discovery to today: the actions taken and how each fix fared."""
    actions = list(
        finding.actions.select_related("owner", "reviewer", "fixed_in_version")
        .prefetch_related("evaluations__model_version")
        .order_by("created_at")
    )
    return {"finding": finding, "timeline": story.timeline(finding, actions)}


@register.inclusion_tag("ledger/_similar.html")
def similar_findings(finding):
    """Findings like this one, and what was done about them."""
    return {"finding": finding, "similar": story.similar_findings(finding)}


@register.inclusion_tag("ledger/_suggestions.html", takes_context=True)
def fix_suggestions(context, finding):
    """Fixes that held (or not) on similar findings, with one click to propose the same."""
    return {
        "finding": finding,
        "suggestions": story.suggestions(finding, n=5),
        "perms": context.get("perms"),
        "csrf_token": context.get("csrf_token"),
    }
