from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.serializers import TransitionSerializer

from ..filtersets import FindingFilterSet
from ..models import Finding, Tag
from .serializers import FindingSerializer, TagSerializer


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("search", str, description="Words the finding mentions.")]
    )
)
class FindingViewSet(viewsets.ModelViewSet):
    serializer_class = FindingSerializer
    filterset_class = FindingFilterSet
    ordering_fields = ["created_at", "updated_at", "severity", "title"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    action_permissions = {"transition": ["catalog.view_finding"]}

    def get_queryset(self):
        qs = Finding.objects.prefetch_related("tags")
        q = self.request.query_params.get("search", "")
        return qs.search(q) if q else qs

    @extend_schema(request=TransitionSerializer, responses=FindingSerializer)
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        """Move the finding through its workflow: {"to": status, "note": "..."}."""
        finding = self.get_object()
        body = TransitionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        finding.transition_to(body.validated_data["to"], by=request.user,
                              note=body.validated_data["note"],
                              expected=body.validated_data.get("from_status") or None)
        return Response(self.get_serializer(finding).data)


class TagViewSet(viewsets.ModelViewSet):
    queryset = Tag.objects.all()
    serializer_class = TagSerializer
    http_method_names = ["get", "post", "head", "options"]
