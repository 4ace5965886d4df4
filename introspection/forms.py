from django import forms
from django.core.exceptions import ValidationError

from catalog.choices import RiskCategory, Severity
from registry.forms import VersionField
from registry.models import Dataset

from .models import SweepKind


class ScanForm(forms.Form):
    """Scan a model version for weak slices on one of its ML model's datasets: those are
    the ones offered (an evaluation dataset first, the default), any other is refused at
    the field (MLModel.check_owns) before a job is queued."""

    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.defer("preview"),
        help_text="The ML model's datasets; a held-out one shows the model's errors best.",
    )
    top_k = forms.IntegerField(
        label="Candidates",
        min_value=1,
        max_value=20,
        initial=5,
        help_text="How many distinct weak slices to report at most.",
    )
    max_predicates = forms.IntegerField(
        label="Conditions per slice",
        min_value=1,
        max_value=3,
        initial=2,
    )
    min_support = forms.IntegerField(
        label="Minimum rows per slice",
        min_value=5,
        required=False,
        help_text="Empty: 30 rows or 0.5% of the dataset, whichever is larger.",
    )

    def __init__(self, *args, version, **kwargs):
        self.version = version
        ml_model = version.ml_model
        trained = set(ml_model.reference_datasets().values_list("pk", flat=True))
        evaluation = [d for d in ml_model.datasets() if d.pk not in trained]
        training = [d for d in ml_model.datasets() if d.pk in trained]
        # The default: the dataset asked for when it is an evaluation dataset, else the
        # newest evaluation dataset; the training data only when there is nothing else.
        initial = kwargs.setdefault("initial", {})
        chosen = getattr(initial.get("dataset"), "pk", initial.get("dataset"))
        if chosen not in {d.pk for d in evaluation}:
            first = (evaluation or training or [None])[0]
            chosen = first.pk if first else None
        initial["dataset"] = chosen
        super().__init__(*args, **kwargs)
        self.fields["dataset"].widget.choices = [("", "---------")] + [
            (d.pk, str(d) + (" (training data)" if d.pk in trained else ""))
            for d in evaluation + training
        ]

    def clean_dataset(self):
        dataset = self.cleaned_data["dataset"]
        try:
            self.version.ml_model.check_owns(dataset, field="dataset")
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["dataset"]) from exc
        return dataset


class LogCandidateForm(forms.Form):
    """The few choices a user may make when logging a scan candidate as a finding."""

    title = forms.CharField(max_length=200, required=False)
    severity = forms.ChoiceField(choices=(), required=False)
    risk_category = forms.ChoiceField(choices=(), required=False)
    error_threshold = forms.FloatField(
        min_value=0, max_value=1, required=False, label="Error-rate threshold"
    )
    margin_threshold = forms.FloatField(
        min_value=0, max_value=1, required=False, label="Margin-density threshold"
    )

    def __init__(self, *args, **kwargs):
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
    model_version = VersionField(label="on version")
    feature = forms.ChoiceField(
        choices=(), required=False, help_text="For a counterfactual sweep: the feature to vary."
    )

    def __init__(self, *args, finding, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = SweepKind.choices
        self.fields["model_version"].limit_to(finding.ml_model)
        features = finding.dataset.feature_columns if finding.dataset else []
        self.fields["feature"].choices = [("", "—")] + [(f, f) for f in features]


class SensitiveColumnsForm(forms.Form):
    sensitive_columns = forms.MultipleChoiceField(
        choices=(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Used in computations, never shown row by row.",
    )

    def __init__(self, *args, dataset, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sensitive_columns"].choices = [(c, c) for c in dataset.column_names]
        self.fields["sensitive_columns"].initial = dataset.sensitive_columns
