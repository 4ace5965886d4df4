import django_filters

from .models import Finding


class FindingFilterSet(django_filters.FilterSet):
    """The catalog's filters, shared by the page, the API and the exports.

    `tag` may repeat (`?tag=a&tag=b`: findings with both); it is a semi-join, never a
    DISTINCT over the catalog, so that it combines cheaply with a ranked search.
    """

    tag = django_filters.CharFilter(method="filter_tags", label="Tag")
    ml_model_slug = django_filters.CharFilter(field_name="ml_model__slug")
    created_after = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte")
    created_before = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte")

    class Meta:
        model = Finding
        fields = [
            "ml_model",
            "model_version",
            "dataset",
            "severity",
            "risk_category",
            "status",
            "owner",
            "is_key_lesson",
        ]

    def filter_tags(self, queryset, name, value):
        through = Finding.tags.through
        names = self.data.getlist("tag") if hasattr(self.data, "getlist") else [value]
        for tag in {n.strip().lower() for n in names if n and n.strip()}:
            queryset = queryset.filter(
                pk__in=through.objects.filter(tag__name__iexact=tag).values("finding_id")
            )
        return queryset
