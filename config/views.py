from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import render

from catalog.choices import FindingStatus
from catalog.models import Finding
from catalog.roles import can_read
from probes.models import MLModel, ModelVersion
from remediation.models import RemediationAction


@login_required
def dashboard(request):
    readable = can_read(request.user)
    context = {"readable": readable}
    if readable:
        by_status = dict(
            Finding.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
        )
        context.update(
            status_counts=[(value, label, by_status.get(value, 0))
                           for value, label in FindingStatus.choices],
            recent_findings=Finding.objects.select_related("ml_model").order_by("-created_at")[:8],
            regressed=Finding.objects.filter(status=FindingStatus.REGRESSED)
            .select_related("ml_model")[:8],
            overdue_actions=RemediationAction.objects.overdue()
            .select_related("finding", "owner").order_by("due_date")[:8],
            recent_versions=ModelVersion.objects.select_related("ml_model")
            .order_by("-registered_at")[:6],
            model_count=MLModel.objects.count(),
        )
    return render(request, "dashboard.html", context)


def healthz(request):
    """Liveness for a proxy or an orchestrator: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
