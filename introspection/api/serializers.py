from rest_framework import serializers

from registry.models import Dataset

from ..models import ScanDismissal, SliceScan


class ScanRequestSerializer(serializers.Serializer):
    dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all())
    top_k = serializers.IntegerField(min_value=1, max_value=20, default=5)
    max_predicates = serializers.IntegerField(min_value=1, max_value=3, default=2)
    min_support = serializers.IntegerField(
        min_value=5, required=False, allow_null=True, default=None
    )


class SliceScanSerializer(serializers.ModelSerializer):
    progress_text = serializers.CharField(read_only=True)

    class Meta:
        model = SliceScan
        fields = [
            "id",
            "model_version",
            "dataset",
            "status",
            "progress",
            "progress_text",
            "params",
            "overall",
            "candidates",
            "dismissed_candidates",
            "skipped_columns",
            "error",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class LogCandidateSerializer(serializers.Serializer):
    candidate = serializers.IntegerField(min_value=1, help_text="1 for the first candidate.")
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    summary = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    severity = serializers.CharField(max_length=10, required=False, allow_blank=True, default="")
    risk_category = serializers.CharField(
        max_length=20, required=False, allow_blank=True, default=""
    )
    error_threshold = serializers.FloatField(
        min_value=0, max_value=1, required=False, allow_null=True, default=None
    )
    margin_threshold = serializers.FloatField(
        min_value=0, max_value=1, required=False, allow_null=True, default=None
    )


class DismissCandidateSerializer(serializers.Serializer):
    candidate = serializers.IntegerField(min_value=1, help_text="1 for the first candidate.")
    reason = serializers.CharField(
        max_length=2000, help_text="Why the candidate is not worth a finding."
    )


class RestoreDismissalSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ScanDismissalSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = ScanDismissal
        fields = [
            "id",
            "ml_model",
            "dataset",
            "scan",
            "slice",
            "description",
            "reason",
            "dismissed_by",
            "dismissed_at",
            "active",
            "lifted_by",
            "lifted_at",
            "lift_note",
        ]
        read_only_fields = fields
