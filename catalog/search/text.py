"""Words: the query syntax's constants, stemming and tokens."""

import re

from django.conf import settings

SEARCH_CONFIG = "english"
CANDIDATE_LIMIT = 250
WEIGHTS = {"A": 1.0, "B": 0.4, "C": 0.2, "D": 0.1}  # ts_rank's defaults, by label
REFRESH_BATCH = 1000
RANDOM_PAGE_COST = getattr(settings, "SEARCH_RANDOM_PAGE_COST", 1.1)
MAX_QUERY_LENGTH = 300

# PostgreSQL's english.stop, so that both databases ignore the same words.
_STOP_TEXT = """i me my myself we our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves what which
    who whom this that these those am is are was were be been being have has had having do
    does did doing a an the and but if or because as until while of at by for with about
    against between into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all any both each
    few more most other some such no nor not only own same so than too very s t can will
    just don should now"""
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
