import json

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms import formset_factory

from boundary import engine
from catalog.forms import OwnedSelect, SliceField, dataset_owners, mark_dataset_owners
from registry.forms import VersionField
from registry.models import Dataset

from .choices import Comparator, ProbeKind
from .models import Probe


class ProbeForm(forms.ModelForm):
    """A probe for a finding. The slice is text (catalog.forms.SliceField), the parameters
    JSON; the dataset must be one of the finding's ML model's (MLModel.check_owns); the
    definition is checked by Probe.clean(), each message shown at the field it is about."""

    slice = SliceField()
    params = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "params-json"}),
        help_text="JSON object; the defaults of the chosen kind are filled in.",
    )

    class Meta:
        model = Probe
        fields = [
            "kind",
            "dataset",
            "also_on",
            "slice",
            "params",
            "comparator",
            "threshold",
            "tolerance",
            "min_support",
            "decide",
            "active",
        ]
        widgets = {"dataset": OwnedSelect, "also_on": forms.CheckboxSelectMultiple}
        labels = {"also_on": "Also run on"}

    def __init__(self, *args, finding=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.finding = finding
        dataset = self.fields["dataset"]
        dataset.queryset = Dataset.objects.defer("preview")
        dataset.widget.attrs["data-slice-dataset"] = "1"
        ml_model = getattr(finding, "ml_model", None) if finding is not None else None
        if ml_model is not None and finding.ml_model_id:
            # Offer the ML model's datasets (and the one the probe has); any other is
            # refused at the field by clean_dataset.
            mine = {d.pk for d in ml_model.datasets()} | {self.initial.get("dataset")}
            dataset.widget.choices = [
                (value, label)
                for value, label in dataset.choices
                if not value or getattr(value, "value", value) in mine
            ]
        if "also_on" in self.fields:
            also_on = self.fields["also_on"]
            also_on.queryset = Dataset.objects.defer("preview")
            if ml_model is not None and finding.ml_model_id:
                # The ML model's other datasets; Probe.check_also_on refuses the rest.
                also_on.queryset = also_on.queryset.filter(
                    pk__in=[d.pk for d in ml_model.datasets()]
                    + list(self.initial.get("also_on") or [])
                )
        self.fields["kind"].widget.attrs["data-probe-kind"] = "1"
        if "decide" in self.fields:
            self.fields["decide"].required = False
        params = self.initial.get("params", getattr(self.instance, "params", None))
        if isinstance(params, dict):
            self.initial["params"] = json.dumps(params)

    def clean_dataset(self):
        dataset = self.cleaned_data.get("dataset")
        finding = self.finding
        if dataset is not None and finding is not None and finding.ml_model_id:
            try:
                finding.ml_model.check_owns(dataset, field="dataset")
            except ValidationError as exc:
                raise ValidationError(exc.message_dict["dataset"]) from exc
        return dataset

    def clean_decide(self):
        # Left out, a probe decides as it did (a new probe: on the value).
        return self.cleaned_data.get("decide") or self.instance.decide

    def clean_params(self):
        raw = (self.cleaned_data.get("params") or "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"Not valid JSON: {exc.msg}.") from exc
        if not isinstance(value, dict):
            raise ValidationError("Enter a JSON object.")
        return value

    def clean(self):
        data = super().clean()
        comparator = data.get("comparator")
        if (
            "threshold" in data
            and data["threshold"] is None
            and comparator
            and comparator != Comparator.NO_WORSE
        ):
            self.add_error(
                "threshold",
                f"A threshold is required with the comparator {Comparator(comparator).label}.",
            )
        return data

    def _post_clean(self):
        if self.finding is not None:
            self.instance.finding = self.finding
        if self.has_error("threshold") or self.has_error("dataset"):
            # The definition is checked whole once these are right: checked now, it
            # would only repeat them at the top of the form.
            return
        super()._post_clean()
        check_also_on(self)

    def _update_errors(self, errors):
        """Probe.clean() keys its messages by field; one the form does not show goes to
        the top of the form."""
        if hasattr(errors, "error_dict"):
            routed = {}
            for name, messages in errors.error_dict.items():
                routed.setdefault(name if name in self.fields else "__all__", []).extend(messages)
            errors = ValidationError(routed)
        return super()._update_errors(errors)


def check_also_on(form):
    """A probe form's `also_on` datasets, checked by Probe.check_also_on against the probe
    the form built (its dataset, finding and slice), the message shown at the field."""
    if "also_on" not in form.fields or form.has_error("also_on") or form.has_error("slice"):
        return
    also_on = form.cleaned_data.get("also_on")
    if also_on is None:
        return
    try:
        form.instance.check_also_on(list(also_on))
    except ValidationError as exc:
        form.add_error("also_on", exc.message_dict["also_on"])


class ProbeRevisionForm(ProbeForm):
    """A revision of a probe: its definition, prefilled, and a note. The form checks the
    revised definition as a new probe (full_clean on a draft); Probe.revise saves it."""

    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What changes and why; kept in the history of both probes.",
    )

    class Meta(ProbeForm.Meta):
        fields = [name for name in ProbeForm.Meta.fields if name != "active"]

    def __init__(self, *args, probe, **kwargs):
        fields = [Probe._meta.get_field(name) for name in Probe.definition_fields()]
        draft = Probe(
            **{f.attname: getattr(probe, f.attname) for f in fields if not f.many_to_many}
        )
        initial = {"also_on": [d.pk for d in probe.also_on.all()], **kwargs.pop("initial", {})}
        super().__init__(*args, instance=draft, finding=probe.finding, initial=initial, **kwargs)
        self.probe = probe

    def changes(self):
        """The definition as the form has it, for Probe.revise (which keeps what differs)."""
        return {
            name: self.cleaned_data[name] for name in self._meta.fields if name in self.cleaned_data
        }


class RetireForm(forms.Form):
    note = forms.CharField(max_length=5000, help_text="Why the probe no longer applies.")


class RunForm(forms.Form):
    """Run a finding's active probes (or one of them) now, on a version of its ML model."""

    model_version = VersionField()
    probe = forms.ModelChoiceField(queryset=Probe.objects.none(), required=False)

    def __init__(self, *args, finding, **kwargs):
        super().__init__(*args, **kwargs)
        self.finding = finding
        self.fields["model_version"].limit_to(finding.ml_model)
        self.fields["probe"].queryset = finding.probes.all()

    def probes(self):
        """The probes to run: the chosen one, or every active probe of the finding."""
        probe = self.cleaned_data.get("probe")
        return [probe] if probe else list(self.finding.probes.filter(active=True))


class FindingProbeForm(ProbeForm):
    """One probe logged with a new finding: a row of the finding form. A row without a
    kind is left out; an empty dataset or slice is the finding's."""

    slice = SliceField(help_text="Empty: the finding's slice.")

    class Meta(ProbeForm.Meta):
        fields = ["kind", "dataset", "slice", "params", "comparator", "threshold"]

    def __init__(self, *args, owners=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].required = False
        self.fields["kind"].choices = [("", "— no probe —"), *ProbeKind.choices]
        self.fields["dataset"].required = False
        self.fields["dataset"].empty_label = "the finding's dataset"
        mark_dataset_owners(self.fields["dataset"], owners or {})
        self.fields["slice"].widget.attrs["placeholder"] = "the finding's slice"

    def has_changed(self):
        return bool(self.data.get(self.add_prefix("kind")))

    def clean(self):
        data = super().clean()
        finding = self.finding
        if data.get("dataset") is None and not self.has_error("dataset"):
            if finding is not None and finding.dataset_id:
                data["dataset"] = finding.dataset
            else:
                self.add_error("dataset", "Choose the dataset the probe runs on.")
        if not (self.data.get(self.add_prefix("slice")) or "").strip() and finding is not None:
            data["slice"] = finding.slice
        return data


FindingProbeFormSet = formset_factory(
    FindingProbeForm, extra=2, max_num=10, absolute_max=10, validate_max=True
)


class FindingProbes:
    """The probes logged in the same submit as a new finding (a part of the finding form,
    catalog.forms.finding_form_parts): saved with it, each as a probe added on its own
    (full_clean, save, start_history), or nothing is."""

    template_name = "probes/_finding_probes_part.html"
    prefix = "probes"

    def __init__(self, data):
        if data is not None and f"{self.prefix}-TOTAL_FORMS" not in data:
            data = None  # a finding form sent without probe rows
        self.formset = FindingProbeFormSet(
            data, prefix=self.prefix, form_kwargs={"owners": dataset_owners()}
        )
        self.saved = 0

    def defaults_json(self):
        return json.dumps({kind: engine.default_params(kind) for kind in engine.PROBE_KINDS})

    def comparators_json(self):
        return json.dumps(engine.DEFAULT_COMPARATOR)

    def rows(self):
        return [form for form in self.formset.forms if form.has_changed()]

    def is_valid(self, finding):
        if not self.formset.is_bound:
            return True
        for form in self.formset.forms:
            form.finding = finding
        return self.formset.is_valid()

    def save(self, finding, *, by):
        """Save each probe of the rows for `finding` (in the caller's transaction)."""
        if not self.formset.is_bound:
            return
        with transaction.atomic():
            for form in self.rows():
                probe = form.save(commit=False)
                probe.finding, probe.created_by = finding, by
                try:
                    probe.full_clean()
                except ValidationError as exc:
                    form._update_errors(exc)
                    raise
                probe.save()
                probe.start_history(by)
                self.saved += 1


def finding_form_probes(sender, data, user, **kwargs):
    """The receiver of catalog.forms.finding_form_parts: probe rows for whoever may add
    probes."""
    return FindingProbes(data) if user.has_perm("probes.add_probe") else None
