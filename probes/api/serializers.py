from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.api.serializers import SliceTextField, refuse_two_slices
from core.api.serializers import ModelCleanMixin
from registry.models import ModelVersion

from ..choices import ProbeKind
from ..models import Probe, ProbeRun, Rerun


class ProbeSerializer(ModelCleanMixin, serializers.ModelSerializer):
    slice_text = SliceTextField()

    class Meta:
        model = Probe
        fields = [
            "id",
            "finding",
            "dataset",
            "also_on",
            "kind",
            "slice",
            "slice_text",
            "params",
            "comparator",
            "threshold",
            "tolerance",
            "min_support",
            "decide",
            "active",
            "supersedes",
            "created_by",
            "created_at",
            "retired_at",
            "retired_by",
            "retire_note",
        ]
        read_only_fields = [
            "supersedes",
            "created_by",
            "created_at",
            "retired_at",
            "retired_by",
            "retire_note",
        ]

    def validate(self, attrs):
        # A definition with runs does not change in place, whatever the new values: 409
        # naming `revise` before they are checked (Probe.edit checks again, locked).
        refuse_two_slices(self)
        if self.instance is not None:
            self.instance.refuse_change(attrs)
        attrs = super().validate(attrs)
        self.check_dataset(attrs)
        check_also_on(self.instance, attrs)
        return attrs

    def check_dataset(self, attrs):
        """The dataset must be one of the finding's ML model's (MLModel.check_owns)."""
        finding = attrs.get("finding") or getattr(self.instance, "finding", None)
        dataset = attrs.get("dataset") or getattr(self.instance, "dataset", None)
        if finding is not None and dataset is not None and "dataset" in attrs:
            try:
                finding.ml_model.check_owns(dataset, field="dataset")
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.message_dict) from exc


def check_also_on(instance, attrs):
    """The `also_on` datasets (sent, or kept when the dataset or slice changes) must be ones
    the probe can run on: Probe.check_also_on on the probe as it would be, 400 at the field."""
    changing = {"also_on", "dataset", "slice"} & set(attrs)
    if not changing or (instance is None and "also_on" not in attrs):
        return
    candidate = Probe(
        finding=attrs.get("finding") or getattr(instance, "finding", None),
        dataset=attrs.get("dataset") or getattr(instance, "dataset", None),
        slice=attrs.get("slice", getattr(instance, "slice", [])),
    )
    also_on = attrs["also_on"] if "also_on" in attrs else list(instance.also_on.all())
    try:
        candidate.check_also_on(also_on)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict) from exc


@extend_schema_field({"type": "string", "enum": list(ProbeKind.values)})
class RevisedKindField(serializers.ChoiceField):
    """A revision's kind. Its enum is written out (not the model's choice set), so that the
    schema's enum names stay unambiguous: `kind` also names the actions' kinds."""

    def __init__(self, **kwargs):
        super().__init__(choices=ProbeKind.choices, **kwargs)


class ProbeRevisionSerializer(ModelCleanMixin, serializers.ModelSerializer):
    """`POST probes/{id}/revise/`: the definition fields that change, and a note. Checked as
    the revised probe (this probe's definition with the changes) by Probe.clean()."""

    kind = RevisedKindField(required=False)
    slice_text = SliceTextField(write_only=True)
    note = serializers.CharField(
        max_length=5000, write_only=True, help_text="What changes and why (kept in the history)."
    )

    class Meta:
        model = Probe
        fields = [
            "finding",
            "dataset",
            "also_on",
            "kind",
            "slice",
            "slice_text",
            "params",
            "comparator",
            "threshold",
            "tolerance",
            "min_support",
            "decide",
            "note",
        ]

    def get_fields(self):
        fields = super().get_fields()
        for name, field in fields.items():
            if name != "note":
                field.required = False
        return fields

    def validate(self, attrs):
        refuse_two_slices(self)
        attrs = super().validate(attrs)
        check_also_on(self.instance, attrs)
        return attrs

    def changes(self):
        """The definition fields the request names."""
        return {k: v for k, v in self.validated_data.items() if k != "note"}


class RetireSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=5000, help_text="Why the probe no longer applies.")


class ProbeRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProbeRun
        fields = [
            "id",
            "probe",
            "dataset",
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
