"""Pages that read across every app: the dashboard, Start here, the heatmaps and the
whole-catalog backup."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from catalog.choices import FindingStatus
from catalog.filtersets import FindingFilterSet
from catalog.models import Finding
from core.decorators import role_required
from core.roles import can_read
from registry.models import MLModel, ModelVersion
from remediation import release
from remediation.models import RemediationAction

from . import backup, story
from .forms import ImportCatalogForm


@login_required
def dashboard(request):
    readable = can_read(request.user)
    context = {"readable": readable}
    if readable:
        by_status = dict(
            Finding.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
        )
        context.update(
            status_counts=[
                (value, label, by_status.get(value, 0)) for value, label in FindingStatus.choices
            ],
            recent_findings=Finding.objects.select_related("ml_model").order_by("-created_at")[:8],
            regressed=Finding.objects.filter(status=FindingStatus.REGRESSED).select_related(
                "ml_model"
            )[:8],
            overdue_actions=RemediationAction.objects.overdue()
            .select_related("finding", "owner")
            .order_by("due_date")[:8],
            recent_versions=ModelVersion.objects.select_related("ml_model").order_by(
                "-registered_at"
            )[:6],
            model_count=MLModel.objects.count(),
        )
    return render(request, "ledger/dashboard.html", context)


@role_required("catalog.view_finding")
@require_GET
def start_here(request):
    return render(request, "ledger/start_here.html", story.start_here())


@role_required("catalog.view_finding")
@require_GET
def heatmap(request):
    filtered = FindingFilterSet(request.GET, queryset=Finding.objects.all())
    base = request.GET.copy()
    for key in ("severity", "risk_category", "status", "page", "q"):
        base.pop(key, None)
    return render(
        request,
        "ledger/heatmap.html",
        {
            **story.heatmaps(filtered.qs, base),
            "ml_models": MLModel.objects.only("pk", "name"),
            "filters": request.GET,
        },
    )


@role_required("catalog.view_finding")
@require_GET
def export_catalog(request):
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = HttpResponse(backup.catalog_json(), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="catalog-{stamp}.json"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def import_catalog(request):
    """Load a whole-catalog export into this (empty) instance: superusers only."""
    if not request.user.is_superuser:
        raise PermissionDenied
    form = ImportCatalogForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        try:
            report = backup.import_catalog(form.cleaned_data["data"])
        except ValidationError as exc:
            form.add_error("file", exc.messages)
        else:
            messages.success(request, "Catalog imported.")
    return render(
        request,
        "ledger/import_catalog.html",
        {
            "form": form,
            "report": report,
            "empty": backup.catalog_is_empty(),
        },
    )


@role_required("registry.view_modelversion", "probes.view_proberun")
@require_GET
def version_compare(request):
    """Two versions of one ML model side by side, probe by probe (?a=older&b=newer)."""
    versions = ModelVersion.objects.select_related("ml_model")
    a = versions.filter(pk=_int(request.GET.get("a"))).first()
    b = versions.filter(pk=_int(request.GET.get("b"))).first()
    error = ""
    comparison = None
    if b is None:
        error = "Choose the version to look at (b)." if request.GET else ""
    elif a is not None and (refusal := _not_own(b.ml_model, a)):
        error = f"{refusal} Compare two versions of one ML model."
    else:
        if a is not None and (a.registered_at, a.pk) > (b.registered_at, b.pk):
            a, b = b, a
        comparison = release.compare(a, b)
    model = (b or a).ml_model if (a or b) else None
    return render(
        request,
        "ledger/version_compare.html",
        {
            "a": a,
            "b": b,
            "comparison": comparison,
            "error": error,
            "choices": model.versions.order_by("registered_at", "pk") if model else versions[:200],
        },
    )


def _not_own(ml_model, version):
    """MLModel.check_owns's message when `version` is not one of `ml_model`'s, else ""."""
    try:
        ml_model.check_owns(version, field="a")
    except ValidationError as exc:
        return " ".join(exc.messages)
    return ""


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
