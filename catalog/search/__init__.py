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

from .documents import (
    connect,
    deferred,
    document_parts,
    follow_actions,
    refresh,
    slice_features,
    sqlite_document,
)
from .query import (
    ParsedQuery,
    headline_markup,
    headline_python,
    headline_text,
    parse,
    sqlite_filter,
    sqlite_score,
)
from .results import Candidate, Page, SearchResults
from .text import (
    CANDIDATE_LIMIT,
    MAX_QUERY_LENGTH,
    SEARCH_CONFIG,
    STOP_WORDS,
    clean_query,
    lexemes,
    stem,
    tokens,
)

__all__ = [
    "CANDIDATE_LIMIT",
    "MAX_QUERY_LENGTH",
    "SEARCH_CONFIG",
    "STOP_WORDS",
    "Candidate",
    "Page",
    "ParsedQuery",
    "SearchResults",
    "clean_query",
    "connect",
    "deferred",
    "document_parts",
    "follow_actions",
    "headline_markup",
    "headline_python",
    "headline_text",
    "lexemes",
    "parse",
    "refresh",
    "slice_features",
    "sqlite_document",
    "sqlite_filter",
    "sqlite_score",
    "stem",
    "tokens",
]
