import django_filters

from .models import Finding


class FindingFilterSet(django_filters.FilterSet):
    tag = django_filters.CharFilter(field_name="tags__name", lookup_expr="iexact", distinct=True)
    ml_model_slug = django_filters.CharFilter(field_name="ml_model__slug")
    created_after = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte")
    created_before = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte")

    class Meta:
        model = Finding
        fields = [
            "ml_model", "model_version", "dataset", "severity", "risk_category", "status",
            "owner", "is_key_lesson",
        ]
