import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from boundary import slices
from core import hygiene
from core.csv import CONTENT_TYPE as CSV_CONTENT_TYPE
from core.decorators import role_required
from core.models import AuditEvent
from core.workflow import TransitionError
from registry.models import Dataset, MLModel

from . import freshness, importexport, table
from .choices import FindingStatus, RiskCategory, Severity
from .filtersets import FindingFilterSet
from .forms import FindingForm, ImportFindingsForm, parts_of_finding_form
from .models import Finding
from .search import sorting

PAGE_SIZES = (10, 25, 50, 100)
FACET_LABELS = {"severity": Severity, "status": FindingStatus, "risk_category": RiskCategory}
# The fields the catalog's search form shows itself; the rest of the state rides along hidden.
SEARCH_FORM_FIELDS = (
    "q",
    "ml_model",
    "severity",
    "status",
    "risk_category",
    "tag",
    "sort",
    "per_page",
)


class _Unfiltered:
    """What FindingFilterSet gives when the URL names none of its filters, without
    building its form: every finding, no errors."""

    @property
    def errors(self):
        return {}

    @property
    def qs(self):
        return Finding.objects.all()


def _filter(params):
    if any(name in params for name in FindingFilterSet.base_filters):
        return FindingFilterSet(params, queryset=Finding.objects.all())
    return _Unfiltered()


def catalog_search(request):
    """The catalog's state from the URL: (results, filterset, q, sort).

    A search is ranked by relevance unless the user chose another order
    (catalog.search.sorting.choose)."""
    q = request.GET.get("q", "").strip()
    sort = sorting.choose(q, request.GET.get("sort"))
    filtered = _filter(request.GET)
    qs = filtered.qs
    if sort != sorting.RELEVANCE:
        qs = sorting.order(qs, sort)
    return qs.find(q, ranked=sort == sorting.RELEVANCE), filtered, q, sort


# The filters the catalog's search form offers as menus.
FILTER_SELECTS = ("ml_model", "severity", "status", "risk_category")


def _choices(choices):
    """(value, label) pairs with the labels translated once, not once per rendering."""
    return [(value, str(label)) for value, label in choices.choices]


def _facets(results, params, ml_models):
    counts = results.facet_counts()
    groups = []
    for key, choices in FACET_LABELS.items():
        active = params.get(key, "")
        items = [
            {
                "label": str(label),
                "count": counts[key].get(value, 0),
                "active": active == value,
                "link": table.link(params, **{key: None if active == value else value}),
            }
            for value, label in choices.choices
            if counts[key].get(value, 0) or active == value
        ]
        groups.append({"key": key, "label": key.replace("_", " ").capitalize(), "items": items})
    active = params.get("ml_model", "")
    groups.append(
        {
            "key": "ml_model",
            "label": "ML model",
            "items": [
                {
                    "label": m.name,
                    "count": counts["ml_model_id"].get(m.pk, 0),
                    "active": active == str(m.pk),
                    "link": table.link(params, ml_model=None if active == str(m.pk) else str(m.pk)),
                }
                for m in ml_models
                if counts["ml_model_id"].get(m.pk) or active == str(m.pk)
            ],
        }
    )
    chosen = [t.strip().lower() for t in params.getlist("tag") if t.strip()]
    tag_items = []
    for name, n in results.tag_counts():
        tags = [t for t in chosen if t != name] if name in chosen else [*chosen, name]
        tag_items.append(
            {
                "label": name,
                "count": n,
                "active": name in chosen,
                "link": table.link(params, tag=tags),
            }
        )
    groups.append({"key": "tag", "label": "Tags", "items": tag_items})
    return groups


# The catalog page's body in cards (search form, facets, results), rendered, per URL
# while the catalog's version stays as it was (catalog.freshness). Only URLs whose answer
# the findings, tags and ML models alone decide: no filter by owner, version or dataset,
# no order by owner or by counts of probes or actions, never the table (its bulk forms
# are the user's own).
BODIES = freshness.ListPages(settings.LIST_CACHE_PAGES)
_KEPT_BODY_PARAMETERS = frozenset(
    {*SEARCH_FORM_FIELDS, "page", "view", "is_key_lesson", "created_after", "created_before"}
)
_KEPT_SORTS = frozenset(
    {sorting.RELEVANCE, "newest", "oldest", "id", "title", "ml_model", "severity", "status"}
    | {"risk_category", "created", "updated"}
)


def _kept_body_key(request, q):
    """(key, version) under which the catalog page's body for this URL is kept, or None."""
    if BODIES.size <= 0 or table.is_table(request.GET):
        return None
    if not _KEPT_BODY_PARAMETERS.issuperset(request.GET):
        return None
    if sorting.choose(q, request.GET.get("sort")).removeprefix("-") not in _KEPT_SORTS:
        return None
    at = freshness.version(Finding.objects.db)
    if at is None:
        return None
    return (request.get_full_path(),), at


@role_required("catalog.view_finding")
def finding_list(request):
    """The catalog: cards (the default) or a table (`view=table`), the whole state in the
    URL. The cards' body is rendered once per URL and catalog version (BODIES)."""
    kept = _kept_body_key(request, request.GET.get("q", "").strip())
    body = BODIES.get(*kept) if kept is not None else None
    if body is not None:
        context = {"q": request.GET.get("q", "").strip(), "body_html": body.content}
        return render(request, "catalog/finding_list.html", context)
    results, filtered, q, sort = catalog_search(request)
    try:
        per_page = int(request.GET.get("per_page", 25))
    except ValueError:
        per_page = 25
    per_page = per_page if per_page in PAGE_SIZES else 25
    try:
        number = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        number = 1
    as_table = table.is_table(request.GET)
    # The cards show the ML model; the table may show the owner too.
    page = results.page(
        number,
        per_page,
        select_related=("ml_model", "owner") if as_table else ("ml_model",),
        headline=not as_table,
    )
    table.decorate(page.object_list)
    ml_models = list(MLModel.objects.only("pk", "name", "slug"))
    params = request.GET.copy()
    params.pop("page", None)
    suggestion = results.suggestion() if q and not page.object_list else None
    sorts, sort_selected = table.sort_options(q, sort)
    context = {
        "page": page,
        "results": results,
        "q": q,
        "sort": sort,
        "sorts": sorts,
        "sort_selected": sort_selected,
        "per_page": per_page,
        "page_sizes": PAGE_SIZES,
        # The chosen filters, every one named (a missing key costs the template a
        # failed lookup each time it is compared).
        "filters": {key: request.GET.get(key) for key in FILTER_SELECTS},
        "filter_errors": filtered.errors,
        "querystring": params.urlencode(),
        "search_form_state": table.hidden_state(request.GET, leave_out=SEARCH_FORM_FIELDS),
        "as_table": as_table,
        "view_links": table.view_links(request.GET),
        "facets": _facets(results, request.GET, ml_models),
        "suggestion": suggestion,
        "suggestion_link": table.link(request.GET, q=suggestion) if suggestion else "",
        "ml_models": ml_models,
        "severities": _choices(Severity),
        "statuses": _choices(FindingStatus),
        "risk_categories": _choices(RiskCategory),
        "chosen_tags": [t for t in request.GET.getlist("tag") if t.strip()],
        "limit": results.limit,
    }
    if as_table:
        context.update(table.context(request, page, sort))
    elif kept is not None and (page.object_list or not q):
        # A search that finds nothing may suggest a word from the search's word list,
        # which the version does not cover: that page is always rendered afresh.
        context["body_html"] = render_to_string("catalog/_catalog_body.html", context)
        BODIES.put(*kept, freshness.Page(context["body_html"], "text/html"))
    return render(request, "catalog/finding_list.html", context)


@role_required("catalog.view_finding")
@require_POST
def finding_bulk(request):
    """Assign an owner to, or add a tag to, the findings ticked in the catalog's table.

    Each finding is changed through the domain's edit path, under the rule of its edit page;
    the ones refused are listed by title with the reason. Ids that are not whole numbers
    are a 400 and change nothing. Back to the same list, its state kept."""
    back = table.back_url(request.POST.get("state", ""))
    try:
        change = table.BulkChange.from_post(request.POST)
    except hygiene.InputError as exc:
        return HttpResponseBadRequest(
            f"Nothing was changed: {exc}", content_type="text/plain; charset=utf-8"
        )
    if change.missing:
        messages.error(request, change.missing)
        return redirect(back)
    change.apply(by=request.user)
    if change.summary():
        messages.success(request, change.summary())
    if change.unchanged:
        n = len(change.unchanged)
        messages.info(request, f"{n} finding{'s' if n != 1 else ''} already had it.")
    for title, reason in change.refused:
        messages.error(request, f"“{title}” was not changed: {reason}")
    return redirect(back)


def _save_finding(request, form, parts):
    """Save the finding form and its parts (probes) in one transaction, or nothing.

    1. The form and every part are checked first (a part against the unsaved finding),
       so that every error shows beside its field at once.
    2. The finding, its tags and each part are saved in one transaction; a part that
       still refuses (its model's rules, checked again on save) undoes it all.
    Returns the finding, or None when something was refused.
    """
    valid = form.is_valid()
    draft = form.instance
    valid = all([part.is_valid(draft) for part in parts]) and valid  # noqa: C419 (every part shows its errors)
    if not valid:
        return None
    try:
        with transaction.atomic():
            if draft.reporter_id is None:
                draft.reporter = request.user
            finding = form.save()
            for part in parts:
                part.save(finding, by=request.user)
    except ValidationError:
        # Rolled back: the finding shown again is still a new one.
        form.instance.pk, form.instance._state.adding = None, True
        return None
    return finding


@role_required("catalog.add_finding")
def finding_create(request):
    data = request.POST if request.method == "POST" else None
    form = FindingForm(data, initial={"owner": request.user})
    parts = parts_of_finding_form(data, request.user)
    if data is not None:
        finding = _save_finding(request, form, parts)
        if finding is not None:
            added = sum(getattr(part, "saved", 0) for part in parts)
            more = f" with {added} probe{'s' if added != 1 else ''}" if added else ""
            messages.success(request, f"Finding “{finding.title}” logged{more}.")
            return redirect(finding)
    return render(
        request, "catalog/finding_form.html", {"form": form, "parts": parts, "creating": True}
    )


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
@require_GET
def slice_text(request):
    """What the slice builder shows beside the slice field: `text` (slice text) or `slice`
    (JSON predicates) read and written back both ways (slices.parse / slices.describe),
    with the columns that the chosen `dataset` lacks. The one reader and writer of slice
    text stays on the server; the page only asks it."""
    text, raw = request.GET.get("text"), request.GET.get("slice")
    try:
        if raw is not None:
            predicates = json.loads(raw)
            if not isinstance(predicates, list) or not all(isinstance(p, dict) for p in predicates):
                raise slices.ProbeDefinitionError("A slice is a list of predicates.")
            text = slices.describe(predicates) if predicates else ""
        else:
            predicates = slices.parse(text or "")
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        return JsonResponse(
            {
                "error": str(exc) or "The slice cannot be read.",
                "position": getattr(exc, "position", None),
            }
        )
    missing = []
    dataset_id = request.GET.get("dataset", "")
    if dataset_id.isdigit():
        dataset = Dataset.objects.defer("preview").filter(pk=dataset_id).first()
        if dataset is not None:
            columns = set(dataset.column_names)
            missing = sorted({p.get("feature") for p in predicates} - columns, key=str)
    return JsonResponse({"slice": predicates, "text": text, "missing": missing})


@role_required("catalog.view_finding")
def finding_detail(request, pk):
    finding = get_object_or_404(
        Finding.objects.select_related("ml_model", "model_version", "dataset", "owner", "reporter"),
        pk=pk,
    )
    return render(
        request,
        "catalog/finding_detail.html",
        {
            "finding": finding,
            "transitions": finding.allowed_transitions(request.user),
            "history": AuditEvent.objects.for_object(finding).select_related("actor")[:50],
            "can_edit": request.user.has_perm("catalog.change_finding"),
            "can_mark_key_lesson": request.user.has_perm("catalog.review_finding"),
        },
    )


@role_required("catalog.view_finding")
@require_POST
def finding_transition(request, pk):
    finding = get_object_or_404(Finding, pk=pk)
    try:
        finding.transition_to(
            request.POST.get("to", ""),
            by=request.user,
            note=request.POST.get("note", ""),
            expected=request.POST.get("from") or None,
            expires_on=request.POST.get("expires_on") or None,
        )
    except TransitionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Finding moved to {finding.get_status_display()}.")
    return redirect(finding)


@role_required("catalog.review_finding")
@require_POST
def finding_key_lesson(request, pk):
    finding = get_object_or_404(Finding, pk=pk)
    value = request.POST.get("is_key_lesson") == "1"
    finding.set_key_lesson(value, by=request.user)
    messages.success(
        request,
        "Marked as a key lesson: newcomers see it on Start here."
        if value
        else "No longer a key lesson.",
    )
    return redirect(finding)


@role_required("catalog.view_finding")
@require_GET
def export_findings(request, fmt):
    """The catalog page's current result (search and filters) as CSV or JSON: every match,
    newest first."""
    results, _, q, _ = catalog_search(request)
    qs = results.matches.order_by("-created_at", "-pk")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    if fmt == "csv":
        response = HttpResponse(importexport.findings_csv(qs), content_type=CSV_CONTENT_TYPE)
    else:
        response = HttpResponse(importexport.findings_json(qs), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="findings-{stamp}.{fmt}"'
    return response


@role_required("catalog.add_finding")
@require_http_methods(["GET", "POST"])
def import_findings(request):
    """Upload a CSV: "Check" lists every row-level error; "Import" saves all rows or none."""
    form = ImportFindingsForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        commit = "commit" in request.POST
        report = importexport.import_findings_csv(
            hygiene.check_csv(form.cleaned_data["file"]), by=request.user, commit=commit
        )
        if report.committed:
            messages.success(
                request,
                f"Imported {len(report.created)} finding{'s' if len(report.created) != 1 else ''}.",
            )
            return redirect("catalog:finding_list")
    return render(
        request,
        "catalog/import.html",
        {
            "form": form,
            "report": report,
            "columns": importexport.IMPORT_COLUMNS,
        },
    )
