"""Filters every page may use: Markdown, numbers, heat shades, workflow button words, and the
glossary of statistical terms (labels with a one-line explanation as a tooltip)."""

import re

from django import template
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.text import capfirst

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


# -- Glossary: statistical terms as a reader's label and a one-line explanation ---------
# Keys are the names the data and the code use (evidence keys, run fields, parameters);
# every page shows the label instead, with the explanation as its tooltip (the `term` tag).
GLOSSARY = {
    "ci": (
        "95% interval",
        "The range the true value lies in with 95% confidence, given how many rows were "
        "measured; a narrow range means a sure value.",
    ),
    "p_value": (
        "p-value",
        "How likely a difference this large would be by chance alone; below 0.05 it is "
        "unlikely to be chance.",
    ),
    "support": (
        "Rows in the slice",
        "How many rows of the dataset the figure is measured on (the rows in the slice); "
        "fewer rows make it less certain.",
    ),
    "min_support": (
        "Minimum rows",
        "Fewer rows than this in the slice and the run is inconclusive instead of passed "
        "or failed.",
    ),
    "ece": (
        "Calibration error (ECE)",
        "Expected calibration error: how far the model's confidence is from how often it "
        "is right, averaged over confidence bins; 0 is perfectly calibrated.",
    ),
    "psi": (
        "Drift (PSI)",
        "Population stability index: how far a column's distribution moved from the "
        "reference; 0.1 to 0.2 is moderate, 0.2 or more is major.",
    ),
    "error_rate": (
        "Error rate",
        "Share of the rows in the slice that the model decides wrongly.",
    ),
    "overall_error_rate": (
        "Error rate on the whole dataset",
        "Share of all the dataset's rows that the model decides wrongly, to compare the "
        "slice with.",
    ),
    "margin_density": (
        "Near-boundary share",
        "Share of rows where the model's top two class probabilities are closer than the "
        "margin: decisions that sit on the boundary.",
    ),
    "flip_rate": (
        "Flip rate",
        "Share of decisions that change when the input is changed a little.",
    ),
    "disparity": (
        "Disparity",
        "Gap between the best- and the worst-treated group on the chosen measure.",
    ),
    "threshold": (
        "Threshold",
        "The limit the value is compared with: on the wrong side of it the probe fails.",
    ),
    "tolerance": (
        "Tolerance",
        "How much worse than the baseline a value may be before the probe fails.",
    ),
    "baseline": (
        "Baseline",
        "The version where the finding was discovered; later versions are compared with it.",
    ),
    "inconclusive": (
        "Inconclusive",
        "The run could not decide: the interval straddles the threshold, or the slice has "
        "too few rows.",
    ),
    "value": ("Measured value", "What the probe measured on the rows of the slice."),
    "errors": ("Errors", "How many rows of the slice the model decides wrongly."),
    "lift": (
        "Lift",
        "The slice's error rate divided by the whole dataset's: 2× means twice as many "
        "errors as usual.",
    ),
    "error_share": (
        "Share of all errors",
        "Which part of all the model's errors on the dataset falls in this slice.",
    ),
    "margin": (
        "Margin",
        "Gap between the top two class probabilities below which a decision counts as "
        "near the boundary.",
    ),
    "decide": (
        "Decided on",
        "Point: the value alone is compared with the threshold. Whole interval: the probe "
        "passes or fails only when the whole 95% interval is on one side.",
    ),
}
# Other names of the same terms.
TERM_ALIASES = {
    "ci_95": "ci",
    "ci_low": "ci",
    "ci_high": "ci",
    "confidence_interval": "ci",
    "interval": "ci",
    "p": "p_value",
    "pvalue": "p_value",
    "slice_ece": "ece",
    "calibration_error": "ece",
    "drift": "psi",
    "slice_error_rate": "error_rate",
    "perturbation_flip_rate": "flip_rate",
    "counterfactual_flip_rate": "flip_rate",
    "group_disparity": "disparity",
}


def glossary_entry(key):
    """(label, explanation) of a term by any of its names; a name outside the glossary
    reads as words ("found_by" -> ("Found by", ""))."""
    name = str(key).strip()
    normal = name.lower().replace("-", "_").replace(" ", "_")
    normal = TERM_ALIASES.get(normal, normal)
    if normal in GLOSSARY:
        return GLOSSARY[normal]
    words = name.replace("_", " ").strip()
    return (words[:1].upper() + words[1:], "")


@register.filter
def term_label(key):
    """A data name as its reader's label, without the explanation."""
    return glossary_entry(key)[0]


@register.simple_tag
def term(key, label=None):
    """A term with its explanation as an accessible tooltip: an <abbr> whose title holds the
    explanation; it takes the keyboard's focus so the style sheet can show the explanation
    to keyboard users too. `label` overrides the glossary's label. A name outside the
    glossary is shown as words, without a tooltip."""
    default, explanation = glossary_entry(key)
    label = default if label is None else label
    if not explanation:
        return conditional_escape(label)
    return format_html('<abbr class="term" title="{}" tabindex="0">{}</abbr>', explanation, label)


# -- Audit events as a reader sees them ---------------------------------------------------

# Fields every save moves, which say nothing about what a person changed.
_NOISY_FIELDS = {"updated_at", "search_vector"}


def _field_by_attname(model):
    if model is None:
        return {}
    return {f.attname: f for f in model._meta.concrete_fields}


def _field_label(field):
    """A field's verbose name as a label ("ml model" -> "ML model")."""
    return capfirst(re.sub(r"\bml\b", "ML", str(field.verbose_name)))


def _readable(field, value):
    """One stored value of a snapshot in words: a choice by its label, a related object by
    its name, a list or mapping as plain text, nothing as a dash."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field is not None and field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if field is not None and field.is_relation and field.related_model is not None:
        related = field.related_model._default_manager.filter(pk=value).first()
        return str(related) if related is not None else f"#{value}"
    return term_value(value)


@register.filter
def term_value(value, key=""):
    """A value as words: an interval [low, high] as "low – high", other lists joined with
    commas, a mapping as "name: value" pairs, nothing as a dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        if glossary_entry(key)[0] == GLOSSARY["ci"][0] and len(value) == 2:
            return f"{term_value(value[0])} – {term_value(value[1])}"
        return ", ".join(term_value(v) for v in value) if value else "—"
    if isinstance(value, dict):
        if not value:
            return "—"
        return "; ".join(f"{term_label(k).lower()}: {term_value(v, k)}" for k, v in value.items())
    return str(value)


def audit_changes_of(event):
    """[(label, before, after)]: the fields an audit event changed, by their verbose names,
    values in words. A creation shows none (its note says what was made); a tag edit shows
    the tags."""
    before, after = event.before, event.after
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    fields = _field_by_attname(event.content_type.model_class())
    changes = []
    for name in [*after, *(k for k in before if k not in after)]:
        if name in _NOISY_FIELDS or before.get(name) == after.get(name):
            continue
        field = fields.get(name)
        if field is not None and field.name == "status" and event.to_status:
            continue  # shown as the status move itself
        label = _field_label(field) if field is not None else term_label(name)
        changes.append(
            (label, _readable(field, before.get(name)), _readable(field, after.get(name)))
        )
    return changes


@register.simple_tag
def audit_changes(event):
    """What an audit event changed, as a list of "Field: before → after" lines."""
    changes = audit_changes_of(event)
    if not changes:
        return ""
    return format_html(
        '<ul class="changes">{}</ul>',
        format_html_join(
            "",
            '<li><span class="field">{}</span>: <del>{}</del> → <ins>{}</ins></li>',
            changes,
        ),
    )


@register.filter
def object_type_label(content_type):
    """A content type in words: "Finding", "Remediation action"."""
    model = content_type.model_class() if content_type is not None else None
    if model is None:
        return str(content_type)
    return capfirst(str(model._meta.verbose_name))
