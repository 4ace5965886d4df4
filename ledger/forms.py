"""Forms of the pages that read across every app."""

import json

from django import forms


class ImportCatalogForm(forms.Form):
    file = forms.FileField(label="Catalog export (JSON)")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            self.cleaned_data["data"] = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise forms.ValidationError(f"Not a JSON file: {exc}") from exc
        return upload
