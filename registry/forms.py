
from django import forms

from .models import Dataset, MLModel


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
