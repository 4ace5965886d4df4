from rest_framework import mixins, viewsets
from rest_framework.parsers import FormParser, MultiPartParser

from core.api.parsers import StrictJSONParser

from ..models import Dataset, Deployment, MLModel, ModelVersion
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
    parser_classes = [MultiPartParser, FormParser, StrictJSONParser]
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
