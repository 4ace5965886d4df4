from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from boundary.scan_charts import candidates_chart_svg
from catalog.models import Finding
from core.decorators import role_required
from core.forms import copy_errors
from core.jobs import FINISHED_JOB_STATUSES, JobStatus
from core.roles import MAINTAINER, has_role
from probes.models import Probe
from registry.models import Dataset, ModelVersion

from .forms import BoundaryMapForm, LogCandidateForm, ScanForm, SensitiveColumnsForm, SweepForm
from .models import BoundaryMap, ScanDismissal, SliceScan, StressSweep
from .scans import mark_sensitive, numeric_features, suggested_severity, suggested_title


def _first_error(exc):
    if hasattr(exc, "error_dict"):
        return " ".join(m for errors in exc.error_dict.values() for e in errors for m in e.messages)
    return " ".join(exc.messages)


@role_required("probes.run_probe")
def scan_new(request, pk):
    """Scan for weak slices: choose the dataset (and the scan's bounds), then queue it."""

    version = get_object_or_404(ModelVersion.objects.select_related("ml_model"), pk=pk)
    # The dataset of the ML model's last scan, else an evaluation dataset (ScanForm).
    last = SliceScan.objects.filter(model_version__ml_model_id=version.ml_model_id).first()
    initial = {"dataset": last.dataset_id} if last else {}
    form = ScanForm(request.POST or None, initial=initial, version=version)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                scan = SliceScan.queue(
                    version,
                    data["dataset"],
                    by=request.user,
                    top_k=data["top_k"],
                    max_predicates=data["max_predicates"],
                    min_support=data["min_support"],
                )
        except ValidationError as exc:
            copy_errors(form, exc)
        else:
            messages.success(request, f"Scan of {version} on {scan.dataset} queued.")
            return redirect(scan)
    return render(request, "introspection/scan_form.html", {"form": form, "version": version})


@role_required("probes.view_probe")
def scan_detail(request, pk):
    scan = get_object_or_404(
        SliceScan.objects.select_related("model_version__ml_model", "dataset", "requested_by"),
        pk=pk,
    )
    sensitive = set(scan.dataset.sensitive_columns)
    rows = []
    for i, cand in enumerate(scan.candidates or []):
        form = LogCandidateForm(
            prefix=f"c{i}",
            initial={
                "title": suggested_title(cand),
                "severity": suggested_severity(cand),
                "risk_category": "reliability",
                "error_threshold": cand["suggested"]["slice_error_rate"],
                "margin_threshold": cand["suggested"]["margin_density"],
            },
        )
        rows.append(
            {
                "index": i,
                "number": i + 1,
                "c": cand,
                "form": form,
                "sensitive": sorted({p["feature"] for p in cand["slice"]} & sensitive),
            }
        )
    dismissals = list(
        ScanDismissal.objects.for_scan(scan).select_related("dismissed_by", "lifted_by", "scan")
    )
    by_pk = {d.pk: d for d in dismissals}
    for row in rows:
        row["dismissal"] = by_pk.get(row["c"].get("dismissal"))
    hidden = [dict(h, by=by_pk.get(h["dismissal"])) for h in scan.dismissed_candidates or []]
    chart = candidates_chart_svg(scan.candidates or [], (scan.overall or {}).get("error_rate", 0))
    return render(
        request,
        "introspection/scan_detail.html",
        {
            "scan": scan,
            "rows": rows,
            "chart": mark_safe(chart),  # noqa: S308  (built from numbers, text escaped)
            "can_log": request.user.has_perms(["catalog.add_finding", "probes.add_probe"]),
            "can_dismiss": request.user.has_perm("catalog.add_finding"),
            "dismissals": dismissals,
            "hidden": hidden,
            "can_scan": request.user.has_perm("probes.run_probe"),
            # The traceback of a failure is for those who run the deployment; everyone reads
            # the error itself.
            "show_traceback": has_role(request.user, MAINTAINER),
        },
    )


@role_required("probes.view_probe")
def scan_progress(request, pk):
    return JsonResponse(get_object_or_404(SliceScan, pk=pk).progress_json())


@role_required("catalog.add_finding")
@require_POST
def scan_dismiss(request, pk, index):
    """Dismiss a candidate (with a reason): later scans of this ML model on this dataset
    leave it out."""

    scan = get_object_or_404(SliceScan.objects.select_related("model_version", "dataset"), pk=pk)
    try:
        dismissal = ScanDismissal.dismiss(
            scan, index, by=request.user, reason=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, f"Nothing dismissed. {_first_error(exc)}")
        return redirect(scan.get_absolute_url() + f"#candidate-{index + 1}")
    messages.success(
        request,
        f"Candidate #{index + 1} dismissed: later scans of "
        f"{scan.model_version.ml_model} on {scan.dataset} leave it out.",
    )
    return redirect(scan.get_absolute_url() + f"#dismissal-{dismissal.pk}")


@role_required("catalog.add_finding")
@require_POST
def scan_restore(request, pk, dismissal_pk):
    """Lift a dismissal (it stays listed, marked restored): later scans show it again."""

    scan = get_object_or_404(SliceScan.objects.select_related("model_version", "dataset"), pk=pk)
    dismissal = get_object_or_404(ScanDismissal.objects.for_scan(scan), pk=dismissal_pk)
    try:
        dismissal.lift(by=request.user, note=request.POST.get("note", ""))
    except ValidationError as exc:
        messages.error(request, f"Nothing restored. {_first_error(exc)}")
    else:
        messages.success(
            request,
            f"Restored: later scans show {dismissal.description or 'this candidate'} again.",
        )
    return redirect(scan.get_absolute_url() + f"#dismissal-{dismissal.pk}")


@role_required("catalog.add_finding", "probes.add_probe")
@require_POST
def scan_log(request, pk, index):
    """Log a candidate as a finding with its two probes, then show the finding."""

    scan = get_object_or_404(SliceScan.objects.select_related("model_version", "dataset"), pk=pk)
    form = LogCandidateForm(request.POST, prefix=f"c{index}")
    if not form.is_valid():
        errors = "; ".join(
            f"{form.fields[f].label or f}: {' '.join(e)}" for f, e in form.errors.items()
        )
        messages.error(request, f"Nothing logged. {errors}")
        return redirect(scan.get_absolute_url() + f"#candidate-{index + 1}")
    try:
        finding = scan.log_finding(index, by=request.user, **form.cleaned_data)
    except ValidationError as exc:
        messages.error(request, f"Nothing logged. {_first_error(exc)}")
        return redirect(scan.get_absolute_url() + f"#candidate-{index + 1}")
    first, *then = Probe.first_versions(finding)
    messages.success(
        request,
        f"Finding “{finding.title}” logged with a slice error rate and a margin density "
        f"probe; they run on {first} now{''.join(f', then on {v}' for v in then)}. Edit the "
        "finding to add what you know.",
    )
    return redirect(finding)


@role_required("probes.run_probe")
@require_POST
def finding_maps_request(request, finding_pk):
    """Draw (or redraw) a finding's boundary maps over two features on every version."""

    finding = get_object_or_404(
        Finding.objects.select_related("dataset", "ml_model"), pk=finding_pk
    )
    features = numeric_features(finding.dataset) if finding.dataset else []
    form = BoundaryMapForm(request.POST, features=features)
    if not form.is_valid():
        messages.error(request, "Choose two numeric features of the finding's dataset.")
        return redirect(finding.get_absolute_url() + "#boundary-maps")
    try:
        with transaction.atomic():
            queued = BoundaryMap.request(
                finding,
                form.cleaned_data["feature_x"],
                form.cleaned_data["feature_y"],
                by=request.user,
                redraw=bool(request.POST.get("redraw")),
            )
    except ValidationError as exc:
        messages.error(request, _first_error(exc))
    else:
        if queued:
            messages.success(request, f"{len(queued)} boundary map(s) queued.")
        else:
            messages.info(request, "These maps are drawn already for every version.")
    return redirect(finding.get_absolute_url() + "#boundary-maps")


@role_required("registry.view_modelversion")
def map_image(request, pk):
    """A boundary map's PNG, for signed-in readers only (never a public media URL)."""
    from django.http import Http404, HttpResponse

    m = get_object_or_404(BoundaryMap, pk=pk)
    if m.status != JobStatus.DONE or not m.image.name:
        raise Http404("This map is not drawn yet.")
    try:
        with m.image.open("rb") as handle:
            png = handle.read()  # a map is some 100 kB: no need to stream it
    except FileNotFoundError:
        raise Http404("The map's image file is missing.") from None
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@role_required("probes.view_probe")
def finding_introspection_progress(request, finding_pk):
    """Maps and sweeps of a finding still queued or running (the page reloads at zero)."""

    finding = get_object_or_404(Finding, pk=finding_pk)
    maps = BoundaryMap.objects.filter(finding=finding).exclude(status__in=FINISHED_JOB_STATUSES)
    sweeps = StressSweep.objects.filter(finding=finding).exclude(status__in=FINISHED_JOB_STATUSES)
    pending = maps.count() + sweeps.count()
    return JsonResponse(
        {
            "pending": pending,
            "finished": pending == 0,
            "text": f"{pending} map(s) or sweep(s) in progress" if pending else "Done",
        }
    )


@role_required("probes.run_probe")
@require_POST
def sweep_request(request, finding_pk):
    finding = get_object_or_404(
        Finding.objects.select_related("dataset", "ml_model"), pk=finding_pk
    )
    form = SweepForm(request.POST, finding=finding)
    if not form.is_valid():
        messages.error(
            request,
            "Nothing queued: " + "; ".join(f"{f}: {' '.join(e)}" for f, e in form.errors.items()),
        )
        return redirect(finding.get_absolute_url() + "#stress-sweeps")
    data = form.cleaned_data
    try:
        with transaction.atomic():
            sweep = StressSweep.request(
                finding,
                data["kind"],
                version=data["model_version"],
                by=request.user,
                feature=data["feature"],
            )
    except ValidationError as exc:
        messages.error(request, f"Nothing queued: {_first_error(exc)}")
    else:
        messages.success(request, f"{sweep} queued.")
    return redirect(finding.get_absolute_url() + "#stress-sweeps")


@role_required("probes.add_probe")
@require_POST
def sweep_point_probe(request, pk, index):
    """Save one point of a sweep as a probe of the finding, in one click."""

    sweep = get_object_or_404(StressSweep.objects.select_related("finding", "dataset"), pk=pk)
    try:
        probe = sweep.save_point_as_probe(
            index, by=request.user, threshold=request.POST.get("threshold")
        )
    except ValidationError as exc:
        messages.error(request, f"No probe saved: {_first_error(exc)}")
        return redirect(sweep.finding.get_absolute_url() + f"#sweep-{sweep.pk}")
    where = Probe.first_runs_text(sweep.finding)
    messages.success(
        request,
        f"Probe #{probe.pk} ({probe.get_kind_display().lower()}, "
        f"≤ {probe.threshold:g}) saved: {where}.",
    )
    return redirect(sweep.finding.get_absolute_url() + f"#probe-{probe.pk}")


@role_required("registry.add_dataset")
@require_POST
def dataset_sensitive(request, pk):
    """Change which columns of a dataset are sensitive (metadata only)."""

    dataset = get_object_or_404(Dataset, pk=pk)
    form = SensitiveColumnsForm(request.POST, dataset=dataset)
    if not form.is_valid():
        messages.error(
            request, "Nothing changed: " + "; ".join(" ".join(e) for e in form.errors.values())
        )
        return redirect(dataset)
    try:
        changed = mark_sensitive(dataset, form.cleaned_data["sensitive_columns"], by=request.user)
    except ValidationError as exc:
        messages.error(request, f"Nothing changed: {_first_error(exc)}")
    else:
        shown = ", ".join(dataset.sensitive_columns) or "none"
        messages.success(
            request,
            f"Sensitive columns: {shown}."
            if changed
            else "The sensitive columns were already these.",
        )
    return redirect(dataset)
