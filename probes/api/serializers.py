from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from core.api.serializers import ModelCleanMixin
from registry.models import ModelVersion

from ..models import Probe, ProbeRun, Rerun


class ProbeSerializer(ModelCleanMixin, serializers.ModelSerializer):
    class Meta:
        model = Probe
        fields = [
            "id",
            "finding",
            "dataset",
            "kind",
            "slice",
            "params",
            "comparator",
            "threshold",
            "tolerance",
            "min_support",
            "active",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["created_by", "created_at"]


class ProbeRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProbeRun
        fields = [
            "id",
            "probe",
            "model_version",
            "rerun",
            "status",
            "value",
            "ci_low",
            "ci_high",
            "support",
            "passed",
            "trigger",
            "error",
            "lineage",
            "details",
            "duration_s",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class RunRequestSerializer(serializers.Serializer):
    """`{"model_version": id}`: a version of the probe's ML model (context["probe"])."""

    model_version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all())

    def validate_model_version(self, version):
        try:
            self.context["probe"].finding.ml_model.check_owns(version)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["model_version"]) from exc
        return version


class RerunSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Rerun
        fields = [
            "id",
            "model_version",
            "trigger",
            "requested_by_label",
            "created_at",
            "finished_at",
            "progress",
        ]
        read_only_fields = fields

    def get_progress(self, rerun) -> dict:
        return rerun.progress()
