from django.core.exceptions import ValidationError
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from core.api.parsers import StrictJSONParser

from ..models import Dataset, DatasetDrift, Deployment, MLModel, ModelVersion
from . import serializers as s

DRIFT_REFUSAL = inline_serializer(
    "DriftRefusal",
    {
        "against": serializers.ListField(child=serializers.CharField(), required=False),
        "reference": serializers.ListField(child=serializers.CharField(), required=False),
    },
)
# `datasets/{id}/drift/`: DESIGN.md's name for the dataset compared against, and the name
# the first release of the endpoint read (still accepted).
DRIFT_AGAINST, DRIFT_ALIAS = "against", "reference"


def _dataset_id(raw):
    """The dataset id a query value names, or None when it names none."""
    raw = raw.strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


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
    parser_classes = [MultiPartParser, FormParser, StrictJSONParser]
    filterset_fields = ["name", "version", "sha256"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return s.DatasetUpdateSerializer
        return s.DatasetSerializer

    @extend_schema(
        responses={200: s.DatasetProfileSerializer, 202: s.DatasetProfileSerializer},
    )
    @action(detail=True, methods=["get"])
    def profile(self, request, pk=None):
        """The dataset's profile per column (200); 202 while a worker computes it."""
        dataset = self.get_object()
        shown = dataset.page_profile()
        if shown is None:
            dataset.queue_profile(once=True)
            data = {"status": "queued", "profiled_at": None, "rows": None, "columns": []}
            code = status.HTTP_202_ACCEPTED
        else:
            data = {"status": "done", "profiled_at": dataset.profiled_at, **shown}
            code = status.HTTP_200_OK
        body = s.DatasetProfileSerializer({"dataset": dataset.pk, **data}).data
        return Response(body, status=code)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                DRIFT_AGAINST,
                int,
                required=True,
                description="the id of a dataset of the same schema to compare against",
            ),
            OpenApiParameter(
                DRIFT_ALIAS,
                int,
                required=False,
                deprecated=True,
                description=f"another name of `{DRIFT_AGAINST}`, accepted for the clients "
                f"that use it; given together with `{DRIFT_AGAINST}`, the two must name "
                "the same dataset",
            ),
        ],
        responses={
            200: s.DatasetDriftSerializer,
            202: s.DatasetDriftSerializer,
            400: OpenApiResponse(
                DRIFT_REFUSAL,
                description=f"no `{DRIFT_AGAINST}` (or `{DRIFT_ALIAS}`), no such dataset, "
                f"not of the same schema, or `{DRIFT_AGAINST}` and `{DRIFT_ALIAS}` naming "
                "different datasets; keyed by the parameter at fault",
            ),
        },
    )
    @action(detail=True, methods=["get"])
    def drift(self, request, pk=None):
        """Drift against the dataset `against` names, per column, worst first (200); 202
        while a worker computes it (ask again). `reference` is another name of `against`."""
        dataset = self.get_object()
        params = request.query_params
        given = [name for name in (DRIFT_AGAINST, DRIFT_ALIAS) if name in params]
        key = given[0] if given else DRIFT_AGAINST
        raw = params.get(key, "").strip()
        if len(given) == 2:
            values = [params[name].strip() for name in given]
            ids = [_dataset_id(value) for value in values]
            same = ids[0] == ids[1] if None not in ids else values[0] == values[1]
            if not same:
                message = (
                    f"{DRIFT_AGAINST}={values[0][:40]} and {DRIFT_ALIAS}={values[1][:40]} name "
                    f"different datasets; {DRIFT_ALIAS} is another name of {DRIFT_AGAINST}: "
                    f"give only {DRIFT_AGAINST}."
                )
                return Response(
                    {name: [message] for name in given}, status=status.HTTP_400_BAD_REQUEST
                )
        reference = None
        if (number := _dataset_id(raw)) is not None:
            reference = Dataset.objects.filter(pk=number).first()
        if reference is None:
            message = (
                f"No dataset with the id {raw!r}."
                if raw
                else f"A dataset id is required: ?{DRIFT_AGAINST}={{id}}."
            )
            return Response({key: [message]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            drift = DatasetDrift.request(dataset, reference, by=request.user)
        except ValidationError as exc:
            return Response(
                {key: exc.message_dict["reference"]}, status=status.HTTP_400_BAD_REQUEST
            )
        code = status.HTTP_200_OK if drift.is_finished else status.HTTP_202_ACCEPTED
        return Response(s.DatasetDriftSerializer(drift).data, status=code)


class ModelVersionViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    queryset = ModelVersion.objects.select_related("ml_model")
    parser_classes = [MultiPartParser, FormParser, StrictJSONParser]
    filterset_fields = ["ml_model", "version", "artifact_sha256"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return s.ModelVersionUpdateSerializer
        return s.ModelVersionSerializer


class DeploymentViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Which version serves where since when; POST records a new one (maintainers)."""

    queryset = Deployment.objects.select_related("model_version", "ml_model")
    serializer_class = s.DeploymentSerializer
    filterset_fields = {
        "ml_model": ["exact"],
        "model_version": ["exact"],
        "environment": ["exact"],
        "until": ["isnull"],
    }
