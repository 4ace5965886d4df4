"""Serializer helpers shared by the apps' APIs."""

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

if TYPE_CHECKING:
    from rest_framework.serializers import ModelSerializer as _SerializerBase
else:
    _SerializerBase = object  # a plain mixin at run time, put before ModelSerializer


class ModelCleanMixin(_SerializerBase):
    """Runs the model's own clean() (the one place its rules live) on the validated data,
    so the API refuses exactly what the web forms refuse, with field-level messages."""

    clean_exclude: tuple[str, ...] = ()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = self.Meta.model
        concrete = {f.name for f in model._meta.concrete_fields}
        data = {k: v for k, v in attrs.items() if k in concrete and k not in self.clean_exclude}
        if self.instance is not None:
            candidate = model(
                **{
                    f.attname: getattr(self.instance, f.attname)
                    for f in model._meta.concrete_fields
                }
            )
            for key, value in data.items():
                setattr(candidate, key, value)
        else:
            candidate = model(**data)
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            if hasattr(exc, "error_dict"):
                raise serializers.ValidationError(
                    {k: [m for e in v for m in e.messages] for k, v in exc.error_dict.items()}
                ) from exc
            raise serializers.ValidationError({"non_field_errors": exc.messages}) from exc
        for key in data:
            attrs[key] = getattr(candidate, key)
        return attrs


class TransitionSerializer(serializers.Serializer):
    to = serializers.CharField(max_length=30)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    fixed_in_version = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**63 - 1
    )
    expected = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=30,
        source="from_status",
        help_text="The status you saw; if it changed meanwhile the answer is 409 Conflict.",
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("expected")  # "from" is a Python keyword
        return fields
