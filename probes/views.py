import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from catalog.models import Finding
from config.decorators import role_required
from remediation.models import AuditEvent

from . import engine
from .choices import ProbeKind, Trigger
from .forms import DatasetUploadForm, MLModelForm, ModelVersionForm, ProbeForm
from .models import Dataset, MLModel, ModelVersion, Probe, Rerun

PREVIEW_ROWS = 20


def _form_errors(form, exc):
    """Copy a model ValidationError onto the form, field by field where it names one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error.messages)
    else:
        form.add_error(None, exc.messages)


@role_required("probes.view_mlmodel")
def mlmodel_list(request):
    models = MLModel.objects.annotate(
        n_versions=Count("versions", distinct=True), n_findings=Count("findings", distinct=True)
    )
    return render(request, "probes/mlmodel_list.html", {"ml_models": models})


@role_required("probes.add_mlmodel")
def mlmodel_create(request):
    form = MLModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ml_model = form.save()
        messages.success(request, f"ML model {ml_model.name} created.")
        return redirect(ml_model)
    return render(request, "probes/mlmodel_form.html", {"form": form})


@role_required("probes.view_mlmodel")
def mlmodel_detail(request, slug):
    ml_model = get_object_or_404(MLModel, slug=slug)
    versions = ml_model.versions.select_related("registered_by", "training_dataset")
    findings = ml_model.findings.select_related("model_version").order_by("-created_at")
    return render(
        request,
        "probes/mlmodel_detail.html",
        {
            "ml_model": ml_model,
            "versions": versions,
            "findings": findings[:50],
        },
    )


@role_required("probes.add_modelversion")
def version_register(request, slug):
    ml_model = get_object_or_404(MLModel, slug=slug)
    form = ModelVersionForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            version = ModelVersion.register(
                ml_model=ml_model,
                version=form.cleaned_data["version"],
                artifact=form.cleaned_data["artifact"],
                training_dataset=form.cleaned_data["training_dataset"],
                notes=form.cleaned_data["notes"],
                by=request.user,
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"{version} registered; its probes are queued for a rerun.")
            return redirect(version)
    return render(request, "probes/version_form.html", {"form": form, "ml_model": ml_model})


@role_required("probes.view_modelversion")
def version_detail(request, pk):
    version = get_object_or_404(
        ModelVersion.objects.select_related("ml_model", "registered_by", "training_dataset"),
        pk=pk,
    )
    runs = version.runs.select_related("probe__finding", "probe__dataset").order_by(
        "probe__finding_id", "probe_id", "-created_at"
    )
    reruns = version.reruns.all()[:10]
    return render(
        request,
        "probes/version_detail.html",
        {
            "version": version,
            "runs": runs,
            "reruns": reruns,
            "history": AuditEvent.objects.for_object(version).select_related("actor")[:50],
        },
    )


@role_required("probes.view_dataset")
def dataset_list(request):
    return render(
        request,
        "probes/dataset_list.html",
        {"datasets": Dataset.objects.select_related("uploaded_by")},
    )


@role_required("probes.add_dataset")
def dataset_upload(request):
    form = DatasetUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            dataset = Dataset.create_from_upload(
                data["file"],
                name=data["name"],
                version=data["version"],
                target_column=data["target_column"],
                description=data["description"],
                sensitive_columns=data["sensitive_columns"],
                ignored_columns=data["ignored_columns"],
                by=request.user,
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Dataset {dataset} stored ({dataset.row_count} rows).")
            return redirect(dataset)
    return render(request, "probes/dataset_form.html", {"form": form})


@role_required("probes.view_dataset")
def dataset_detail(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    preview, preview_error = None, ""
    try:
        frame = dataset.read().head(PREVIEW_ROWS)
    except Exception as exc:  # a missing or altered file is shown, not raised
        preview_error = str(exc)
    else:
        # Sensitive columns are used in computations but never shown row by row.
        hidden = set(dataset.sensitive_columns)
        columns = [c for c in frame.columns if c not in hidden]
        preview = {
            "columns": columns,
            "hidden": sorted(hidden),
            "rows": frame[columns].astype(object).where(frame[columns].notna(), "").values.tolist(),
        }
    return render(
        request,
        "probes/dataset_detail.html",
        {
            "dataset": dataset,
            "preview": preview,
            "preview_error": preview_error,
            "history": AuditEvent.objects.for_object(dataset).select_related("actor")[:50],
        },
    )


@role_required("probes.view_dataset")
def dataset_columns(request, pk):
    """The schema the slice builder offers: names, kinds, and a few values per column."""
    dataset = get_object_or_404(Dataset, pk=pk)
    return JsonResponse(
        {
            "id": dataset.pk,
            "target_column": dataset.target_column,
            "columns": [
                {"name": c["name"], "kind": c["kind"], "dtype": c["dtype"]} for c in dataset.columns
            ],
        }
    )


@role_required("probes.add_probe")
def probe_create(request, finding_pk):
    """A probe for a finding: kind, slice pre-filled from the finding, defaults shown."""
    finding = get_object_or_404(Finding.objects.select_related("dataset"), pk=finding_pk)
    initial = {
        "kind": ProbeKind.SLICE_ERROR_RATE,
        "dataset": finding.dataset_id,
        "slice": finding.slice,
        "params": engine.default_params(ProbeKind.SLICE_ERROR_RATE),
        "comparator": engine.DEFAULT_COMPARATOR[ProbeKind.SLICE_ERROR_RATE],
    }
    form = ProbeForm(request.POST or None, initial=initial, finding=finding)
    if request.method == "POST" and form.is_valid():
        form.instance.created_by = request.user
        with transaction.atomic():
            probe = form.save()
            probe.start_history(request.user)
        messages.success(request, f"Probe #{probe.pk} added: {_first_runs(finding)}.")
        return redirect(finding.get_absolute_url() + "#probes")
    defaults = {kind: engine.default_params(kind) for kind in engine.PROBE_KINDS}
    return render(request, "probes/probe_form.html", {
        "form": form,
        "finding": finding,
        "defaults_json": json.dumps(defaults),
        "comparators_json": json.dumps(engine.DEFAULT_COMPARATOR),
    })


@role_required("probes.run_probe")
@require_POST
def finding_run(request, finding_pk):
    """Run now: a finding's active probes (or one of them) on a chosen version."""
    finding = get_object_or_404(Finding, pk=finding_pk)
    version = get_object_or_404(
        ModelVersion, pk=request.POST.get("model_version") or 0, ml_model_id=finding.ml_model_id
    )
    probes = finding.probes.filter(active=True)
    if request.POST.get("probe"):
        probes = finding.probes.filter(pk=request.POST["probe"])
    probes = list(probes)
    if not probes:
        messages.error(request, "This finding has no active probe to run.")
        return redirect(finding.get_absolute_url() + "#probes")
    with transaction.atomic():
        Rerun.queue(version, trigger=Trigger.MANUAL, by=request.user, probes=probes)
    messages.success(request, f"{len(probes)} probe(s) queued on {version}.")
    return redirect(finding.get_absolute_url() + "#probes")


@role_required("probes.run_probe")
@require_POST
def version_run(request, pk):
    """Run now: every active probe of the ML model on this version."""
    version = get_object_or_404(ModelVersion, pk=pk)
    with transaction.atomic():
        rerun = Rerun.queue(version, trigger=Trigger.MANUAL, by=request.user)
    messages.success(request, f"{rerun.runs.count()} probe(s) queued on {version}.")
    return redirect(version)


@role_required("probes.view_proberun")
def rerun_progress(request, pk):
    rerun = get_object_or_404(Rerun, pk=pk)
    return JsonResponse({"id": rerun.pk, **rerun.progress()})


# --------------------------------------------------------------------------------------
# Offline introspection: slice scans, boundary maps, stress sweeps, sensitive columns.
# Computations (scan, map, sweep) need the run_probe permission; logging findings and
# probes needs the contributor's add permissions; every role may look.
# --------------------------------------------------------------------------------------


def _first_runs(finding):
    """Where a new probe of `finding` runs (Probe.first_versions), in words."""
    versions = Probe.first_versions(finding)
    if not versions:
        return "it runs on every version registered from now on"
    first = ("the version where the finding was discovered" if finding.model_version_id
             else "the newest version")
    then = ", then on the newest version" if len(versions) > 1 else ""
    return f"it runs now on {first}{then}, and on every new version after"


def _first_error(exc):
    if hasattr(exc, "error_dict"):
        return " ".join(m for errors in exc.error_dict.values() for e in errors for m in e.messages)
    return " ".join(exc.messages)


@role_required("probes.run_probe")
def scan_new(request, pk):
    """Scan for weak slices: choose the dataset (and the scan's bounds), then queue it."""
    from .forms import ScanForm
    from .models import SliceScan

    version = get_object_or_404(ModelVersion.objects.select_related("ml_model"), pk=pk)
    initial = {"dataset": version.training_dataset_id}
    last = SliceScan.objects.filter(model_version__ml_model_id=version.ml_model_id).first()
    if last:
        initial["dataset"] = last.dataset_id
    form = ScanForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                scan = SliceScan.queue(
                    version, data["dataset"], by=request.user, top_k=data["top_k"],
                    max_predicates=data["max_predicates"], min_support=data["min_support"],
                )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Scan of {version} on {scan.dataset} queued.")
            return redirect(scan)
    return render(request, "probes/scan_form.html", {"form": form, "version": version})


@role_required("probes.view_probe")
def scan_detail(request, pk):
    from .forms import LogCandidateForm
    from .models import SliceScan
    from .scan_charts import candidates_chart_svg
    from .scans import suggested_severity, suggested_title

    scan = get_object_or_404(
        SliceScan.objects.select_related("model_version__ml_model", "dataset", "requested_by"),
        pk=pk,
    )
    sensitive = set(scan.dataset.sensitive_columns)
    rows = []
    for i, cand in enumerate(scan.candidates or []):
        form = LogCandidateForm(prefix=f"c{i}", initial={
            "title": suggested_title(cand),
            "severity": suggested_severity(cand),
            "risk_category": "reliability",
            "error_threshold": cand["suggested"]["slice_error_rate"],
            "margin_threshold": cand["suggested"]["margin_density"],
        })
        rows.append({
            "index": i, "number": i + 1, "c": cand, "form": form,
            "sensitive": sorted({p["feature"] for p in cand["slice"]} & sensitive),
        })
    chart = candidates_chart_svg(scan.candidates or [], (scan.overall or {}).get("error_rate", 0))
    return render(request, "probes/scan_detail.html", {
        "scan": scan,
        "rows": rows,
        "chart": mark_safe(chart),  # noqa: S308  (built from numbers, text escaped)
        "can_log": request.user.has_perms(["catalog.add_finding", "probes.add_probe"]),
        "can_scan": request.user.has_perm("probes.run_probe"),
    })


@role_required("probes.view_probe")
def scan_progress(request, pk):
    from .models import SliceScan

    return JsonResponse(get_object_or_404(SliceScan, pk=pk).progress_json())


@role_required("catalog.add_finding", "probes.add_probe")
@require_POST
def scan_log(request, pk, index):
    """Log a candidate as a finding with its two probes, then show the finding."""
    from .forms import LogCandidateForm
    from .models import SliceScan

    scan = get_object_or_404(SliceScan.objects.select_related("model_version", "dataset"), pk=pk)
    form = LogCandidateForm(request.POST, prefix=f"c{index}")
    if not form.is_valid():
        errors = "; ".join(f"{form.fields[f].label or f}: {' '.join(e)}"
                           for f, e in form.errors.items())
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
    from .forms import BoundaryMapForm
    from .models import BoundaryMap
    from .scans import numeric_features

    finding = get_object_or_404(Finding.objects.select_related("dataset", "ml_model"),
                                pk=finding_pk)
    features = numeric_features(finding.dataset) if finding.dataset else []
    form = BoundaryMapForm(request.POST, features=features)
    if not form.is_valid():
        messages.error(request, "Choose two numeric features of the finding's dataset.")
        return redirect(finding.get_absolute_url() + "#boundary-maps")
    try:
        with transaction.atomic():
            queued = BoundaryMap.request(
                finding, form.cleaned_data["feature_x"], form.cleaned_data["feature_y"],
                by=request.user, redraw=bool(request.POST.get("redraw")),
            )
    except ValidationError as exc:
        messages.error(request, _first_error(exc))
    else:
        if queued:
            messages.success(request, f"{len(queued)} boundary map(s) queued.")
        else:
            messages.info(request, "These maps are drawn already for every version.")
    return redirect(finding.get_absolute_url() + "#boundary-maps")


@role_required("probes.view_modelversion")
def map_image(request, pk):
    """A boundary map's PNG, for signed-in readers only (never a public media URL)."""
    from django.http import Http404, HttpResponse

    from .models import BoundaryMap, JobStatus

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
    from .models import FINISHED_JOB_STATUSES, BoundaryMap, StressSweep

    finding = get_object_or_404(Finding, pk=finding_pk)
    maps = BoundaryMap.objects.filter(finding=finding).exclude(status__in=FINISHED_JOB_STATUSES)
    sweeps = StressSweep.objects.filter(finding=finding).exclude(
        status__in=FINISHED_JOB_STATUSES)
    pending = maps.count() + sweeps.count()
    return JsonResponse({
        "pending": pending,
        "finished": pending == 0,
        "text": f"{pending} map(s) or sweep(s) in progress" if pending else "Done",
    })


@role_required("probes.run_probe")
@require_POST
def sweep_request(request, finding_pk):
    from .forms import SweepForm
    from .models import StressSweep

    finding = get_object_or_404(Finding.objects.select_related("dataset", "ml_model"),
                                pk=finding_pk)
    form = SweepForm(request.POST, finding=finding)
    if not form.is_valid():
        messages.error(request, "Nothing queued: " + "; ".join(
            f"{f}: {' '.join(e)}" for f, e in form.errors.items()))
        return redirect(finding.get_absolute_url() + "#stress-sweeps")
    data = form.cleaned_data
    try:
        with transaction.atomic():
            sweep = StressSweep.request(finding, data["kind"], version=data["model_version"],
                                        by=request.user, feature=data["feature"])
    except ValidationError as exc:
        messages.error(request, f"Nothing queued: {_first_error(exc)}")
    else:
        messages.success(request, f"{sweep} queued.")
    return redirect(finding.get_absolute_url() + "#stress-sweeps")


@role_required("probes.add_probe")
@require_POST
def sweep_point_probe(request, pk, index):
    """Save one point of a sweep as a probe of the finding, in one click."""
    from .models import StressSweep

    sweep = get_object_or_404(StressSweep.objects.select_related("finding", "dataset"), pk=pk)
    try:
        probe = sweep.save_point_as_probe(index, by=request.user,
                                          threshold=request.POST.get("threshold"))
    except ValidationError as exc:
        messages.error(request, f"No probe saved: {_first_error(exc)}")
        return redirect(sweep.finding.get_absolute_url() + f"#sweep-{sweep.pk}")
    messages.success(request, f"Probe #{probe.pk} ({probe.get_kind_display().lower()}, "
                              f"≤ {probe.threshold:g}) saved: {_first_runs(sweep.finding)}.")
    return redirect(sweep.finding.get_absolute_url() + f"#probe-{probe.pk}")


@role_required("probes.add_dataset")
@require_POST
def dataset_sensitive(request, pk):
    """Change which columns of a dataset are sensitive (metadata only)."""
    from .forms import SensitiveColumnsForm
    from .scans import mark_sensitive

    dataset = get_object_or_404(Dataset, pk=pk)
    form = SensitiveColumnsForm(request.POST, dataset=dataset)
    if not form.is_valid():
        messages.error(request, "Nothing changed: " + "; ".join(
            " ".join(e) for e in form.errors.values()))
        return redirect(dataset)
    try:
        changed = mark_sensitive(dataset, form.cleaned_data["sensitive_columns"],
                                 by=request.user)
    except ValidationError as exc:
        messages.error(request, f"Nothing changed: {_first_error(exc)}")
    else:
        shown = ", ".join(dataset.sensitive_columns) or "none"
        messages.success(request, f"Sensitive columns: {shown}." if changed
                         else "The sensitive columns were already these.")
    return redirect(dataset)
