import json

from django.contrib import messages
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from boundary import engine
from catalog.models import Finding
from core.decorators import role_required
from registry.models import ModelVersion

from .choices import ProbeKind, Trigger
from .forms import ProbeForm, RunForm
from .models import Probe, Rerun


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
        messages.success(request, f"Probe #{probe.pk} added: {Probe.first_runs_text(finding)}.")
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
    finding = get_object_or_404(Finding.objects.select_related("ml_model"), pk=finding_pk)
    form = RunForm(request.POST, finding=finding)
    if not form.is_valid():
        messages.error(request, "Nothing queued: " + "; ".join(
            f"{form[f].label}: {' '.join(e)}" for f, e in form.errors.items()))
        return redirect(finding.get_absolute_url() + "#probes")
    version, probes = form.cleaned_data["model_version"], form.probes()
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
