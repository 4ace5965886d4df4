import django_filters
from django.utils import timezone

from core.models import AuditEvent

from .choices import OPEN_ACTION_STATUSES
from .models import RemediationAction


class ActionFilterSet(django_filters.FilterSet):
    ml_model = django_filters.NumberFilter(field_name="finding__ml_model")
    severity = django_filters.CharFilter(field_name="finding__severity")
    overdue = django_filters.BooleanFilter(method="filter_overdue")
    changed_since = django_filters.DateFilter(field_name="updated_at", lookup_expr="date__gte")

    class Meta:
        model = RemediationAction
        fields = ["finding", "kind", "status", "owner", "reviewer", "fixed_in_version"]

    def filter_overdue(self, qs, name, value):
        today = timezone.localdate()
        overdue = qs.filter(status__in=OPEN_ACTION_STATUSES, due_date__lt=today)
        return overdue if value else qs.exclude(pk__in=overdue.values("pk"))


class AuditEventFilterSet(django_filters.FilterSet):
    object_type = django_filters.CharFilter(method="filter_object_type")
    since = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte")
    until = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte")
    actor = django_filters.CharFilter(field_name="actor_label")

    class Meta:
        model = AuditEvent
        fields = ["verb", "object_id", "to_status"]

    def filter_object_type(self, qs, name, value):
        app_label, _, model = value.partition(".")
        return qs.filter(content_type__app_label=app_label, content_type__model=model.lower())
