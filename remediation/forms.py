from django import forms
from django.contrib.auth import get_user_model

from .models import RemediationAction


class ActionForm(forms.ModelForm):
    class Meta:
        model = RemediationAction
        fields = ["kind", "title", "description", "owner", "reviewer", "due_date"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "due_date": forms.DateInput(attrs={"type": "date"}),
        }

    def __init__(self, *args, finding=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.finding = finding
        users = get_user_model().objects.filter(is_active=True).order_by("username")
        self.fields["owner"].queryset = users
        self.fields["reviewer"].queryset = users

    def save(self, commit=True):
        self.instance.finding = self.finding
        return super().save(commit=commit)
