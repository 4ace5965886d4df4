from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from core.api.serializers import TransitionSerializer
from core.models import AuditEvent
from registry.models import ModelVersion

from ..filtersets import ActionFilterSet, AuditEventFilterSet
from ..gate import decide
from ..models import Evaluation, Notification, RemediationAction
from . import serializers as s


class ActionViewSet(viewsets.ModelViewSet):
    queryset = RemediationAction.objects.select_related("finding")
    serializer_class = s.ActionSerializer
    filterset_class = ActionFilterSet
    ordering_fields = ["due_date", "updated_at", "created_at"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    # Transitions and edits check their own rules in the model: who may edit an action is
    # its owner, its named reviewer or a reviewer (RemediationAction.edit_refusal).
    action_permissions = {
        "transition": ["remediation.view_remediationaction"],
        "update": ["remediation.view_remediationaction"],
        "partial_update": ["remediation.view_remediationaction"],
    }

    def perform_create(self, serializer):
        user = self.request.user
        serializer.save(created_by=user, owner=serializer.validated_data.get("owner") or user)

    def check_object_permissions(self, request, obj):
        """Who may edit is answered (403) before what they send is read."""
        super().check_object_permissions(request, obj)
        if self.action in ("update", "partial_update"):
            refusal = obj.edit_refusal(request.user)
            if refusal:
                raise PermissionDenied(refusal)

    def perform_update(self, serializer):
        """RemediationAction.edit: 403 for who may not edit, 409 for a frozen field."""
        changes = {k: v for k, v in serializer.validated_data.items() if k != "finding"}
        serializer.instance.edit(changes, by=self.request.user)

    @extend_schema(request=TransitionSerializer, responses=s.ActionSerializer)
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        """Move the action: {"to": status, "note": "...", "fixed_in_version": id}."""
        remediation = self.get_object()
        body = TransitionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = None
        if body.validated_data.get("fixed_in_version"):
            version = ModelVersion.objects.filter(
                pk=body.validated_data["fixed_in_version"]
            ).first()
            if version is None:
                return Response({"fixed_in_version": ["No such model version."]}, status=400)
        remediation.transition_to(
            body.validated_data["to"],
            by=request.user,
            note=body.validated_data["note"],
            fixed_in_version=version,
            expected=body.validated_data.get("from_status") or None,
        )
        return Response(self.get_serializer(remediation).data)


class EvaluationViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Evaluation.objects.select_related("action", "model_version").prefetch_related(
        "probe_runs"
    )
    serializer_class = s.EvaluationSerializer
    filterset_fields = ["action", "model_version", "outcome", "is_manual"]

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user, is_manual=True)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.select_related("content_type", "actor")
    serializer_class = s.AuditEventSerializer
    filterset_class = AuditEventFilterSet


class NotificationViewSet(viewsets.ReadOnlyModelViewSet):
    """The signed-in user's notifications; POST {id}/read/ marks one read."""

    serializer_class = s.NotificationSerializer
    permission_classes = [IsAuthenticated]
    filterset_fields = ["finding"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        return Notification.objects.filter(recipient=self.request.user)

    @extend_schema(request=None, responses=s.NotificationSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        note = self.get_object()
        Notification.objects.mark_read(request.user, ids=[note.pk])
        note.refresh_from_db()
        return Response(self.get_serializer(note).data)


class JUnitRenderer(BaseRenderer):
    """`?format=junit`: the gate as JUnit XML, which CI servers show as test results."""

    media_type = "application/xml"
    format = "junit"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.encode("utf-8") if isinstance(data, str) else b""


class GateSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    decision = serializers.ChoiceField(choices=["pass", "fail", "pending"])
    checked = serializers.IntegerField(help_text="guarding probes checked")
    blocking = serializers.ListField(
        child=serializers.DictField(), help_text="[{probe, finding, run, reason}]"
    )


class VersionGateViewSet(viewsets.GenericViewSet):
    """`model-versions/{id}/gate/`: the registry's resource, remediation's release gate."""

    queryset = ModelVersion.objects.select_related("ml_model")
    serializer_class = GateSerializer
    renderer_classes = [JSONRenderer, JUnitRenderer]
    action_permissions = {"gate": ["registry.view_modelversion", "probes.view_proberun"]}

    @extend_schema(responses={200: GateSerializer})
    @action(detail=True, methods=["get"])
    def gate(self, request, pk=None):
        """May this version ship? `pass`, `fail` or `pending`, with every blocking probe
        (`?format=junit` for a JUnit XML report)."""
        result = decide(self.get_object())
        if request.accepted_renderer.format == "junit":
            return Response(result.junit(), content_type="application/xml; charset=utf-8")
        return Response(result.as_dict())
