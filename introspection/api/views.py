from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from catalog.api.serializers import FindingSerializer
from registry.models import ModelVersion

from ..models import ScanDismissal, SliceScan
from . import serializers as s


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
        "dismiss": ["catalog.add_finding"],
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
        return Response(
            FindingSerializer(finding, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=s.DismissCandidateSerializer, responses={201: s.ScanDismissalSerializer})
    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        """Dismiss a candidate with a reason: later scans of this ML model on this dataset
        leave out its slice and any candidate whose rows overlap it with Jaccard >= 0.5;
        answers 201 with the dismissal (POST scan-dismissals/{id}/restore/ lifts it)."""
        scan = self.get_object()
        body = s.DismissCandidateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        dismissal = ScanDismissal.dismiss(
            scan,
            body.validated_data["candidate"] - 1,
            by=request.user,
            reason=body.validated_data["reason"],
        )
        return Response(s.ScanDismissalSerializer(dismissal).data, status=status.HTTP_201_CREATED)


class ScanDismissalViewSet(viewsets.ReadOnlyModelViewSet):
    """Dismissed scan candidates, per ML model and dataset; restore lifts one (the record
    stays, marked lifted)."""

    queryset = ScanDismissal.objects.all()
    serializer_class = s.ScanDismissalSerializer
    filterset_fields = ["ml_model", "dataset", "scan"]
    action_permissions = {
        "list": ["probes.view_probe"],
        "retrieve": ["probes.view_probe"],
        "restore": ["catalog.add_finding"],
    }

    @extend_schema(request=s.RestoreDismissalSerializer, responses={200: s.ScanDismissalSerializer})
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        """Lift the dismissal: later scans show the candidate again."""
        dismissal = self.get_object()
        body = s.RestoreDismissalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        dismissal.lift(by=request.user, note=body.validated_data["note"])
        return Response(s.ScanDismissalSerializer(dismissal).data)


class VersionScanViewSet(viewsets.GenericViewSet):
    """`model-versions/{id}/scan/`: the registry's resource, introspection's operation."""

    queryset = ModelVersion.objects.select_related("ml_model")
    serializer_class = s.SliceScanSerializer
    action_permissions = {"scan": ["probes.run_probe"]}

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
                version,
                data["dataset"],
                by=request.user,
                top_k=data["top_k"],
                max_predicates=data["max_predicates"],
                min_support=data["min_support"],
            )
        scan.refresh_from_db()
        return Response(s.SliceScanSerializer(scan).data, status=status.HTTP_202_ACCEPTED)
