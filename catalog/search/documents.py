"""The search documents: what each finding's holds, writing them, and keeping them current."""

import contextvars
from contextlib import contextmanager

from django.db import connections

from registry.models import MLModel

from ..models import Finding, SearchWord, Tag
from .text import _SUGGESTABLE, REFRESH_BATCH, SEARCH_CONFIG, STOP_WORDS, lexemes, tokens

# -- the document ------------------------------------------------------------------------


def slice_features(predicates):
    if not isinstance(predicates, list):
        return []
    return [str(p.get("feature")) for p in predicates if isinstance(p, dict) and p.get("feature")]


def document_parts(
    *, title, summary, lesson, description, harms, action_titles, tag_names, slice, ml_model_name
):
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
    for fid, title in (
        action_model.objects.filter(finding_id__in=ids)
        .order_by("pk")
        .values_list("finding_id", "title")
    ):
        actions.setdefault(fid, []).append(title)
    rows = finding_model.objects.filter(pk__in=ids).values_list(
        "pk", "title", "summary", "lesson", "description", "harms", "slice", "ml_model__name"
    )
    return {
        pk: document_parts(
            title=title,
            summary=summary,
            lesson=lesson,
            description=description,
            harms=harms,
            action_titles=actions.get(pk, []),
            tag_names=sorted(tags.get(pk, [])),
            slice=slice_,
            ml_model_name=model_name,
        )
        for pk, title, summary, lesson, description, harms, slice_, model_name in rows
    }


def suggestable_words(parts):
    return {
        w
        for text in parts.values()
        for w in tokens(text)
        if w not in STOP_WORDS and _SUGGESTABLE.match(w)
    }


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
        docs = _collect(finding_model, ids[start : start + REFRESH_BATCH])
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
                [word_model(word=w) for w in sorted(words)],
                ignore_conflicts=True,
                batch_size=1000,
            )


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
    post_delete.connect(_action_changed, sender=action_model, dispatch_uid="search-action-deleted")


def connect():
    """Keep the search documents current on every change that affects them."""
    from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

    post_save.connect(_finding_saved, sender=Finding, dispatch_uid="search-finding")
    m2m_changed.connect(_tags_changed, sender=Finding.tags.through, dispatch_uid="search-tags")
    post_save.connect(_tag_saved, sender=Tag, dispatch_uid="search-tag-saved")
    pre_delete.connect(_tag_deleting, sender=Tag, dispatch_uid="search-tag-deleting")
    post_delete.connect(_tag_deleted, sender=Tag, dispatch_uid="search-tag-deleted")
    post_save.connect(_mlmodel_saved, sender=MLModel, dispatch_uid="search-mlmodel")
