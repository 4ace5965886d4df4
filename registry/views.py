"""Pages of the registry: ML models, their versions and deployments, datasets."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.decorators import role_required
from core.forms import copy_errors
from core.models import AuditEvent

from .forms import DatasetUploadForm, DeploymentForm, MLModelForm, ModelVersionForm
from .models import Dataset, DatasetDrift, Deployment, MLModel, ModelVersion


@role_required("registry.view_mlmodel")
def mlmodel_list(request):
    models = MLModel.objects.annotate(
        n_versions=Count("versions", distinct=True), n_findings=Count("findings", distinct=True)
    )
    return render(request, "registry/mlmodel_list.html", {"ml_models": models})


@role_required("registry.add_mlmodel")
def mlmodel_create(request):
    form = MLModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ml_model = form.save()
        messages.success(request, f"ML model {ml_model.name} created.")
        return redirect(ml_model)
    return render(request, "registry/mlmodel_form.html", {"form": form})


@role_required("registry.view_mlmodel")
def mlmodel_detail(request, slug):
    ml_model = get_object_or_404(MLModel, slug=slug)
    versions = ml_model.versions.select_related("registered_by", "training_dataset")
    findings = ml_model.findings.select_related("model_version").order_by("-created_at")
    return render(
        request,
        "registry/mlmodel_detail.html",
        {
            "ml_model": ml_model,
            "versions": versions,
            "findings": findings[:50],
            "deployments": ml_model.deployments.select_related("model_version", "recorded_by")[:50],
            "deployment_form": DeploymentForm(ml_model=ml_model),
        },
    )


@role_required("registry.add_deployment")
@require_POST
def deployment_create(request, slug):
    """Record that a version serves in an environment (ends the one it replaces)."""
    ml_model = get_object_or_404(MLModel, slug=slug)
    form = DeploymentForm(request.POST, ml_model=ml_model)
    if form.is_valid():
        try:
            deployment = Deployment.record(
                model_version=form.cleaned_data["model_version"],
                environment=form.cleaned_data["environment"],
                since=form.cleaned_data["since"],
                note=form.cleaned_data["note"],
                by=request.user,
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Recorded: {deployment}.")
    else:
        messages.error(
            request,
            "Nothing recorded: "
            + "; ".join(
                f"{form.fields[f].label or f}: {' '.join(e)}" if f in form.fields else " ".join(e)
                for f, e in form.errors.items()
            ),
        )
    return redirect(ml_model.get_absolute_url() + "#deployments")


@role_required("registry.add_modelversion")
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
            copy_errors(form, exc)
        else:
            messages.success(request, f"{version} registered; its probes are queued for a rerun.")
            return redirect(version)
    return render(request, "registry/version_form.html", {"form": form, "ml_model": ml_model})


@role_required("registry.view_modelversion")
def version_detail(request, pk):
    version = get_object_or_404(
        ModelVersion.objects.select_related("ml_model", "registered_by", "training_dataset"),
        pk=pk,
    )
    # Every run, newest first per probe; each probe's standing is its latest run (the
    # probe runs' own rule, reached through the reverse relation).
    runs = list(
        version.runs.select_related("probe__finding", "probe__dataset").order_by(
            "probe__finding_id", "probe_id", "-pk"
        )
    )
    latest = set(version.runs.latest_runs().values_list("pk", flat=True))
    for run in runs:
        run.is_latest = run.pk in latest
    reruns = version.reruns.all()[:10]
    return render(
        request,
        "registry/version_detail.html",
        {
            "version": version,
            "runs": runs,
            "reruns": reruns,
            "history": AuditEvent.objects.for_object(version).select_related("actor")[:50],
        },
    )


@role_required("registry.view_dataset")
def dataset_list(request):
    return render(
        request,
        "registry/dataset_list.html",
        {"datasets": Dataset.objects.select_related("uploaded_by")},
    )


@role_required("registry.add_dataset")
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
            copy_errors(form, exc)
        else:
            messages.success(request, f"Dataset {dataset} stored ({dataset.row_count} rows).")
            return redirect(dataset)
    return render(request, "registry/dataset_form.html", {"form": form})


@role_required("registry.view_dataset")
def dataset_detail(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    preview, preview_error = None, ""
    try:
        # Stored at upload: the page never re-reads the file (sensitive columns left out).
        preview = dataset.page_preview()
    except Exception as exc:  # an older dataset's missing or altered file is shown, not raised
        preview_error = str(exc)
    return render(
        request,
        "registry/dataset_detail.html",
        {
            "dataset": dataset,
            "preview": preview,
            "preview_error": preview_error,
            "history": AuditEvent.objects.for_object(dataset).select_related("actor")[:50],
        },
    )


@role_required("registry.view_dataset")
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


@role_required("registry.add_dataset")
@require_POST
def dataset_profile(request, pk):
    """Queue the profile of a dataset that has none (stored before profiles were kept)."""
    dataset = get_object_or_404(Dataset, pk=pk)
    if dataset.profile is None:
        dataset.queue_profile()
        messages.info(request, f"The profile of {dataset} is being computed; reload in a moment.")
    return redirect(dataset.get_absolute_url() + "#profile")


@role_required("registry.view_dataset")
def dataset_drift(request, pk):
    """Drift of a dataset against a reference of the same schema (?against=id, as in the
    API; ?reference=id is read too): the stored result, worst column first, or the request
    handed to a worker and its progress."""
    dataset = get_object_or_404(Dataset, pk=pk)
    references = [
        d
        for d in Dataset.objects.exclude(pk=dataset.pk).order_by("-created_at", "-pk")
        if not dataset.schema_refusal(d)
    ]
    raw = (request.GET.get("against") or request.GET.get("reference") or "").strip()
    reference = drift = None
    refusal = ""
    if raw:
        if raw.isascii() and raw.isdigit() and len(raw) <= 18:
            reference = Dataset.objects.filter(pk=int(raw)).first()
        if reference is None:
            refusal = "No such dataset."
        else:
            try:
                drift = DatasetDrift.request(dataset, reference, by=request.user)
            except ValidationError as exc:
                refusal = " ".join(exc.messages)
    return render(
        request,
        "registry/dataset_drift.html",
        {
            "dataset": dataset,
            "references": references,
            "reference": reference,
            "drift": drift,
            "refusal": refusal,
        },
    )
