import json

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.dispatch import Signal

from boundary import slices
from core.markdown import HELP_TEXT as MARKDOWN_HELP
from registry.models import Dataset, MLModel, ModelVersion

from .models import Finding, Tag

SLICE_HELP = (
    'Conditions joined by AND, e.g. age < 22 AND region in ("north", "south"); '
    "back-quote a name with spaces (`mean radius` > 14). Empty: the whole dataset."
)

# Parts of the finding form that the apps above the catalog add (the probes app adds rows
# of probes, saved with the finding). A receiver, connected in its app's ready(), is sent
# `data` (the POST or None) and `user`, and returns a part (or None when the user may not
# add one): `is_valid(draft)` checks it against the
# unsaved finding, `save(finding, by=user)` saves it inside the finding's transaction
# (raising ValidationError undoes everything), `template_name` renders it with `part`.
finding_form_parts = Signal()


def parts_of_finding_form(data, user):
    """The parts the other apps add to the finding form, in the order they answered."""
    answers = finding_form_parts.send(sender=Finding, data=data, user=user)
    return [part for _, part in answers if part is not None]


class SliceField(forms.CharField):
    """A slice written as text, `age < 22 AND region in ("north", "south")` (read by
    slices.parse, shown by slices.describe), or as the JSON list of predicates that older
    pages and scripts send. The slice builder (static/js/slice-builder.js) edits the same
    field; the predicates are checked against the dataset by the model's clean()."""

    widget = forms.Textarea(
        attrs={"rows": 2, "class": "slice-text", "spellcheck": "false", "data-slice-text": "1"}
    )

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", SLICE_HELP)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list):
            try:
                return "" if not value else slices.describe(value)
            except (slices.ProbeDefinitionError, KeyError, TypeError, IndexError):
                return json.dumps(value)
        return value

    def to_python(self, value):
        text = (value or "").strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"The slice is not valid JSON: {exc.msg}.") from exc
            if not isinstance(parsed, list):
                raise ValidationError("A slice is a list of predicates.")
            return parsed
        try:
            return slices.parse(text)
        except slices.SliceSyntaxError as exc:
            raise ValidationError(f"The slice cannot be read: {exc}.") from exc


class OwnedSelect(forms.Select):
    """A select whose options carry extra attributes by value (`option_attrs`), such as
    the ML models a dataset belongs to, so that the page can offer only what fits."""

    def __init__(self, attrs=None, choices=()):
        super().__init__(attrs, choices)
        self.option_attrs = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        extra = self.option_attrs.get(str(getattr(value, "value", value)))
        if extra:
            option["attrs"] = {**option["attrs"], **extra}
        return option


def dataset_owners(datasets=None, ml_models=None):
    """{dataset id: [ids of the ML models it belongs to]} (MLModel.dataset_refusal)."""
    datasets = list(Dataset.objects.defer("preview") if datasets is None else datasets)
    owners = {d.pk: [] for d in datasets}
    for ml_model in MLModel.objects.all() if ml_models is None else ml_models:
        references = list(ml_model.reference_datasets())
        for dataset in datasets:
            if not ml_model.dataset_refusal(dataset, references):
                owners[dataset.pk].append(ml_model.pk)
    return owners


def mark_dataset_owners(field, owners):
    """Tag each dataset option with the ML models it belongs to (data-ml-models)."""
    field.widget.option_attrs = {
        str(pk): {"data-ml-models": " ".join(map(str, models))} for pk, models in owners.items()
    }


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
    """A finding: the version and the dataset must be the chosen ML model's
    (MLModel.check_owns, at the field); the slice is text (SliceField)."""

    slice = SliceField()
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
        labels = {"ml_model": "ML model", "model_version": "Version"}
        widgets = {
            "model_version": OwnedSelect,
            "dataset": OwnedSelect,
            "description": forms.Textarea(attrs={"rows": 5}),
            "harms": forms.Textarea(attrs={"rows": 2}),
            "affected_stakeholders": forms.Textarea(attrs={"rows": 2}),
            "lesson": forms.Textarea(attrs={"rows": 3}),
            "remaining_gaps": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            **dict.fromkeys(
                ["description", "harms", "affected_stakeholders", "lesson", "remaining_gaps"],
                MARKDOWN_HELP,
            ),
            "dataset": "The dataset the slice is defined on; only the ML model's datasets fit.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        versions = self.fields["model_version"]
        versions.queryset = ModelVersion.objects.select_related("ml_model")
        versions.widget.option_attrs = {
            str(v.pk): {"data-ml-model": str(v.ml_model_id)} for v in versions.queryset
        }
        self.fields["dataset"].queryset = Dataset.objects.defer("preview")
        mark_dataset_owners(self.fields["dataset"], dataset_owners())
        self.fields["ml_model"].widget.attrs["data-ml-model-choice"] = "1"
        self.fields["dataset"].widget.attrs["data-slice-dataset"] = "1"
        self.fields["owner"].queryset = get_user_model().objects.filter(is_active=True)
        if self.instance.pk:
            self.fields["tag_names"].initial = ", ".join(t.name for t in self.instance.tags.all())

    def clean(self):
        data = super().clean()
        ml_model, dataset = data.get("ml_model"), data.get("dataset")
        if ml_model is not None and dataset is not None:
            try:
                ml_model.check_owns(dataset, field="dataset")
            except ValidationError as exc:
                self.add_error("dataset", exc.message_dict["dataset"])
                # The slice is read against the dataset: not against one that was refused.
                data.pop("slice", None)
        return data

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
