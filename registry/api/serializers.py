from rest_framework import serializers

from core.api.serializers import ModelCleanMixin

from ..models import Dataset, DatasetDrift, Deployment, MLModel, ModelVersion


class MLModelSerializer(ModelCleanMixin, serializers.ModelSerializer):
    # MLModel.clean() refuses a slug (given or derived from the name) that is taken.
    slug = serializers.SlugField(required=False, max_length=120)

    class Meta:
        model = MLModel
        fields = ["id", "name", "slug", "description", "task", "created_at"]
        read_only_fields = ["created_at"]


class DatasetSerializer(serializers.ModelSerializer):
    file = serializers.FileField(write_only=True)
    filename = serializers.CharField(source="original_filename", read_only=True)
    sensitive_columns = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list
    )
    ignored_columns = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list
    )

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "version",
            "description",
            "file",
            "filename",
            "file_format",
            "target_column",
            "sha256",
            "size_bytes",
            "row_count",
            "columns",
            "sensitive_columns",
            "ignored_columns",
            "uploaded_by",
            "created_at",
        ]
        read_only_fields = [
            "file_format",
            "sha256",
            "size_bytes",
            "row_count",
            "columns",
            "uploaded_by",
            "created_at",
        ]
        # Dataset.create_from_upload checks (name, version) itself, with a message that
        # names the dataset, as in the web form.
        validators = []

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["sensitive_columns"] = instance.sensitive_columns
        data["ignored_columns"] = instance.ignored_columns
        return data

    def create(self, validated):
        return Dataset.create_from_upload(
            validated["file"],
            name=validated["name"],
            version=validated.get("version") or "1",
            target_column=validated["target_column"],
            description=validated.get("description", ""),
            sensitive_columns=validated.get("sensitive_columns") or (),
            ignored_columns=validated.get("ignored_columns") or (),
            by=self.context["request"].user,
        )


class DatasetUpdateSerializer(serializers.ModelSerializer):
    """Only the description of a stored dataset may change; the table is immutable."""

    class Meta:
        model = Dataset
        fields = ["description"]


class ModelVersionSerializer(serializers.ModelSerializer):
    artifact = serializers.FileField(write_only=True)
    filename = serializers.CharField(source="original_filename", read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "ml_model",
            "version",
            "artifact",
            "filename",
            "artifact_format",
            "artifact_sha256",
            "training_dataset",
            "notes",
            "environment",
            "registered_by",
            "registered_at",
        ]
        read_only_fields = [
            "artifact_format",
            "artifact_sha256",
            "environment",
            "registered_by",
            "registered_at",
        ]
        # Uniqueness is checked by ModelVersion.register with a message naming the model.
        validators = []

    def create(self, validated):
        return ModelVersion.register(
            ml_model=validated["ml_model"],
            version=validated["version"],
            artifact=validated["artifact"],
            training_dataset=validated.get("training_dataset"),
            notes=validated.get("notes", ""),
            by=self.context["request"].user,
        )


class ModelVersionUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["notes"]


class DeploymentSerializer(serializers.ModelSerializer):
    """`ml_model` is the version's; a deployment ends the current one in its environment."""

    class Meta:
        model = Deployment
        fields = [
            "id",
            "ml_model",
            "model_version",
            "environment",
            "since",
            "until",
            "note",
            "recorded_by",
            "recorded_at",
        ]
        read_only_fields = ["ml_model", "until", "recorded_by", "recorded_at"]
        validators = []  # one current deployment per environment: Deployment.record ends it

    def create(self, validated):
        return Deployment.record(
            model_version=validated["model_version"],
            environment=validated["environment"],
            since=validated.get("since"),
            note=validated.get("note", ""),
            by=self.context["request"].user,
        )


class DatasetProfileSerializer(serializers.Serializer):
    """`datasets/{id}/profile/`: the stored profile (queued when there is none yet)."""

    dataset = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["queued", "done"])
    profiled_at = serializers.DateTimeField(allow_null=True)
    rows = serializers.IntegerField(allow_null=True)
    columns = serializers.ListField(
        child=serializers.DictField(),
        help_text="per column: name, kind, count, nulls, distinct (numeric: min, max, mean, "
        "std, quantiles, histogram; categorical: top, other)",
    )


class DatasetDriftSerializer(serializers.ModelSerializer):
    """`datasets/{id}/drift/?against={id}`: the drift against a reference dataset (stored
    as `reference`), worst column first."""

    columns = serializers.ListField(
        child=serializers.DictField(),
        help_text="per column: name, kind, psi, level (none moderate major), ks_statistic, "
        "p_value, test (ks or chi2)",
    )

    class Meta:
        model = DatasetDrift
        fields = ["dataset", "reference", "status", "error", "columns", "created_at", "finished_at"]
        read_only_fields = fields
