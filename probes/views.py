import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from boundary import engine, slices
from catalog.models import Finding
from core.decorators import role_required
from core.models import AuditEvent
from core.workflow import TransitionError
from registry.models import ModelVersion

from .choices import ProbeKind, Trigger
from .forms import ProbeForm, ProbeRevisionForm, RetireForm, RunForm
from .models import Probe, ProbeRun, Rerun
from .templatetags.probes_tags import probe_chart
from .templatetags.run_details import run_insight


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
    return _probe_form_page(request, form, finding)


def _probe_form_page(request, form, finding, probe=None):
    defaults = {kind: engine.default_params(kind) for kind in engine.PROBE_KINDS}
    return render(
        request,
        "probes/probe_form.html",
        {
            "form": form,
            "finding": finding,
            "probe": probe,
            "defaults_json": json.dumps(defaults),
            "comparators_json": json.dumps(engine.DEFAULT_COMPARATOR),
        },
    )


def _changeable_probe(request, pk):
    """The probe, or a redirect to its finding with the reason `request.user` may not
    revise or retire it (Probe.change_refusal); the model checks again under its lock."""
    probe = get_object_or_404(Probe.objects.select_related("finding", "dataset"), pk=pk)
    refusal = None if request.user.is_superuser else probe.change_refusal(request.user)
    if refusal:
        messages.error(request, refusal)
        return probe, redirect(probe.get_absolute_url())
    return probe, None


@role_required("probes.view_probe")
def probe_revise(request, pk):
    """Revise a probe: its definition prefilled; the revision supersedes it (Probe.revise)."""
    probe, refused = _changeable_probe(request, pk)
    if refused:
        return refused
    form = ProbeRevisionForm(request.POST or None, probe=probe)
    if request.method == "POST" and form.is_valid():
        try:
            revision = probe.revise(form.changes(), by=request.user, note=form.cleaned_data["note"])
        except TransitionError as exc:
            form.add_error(None, str(exc))
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request,
                f"Probe #{revision.pk} revises probe #{probe.pk}, which "
                f"is retired with its runs: {Probe.first_runs_text(probe.finding)}.",
            )
            return redirect(revision.get_absolute_url())
    return _probe_form_page(request, form, probe.finding, probe=probe)


@role_required("probes.view_probe")
@require_POST
def probe_retire(request, pk):
    """Retire a probe with a note (Probe.retire); its runs stay on the finding's page."""
    probe, refused = _changeable_probe(request, pk)
    if refused:
        return refused
    form = RetireForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Not retired: retiring a probe needs a note, why it no longer applies."
        )
        return redirect(probe.get_absolute_url())
    try:
        probe.retire(by=request.user, note=form.cleaned_data["note"])
    except TransitionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Probe #{probe.pk} is retired; its runs are kept.")
    return redirect(probe.get_absolute_url())


@role_required("probes.run_probe")
@require_POST
def finding_run(request, finding_pk):
    """Run now: a finding's active probes (or one of them) on a chosen version."""
    finding = get_object_or_404(Finding.objects.select_related("ml_model"), pk=finding_pk)
    form = RunForm(request.POST, finding=finding)
    if not form.is_valid():
        messages.error(
            request,
            "Nothing queued: "
            + "; ".join(f"{form[f].label}: {' '.join(e)}" for f, e in form.errors.items()),
        )
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


def everywhere_rows(probe, also_on, versions, latest):
    """Per version, newest first, the latest run on the probe's own dataset and on each of
    its `also_on` datasets (ProbeRun.objects.matrix and also_matrix): [{version, cells}],
    only the versions it ran on."""
    elsewhere = ProbeRun.objects.also_matrix([probe], versions)
    rows = []
    for version in reversed(versions):
        found = {r.dataset_id: r for r in elsewhere.get((probe.pk, version.pk), [])}
        cells = [latest.get((probe.pk, version.pk))] + [found.get(d.pk) for d in also_on]
        if any(cells):
            rows.append({"version": version, "cells": cells})
    return rows


@role_required("probes.view_probe")
def probe_detail(request, pk):
    """A probe's own page.

    1. Its definition in words: kind, slice (slices.describe), parameters, the pass rule,
       the decision rule, minimum rows, its dataset and finding, the probe it revises or
       that revises it, and why it was retired.
    2. Its value across its ML model's versions (the latest run on each) as a chart.
    3. Inside those latest runs, newest version first: an ensemble's components and a
       feature interaction's surface, as their details store them.
    4. With `also_on` datasets: its latest run on each dataset, per version.
    5. Every run it has had, oldest version first, each with its dataset and its anchor
       `run-N`.
    6. Its history: the audit events of the probe, with what each changed.
    """
    probe = get_object_or_404(
        Probe.objects.select_related(
            "finding__ml_model", "dataset", "supersedes", "retired_by", "created_by"
        ),
        pk=pk,
    )
    versions = list(probe.finding.ml_model.versions.order_by("registered_at", "pk"))
    latest = ProbeRun.objects.matrix([probe], versions)
    chart = probe_chart(probe, versions, [latest.get((probe.pk, v.pk)) for v in versions])
    insights = [
        insight
        for v in reversed(versions)
        if (insight := run_insight(latest.get((probe.pk, v.pk)), v, probe.kind)) is not None
    ]
    # In the order of the versions, then of the runs' ids: a table of everything that ran,
    # not a choice of the latest (that is ProbeRun.objects.latest_runs, the chart's).
    position = {v.pk: i for i, v in enumerate(versions)}
    runs = sorted(
        probe.runs.select_related("model_version", "dataset"),
        key=lambda run: (position.get(run.model_version_id, len(position)), run.pk),
    )
    also_on = sorted(probe.also_on.all(), key=lambda d: d.pk)
    return render(
        request,
        "probes/probe_detail.html",
        {
            "probe": probe,
            "finding": probe.finding,
            "slice_text": slices.describe(probe.slice),
            "superseded_by": Probe.objects.filter(supersedes=probe).first(),
            "chart": chart,
            "insights": insights,
            "runs": runs,
            "also_on": also_on,
            "everywhere": everywhere_rows(probe, also_on, versions, latest) if also_on else [],
            "history": AuditEvent.objects.for_object(probe)
            .select_related("content_type")
            .order_by("created_at", "pk"),
            "changeable": probe.active and probe.may_change(request.user),
        },
    )
