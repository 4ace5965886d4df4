"""The release panel of a model version's page: the gate, what changed since the previous
version, and a banner when a guarded fix broke."""

from django import template

from ..release import release_summary

register = template.Library()


@register.inclusion_tag("remediation/_release.html")
def version_release(version):
    return {"version": version, **release_summary(version)}
