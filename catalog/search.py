"""Full-text search over findings, on PostgreSQL and (slower, same behaviour) on SQLite.

What a finding's search document holds, by weight (`document_parts`):
  A  the title
  B  the summary and the lesson
  C  the description, the harms and the titles of the finding's remediation actions
  D  the tag names, the slice's feature names and the ML model's name

PostgreSQL keeps it in `Finding.search_vector`, a stored tsvector with a GIN index, written
by `refresh()` whenever something in it changes (signals below: finding saves, tag edits,
actions, ML model renames). Queries use the web-search syntax (`"quoted phrase"`, `or`,
`-excluded`) through websearch_to_tsquery and are ranked with ts_rank.

SQLite has no text search, so the same column holds the same words, stemmed with the
Snowball English stemmer PostgreSQL uses and stripped of its stop words, one section per
weight (`|A word word |B word |C |D word |`). A query is parsed here with the same syntax,
matched with LIKE on whole words, and ranked by a weighted count of the matches.

Speed at scale: ranking every match of a common word is what makes a search slow (a word in
half of 200,000 findings costs about a second to rank). A ranked search therefore ranks a
bounded candidate set: the newest CANDIDATE_LIMIT matches, found either by walking the
findings from the newest (quick when matches are frequent) or through the GIN index (quick
when they are few), chosen from the planner's row estimates (`_walk_created_at`). Counts are
capped the same way ("250+"), and the facets are counted over the candidates.
"""

import contextvars
import datetime
import difflib
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, Value
from django.utils.html import escape
from django.utils.safestring import mark_safe

from registry.models import MLModel

from .models import Finding, SearchWord, Tag

SEARCH_CONFIG = "english"
CANDIDATE_LIMIT = 250
WEIGHTS = {"A": 1.0, "B": 0.4, "C": 0.2, "D": 0.1}  # ts_rank's defaults, by label
REFRESH_BATCH = 1000
RANDOM_PAGE_COST = getattr(settings, "SEARCH_RANDOM_PAGE_COST", 1.1)
MAX_QUERY_LENGTH = 300

# PostgreSQL's english.stop, so that both databases ignore the same words.
_STOP_TEXT = (
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves what which
    who whom this that these those am is are was were be been being have has had having do
    does did doing a an the and but if or because as until while of at by for with about
    against between into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all any both each
    few more most other some such no nor not only own same so than too very s t can will
    just don should now"""
)
STOP_WORDS = frozenset(_STOP_TEXT.split())

_TOKEN = re.compile(r"\d+\.\d+|[^\W_]+")
_SUGGESTABLE = re.compile(r"^[^\W\d_]{3,40}$")


def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


_STEM = None


def stem(word):
    global _STEM
    if _STEM is None:
        _STEM = _stemmer()
    return _STEM.stemWord(word)


def clean_query(q):
    """A query as searched: NUL characters (which PostgreSQL refuses in any string)
    become spaces, surrounding space goes, and it is cut at MAX_QUERY_LENGTH."""
    return (q or "").replace("\x00", " ").strip()[:MAX_QUERY_LENGTH]


def tokens(text):
    """Lower-cased words of `text` (letters and digits; decimals stay whole)."""
    return _TOKEN.findall((text or "").lower())


def lexemes(text):
    """The stems of `text`'s words minus stop words, in order (what PostgreSQL indexes)."""
    return [stem(t) for t in tokens(text) if t not in STOP_WORDS]


# -- the document ------------------------------------------------------------------------


def slice_features(predicates):
    if not isinstance(predicates, list):
        return []
    return [str(p.get("feature")) for p in predicates if isinstance(p, dict) and p.get("feature")]


def document_parts(*, title, summary, lesson, description, harms, action_titles, tag_names,
                   slice, ml_model_name):
    """The text of each weight of a finding's search document (the one definition)."""
    return {
        "A": title or "",
        "B": " ".join(filter(None, [summary, lesson])),
        "C": " ".join(filter(None, [description, harms, *action_titles])),
        "D": " ".join(filter(None, [*tag_names, *slice_features(slice), ml_model_name])),
    }


def sqlite_document(parts):
    """`|A misjudg posit |B ... |` : the weighted stems the SQLite fallback searches."""
    return "".join(f"|{label} {' '.join(lexemes(parts[label]))} " for label in "ABCD") + "|"


def _collect(finding_model, ids):
    """{id: parts} for these findings, in three queries."""
    action_model = finding_model._meta.get_field("actions").related_model
    through = finding_model._meta.get_field("tags").remote_field.through
    tags, actions = {}, {}
    for fid, name in through.objects.filter(finding_id__in=ids).values_list(
        "finding_id", "tag__name"
    ):
        tags.setdefault(fid, []).append(name)
    for fid, title in action_model.objects.filter(finding_id__in=ids).order_by("pk").values_list(
        "finding_id", "title"
    ):
        actions.setdefault(fid, []).append(title)
    rows = finding_model.objects.filter(pk__in=ids).values_list(
        "pk", "title", "summary", "lesson", "description", "harms", "slice", "ml_model__name"
    )
    return {
        pk: document_parts(
            title=title, summary=summary, lesson=lesson, description=description, harms=harms,
            action_titles=actions.get(pk, []), tag_names=sorted(tags.get(pk, [])),
            slice=slice_, ml_model_name=model_name,
        )
        for pk, title, summary, lesson, description, harms, slice_, model_name in rows
    }


def suggestable_words(parts):
    return {w for text in parts.values() for w in tokens(text)
            if w not in STOP_WORDS and _SUGGESTABLE.match(w)}


def refresh(ids=None, *, finding_model=None, word_model=None, using="default"):
    """Rewrite the search document of these findings (all of them when `ids` is None).

    1. Read the text of a batch of findings, their tags and their actions (three queries).
    2. PostgreSQL: one UPDATE computes the weighted tsvector from that text; SQLite: the
       stemmed words are written as text.
    3. Add the batch's words to the word list behind "did you mean".
    Takes the models as arguments so that a migration can run it on its historical models.
    """
    if finding_model is None:
        finding_model, word_model = Finding, SearchWord
    if ids is None:
        ids = list(finding_model.objects.order_by("pk").values_list("pk", flat=True))
    ids = sorted({int(i) for i in ids if i is not None})
    conn = connections[using]
    table = conn.ops.quote_name(finding_model._meta.db_table)
    for start in range(0, len(ids), REFRESH_BATCH):
        docs = _collect(finding_model, ids[start:start + REFRESH_BATCH])
        if not docs:
            continue
        with conn.cursor() as cursor:
            if conn.vendor == "postgresql":
                values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(docs))
                params = [x for pk, p in docs.items() for x in (pk, p["A"], p["B"], p["C"], p["D"])]
                weighted = " || ".join(
                    f"setweight(to_tsvector('{SEARCH_CONFIG}', v.{label.lower()}), '{label}')"
                    for label in "ABCD"
                )
                cursor.execute(
                    f"UPDATE {table} AS f SET search_vector = {weighted} "  # noqa: S608
                    f"FROM (VALUES {values}) AS v(id, a, b, c, d) WHERE f.id = v.id",
                    params,
                )
            else:
                cursor.executemany(
                    f"UPDATE {table} SET search_vector = %s WHERE id = %s",  # noqa: S608
                    [(sqlite_document(p), pk) for pk, p in docs.items()],
                )
        if word_model is not None:
            words = set().union(*(suggestable_words(p) for p in docs.values()))
            word_model.objects.bulk_create(
                [word_model(word=w) for w in sorted(words)], ignore_conflicts=True,
                batch_size=1000,
            )


# -- the query -------------------------------------------------------------------------


@dataclass
class Clause:
    """One word or quoted phrase of a query, as stems; `negated` for `-word`."""

    words: tuple
    stems: tuple
    negated: bool = False
    phrase: bool = False


@dataclass
class ParsedQuery:
    """Alternatives (`or`) of clauses that must all hold, as websearch_to_tsquery reads it."""

    alternatives: list = field(default_factory=list)

    @property
    def clauses(self):
        return [c for alt in self.alternatives for c in alt]

    @property
    def positive_stems(self):
        return {s for c in self.clauses if not c.negated for s in c.stems}

    def __bool__(self):
        return any(any(not c.negated for c in alt) for alt in self.alternatives)


_QUERY_PART = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def parse(q):
    """Read `q` with the web-search syntax: words (all must match), "quoted phrases",
    `or` between alternatives, `-word` or `-"phrase"` to exclude."""
    alternatives, current = [], []
    for m in _QUERY_PART.finditer((q or "")[:MAX_QUERY_LENGTH]):
        negated, quoted, bare = m.group(1) == "-", m.group(2), m.group(3)
        if bare is not None:
            if bare.lower() == "or":
                if current:
                    alternatives.append(current)
                    current = []
                continue
            negated = bare.startswith("-")
            bare = bare.lstrip("-")
            words = tokens(bare)
            phrase = len(words) > 1  # "young-applicants" reads as a phrase, as in PostgreSQL
        else:
            words, phrase = tokens(quoted), True
        kept = [w for w in words if w not in STOP_WORDS]
        if not kept:
            continue
        current.append(Clause(tuple(kept), tuple(stem(w) for w in kept), negated,
                              phrase and len(kept) > 1))
    if current:
        alternatives.append(current)
    return ParsedQuery(alternatives)


def _clause_needle(clause):
    return " " + " ".join(clause.stems) + " "


def sqlite_filter(parsed):
    """A Q that matches the SQLite documents satisfying the parsed query."""
    any_alt = Q(pk__in=[])
    for alt in parsed.alternatives:
        cond = Q()
        for clause in alt:
            if clause.phrase:
                match = Q(search_vector__contains=_clause_needle(clause))
            else:
                match = Q()
                for s in clause.stems:
                    match &= Q(search_vector__contains=f" {s} ")
            cond &= ~match if clause.negated else match
        if any(not c.negated for c in alt):
            any_alt |= cond
    return any_alt


def sqlite_score(document, parsed):
    """A weighted count of the query's words and phrases in a SQLite document."""
    score = 0.0
    sections = (document or "").split("|")
    for section in sections:
        if len(section) < 2 or section[0] not in WEIGHTS:
            continue
        weight, body = WEIGHTS[section[0]], section[1:]
        for clause in parsed.clauses:
            if clause.negated:
                continue
            if clause.phrase:
                score += weight * body.count(_clause_needle(clause))
            else:
                score += weight * sum(body.count(f" {s} ") for s in clause.stems)
    return score


def headline_python(text, parsed, *, words=30):
    """The passage of `text` around the first matched word, with matches in <mark>."""
    matches = list(_TOKEN.finditer(text or ""))
    if not matches:
        return ""
    wanted = parsed.positive_stems
    hits = [i for i, m in enumerate(matches)
            if m.group().lower() not in STOP_WORDS and stem(m.group().lower()) in wanted]
    first = max(0, (hits[0] - 5) if hits else 0)
    last = min(len(matches), first + words)
    begin = 0 if first == 0 else matches[first].start()
    end = matches[last - 1].end()
    out, pos = [], begin
    for i in hits:
        if first <= i < last:
            m = matches[i]
            out += [escape(text[pos:m.start()]), "<mark>", escape(m.group()), "</mark>"]
            pos = m.end()
    out.append(escape(text[pos:end]))
    prefix = "… " if begin > 0 else ""
    suffix = " …" if end < len(text.rstrip()) else ""
    return mark_safe(prefix + "".join(out) + suffix)  # noqa: S308 (every piece escaped)


_START, _STOP = "\x02", "\x03"


def headline_markup(raw):
    """ts_headline's output (with sentinel markers) as escaped HTML with <mark>."""
    html = escape(raw or "").replace(_START, "<mark>").replace(_STOP, "</mark>")
    return mark_safe(html)  # noqa: S308 (escaped above; only our markers become tags)


def headline_text(finding):
    return " ".join(filter(None, [finding.summary, finding.description, finding.lesson]))


# -- results -----------------------------------------------------------------------------


@dataclass
class Candidate:
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
           are frequent; or read every match through the GIN index and keep the newest,
           which is quick when they are few. Ordering on an expression that no b-tree
           serves forbids the walk.
        2. Rank only those rows with ts_rank, joined back by id so that the sort carries
           narrow rows, not search vectors.
        """
        matches = self.matches
        connection = connections[self.queryset.db]
        if self._walk_created_at(matches, limit, connection):
            ordered = matches.order_by("-created_at", "-pk")
        else:
            recency = ExpressionWrapper(F("created_at") + Value(datetime.timedelta(0)),
                                        output_field=DateTimeField())
            ordered = matches.order_by(recency.desc(), "-pk")
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
            cursor.execute(f"SET LOCAL random_page_cost = {float(RANDOM_PAGE_COST)}; {outer}",
                           [SEARCH_CONFIG, self.q, *params])
            return [Candidate(*row) for row in cursor.fetchall()]

    # Measured per-row costs (microseconds) at 200,000 findings: checking `@@` on a row met
    # while walking the created-at index; fetching a matched row found through a bitmap;
    # one entry of a GIN posting list turned into a bitmap.
    WALK_COST, FETCH_COST, POSTING_COST = 2.7, 1.7, 0.15

    def _walk_created_at(self, matches, limit, connection):
        """Whether walking from the newest finding is cheaper than reading every match.

        PostgreSQL's planner makes this choice itself but prices `@@` like an equality
        test, so it walks far too long for a word in a few percent of the catalog. The
        planner's row estimates (EXPLAIN, not executed) feed a better price here:
          walk   = WALK_COST x limit x (filtered rows / matching rows)
          bitmap = FETCH_COST x matching rows + POSTING_COST x rows with the words
        """
        base = self.queryset
        estimates = _planner_rows(
            connection, [matches, base, base.model._default_manager.search(self.q)]
        )
        if estimates is None:
            return False
        matching, filtered, worded = estimates
        matching = max(matching, 1.0)
        walk = self.WALK_COST * limit * filtered / matching
        bitmap = self.FETCH_COST * matching + self.POSTING_COST * worded
        return walk < bitmap

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
        """Page `number` (1-based) of `size` findings, tags prefetched, in result order.

        With `headline`, each finding gets a `headline` attribute: a highlighted passage of
        its summary, description and lesson (computed for this page's rows only).
        """
        number = max(1, int(number))
        offset = (number - 1) * size
        if self.ranked:
            ids = [c.pk for c in self.candidates[: self.limit][offset:offset + size]]
            has_next = offset + size < self.count
        else:
            ids = list(self.matches.values_list("pk", flat=True)[offset:offset + size + 1])
            has_next = len(ids) > size
            ids = ids[:size]
        rows = self.queryset.model.objects.filter(pk__in=ids).prefetch_related("tags")
        if select_related:
            rows = rows.select_related(*select_related)
        postgres_headline = headline and self.q and self.vendor == "postgresql"
        if postgres_headline:
            from django.contrib.postgres.search import SearchHeadline, SearchQuery
            from django.db.models import TextField, Value
            from django.db.models.functions import Concat

            rows = rows.annotate(
                headline_raw=SearchHeadline(
                    Concat("summary", Value(" "), "description", Value(" "), "lesson",
                           output_field=TextField()),
                    SearchQuery(self.q, search_type="websearch", config=SEARCH_CONFIG),
                    config=SEARCH_CONFIG, start_sel=_START, stop_sel=_STOP,
                    max_words=35, min_words=15, max_fragments=2, fragment_delimiter=" … ",
                )
            )
        by_pk = {f.pk: f for f in rows}
        ordered = [by_pk[pk] for pk in ids if pk in by_pk]
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
        corrected = re.sub(
            r"[^\W_]+", lambda m: fixes.get(m.group().lower(), m.group()), self.q
        )
        if corrected == self.q or not self.queryset.search(corrected).exists():
            return None
        return corrected


# -- keeping the documents current ---------------------------------------------------------


_deferred = contextvars.ContextVar("search_deferred", default=None)


@contextmanager
def deferred():
    """Inside this block (a bulk import) changes only collect the findings to refresh;
    they are refreshed once, in batches, when the block ends without an error."""
    pending = set()
    token = _deferred.set(pending)
    try:
        yield
    finally:
        _deferred.reset(token)
    refresh(pending)


def _refresh_ids(ids):
    ids = [i for i in ids if i is not None]
    pending = _deferred.get()
    if pending is not None:
        pending.update(ids)
    elif ids:
        refresh(ids)


def _finding_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _refresh_ids([instance.pk])


def _tags_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if action == "pre_clear":
        instance._search_cleared = (
            list(instance.findings.values_list("pk", flat=True)) if reverse else [instance.pk]
        )
    elif action == "post_clear":
        _refresh_ids(getattr(instance, "_search_cleared", []))
    elif action in ("post_add", "post_remove"):
        if isinstance(instance, Finding):
            _refresh_ids([instance.pk])
        else:
            _refresh_ids(pk_set or [])


def _tag_saved(sender, instance, created, raw=False, **kwargs):
    if not created and not raw:
        _refresh_ids(list(instance.findings.values_list("pk", flat=True)))


def _tag_deleting(sender, instance, **kwargs):
    instance._search_findings = list(instance.findings.values_list("pk", flat=True))


def _tag_deleted(sender, instance, **kwargs):
    _refresh_ids(getattr(instance, "_search_findings", []))


def _action_changed(sender, instance, raw=False, **kwargs):
    if raw:
        return
    # The finding may be on its way out (a cascade deletes its actions first): then the
    # UPDATE touches nothing.
    _refresh_ids([instance.finding_id])


def _mlmodel_saved(sender, instance, created, raw=False, **kwargs):
    if not created and not raw:
        _refresh_ids(list(instance.findings.values_list("pk", flat=True)))


def follow_actions(action_model):
    """Action titles are part of their finding's document: the remediation app calls this
    from its ready() with its action model."""
    from django.db.models.signals import post_delete, post_save

    post_save.connect(_action_changed, sender=action_model, dispatch_uid="search-action")
    post_delete.connect(_action_changed, sender=action_model,
                        dispatch_uid="search-action-deleted")


def connect():
    """Keep the search documents current on every change that affects them."""
    from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete



    post_save.connect(_finding_saved, sender=Finding, dispatch_uid="search-finding")
    m2m_changed.connect(_tags_changed, sender=Finding.tags.through, dispatch_uid="search-tags")
    post_save.connect(_tag_saved, sender=Tag, dispatch_uid="search-tag-saved")
    pre_delete.connect(_tag_deleting, sender=Tag, dispatch_uid="search-tag-deleting")
    post_delete.connect(_tag_deleted, sender=Tag, dispatch_uid="search-tag-deleted")
    post_save.connect(_mlmodel_saved, sender=MLModel, dispatch_uid="search-mlmodel")
