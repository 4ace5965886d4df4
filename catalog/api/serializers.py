from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework import serializers

from core.api.serializers import ModelCleanMixin, TransitionSerializer

from ..models import Finding, Tag


class TagNamesField(serializers.ListField):
    """Tags are written and read as a list of names."""

    child = serializers.CharField(max_length=60)

    def to_representation(self, value):
        return sorted(tag.name for tag in value.all())


class FindingSerializer(ModelCleanMixin, serializers.ModelSerializer):
    tags = TagNamesField(required=False, default=list)
    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = Finding
        fields = [
            "id",
            "title",
            "summary",
            "description",
            "ml_model",
            "model_version",
            "dataset",
            "slice",
            "evidence",
            "severity",
            "risk_category",
            "status",
            "status_note",
            "harms",
            "affected_stakeholders",
            "policy_reference",
            "lesson",
            "remaining_gaps",
            "accepted_until",
            "tags",
            "owner",
            "reporter",
            "is_key_lesson",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "status_note",
            "accepted_until",
            "reporter",
            "is_key_lesson",
            "created_at",
            "updated_at",
        ]

    def validate_evidence(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Evidence must be a JSON object.")
        return value

    def validate_slice(self, value):
        if not isinstance(value, list):
            raise serializers.ValidationError("A slice is a list of predicates.")
        return value

    @transaction.atomic
    def create(self, validated):
        names = validated.pop("tags", [])
        finding = Finding.objects.create(reporter=self.context["request"].user, **validated)
        finding.tags.set(Tag.from_names(names))
        return finding

    @transaction.atomic
    def update(self, instance, validated):
        names = validated.pop("tags", None)
        finding = super().update(instance, validated)
        if names is not None:
            finding.tags.set(Tag.from_names(names))
        return finding


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name", "slug"]
        read_only_fields = ["slug"]


class FindingTransitionSerializer(TransitionSerializer):
    expires_on = serializers.DateField(
        required=False,
        allow_null=True,
        help_text="Accepting a risk: the date the acceptance expires (YYYY-MM-DD), at most "
        "RISK_ACCEPTANCE_MAX_DAYS (default 180) days ahead.",
    )


class KeyLessonSerializer(serializers.Serializer):
    is_key_lesson = serializers.BooleanField(default=True)
