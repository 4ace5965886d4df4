"""Words for workflow buttons: what a person does, not the status code."""

from django import template

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
