"""Nothing with history is deleted (DESIGN.md, Workflows): versions, datasets, findings,
probes, runs, actions, evaluations and audit events stay; what is obsolete is retired or
archived.

Each app names its models with history in its AppConfig.ready(); a delete of one of them,
through any path that goes through the ORM (a model's delete(), a queryset's, a cascade
from another row, the admin, a shell), is refused before anything is removed, inside the
delete's own transaction.
"""

from django.db.models import ProtectedError
from django.db.models.signals import pre_delete


class HistoryProtected(ProtectedError):
    """A delete of a record with history, refused."""


def _refuse(sender, instance, **kwargs):
    label = sender._meta.verbose_name
    raise HistoryProtected(
        f"A {label} has history and is never deleted; retire or archive it instead.",
        {instance},
    )


def protect(*models):
    for model in models:
        pre_delete.connect(_refuse, sender=model, dispatch_uid=f"history-{model._meta.label}")
