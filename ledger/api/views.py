from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from catalog.models import Finding

from .. import story


class SuggestionSerializer(serializers.Serializer):
    action = serializers.IntegerField()
    finding = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.CharField()
    similarity = serializers.FloatField()
    held = serializers.IntegerField(help_text="automatic evaluations that held")
    regressed = serializers.IntegerField(help_text="automatic evaluations that regressed")


class FindingSuggestionsViewSet(viewsets.GenericViewSet):
    """`findings/{id}/suggestions/`: the catalog's resource, read across every app."""

    queryset = Finding.objects.all()
    serializer_class = SuggestionSerializer
    pagination_class = None  # a short ranked list, not a page of a collection
    filter_backends: list = []
    action_permissions = {
        "suggestions": ["catalog.view_finding", "remediation.view_remediationaction"]
    }

    @extend_schema(responses={200: SuggestionSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def suggestions(self, request, pk=None):
        """Actions taken on similar findings, with how often each held and regressed, best
        first (similarity × smoothed success rate)."""
        rows = story.suggestions(self.get_object())
        return Response(SuggestionSerializer(rows, many=True).data)
