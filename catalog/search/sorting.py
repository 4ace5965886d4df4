"""The catalog's orders: every sort name the page, the table and the exports accept, and
the one rule that picks relevance.

A sort name is a column's name for ascending and the name with a leading "-" for
descending ("title", "-title"); the finding's age keeps its familiar names ("newest",
"oldest"). Every order ends on the id, so that pages never repeat or skip a finding.
"""

from django.db.models import Case, Count, F, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce

from ..choices import SEVERITY_ORDER, FindingStatus

RELEVANCE = "relevance"


def _rank(field, order):
    """`field`'s values ranked by `order` (a value -> position mapping)."""
    return Case(
        *[When(**{field: value}, then=Value(n)) for value, n in order.items()],
        default=Value(len(order)),
        output_field=IntegerField(),
    )


def _count(queryset):
    """The number of rows of `queryset` that point at each finding, as a subquery (0
    when none): counted per row of the outer query, so that it combines with any filter
    and any page without a GROUP BY over the catalog."""
    field = queryset.model._meta.get_field("finding").attname
    counted = (
        queryset.filter(finding=OuterRef("pk"))
        .order_by()
        .values(field)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def probe_count(model):
    """The finding's live probes (retired and superseded ones are history)."""
    probe_model = model._meta.get_field("probes").related_model
    return _count(probe_model.objects.filter(active=True))


def open_action_count(model):
    """The finding's open remediation actions (the action manager's own `open()`)."""
    action_model = model._meta.get_field("actions").related_model
    return _count(action_model.objects.open())


# Each sortable column: how to order by it ascending (an expression or a field path).
COLUMN_ORDERS = {
    "id": lambda model: F("pk"),
    "title": lambda model: F("title"),
    "ml_model": lambda model: F("ml_model__name"),
    "severity": lambda model: _rank("severity", SEVERITY_ORDER),
    "status": lambda model: _rank("status", {s: n for n, s in enumerate(FindingStatus.values)}),
    "risk_category": lambda model: F("risk_category"),
    "owner": lambda model: F("owner__username"),
    "created": lambda model: F("created_at"),
    "updated": lambda model: F("updated_at"),
    "probes": probe_count,
    "open_actions": open_action_count,
}

# The finding's age reads better as newest/oldest than as "created" up or down.
ALIASES = {"newest": "-created", "oldest": "created"}
NAMES = {name: alias for alias, name in ALIASES.items()}


def canonical(sort):
    """The sort's own name: "-created" is "newest", "created" is "oldest"."""
    return NAMES.get(sort, sort)


def is_known(sort):
    """Whether `sort` names an order this catalog offers (relevance included)."""
    if sort == RELEVANCE or sort in ALIASES:
        return True
    return sort.removeprefix("-") in COLUMN_ORDERS


def choose(q, requested):
    """The order of the catalog for a query `q` and the sort the user asked for.

    Relevance is the order of a search unless the user explicitly chose another sort;
    without a query it means nothing, and the newest come first. An unknown sort name is
    no choice."""
    requested = canonical((requested or "").strip())
    if not is_known(requested):
        requested = ""
    if q:
        return requested or RELEVANCE
    return "newest" if requested in ("", RELEVANCE) else requested


def _nullable(model, expression):
    """Whether `expression` can be NULL: a field path through a nullable field."""
    if not isinstance(expression, F):
        return False  # the ranks and counts above always give a number
    for part in expression.name.split("__"):
        field = model._meta.pk if part == "pk" else model._meta.get_field(part)
        if field.null:
            return True
        if not field.is_relation:
            return False
        model = field.related_model
    return False


def order(queryset, sort):
    """`queryset` in the order `sort` names (never relevance: a search ranks itself).
    Owners left empty come last either way. NULLS LAST is asked for only where a value
    can be missing: on a column that never is it changes nothing, except that PostgreSQL
    then sorts every row instead of reading the column's index backwards (newest first)."""
    name = ALIASES.get(sort, sort)
    descending = name.startswith("-")
    expression = COLUMN_ORDERS[name.removeprefix("-")](queryset.model)
    nulls_last = True if _nullable(queryset.model, expression) else None
    if descending:
        return queryset.order_by(expression.desc(nulls_last=nulls_last), "-pk")
    return queryset.order_by(expression.asc(nulls_last=nulls_last), "pk")


def toggled(sort, column, *, descending_first=False):
    """The sort a click on `column`'s header asks for: the other direction when the list
    is already in this column's order, else the column's first direction."""
    current = ALIASES.get(sort, sort)
    if current == column:
        return canonical(f"-{column}")
    if current == f"-{column}":
        return canonical(column)
    return canonical(f"-{column}" if descending_first else column)


def direction(sort, column):
    """ "ascending" or "descending" when the list is in `column`'s order, else ""."""
    current = ALIASES.get(sort, sort)
    if current == column:
        return "ascending"
    if current == f"-{column}":
        return "descending"
    return ""
