from django import template

from catalog.markdown import render_markdown

register = template.Library()


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


@register.inclusion_tag("catalog/_mlmodel_history.html")
def mlmodel_history(ml_model):
    """An ML model's history (findings by status, regressions, lessons, versions), for the
    ML model's page."""
    from catalog.story import model_history

    return {"ml_model": ml_model, "history": model_history(ml_model)}
