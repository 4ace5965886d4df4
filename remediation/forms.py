from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from core.markdown import HELP_TEXT as MARKDOWN_HELP
from core.roles import members
from registry.forms import VersionField

from .choices import Outcome
from .models import FREE_WHEN_FROZEN, Evaluation, RemediationAction

DUE_DATE_HELP = (
    "Defaults from the finding's severity: critical 7 days, high 30, medium 90, low 180."
)


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
        self.fields["due_date"].help_text = DUE_DATE_HELP
        if finding is not None and self.instance.pk is None:
            self.initial.setdefault("due_date", RemediationAction.default_due_date(finding))
        # Offered: active users with a role. Any user is looked up, so that someone else
        # is refused with the reason (RemediationAction.check_person), not "invalid choice".
        offered = [("", "---------")] + [(u.pk, u.get_username()) for u in members()]
        for name in ("owner", "reviewer"):
            self.fields[name].queryset = get_user_model().objects.all()
            self.fields[name].choices = offered

    def _person(self, field):
        user = self.cleaned_data.get(field)
        unchanged = self.instance.pk and getattr(self.instance, f"{field}_id") == getattr(
            user, "pk", None
        )
        if user is not None and not unchanged:
            try:
                RemediationAction.check_person(user, field)
            except ValidationError as exc:
                raise ValidationError(exc.message_dict[field]) from exc
        return user

    def clean_owner(self):
        return self._person("owner")

    def clean_reviewer(self):
        return self._person("reviewer")

    def save(self, commit=True):
        self.instance.finding = self.finding
        return super().save(commit=commit)


class ActionEditForm(ActionForm):
    """An action's fields, as its owner, its named reviewer or a reviewer edits them; a
    verified, ineffective, rejected or cancelled action offers its description only.
    Saved by RemediationAction.edit (the rules and the audit event)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, finding=kwargs["instance"].finding, **kwargs)
        if self.instance.is_frozen:
            for name, field in self.fields.items():
                if name not in FREE_WHEN_FROZEN:
                    field.disabled = True

    def _post_clean(self):
        pass  # the values are checked on the locked row by RemediationAction.edit

    def changes(self):
        return {
            name: self.cleaned_data[name] for name in self.changed_data if name in self.cleaned_data
        }


class EvaluationForm(forms.Form):
    model_version = VersionField()
    outcome = forms.ChoiceField(choices=Outcome.choices)
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What was checked, e.g. a user study and its result.",
    )

    def __init__(self, *args, action, **kwargs):
        super().__init__(*args, **kwargs)
        self.action = action
        self.fields["model_version"].limit_to(action.finding.ml_model)

    def save(self, *, by):
        return Evaluation.objects.create(
            action=self.action,
            model_version=self.cleaned_data["model_version"],
            outcome=self.cleaned_data["outcome"],
            notes=self.cleaned_data["notes"],
            is_manual=True,
            created_by=by,
        )
