from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from config.decorators import role_required
from probes.models import MLModel
from remediation.forms import ActionForm
from remediation.models import AuditEvent

from .choices import FindingStatus, RiskCategory, Severity
from .filtersets import FindingFilterSet
from .forms import FindingForm
from .models import Finding, Tag
from .workflow import TransitionError

PAGE_SIZE = 25


@role_required("catalog.view_finding")
def finding_list(request):
    q = request.GET.get("q", "").strip()
    qs = Finding.objects.select_related("ml_model", "owner").prefetch_related("tags")
    if q:
        qs = qs.search(q)
    filtered = FindingFilterSet(request.GET, queryset=qs)
    page = Paginator(filtered.qs.order_by("-created_at", "-pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    params = request.GET.copy()
    params.pop("page", None)
    return render(request, "catalog/finding_list.html", {
        "page": page,
        "q": q,
        "filters": request.GET,
        "querystring": params.urlencode(),
        "ml_models": MLModel.objects.all(),
        "severities": Severity.choices,
        "statuses": FindingStatus.choices,
        "risk_categories": RiskCategory.choices,
        "tags": Tag.objects.all(),
    })


@role_required("catalog.add_finding")
def finding_create(request):
    form = FindingForm(request.POST or None, initial={"owner": request.user})
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.instance.reporter = request.user
            finding = form.save()
        messages.success(request, f"Finding “{finding.title}” logged.")
        return redirect(finding)
    return render(request, "catalog/finding_form.html", {"form": form, "creating": True})


@role_required("catalog.change_finding")
def finding_edit(request, pk):
    finding = get_object_or_404(Finding, pk=pk)
    form = FindingForm(request.POST or None, instance=finding)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
        messages.success(request, "Finding updated.")
        return redirect(finding)
    return render(request, "catalog/finding_form.html", {"form": form, "finding": finding})


@role_required("catalog.view_finding")
def finding_detail(request, pk):
    finding = get_object_or_404(
        Finding.objects.select_related("ml_model", "model_version", "dataset", "owner",
                                       "reporter"),
        pk=pk,
    )
    actions = list(
        finding.actions.select_related("owner", "reviewer", "fixed_in_version")
        .prefetch_related("evaluations__model_version")
        .order_by("created_at")
    )
    for item in actions:
        item.transitions = item.allowed_transitions(request.user)
    return render(request, "catalog/finding_detail.html", {
        "finding": finding,
        "actions": actions,
        "transitions": finding.allowed_transitions(request.user),
        "action_form": ActionForm(finding=finding, initial={"owner": request.user}),
        "history": AuditEvent.objects.for_object(finding).select_related("actor")[:50],
        "can_add_action": request.user.has_perm("remediation.add_remediationaction"),
        "can_edit": request.user.has_perm("catalog.change_finding"),
    })


@role_required("catalog.view_finding")
@require_POST
def finding_transition(request, pk):
    finding = get_object_or_404(Finding, pk=pk)
    try:
        finding.transition_to(request.POST.get("to", ""), by=request.user,
                              note=request.POST.get("note", ""),
                              expected=request.POST.get("from") or None)
    except TransitionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Finding moved to {finding.get_status_display()}.")
    return redirect(finding)
