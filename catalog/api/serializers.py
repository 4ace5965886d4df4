from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from rest_framework import serializers

from boundary import slices
from core.api.serializers import ModelCleanMixin, TransitionSerializer

from ..models import Finding, Tag


class TagNamesField(serializers.ListField):
    """Tags are written and read as a list of names."""

    child = serializers.CharField(max_length=60)

    def to_representation(self, value):
        return sorted(tag.name for tag in value.all())


class SliceTextField(serializers.CharField):
    """`slice_text`: the slice as text, `age < 22 AND region in ("north", "south")`
    (slices.describe) when read; when written, the slice itself (slices.parse), as an
    alternative to the JSON `slice`."""

    def __init__(self, **kwargs):
        kwargs.update(source="*", required=False, allow_blank=True, max_length=100_000)
        kwargs.setdefault(
            "help_text",
            'The slice as text, e.g. age < 22 AND region in ("north", "south"); '
            "give it or `slice`, not both.",
        )
        super().__init__(**kwargs)

    def to_representation(self, instance):
        try:
            return slices.describe(instance.slice)
        except (slices.ProbeDefinitionError, KeyError, TypeError, IndexError):
            return ""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        try:
            return {"slice": slices.parse(text)}
        except slices.SliceSyntaxError as exc:
            raise serializers.ValidationError(str(exc)) from exc


def refuse_two_slices(serializer):
    """A request gives the slice as `slice` or as `slice_text`; both only when they say
    the same (as a PUT of what a GET answered does)."""
    data = getattr(serializer, "initial_data", None)
    if not (hasattr(data, "keys") and "slice" in data and "slice_text" in data):
        return
    try:
        same = slices.parse(data["slice_text"]) == data["slice"]
    except (slices.SliceSyntaxError, TypeError):
        same = False
    if not same:
        raise serializers.ValidationError(
            {"slice_text": ["Give the slice as slice or as slice_text, not both."]}
        )


class FindingSerializer(ModelCleanMixin, serializers.ModelSerializer):
    tags = TagNamesField(required=False, default=list)
    slice_text = SliceTextField()
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
            "slice_text",
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

    def validate(self, attrs):
        refuse_two_slices(self)
        ml_model = attrs.get("ml_model") or getattr(self.instance, "ml_model", None)
        if ml_model is not None and attrs.get("dataset") is not None:
            try:
                ml_model.check_owns(attrs["dataset"], field="dataset")
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.message_dict) from exc
        return super().validate(attrs)

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
