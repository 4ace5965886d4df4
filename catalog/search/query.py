"""Queries: the web-search syntax parsed, matched on SQLite, highlighted."""

import re
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils.html import escape
from django.utils.safestring import mark_safe

from .text import _TOKEN, MAX_QUERY_LENGTH, STOP_WORDS, WEIGHTS, stem, tokens

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
        current.append(
            Clause(tuple(kept), tuple(stem(w) for w in kept), negated, phrase and len(kept) > 1)
        )
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
    hits = [
        i
        for i, m in enumerate(matches)
        if m.group().lower() not in STOP_WORDS and stem(m.group().lower()) in wanted
    ]
    first = max(0, (hits[0] - 5) if hits else 0)
    last = min(len(matches), first + words)
    begin = 0 if first == 0 else matches[first].start()
    end = matches[last - 1].end()
    out, pos = [], begin
    for i in hits:
        if first <= i < last:
            m = matches[i]
            out += [escape(text[pos : m.start()]), "<mark>", escape(m.group()), "</mark>"]
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
