from django import forms

from .models import Dataset, MLModel, ModelVersion


class MLModelForm(forms.ModelForm):
    class Meta:
        model = MLModel
        fields = ["name", "description", "task"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class ColumnListField(forms.CharField):
    def to_python(self, value):
        return [c.strip() for c in (value or "").split(",") if c.strip()]


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=120)
    version = forms.CharField(max_length=40, initial="1")
    file = forms.FileField(help_text="CSV (UTF-8, header row) or Parquet.")
    target_column = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    sensitive_columns = ColumnListField(
        required=False,
        help_text="Comma-separated. Used in computations, never shown row by row.",
    )
    ignored_columns = ColumnListField(
        required=False, help_text="Comma-separated. Not passed to the model (ids, timestamps)."
    )


class ModelVersionForm(forms.Form):
    version = forms.CharField(max_length=40)
    artifact = forms.FileField(help_text="A scikit-learn model saved with skops.io.dump().")
    training_dataset = forms.ModelChoiceField(queryset=Dataset.objects.all(), required=False)
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class VersionField(forms.ModelChoiceField):
    """A model version of one ML model (`limit_to`): it offers that model's versions, and
    refuses a version of another ML model on the field with MLModel.check_owns's message,
    the same words the API answers."""

    def __init__(self, **kwargs):
        super().__init__(ModelVersion.objects.select_related("ml_model"), **kwargs)
        self.ml_model = None

    def limit_to(self, ml_model):
        self.ml_model = ml_model
        offered = ml_model.versions.select_related("ml_model")
        self.widget.choices = [("", self.empty_label)] + [(v.pk, str(v)) for v in offered]
        return self

    def validate(self, value):
        super().validate(value)
        if self.ml_model is not None and value is not None:
            try:
                self.ml_model.check_owns(value)
            except forms.ValidationError as exc:
                raise forms.ValidationError(exc.messages, code="other_ml_model") from exc


class DeploymentForm(forms.Form):
    """Record which version of this ML model now serves in an environment."""

    model_version = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), label="Version")
    environment = forms.SlugField(
        max_length=40, initial="production", help_text="e.g. production, staging, shadow"
    )
    since = forms.DateTimeField(required=False, help_text="Empty: now. YYYY-MM-DD HH:MM")
    note = forms.CharField(required=False, max_length=500)

    def __init__(self, *args, ml_model, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].queryset = ml_model.versions.all()
