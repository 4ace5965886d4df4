from django import forms
from django.contrib.auth import get_user_model

from core.markdown import HELP_TEXT as MARKDOWN_HELP
from registry.forms import VersionField

from .choices import Outcome
from .models import Evaluation, RemediationAction


class ActionForm(forms.ModelForm):
    class Meta:
        model = RemediationAction
        fields = ["kind", "title", "description", "owner", "reviewer", "due_date"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "due_date": forms.DateInput(attrs={"type": "date"}),
        }
        help_texts = {"description": MARKDOWN_HELP}

    def __init__(self, *args, finding=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.finding = finding
        users = get_user_model().objects.filter(is_active=True).order_by("username")
        self.fields["owner"].queryset = users
        self.fields["reviewer"].queryset = users

    def save(self, commit=True):
        self.instance.finding = self.finding
        return super().save(commit=commit)


class EvaluationForm(forms.Form):
    model_version = VersionField()
    outcome = forms.ChoiceField(choices=Outcome.choices)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                            help_text="What was checked, e.g. a user study and its result.")

    def __init__(self, *args, action, **kwargs):
        super().__init__(*args, **kwargs)
        self.action = action
        self.fields["model_version"].limit_to(action.finding.ml_model)

    def save(self, *, by):
        return Evaluation.objects.create(
            action=self.action, model_version=self.cleaned_data["model_version"],
            outcome=self.cleaned_data["outcome"], notes=self.cleaned_data["notes"],
            is_manual=True, created_by=by,
        )
