import datetime
import json
from collections import defaultdict

from django.apps import apps
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import capfirst
from django.views.decorators.http import require_POST

from catalog.choices import Severity
from catalog.models import Finding
from core import hygiene
from core.csv import csv_response
from core.decorators import role_required
from core.models import AuditEvent
from core.workflow import TransitionError
from registry.models import MLModel, ModelVersion

from . import reports
from .filtersets import ActionFilterSet, AuditEventFilterSet
from .forms import ActionEditForm, ActionForm, EvaluationForm
from .models import Notification, RemediationAction


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
def action_edit(request, pk):
    """Edit an action: its owner, its named reviewer or a reviewer (RemediationAction.edit);
    a settled action's description only."""
    action = get_object_or_404(RemediationAction.objects.select_related("finding"), pk=pk)
    refusal = action.edit_refusal(request.user)
    if refusal:
        messages.error(request, refusal)
        return redirect(action.get_absolute_url())
    form = ActionEditForm(request.POST or None, instance=action)
    if request.method == "POST" and form.is_valid():
        try:
            action.edit(form.changes(), by=request.user, note=request.POST.get("note", ""))
        except TransitionError as exc:
            messages.error(request, str(exc))
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request, f"“{action.title}” saved." if form.changed_data else "Nothing changed."
            )
            return redirect(action.get_absolute_url())
    return render(request, "remediation/action_form.html", {"form": form, "action": action})


@role_required("remediation.view_remediationaction")
@require_POST
def action_transition(request, pk):
    action = get_object_or_404(RemediationAction.objects.select_related("finding"), pk=pk)
    version_id = hygiene.parse_id(request.POST.get("fixed_in_version"), "fixed_in_version")
    version = None if version_id is None else ModelVersion.objects.filter(pk=version_id).first()
    try:
        action.transition_to(
            request.POST.get("to", ""),
            by=request.user,
            note=request.POST.get("note", ""),
            fixed_in_version=version,
            expected=request.POST.get("from") or None,
        )
    except TransitionError as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:  # a field of the move, e.g. the fix's version
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"“{action.title}” is now {action.get_status_display()}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = action.get_absolute_url()
    return redirect(target)


BOARD_PAGE_LIMIT = 200


@role_required("remediation.view_remediationaction")
def board(request):
    """The review board: actions by status, filtered; transitions the viewer may take."""
    filters = ActionFilterSet(
        request.GET,
        queryset=RemediationAction.objects.select_related(
            "finding__ml_model", "owner", "reviewer", "fixed_in_version", "broke_on_version"
        ).order_by("due_date", "-updated_at"),
    )
    actions = list(filters.qs[:BOARD_PAGE_LIMIT])
    users = get_user_model().objects.filter(is_active=True).order_by("username")
    return render(
        request,
        "remediation/board.html",
        {
            "columns": reports.board(actions, request.user),
            "filters": filters.form,
            "params": request.GET,
            "ml_models": MLModel.objects.all(),
            "users": users,
            "severities": Severity.choices,
            "truncated": len(actions) == BOARD_PAGE_LIMIT,
            "today": timezone.localdate(),
            "counts": reports.open_counts(),
            "versions": ModelVersion.objects.select_related("ml_model"),
        },
    )


# The kinds of object the audit log may be filtered by, as "app_label.model".
AUDITED_TYPES = [
    "catalog.finding",
    "remediation.remediationaction",
    "probes.probe",
    "registry.modelversion",
    "registry.dataset",
    "registry.mlmodel",
    "remediation.evaluation",
]


def _audit_targets(events):
    """{event.pk: (object or None, its URL or "")}: the objects a page of audit events is
    about, read with one query per kind of object."""
    wanted = defaultdict(set)
    for e in events:
        wanted[e.content_type_id].add(e.object_id)
    found = {}
    for type_id, ids in wanted.items():
        model = ContentType.objects.get_for_id(type_id).model_class()
        if model is None:
            continue
        pks = [int(i) for i in ids if i.isdigit()]
        for obj in model._default_manager.filter(pk__in=pks):
            found[(type_id, str(obj.pk))] = obj
    targets = {}
    for e in events:
        obj = found.get((e.content_type_id, e.object_id))
        url = obj.get_absolute_url() if hasattr(obj, "get_absolute_url") else ""
        targets[e.pk] = (obj, url)
    return targets


@role_required("core.view_auditevent")
def audit_log(request):
    """The audit trail, filtered: each event names its object in words ("Finding", with its
    title), links to it where the object has a page, and shows what it changed field by
    field (core_tags.audit_changes)."""
    filters = AuditEventFilterSet(
        request.GET, queryset=AuditEvent.objects.select_related("content_type", "actor")
    )
    if request.GET.get("format") == "csv":
        return _audit_csv(filters.qs)
    page = Paginator(filters.qs, 50).get_page(request.GET.get("page"))
    targets = _audit_targets(page.object_list)
    rows = [
        {"event": e, "object": targets[e.pk][0], "url": targets[e.pk][1]} for e in page.object_list
    ]
    params = request.GET.copy()
    params.pop("page", None)
    object_types = []
    for name in AUDITED_TYPES:
        app_label, _, model_name = name.partition(".")
        model = apps.get_model(app_label, model_name)
        object_types.append((name, capfirst(str(model._meta.verbose_name))))
    return render(
        request,
        "remediation/audit_log.html",
        {
            "page": page,
            "rows": rows,
            "params": request.GET,
            "querystring": params.urlencode(),
            "verbs": AuditEvent.Verb.choices,
            "object_types": object_types,
        },
    )


def _audit_csv(qs):
    header = [
        "time",
        "actor",
        "verb",
        "object_type",
        "object_id",
        "object",
        "from_status",
        "to_status",
        "note",
        "before",
        "after",
    ]
    rows = (
        [
            e.created_at.isoformat(),
            e.actor_label,
            e.verb,
            f"{e.content_type.app_label}.{e.content_type.model}",
            e.object_id,
            e.object_repr,
            e.from_status,
            e.to_status,
            e.note,
            json.dumps(e.before, sort_keys=True),
            json.dumps(e.after, sort_keys=True),
        ]
        for e in qs.iterator(chunk_size=2000)
    )
    return csv_response(header, rows, filename="audit-log.csv")


def _date_range(request):
    today = timezone.localdate()
    try:
        start = (
            datetime.date.fromisoformat(request.GET.get("start", ""))
            if request.GET.get("start")
            else today - datetime.timedelta(days=30)
        )
        end = datetime.date.fromisoformat(request.GET["end"]) if request.GET.get("end") else today
    except ValueError:
        return None, None, "Dates must look like 2026-11-26."
    if start > end:
        return None, None, "The start date is after the end date."
    return start, end, ""


def _tables(sections):
    """DataFrames by section name, as the pages' tables show them."""
    return [
        {
            "name": name.replace("_", " "),
            "columns": [str(c).replace("_", " ") for c in frame.columns],
            "rows": frame.astype(object).where(frame.notna(), "").values.tolist(),
        }
        for name, frame in sections.items()
    ]


@role_required("remediation.view_remediationaction")
def review_pack(request):
    start, end, error = _date_range(request)
    if error:
        messages.error(request, error)
        return redirect("remediation:review_pack")
    sections = reports.review_pack(start, end)
    if request.GET.get("format") == "csv":
        header, rows = reports.review_pack_rows(sections)
        return csv_response(header, rows, filename=f"review-pack-{start}-{end}.csv")
    tables = _tables(sections)
    return render(
        request,
        "remediation/review_pack.html",
        {
            "start": start,
            "end": end,
            "tables": tables,
        },
    )


@role_required("catalog.view_finding")
def evidence_pack(request, finding_pk):
    finding = get_object_or_404(Finding.objects.select_related("ml_model"), pk=finding_pk)
    response = HttpResponse(reports.evidence_pack(finding), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="evidence-finding-{finding.pk}.zip"'
    return response


@role_required("remediation.view_evaluation")
def effectiveness(request):
    governance = {
        "time_to_remediate": reports.time_to_remediate(),
        "fix_survival": reports.fix_survival(),
        "risks_expiring": reports.risks_expiring(),
    }
    return render(
        request,
        "remediation/effectiveness.html",
        {"rows": reports.effectiveness(), "tables": _tables(governance)},
    )


@login_required
def notifications(request):
    if request.method == "POST":
        Notification.objects.mark_read(request.user)
        return redirect("remediation:notifications")
    items = Notification.objects.filter(recipient=request.user).select_related("finding")[:100]
    return render(request, "remediation/notifications.html", {"items": items})


@role_required("remediation.add_evaluation")
@require_POST
def evaluation_create(request, pk):
    """A reviewer's manual evaluation of an action (e.g. a user study), with notes."""
    action = get_object_or_404(RemediationAction.objects.select_related("finding"), pk=pk)
    form = EvaluationForm(request.POST, action=action)
    if form.is_valid():
        form.save(by=request.user)
        messages.success(request, "Evaluation recorded.")
    else:
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        messages.error(request, f"The evaluation was not saved — {errors}")
    return redirect(action.get_absolute_url())
