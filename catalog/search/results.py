"""Results: ranked candidates, pages, capped counts, facets and did-you-mean."""

import datetime
import difflib
import json
import re
from typing import NamedTuple

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import DateTimeField, ExpressionWrapper, F, Value
from django.db.models.expressions import Col
from django.db.models.lookups import Exact

from ..models import SearchWord
from .query import (
    _START,
    _STOP,
    headline_markup,
    headline_python,
    headline_text,
    parse,
    sqlite_score,
)
from .text import _SUGGESTABLE, CANDIDATE_LIMIT, RANDOM_PAGE_COST, SEARCH_CONFIG, clean_query

# -- results -----------------------------------------------------------------------------


class Candidate(NamedTuple):
    """One match: its id, its rank and what the facets count (a tuple: hundreds are made
    per search)."""

    pk: int
    rank: float
    severity: str
    status: str
    risk_category: str
    ml_model_id: int


_FACET_COLUMNS = ("severity", "status", "risk_category", "ml_model_id")


class Page:
    """One page of results, with what a template or an API response needs."""

    def __init__(self, results, number, size, object_list, has_next):
        self.results, self.number, self.size = results, number, size
        self.object_list, self._has_next = object_list, has_next

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self):
        return len(self.object_list)

    @property
    def count(self):
        return self.results.count

    @property
    def capped(self):
        return self.results.capped

    def has_next(self):
        return self._has_next

    def has_previous(self):
        return self.number > 1

    def has_other_pages(self):
        return self.has_next() or self.has_previous()

    def next_page_number(self):
        return self.number + 1

    def previous_page_number(self):
        return self.number - 1

    def start_index(self):
        return (self.number - 1) * self.size + 1 if self.object_list else 0

    def end_index(self):
        return (self.number - 1) * self.size + len(self.object_list)

    @property
    def num_pages(self):
        """The number of pages, or None while the count is capped and pages go on."""
        if self.results.capped and not self.results.ranked:
            return None
        return max(1, -(-self.results.count // self.size))


def _planner_rows(connection, querysets):
    """PostgreSQL's estimates of the rows each queryset returns, from one EXPLAIN of their
    UNION ALL (planned, not executed): the Append node's children, in order."""
    parts, params = [], []
    for qs in querysets:
        try:
            sql, p = qs.order_by().values("pk").query.sql_with_params()
        except EmptyResultSet:
            return None
        parts.append(f"({sql})")
        params += p
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + " UNION ALL ".join(parts), params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    children = plan[0]["Plan"].get("Plans", [])
    if plan[0]["Plan"].get("Node Type") != "Append" or len(children) != len(querysets):
        return None  # the planner folded a part away: no reliable estimate
    return [float(child["Plan Rows"]) for child in children]


def _totally_ordered(queryset):
    """Whether `queryset`'s order ends on the primary key (no two rows tie)."""
    query = queryset.query
    order = query.order_by or (query.default_ordering and queryset.model._meta.ordering) or ()
    last = order[-1] if order else None
    pk_names = {"pk", queryset.model._meta.pk.name, queryset.model._meta.pk.attname}
    return isinstance(last, str) and last.removeprefix("-") in pk_names


def _walk_filters(queryset):
    """(field, value) of each equality filter of `queryset` on a column that an index
    (column, created_at, id) walks newest first: a walk meets only those findings."""
    model = queryset.model
    walkable = {
        index.fields[0]
        for index in model._meta.indexes
        if len(index.fields) == 3
        and index.fields[1:] == ["created_at", "id"]
        and getattr(index, "condition", None) is None
    }
    where = queryset.query.where
    if where.connector != "AND" or where.negated:
        return []
    found = []
    for child in where.children:
        if not isinstance(child, Exact) or not isinstance(child.lhs, Col):
            continue
        field = child.lhs.target
        if field.model is model and field.name in walkable and not hasattr(child.rhs, "as_sql"):
            found.append((field.name, child.rhs))
    return found


def attach_tags(findings, field_name="tags"):
    """Give each finding its tags as prefetch_related("tags") would (`finding.tags.all()`
    answers without a query, in the tag model's order), from one narrow query of the
    link table: no related manager is built and filtered per finding."""
    if not findings:
        return
    model = type(findings[0])
    field = model._meta.get_field(field_name)
    through, tag_model = field.remote_field.through, field.related_model
    source, target = field.m2m_field_name(), field.m2m_reverse_field_name()
    columns = [f.attname for f in tag_model._meta.concrete_fields]
    ordering = [
        f"-{target}__{o[1:]}" if o.startswith("-") else f"{target}__{o}"
        for o in tag_model._meta.ordering
    ]
    links = (
        through.objects.filter(**{f"{source}_id__in": [f.pk for f in findings]})
        .order_by(*ordering)
        .values_list(f"{source}_id", *(f"{target}__{c}" for c in columns))
    )
    db = links.db
    tags = {f.pk: [] for f in findings}
    for finding_id, *values in links:
        tags[finding_id].append(tag_model.from_db(db, columns, values))
    # One query object shared by the findings' querysets, as the prefetch's would be
    # equal: a queryset clones its query before changing it, so none alters another's.
    manager = tag_model._default_manager
    query = manager.using(db).all().query
    for finding in findings:
        prefetched = manager._queryset_class(model=tag_model, query=query, using=db)
        prefetched._result_cache = tags[finding.pk]
        prefetched._prefetch_done = True
        cache = finding.__dict__.setdefault("_prefetched_objects_cache", {})
        cache[field.name] = prefetched


class SearchResults:
    """The findings of `queryset` matching `q`, ranked (or in the queryset's own order).

    Ranked: the newest CANDIDATE_LIMIT matches are ranked and paged through; the count is
    capped at the limit. Ordered (no query, or an explicit order): pages follow the queryset's
    order with no end, and the count and facets cover its first CANDIDATE_LIMIT rows.
    Either way a page costs a constant number of queries, whatever its size.
    """

    def __init__(self, queryset, q="", *, ranked=True, limit=CANDIDATE_LIMIT):
        self.queryset = queryset
        self.q = clean_query(q)
        self.parsed = parse(self.q)
        self.ranked = bool(self.q) and ranked
        self.limit = limit
        self.vendor = connections[queryset.db].vendor
        self._candidates = None

    # The whole match set, unranked (a queryset).
    @property
    def matches(self):
        return self.queryset.search(self.q) if self.q else self.queryset

    @property
    def candidates(self):
        if self._candidates is None:
            self._candidates = self._load_candidates()
        return self._candidates

    def _load_candidates(self):
        limit = self.limit + 1  # one more tells whether the count is capped
        if self.q and not self.parsed and self.vendor != "postgresql":
            return []
        if self.ranked and self.vendor == "postgresql":
            return self._ranked_postgres(limit)
        if self.ranked:
            return self._ranked_sqlite(limit)
        rows = self.matches.values_list("pk", *_FACET_COLUMNS)[:limit]
        return [Candidate(pk, 0.0, *rest) for pk, *rest in rows]

    def _ranked_postgres(self, limit):
        """Rank the newest `limit` matches.

        1. Choose how to find them (`_walk_created_at`): walk the findings from the newest
           (a created-at index) and stop after `limit` matches, which is quick when matches
           are frequent; or read the matches through the GIN index and keep the newest,
           which is quick when they are few. Ordering on an expression that no b-tree
           serves forbids the walk.
        2. Reading the matches, look first among the newest findings only
           (`_window_start`): as many as should hold twice `limit` matches. When they do
           hold `limit` matches, those are the newest `limit` of all (every finding left
           out is older than every one looked at); otherwise read every match. Without
           the window a word in 1% of the catalog costs reading 1% of the catalog, more
           as it grows; with it, about 2 x `limit` rows whatever its size.
        3. Rank only those rows with ts_rank, joined back by id so that the sort carries
           narrow rows, not search vectors.
        """
        matches = self.matches
        connection = connections[self.queryset.db]
        if self._walk_created_at(matches, limit, connection):
            return self._rank_newest(matches.order_by("-created_at", "-pk"), limit, connection)
        recency = ExpressionWrapper(
            F("created_at") + Value(datetime.timedelta(0)), output_field=DateTimeField()
        )
        ordered = matches.order_by(recency.desc(), "-pk")
        start = self._window_start(matches, limit, connection)
        if start is not None:
            found = self._rank_newest(ordered.filter(created_at__gte=start), limit, connection)
            if len(found) >= limit:
                return found
        return self._rank_newest(ordered, limit, connection)

    def _rank_newest(self, ordered, limit, connection):
        """The first `limit` rows of `ordered` (newest first), ranked."""
        inner = ordered.values("pk", "created_at", *_FACET_COLUMNS)[:limit]
        sql, params = inner.query.sql_with_params()
        cols = ", ".join(f"c.{c}" for c in _FACET_COLUMNS)
        table = connection.ops.quote_name(self.queryset.model._meta.db_table)
        # The inner query is Django's own SQL for the filtered, limited match set.
        outer = (
            "SELECT c.pk, ts_rank(f.search_vector, websearch_to_tsquery(%s::regconfig, %s)) "  # noqa: S608
            f"AS rank, {cols} FROM ({sql}) AS c JOIN {table} AS f ON f.id = c.pk "
            "ORDER BY rank DESC, c.created_at DESC, c.pk DESC"
        )
        # The catalog's pages are in memory: price random reads as such, so that a walk
        # uses the (ml_model, created_at) or (status, created_at) index. Sent with the
        # query as one statement list, which PostgreSQL runs as one transaction.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SET LOCAL random_page_cost = {float(RANDOM_PAGE_COST)}; {outer}",
                [SEARCH_CONFIG, self.q, *params],
            )
            return [Candidate(*row) for row in cursor.fetchall()]

    # Measured per-row costs (microseconds) at 200,000 findings: checking `@@` on a row met
    # while walking the created-at index; fetching a matched row found through a bitmap;
    # one entry of a GIN posting list turned into a bitmap.
    WALK_COST, FETCH_COST, POSTING_COST = 2.7, 1.7, 0.15
    # The newest findings looked at first hold this many times `limit` matches, expected;
    # they are looked at first when that saves reading WINDOW_GAIN times as many rows.
    WINDOW_MARGIN, WINDOW_GAIN = 2, 8

    def _estimates(self, matches, connection):
        """The planner's row estimates (EXPLAIN, not executed), once per search:
        matching (the matches), worded (every finding with the words, unfiltered), total
        (every finding) and walked (the findings a walk
        from the newest meets: those of the most selective filter that a (column,
        created_at, id) index walks in order, else every finding). None when the planner
        gives none."""
        if not hasattr(self, "_estimated"):
            base = self.queryset
            everything = base.model._default_manager.all()
            walkable = [everything.filter(**{name: value}) for name, value in _walk_filters(base)]
            rows = _planner_rows(
                connection, [matches, everything.search(self.q), everything, *walkable]
            )
            self._estimated = None
            if rows is not None:
                matching, worded, total, *walked = rows
                self._estimated = {
                    "matching": max(matching, 1.0),
                    "worded": worded,
                    "total": max(total, 1.0),
                    "walked": min([total, *walked]),
                }
        return self._estimated

    def _walk_created_at(self, matches, limit, connection):
        """Whether walking from the newest finding is cheaper than reading every match.

        PostgreSQL's planner makes this choice itself but prices `@@` like an equality
        test, so it walks far too long for a word in a few percent of the catalog. The
        planner's row estimates (`_estimates`) feed a better price here:
          walk   = WALK_COST x limit x (walked rows / matching rows)
          bitmap = FETCH_COST x matching rows + POSTING_COST x rows with the words
        A walk meets every finding of the index it walks: all of them, unless a filter on
        an indexed column (ML model, status) narrows the walk to that column's value; a
        filter that no such index serves (a tag, a severity) is checked row by row.
        """
        estimates = self._estimates(matches, connection)
        if estimates is None:
            return False
        walk = self.WALK_COST * limit * estimates["walked"] / estimates["matching"]
        bitmap = self.FETCH_COST * estimates["matching"] + self.POSTING_COST * estimates["worded"]
        return walk < bitmap

    def _window_start(self, matches, limit, connection):
        """The creation time from which the newest findings should hold WINDOW_MARGIN x
        `limit` matches (matches spread over time as the estimates say), read from the
        (created_at, id) index; None when the window would not pay: the matches are few
        enough to read them all (fewer than WINDOW_GAIN x what the window reads), the
        words are not what narrows them (a filter such as a tag does, through its own
        index, leaving many more findings with the words than matches), or the window
        would be most of the catalog anyway."""
        estimates = self._estimates(matches, connection)
        if estimates is None:
            return None
        matching, worded, total = (estimates[k] for k in ("matching", "worded", "total"))
        if matching < self.WINDOW_GAIN * self.WINDOW_MARGIN * limit:
            return None
        if worded > self.WINDOW_GAIN * matching:
            return None
        rows = int(self.WINDOW_MARGIN * limit * total / matching)
        if rows >= total / 2:
            return None
        newest = self.queryset.model._default_manager.order_by("-created_at", "-pk")
        found = list(newest.values_list("created_at", flat=True)[rows : rows + 1])
        return found[0] if found else None

    def _ranked_sqlite(self, limit):
        rows = self.matches.order_by("-created_at", "-pk").values_list(
            "pk", "search_vector", *_FACET_COLUMNS
        )[:limit]
        scored = [Candidate(pk, sqlite_score(doc, self.parsed), *rest) for pk, doc, *rest in rows]
        # Stable sort: equal scores keep the newest-first order of the query.
        return sorted(scored, key=lambda c: -c.rank)

    @property
    def capped(self):
        return len(self.candidates) > self.limit

    @property
    def count(self):
        return min(len(self.candidates), self.limit)

    def page(self, number=1, size=25, *, select_related=(), headline=False):
        """Page `number` (1-based) of `size` findings, tags attached, in result order.

        With `headline`, each finding gets a `headline` attribute: a highlighted passage of
        its summary, description and lesson (computed for this page's rows only).
        """
        number = max(1, int(number))
        offset = (number - 1) * size
        if self.ranked:
            ids = [c.pk for c in self.candidates[: self.limit][offset : offset + size]]
            has_next = offset + size < self.count
        elif offset + size <= self.limit and _totally_ordered(self.matches):
            # The page lies within the first rows, which the count and the facets read
            # anyway (the candidates, in the same order): no query of its own. (An order
            # with ties may break them differently in a query with another LIMIT.)
            window = self.candidates[offset : offset + size + 1]
            ids = [c.pk for c in window[:size]]
            has_next = len(window) > size
        else:
            ids = list(self.matches.values_list("pk", flat=True)[offset : offset + size + 1])
            has_next = len(ids) > size
            ids = ids[:size]
        # The search document is the database's to match and rank with, never shown: it
        # stays there (it is as long as the finding's text).
        rows = self.queryset.model.objects.filter(pk__in=ids).defer("search_vector").order_by()
        if select_related:
            rows = rows.select_related(*select_related)
        postgres_headline = headline and self.q and self.vendor == "postgresql"
        if postgres_headline:
            from django.contrib.postgres.search import SearchHeadline, SearchQuery
            from django.db.models import TextField, Value
            from django.db.models.functions import Concat

            rows = rows.annotate(
                headline_raw=SearchHeadline(
                    Concat(
                        "summary",
                        Value(" "),
                        "description",
                        Value(" "),
                        "lesson",
                        output_field=TextField(),
                    ),
                    SearchQuery(self.q, search_type="websearch", config=SEARCH_CONFIG),
                    config=SEARCH_CONFIG,
                    start_sel=_START,
                    stop_sel=_STOP,
                    max_words=35,
                    min_words=15,
                    max_fragments=2,
                    fragment_delimiter=" … ",
                )
            )
        by_pk = {f.pk: f for f in rows}
        ordered = [by_pk[pk] for pk in ids if pk in by_pk]
        attach_tags(ordered)
        if headline:
            for finding in ordered:
                if postgres_headline:
                    finding.headline = headline_markup(finding.headline_raw)
                elif self.q:
                    finding.headline = headline_python(headline_text(finding), self.parsed)
                else:
                    finding.headline = ""
        return Page(self, number, size, ordered, has_next)

    # -- facets ----------------------------------------------------------------------

    def facet_counts(self):
        """{column: {value: count}} over the candidates (severity, status, risk category,
        ML model), counted here without another query."""
        counts = {c: {} for c in _FACET_COLUMNS}
        for cand in self.candidates[: self.limit]:
            for col in _FACET_COLUMNS:
                value = getattr(cand, col)
                counts[col][value] = counts[col].get(value, 0) + 1
        return counts

    def tag_counts(self, top=20):
        """[(tag name, count)] over the candidates, most frequent first (one query).

        The candidate ids travel as one array parameter on PostgreSQL: a long IN list
        costs more to build in the ORM than the query takes to run."""
        model = self.queryset.model
        through = model._meta.get_field("tags").remote_field.through
        tag_table = model._meta.get_field("tags").related_model._meta.db_table
        ids = [c.pk for c in self.candidates[: self.limit]]
        if not ids:
            return []
        connection = connections[self.queryset.db]
        qn = connection.ops.quote_name
        if connection.vendor == "postgresql":
            where, params = "ft.finding_id = ANY(%s)", [ids]
        else:
            where, params = f"ft.finding_id IN ({', '.join(['%s'] * len(ids))})", list(ids)
        sql = (
            f"SELECT t.name, COUNT(*) AS n FROM {qn(through._meta.db_table)} AS ft "  # noqa: S608
            f"JOIN {qn(tag_table)} AS t ON t.id = ft.tag_id WHERE {where} "
            "GROUP BY t.name ORDER BY n DESC, t.name LIMIT %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, top])
            return [(name, n) for name, n in cursor.fetchall()]

    # -- did you mean ----------------------------------------------------------------

    def suggestion(self):
        """A corrected query when this one matches nothing, or None.

        Each word that is not in the catalog's word list is replaced by its closest known
        word (pg_trgm similarity on PostgreSQL, difflib on SQLite); the suggestion is
        offered only if it matches something.
        """

        if not self.q or self.count:
            return None
        words = []
        for clause in self.parsed.clauses:
            if not clause.negated:
                words += [w for w in clause.words if _SUGGESTABLE.match(w)]
        words = list(dict.fromkeys(words))[:6]
        if not words:
            return None
        known = set(SearchWord.objects.filter(word__in=words).values_list("word", flat=True))
        unknown = [w for w in words if w not in known]
        if not unknown:
            return None
        fixes = {}
        if self.vendor == "postgresql":
            from django.contrib.postgres.search import TrigramSimilarity

            for w in unknown:
                best = (
                    SearchWord.objects.filter(word__trigram_similar=w)
                    .annotate(sim=TrigramSimilarity("word", w))
                    .order_by("-sim", "word")
                    .values_list("word", flat=True)
                    .first()
                )
                if best:
                    fixes[w] = best
        else:
            vocabulary = list(SearchWord.objects.values_list("word", flat=True))
            for w in unknown:
                close = difflib.get_close_matches(w, vocabulary, n=1, cutoff=0.7)
                if close:
                    fixes[w] = close[0]
        if not fixes:
            return None
        corrected = re.sub(r"[^\W_]+", lambda m: fixes.get(m.group().lower(), m.group()), self.q)
        if corrected == self.q or not self.queryset.search(corrected).exists():
            return None
        return corrected
