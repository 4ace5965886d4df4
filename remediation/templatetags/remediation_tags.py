"""The remediation panel of a finding's page: its actions, their evaluations, the moves
the reader may make and the form to propose one."""

from django import template

from ..forms import ActionForm
from ..models import is_ready_to_resolve

register = template.Library()


@register.inclusion_tag("remediation/_finding_actions.html", takes_context=True)
def finding_actions(context, finding):
    user = context["request"].user
    actions = list(
        finding.actions.select_related("owner", "reviewer", "fixed_in_version")
        .prefetch_related("evaluations__model_version")
        .order_by("created_at")
    )
    for item in actions:
        item.transitions = item.allowed_transitions(user)
        item.editable = item.may_edit(user)
    return {
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
        "perms": context.get("perms"),
        "finding": finding,
        "actions": actions,
        "action_form": ActionForm(finding=finding, initial={"owner": user}),
        "can_add_action": user.has_perm("remediation.add_remediationaction"),
    }


@register.simple_tag
def ready_to_resolve(finding):
    """Does the finding show as "ready to resolve" (remediation.models.ready_to_resolve)?"""
    return is_ready_to_resolve(finding)
