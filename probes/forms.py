import json

from django import forms

from registry.forms import VersionField

from .models import Probe


class ProbeForm(forms.ModelForm):
    """A probe for a finding; slice and parameters are JSON, checked by Probe.clean()."""

    slice = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "slice-json", "spellcheck": "false"}),
        help_text="Conditions ANDed together; empty = whole dataset.",
    )
    params = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "params-json"}),
        help_text="JSON object; the defaults of the chosen kind are filled in.",
    )

    class Meta:
        model = Probe
        fields = [
            "kind",
            "dataset",
            "slice",
            "params",
            "comparator",
            "threshold",
            "tolerance",
            "min_support",
            "decide",
            "active",
        ]

    def __init__(self, *args, finding=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.finding = finding
        self.fields["dataset"].widget.attrs["data-slice-dataset"] = "1"
        self.fields["kind"].widget.attrs["data-probe-kind"] = "1"
        self.fields["decide"].required = False
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

    def clean_decide(self):
        # Left out, a probe decides as it did (a new probe: on the value).
        return self.cleaned_data.get("decide") or self.instance.decide

    def clean_params(self):
        return self._json("params", dict)

    def _post_clean(self):
        if self.finding is not None:
            self.instance.finding = self.finding
        super()._post_clean()


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
        super().__init__(*args, instance=draft, finding=probe.finding, **kwargs)
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
