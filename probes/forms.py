import json

from django import forms

from .models import Dataset, MLModel, Probe


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


class ProbeForm(forms.ModelForm):
    """A probe for a finding; slice and parameters are JSON, checked by Probe.clean()."""

    slice = forms.CharField(required=False, widget=forms.Textarea(
        attrs={"rows": 3, "class": "slice-json", "spellcheck": "false"}),
        help_text="Conditions ANDed together; empty = whole dataset.")
    params = forms.CharField(required=False, widget=forms.Textarea(
        attrs={"rows": 4, "spellcheck": "false", "class": "params-json"}),
        help_text="JSON object; the defaults of the chosen kind are filled in.")

    class Meta:
        model = Probe
        fields = ["kind", "dataset", "slice", "params", "comparator", "threshold", "tolerance",
                  "min_support", "active"]

    def __init__(self, *args, finding=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.finding = finding
        self.fields["dataset"].widget.attrs["data-slice-dataset"] = "1"
        self.fields["kind"].widget.attrs["data-probe-kind"] = "1"
        for name in ("slice", "params"):
            value = self.initial.get(name, getattr(self.instance, name, None))
            if isinstance(value, (list, dict)):
                self.initial[name] = json.dumps(value)

    def _json(self, name, kind):
        raw = (self.cleaned_data.get(name) or "").strip()
        if not raw:
            return kind()
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg}.") from exc
        if not isinstance(value, kind):
            raise forms.ValidationError(
                "Enter a JSON list of conditions." if kind is list else "Enter a JSON object."
            )
        return value

    def clean_slice(self):
        return self._json("slice", list)

    def clean_params(self):
        return self._json("params", dict)

    def _post_clean(self):
        if self.finding is not None:
            self.instance.finding = self.finding
        super()._post_clean()


class ScanForm(forms.Form):
    """Scan a model version for weak slices on a dataset."""

    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    top_k = forms.IntegerField(
        label="Candidates", min_value=1, max_value=20, initial=5,
        help_text="How many distinct weak slices to report at most.",
    )
    max_predicates = forms.IntegerField(
        label="Conditions per slice", min_value=1, max_value=3, initial=2,
    )
    min_support = forms.IntegerField(
        label="Minimum rows per slice", min_value=5, required=False,
        help_text="Empty: 30 rows or 0.5% of the dataset, whichever is larger.",
    )


class LogCandidateForm(forms.Form):
    """The few choices a user may make when logging a scan candidate as a finding."""

    title = forms.CharField(max_length=200, required=False)
    severity = forms.ChoiceField(choices=(), required=False)
    risk_category = forms.ChoiceField(choices=(), required=False)
    error_threshold = forms.FloatField(min_value=0, max_value=1, required=False,
                                       label="Error-rate threshold")
    margin_threshold = forms.FloatField(min_value=0, max_value=1, required=False,
                                        label="Margin-density threshold")

    def __init__(self, *args, **kwargs):
        from catalog.choices import RiskCategory, Severity

        super().__init__(*args, **kwargs)
        self.fields["severity"].choices = Severity.choices
        self.fields["risk_category"].choices = RiskCategory.choices


class BoundaryMapForm(forms.Form):
    feature_x = forms.ChoiceField(label="x axis", choices=())
    feature_y = forms.ChoiceField(label="y axis", choices=())

    def __init__(self, *args, features=(), **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(f, f) for f in features]
        self.fields["feature_x"].choices = choices
        self.fields["feature_y"].choices = choices


class SweepForm(forms.Form):
    kind = forms.ChoiceField(choices=())
    model_version = forms.ModelChoiceField(queryset=None, label="on version")
    feature = forms.ChoiceField(choices=(), required=False,
                                help_text="For a counterfactual sweep: the feature to vary.")

    def __init__(self, *args, finding, **kwargs):
        from .models import SweepKind

        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = SweepKind.choices
        self.fields["model_version"].queryset = finding.ml_model.versions.all()
        features = finding.dataset.feature_columns if finding.dataset else []
        self.fields["feature"].choices = [("", "—")] + [(f, f) for f in features]


class SensitiveColumnsForm(forms.Form):
    sensitive_columns = forms.MultipleChoiceField(
        choices=(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Used in computations, never shown row by row.",
    )

    def __init__(self, *args, dataset, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sensitive_columns"].choices = [(c, c) for c in dataset.column_names]
        self.fields["sensitive_columns"].initial = dataset.sensitive_columns
