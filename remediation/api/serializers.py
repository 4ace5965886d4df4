from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from core.models import AuditEvent
from probes.models import ProbeRun

from ..models import Evaluation, Notification, RemediationAction

User = get_user_model()


class ActionSerializer(serializers.ModelSerializer):
    owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(), required=False, allow_null=True
    )
    reviewer = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = RemediationAction
        fields = [
            "id",
            "finding",
            "kind",
            "title",
            "description",
            "owner",
            "reviewer",
            "status",
            "due_date",
            "fixed_in_version",
            "broke_on_version",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "fixed_in_version",
            "broke_on_version",
            "created_by",
            "created_at",
            "updated_at",
        ]

    def validate_owner(self, user):
        return self._person(user, "owner")

    def validate_reviewer(self, user):
        return self._person(user, "reviewer")

    def _person(self, user, field):
        """Owners and reviewers are active users with a role (RemediationAction.
        check_person); on an edit, only a change of the person is checked."""
        if self.instance is not None and getattr(self.instance, f"{field}_id") == getattr(
            user, "pk", None
        ):
            return user
        try:
            RemediationAction.check_person(user, field)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict[field]) from exc
        return user

    def validate(self, attrs):
        finding = attrs.get("finding") or getattr(self.instance, "finding", None)
        if (
            self.instance is not None
            and "finding" in attrs
            and attrs["finding"] != self.instance.finding
        ):
            raise serializers.ValidationError(
                {"finding": "An action cannot move to another finding."}
            )
        if finding is None:
            raise serializers.ValidationError({"finding": "This field is required."})
        return attrs


class EvaluationSerializer(serializers.ModelSerializer):
    probe_runs = serializers.PrimaryKeyRelatedField(
        queryset=ProbeRun.objects.all(), many=True, required=False
    )

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "action",
            "model_version",
            "outcome",
            "probe_runs",
            "notes",
            "is_manual",
            "details",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["is_manual", "details", "created_by", "created_at"]
        # Manual evaluations are free: the one-automatic-per-version constraint is not the
        # API's (it only ever records manual ones).
        validators = []

    def validate(self, attrs):
        action, version = attrs["action"], attrs["model_version"]
        try:
            action.finding.ml_model.check_owns(version)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        for run in attrs.get("probe_runs", []):
            if run.model_version_id != version.pk or run.probe.finding_id != action.finding_id:
                raise serializers.ValidationError(
                    {
                        "probe_runs": f"Run {run.pk} is not a run of this finding's probes on "
                        f"{version}."
                    }
                )
        return attrs


class AuditEventSerializer(serializers.ModelSerializer):
    object_type = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "object_type",
            "object_id",
            "object_repr",
            "verb",
            "actor",
            "actor_label",
            "before",
            "after",
            "from_status",
            "to_status",
            "note",
            "created_at",
        ]
        read_only_fields = fields

    def get_object_type(self, event) -> str:
        return f"{event.content_type.app_label}.{event.content_type.model}"


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "finding", "subject", "body", "url", "read_at", "created_at"]
        read_only_fields = fields
