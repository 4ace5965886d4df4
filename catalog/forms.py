import json

from django import forms
from django.contrib.auth import get_user_model

from core.markdown import HELP_TEXT as MARKDOWN_HELP
from registry.models import Dataset, ModelVersion

from .models import Finding, Tag


class SliceField(forms.CharField):
    """A slice as JSON, edited row by row by the slice builder (static/js/slice-builder.js)."""

    widget = forms.Textarea(attrs={"rows": 3, "class": "slice-json", "spellcheck": "false"})

    def prepare_value(self, value):
        if isinstance(value, (list, dict)):
            return json.dumps(value)
        return value

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return []
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"The slice is not valid JSON: {exc.msg}.") from exc
        if not isinstance(parsed, list):
            raise forms.ValidationError("A slice is a list of predicates.")
        return parsed


class JSONObjectField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false"})

    def prepare_value(self, value):
        if isinstance(value, (list, dict)):
            return json.dumps(value, indent=2)
        return value

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return {}
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg}.") from exc
        if not isinstance(parsed, dict):
            raise forms.ValidationError('Enter a JSON object, e.g. {"error_rate": 0.31}.')
        return parsed


class FindingForm(forms.ModelForm):
    slice = SliceField(
        required=False, help_text="Predicates ANDed together; empty = whole dataset."
    )
    evidence = JSONObjectField(required=False, help_text="Measured values, as a JSON object.")
    tag_names = forms.CharField(
        required=False,
        label="Tags",
        help_text="Comma-separated, e.g. calibration, young-applicants",
    )

    class Meta:
        model = Finding
        fields = [
            "title",
            "summary",
            "ml_model",
            "model_version",
            "dataset",
            "slice",
            "severity",
            "risk_category",
            "description",
            "evidence",
            "harms",
            "affected_stakeholders",
            "policy_reference",
            "lesson",
            "remaining_gaps",
            "owner",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 5}),
            "harms": forms.Textarea(attrs={"rows": 2}),
            "affected_stakeholders": forms.Textarea(attrs={"rows": 2}),
            "lesson": forms.Textarea(attrs={"rows": 3}),
            "remaining_gaps": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = dict.fromkeys(
            ["description", "harms", "affected_stakeholders", "lesson", "remaining_gaps"],
            MARKDOWN_HELP,
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].queryset = ModelVersion.objects.select_related("ml_model")
        self.fields["dataset"].queryset = Dataset.objects.all()
        self.fields["dataset"].widget.attrs["data-slice-dataset"] = "1"
        self.fields["owner"].queryset = get_user_model().objects.filter(is_active=True)
        if self.instance.pk:
            self.fields["tag_names"].initial = ", ".join(t.name for t in self.instance.tags.all())

    def save(self, commit=True):
        finding = super().save(commit=commit)
        if commit:
            names = self.cleaned_data.get("tag_names", "").split(",")
            finding.tags.set(Tag.from_names(names))
        return finding


class FindingFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search")


class ImportFindingsForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, one finding per row, a header row.")
