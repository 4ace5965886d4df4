from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from catalog.models import Finding
from catalog.workflow import TransitionError
from config.decorators import role_required
from probes.models import ModelVersion

from .forms import ActionForm
from .models import RemediationAction


@role_required("remediation.add_remediationaction")
@require_POST
def action_create(request, finding_pk):
    finding = get_object_or_404(Finding, pk=finding_pk)
    form = ActionForm(request.POST, finding=finding)
    if form.is_valid():
        form.instance.created_by = request.user
        if form.instance.owner is None:
            form.instance.owner = request.user
        action = form.save()
        messages.success(request, f"Action “{action.title}” proposed.")
    else:
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        messages.error(request, f"The action was not saved — {errors}")
    return redirect(finding.get_absolute_url() + "#actions")


@role_required("remediation.view_remediationaction")
@require_POST
def action_transition(request, pk):
    action = get_object_or_404(RemediationAction.objects.select_related("finding"), pk=pk)
    version = None
    if request.POST.get("fixed_in_version"):
        version = ModelVersion.objects.filter(pk=request.POST["fixed_in_version"]).first()
    try:
        action.transition_to(
            request.POST.get("to", ""),
            by=request.user,
            note=request.POST.get("note", ""),
            fixed_in_version=version,
        )
    except TransitionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"“{action.title}” is now {action.get_status_display()}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = action.get_absolute_url()
    return redirect(target)
