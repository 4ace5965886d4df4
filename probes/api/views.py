from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from catalog.api.serializers import FindingSerializer

from ..choices import Trigger
from ..models import Dataset, MLModel, ModelVersion, Probe, ProbeRun, Rerun, SliceScan
from . import serializers as s


class MLModelViewSet(viewsets.ModelViewSet):
    queryset = MLModel.objects.all()
    serializer_class = s.MLModelSerializer
    filterset_fields = ["task", "slug"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]


class DatasetViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Dataset.objects.select_related("uploaded_by")
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    filterset_fields = ["name", "version", "sha256"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return s.DatasetUpdateSerializer
        return s.DatasetSerializer


class ModelVersionViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    queryset = ModelVersion.objects.select_related("ml_model")
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    filterset_fields = ["ml_model", "version", "artifact_sha256"]
    http_method_names = ["get", "post", "patch", "head", "options"]
    action_permissions = {"run": ["probes.run_probe"], "scan": ["probes.run_probe"]}

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return s.ModelVersionUpdateSerializer
        return s.ModelVersionSerializer

    @extend_schema(request=None, responses={202: s.RerunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Rerun every active probe of this version's ML model now."""
        version = self.get_object()
        rerun = Rerun.queue(version, trigger=Trigger.MANUAL, by=request.user)
        return Response(s.RerunSerializer(rerun).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.ScanRequestSerializer, responses={202: s.SliceScanSerializer})
    @action(detail=True, methods=["post"])
    def scan(self, request, pk=None):
        """Scan this version for weak slices on a dataset; answers 202 with the queued scan
        (GET scans/{id}/ for its progress and candidates)."""
        version = self.get_object()
        body = s.ScanRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        with transaction.atomic():
            scan = SliceScan.queue(
                version, data["dataset"], by=request.user, top_k=data["top_k"],
                max_predicates=data["max_predicates"], min_support=data["min_support"],
            )
        scan.refresh_from_db()
        return Response(s.SliceScanSerializer(scan).data, status=status.HTTP_202_ACCEPTED)


class ProbeViewSet(viewsets.ModelViewSet):
    queryset = Probe.objects.select_related("dataset", "finding")
    serializer_class = s.ProbeSerializer
    filterset_fields = ["finding", "dataset", "kind", "active"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    action_permissions = {"run": ["probes.run_probe"]}

    def perform_create(self, serializer):
        with transaction.atomic():
            probe = serializer.save(created_by=self.request.user)
            probe.start_history(self.request.user)

    @extend_schema(request=s.RunRequestSerializer, responses={202: s.ProbeRunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Run this probe now on one model version; answers 202 with the queued run."""
        probe = self.get_object()
        body = s.RunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = body.validated_data["model_version"]
        if version.ml_model_id != probe.finding.ml_model_id:
            return Response(
                {"model_version": [f"{version} is not a version of {probe.finding.ml_model}."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        rerun = Rerun.queue(version, trigger=Trigger.MANUAL, by=request.user, probes=[probe])
        run = get_object_or_404(ProbeRun, rerun=rerun, probe=probe)
        return Response(s.ProbeRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class ProbeRunViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ProbeRun.objects.select_related("probe", "model_version")
    serializer_class = s.ProbeRunSerializer
    filterset_fields = ["probe", "model_version", "status", "trigger", "rerun"]


class RerunViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Rerun.objects.select_related("model_version")
    serializer_class = s.RerunSerializer
    filterset_fields = ["model_version", "trigger"]


class ScanViewSet(viewsets.ReadOnlyModelViewSet):
    """Weak-slice scans: progress while they run, then their candidates, best first."""

    queryset = SliceScan.objects.select_related("model_version", "dataset")
    serializer_class = s.SliceScanSerializer
    filterset_fields = ["model_version", "dataset", "status"]
    # Scans have no permissions of their own: reading them is reading probes; logging a
    # candidate creates a finding and its probes.
    action_permissions = {
        "list": ["probes.view_probe"],
        "retrieve": ["probes.view_probe"],
        "log": ["catalog.add_finding", "probes.add_probe"],
    }

    @extend_schema(request=s.LogCandidateSerializer, responses={201: FindingSerializer})
    @action(detail=True, methods=["post"])
    def log(self, request, pk=None):
        """Log a candidate as a finding with a slice error rate and a margin density probe
        (suggested thresholds unless given); answers 201 with the finding."""
        scan = self.get_object()
        body = s.LogCandidateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        index = data.pop("candidate") - 1
        finding = scan.log_finding(index, by=request.user, **data)
        return Response(FindingSerializer(finding, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)
