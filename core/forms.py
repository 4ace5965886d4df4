"""Form helpers shared by every app's pages."""


def copy_errors(form, exc):
    """Copy a model ValidationError onto the form, field by field where it names one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error.messages)
    else:
        form.add_error(None, exc.messages)
