"""Forms of the pages that read across every app."""

from django import forms

from core import hygiene


class ImportCatalogForm(forms.Form):
    file = forms.FileField(label="Catalog export (JSON)")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            self.cleaned_data["data"] = hygiene.loads(upload.read())
        except hygiene.InputError as exc:
            raise forms.ValidationError(f"Not a catalog export: {exc}") from exc
        return upload
