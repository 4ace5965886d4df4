from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified
from django.utils.http import parse_etags
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.pagination import FindingPagination

from .. import freshness
from ..filtersets import FindingFilterSet
from ..models import Finding, Tag
from .serializers import (
    FindingSerializer,
    FindingTransitionSerializer,
    KeyLessonSerializer,
    TagSerializer,
)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "search",
                str,
                description='Web-search syntax: words (all must match), "a phrase", or, '
                "-excluded. Results are ranked (best first) among the newest 250 matches "
                "unless `ordering` is given, which lists every match in that order.",
            ),
            OpenApiParameter("tag", str, many=True, description="Repeat for several tags."),
        ]
    )
)
class FindingViewSet(viewsets.ModelViewSet):
    serializer_class = FindingSerializer
    filterset_class = FindingFilterSet
    pagination_class = FindingPagination
    ordering_fields = ["created_at", "updated_at", "severity", "title"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    action_permissions = {
        "transition": ["catalog.view_finding"],
        "key_lesson": ["catalog.review_finding"],
    }

    def get_queryset(self):
        return Finding.objects.prefetch_related("tags")

    def filter_queryset(self, queryset):
        """The filter backends, less the filter set when the request names none of its
        filters (it would leave the queryset as it is, after building a form)."""
        params = self.request.query_params
        named = any(name in params for name in FindingFilterSet.base_filters)
        for backend in self.filter_backends:
            if named or not issubclass(backend, DjangoFilterBackend):
                queryset = backend().filter_queryset(self.request, queryset, self)
        return queryset

    # Query parameters whose answers depend on the catalog's own tables and the ML models
    # alone (the other filters look up versions, datasets or users): a list page with no
    # others is kept per process until the catalog's version moves (catalog.freshness).
    KEPT_PAGE_PARAMETERS = frozenset(
        {
            "page",
            "ml_model",
            "ml_model_slug",
            "page_size",
            "search",
            "ordering",
            "format",
            "tag",
            "severity",
            "risk_category",
            "status",
            "is_key_lesson",
            "created_after",
            "created_before",
        }
    )
    pages = freshness.ListPages(settings.LIST_CACHE_PAGES)

    def _kept_page_key(self, request):
        """(key, version) under which this list page is kept, or None."""
        if self.pages.size <= 0 or request.method not in ("GET", "HEAD"):
            return None
        if not self.KEPT_PAGE_PARAMETERS.issuperset(request.query_params):
            return None
        at = freshness.version(Finding.objects.db)
        if at is None:
            return None
        media_type = request.accepted_renderer.media_type
        return (request.get_host(), request.is_secure(), request.get_full_path(), media_type), at

    def list(self, request, *args, **kwargs):
        """The same search as the catalog page (Finding.objects.find), with the filters.

        A page the catalog's version still vouches for is answered from the process's kept
        pages, with its entity tag (304 to a matching If-None-Match)."""
        kept = self._kept_page_key(request)
        if kept is not None:
            page = self.pages.get(*kept)
            if page is not None:
                if page.etag in parse_etags(request.headers.get("If-None-Match", "")):
                    response = HttpResponseNotModified()
                else:
                    response = HttpResponse(page.content, content_type=page.content_type)
                response["ETag"] = page.etag
                return response
            request.kept_page_key = kept
        qs = self.filter_queryset(Finding.objects.all())
        ranked = not request.query_params.get("ordering")
        results = qs.find(request.query_params.get("search", ""), ranked=ranked)
        page = self.paginator.paginate_results(results, request, view=self)
        return self.paginator.get_paginated_response(self.get_serializer(page, many=True).data)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        kept = getattr(request, "kept_page_key", None)
        if kept is not None and response.status_code == 200 and isinstance(response, Response):
            response.render()
            page = freshness.Page(response.content, response["Content-Type"])
            self.pages.put(*kept, page)
            response["ETag"] = page.etag
        return response

    @extend_schema(request=KeyLessonSerializer, responses=FindingSerializer)
    @action(detail=True, methods=["post"], url_path="key-lesson")
    def key_lesson(self, request, pk=None):
        """Mark the finding as a key lesson for newcomers ({"is_key_lesson": true}), or
        unmark it (false). Reviewers only."""
        finding = self.get_object()
        body = KeyLessonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        finding.set_key_lesson(body.validated_data["is_key_lesson"], by=request.user)
        return Response(self.get_serializer(finding).data)

    @extend_schema(request=FindingTransitionSerializer, responses=FindingSerializer)
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        """Move the finding through its workflow: {"to": status, "note": "..."}; accepting
        a risk also takes "expires_on": "YYYY-MM-DD"."""
        finding = self.get_object()
        body = FindingTransitionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        finding.transition_to(
            body.validated_data["to"],
            by=request.user,
            note=body.validated_data["note"],
            expected=body.validated_data.get("from_status") or None,
            expires_on=body.validated_data.get("expires_on"),
        )
        return Response(self.get_serializer(finding).data)


class TagViewSet(viewsets.ModelViewSet):
    queryset = Tag.objects.all()
    serializer_class = TagSerializer
    http_method_names = ["get", "post", "head", "options"]
