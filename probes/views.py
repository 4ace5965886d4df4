import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from catalog.models import Finding
from config.decorators import role_required
from remediation.models import AuditEvent

from . import engine
from .choices import ProbeKind, Trigger
from .forms import DatasetUploadForm, MLModelForm, ModelVersionForm, ProbeForm
from .models import Dataset, MLModel, ModelVersion, Rerun

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
            probe.run_on_baseline(request.user)
        messages.success(
            request,
            f"Probe #{probe.pk} added: it runs now on the version where the finding was "
            "discovered, and on every new version.",
        )
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
