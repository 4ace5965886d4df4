import django_filters
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from registry.models import ModelVersion

from ..choices import Trigger
from ..models import Probe, ProbeRun, Rerun
from . import serializers as s


class ProbeViewSet(viewsets.ModelViewSet):
    queryset = Probe.objects.select_related("dataset", "finding")
    serializer_class = s.ProbeSerializer
    filterset_fields = ["finding", "dataset", "kind", "active", "supersedes"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    # Revising and retiring check their own rules (Probe.change_refusal): on a settled
    # finding they are a reviewer's, who does not log probes.
    action_permissions = {
        "run": ["probes.run_probe"],
        "revise": ["probes.view_probe"],
        "retire": ["probes.view_probe"],
    }

    def perform_create(self, serializer):
        with transaction.atomic():
            probe = serializer.save(created_by=self.request.user)
            probe.start_history(self.request.user)

    def check_object_permissions(self, request, obj):
        """Who may revise or retire is answered (403) before what they send is read."""
        super().check_object_permissions(request, obj)
        if self.action in ("revise", "retire") and not obj.may_change(request.user):
            raise PermissionDenied(obj.change_refusal(request.user))

    def perform_update(self, serializer):
        """Probe.edit: a definition with runs answers 409 naming `revise`, `active` 409
        naming `retire`."""
        serializer.instance.edit(dict(serializer.validated_data), by=self.request.user)

    @extend_schema(request=s.ProbeRevisionSerializer, responses={201: s.ProbeSerializer})
    @action(detail=True, methods=["post"])
    def revise(self, request, pk=None):
        """A new probe with this probe's definition and the changed fields, which supersedes
        it; this probe is retired, its runs kept. Answers 201 with the new probe."""
        probe = self.get_object()
        body = s.ProbeRevisionSerializer(probe, data=request.data)
        body.is_valid(raise_exception=True)
        revision = probe.revise(body.changes(), by=request.user, note=body.validated_data["note"])
        return Response(s.ProbeSerializer(revision).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.RetireSerializer, responses={200: s.ProbeSerializer})
    @action(detail=True, methods=["post"])
    def retire(self, request, pk=None):
        """Deactivate this probe with a note; its runs stay."""
        probe = self.get_object()
        body = s.RetireSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        probe.retire(by=request.user, note=body.validated_data["note"])
        return Response(s.ProbeSerializer(probe).data)

    @extend_schema(request=s.RunRequestSerializer, responses={202: s.ProbeRunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Run this probe now on one model version; answers 202 with the queued run."""
        probe = self.get_object()
        body = s.RunRequestSerializer(data=request.data, context={"probe": probe})
        body.is_valid(raise_exception=True)
        version = body.validated_data["model_version"]
        rerun = Rerun.queue(version, trigger=Trigger.MANUAL, by=request.user, probes=[probe])
        run = get_object_or_404(ProbeRun, rerun=rerun, probe=probe)
        return Response(s.ProbeRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class ProbeRunFilterSet(django_filters.FilterSet):
    latest = django_filters.BooleanFilter(
        method="filter_latest",
        label="Only the latest run of each probe on each model version and dataset (its "
        "newest finished run), as the finding page and the follow-up read them.",
    )

    class Meta:
        model = ProbeRun
        fields = ["probe", "dataset", "model_version", "status", "trigger", "rerun"]

    def filter_latest(self, queryset, name, value):
        return queryset.latest_runs(everywhere=True) if value else queryset


class ProbeRunViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ProbeRun.objects.select_related("probe", "model_version")
    serializer_class = s.ProbeRunSerializer
    filterset_class = ProbeRunFilterSet


class RerunViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Rerun.objects.select_related("model_version")
    serializer_class = s.RerunSerializer
    filterset_fields = ["model_version", "trigger"]


class VersionRunViewSet(viewsets.GenericViewSet):
    """`model-versions/{id}/run/`: the registry's resource, the probes app's operation."""

    queryset = ModelVersion.objects.select_related("ml_model")
    serializer_class = s.RerunSerializer
    action_permissions = {"run": ["probes.run_probe"]}

    @extend_schema(request=None, responses={202: s.RerunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Rerun every active probe of this version's ML model now."""
        version = self.get_object()
        rerun = Rerun.queue(version, trigger=Trigger.MANUAL, by=request.user)
        return Response(s.RerunSerializer(rerun).data, status=status.HTTP_202_ACCEPTED)
