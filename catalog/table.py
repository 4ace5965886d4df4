"""The catalog as a table: chosen columns, sortable headers, and bulk changes (owner, tag)
to the findings ticked on the page.

The whole state lives in the URL: the query and filters, `sort`, `cols` (repeated or
comma-separated), `per_page`, `page` and `view=table`. A bulk change is a POST that comes
back to that same URL.
"""

import unicodedata
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from core import hygiene
from core.audit import acting_as
from core.workflow import TransitionError, edit

from .forms import FindingForm
from .models import Finding, Tag
from .search import sorting

TABLE = "table"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sortable: bool = True
    # Severity, dates and counts read best largest or latest first on the first click.
    descending_first: bool = False


COLUMNS = {
    c.key: c
    for c in (
        Column("id", "#"),
        Column("title", "Title"),
        Column("ml_model", "ML model"),
        Column("severity", "Severity", descending_first=True),
        Column("status", "Status"),
        Column("risk_category", "Risk category"),
        Column("owner", "Owner"),
        Column("tags", "Tags", sortable=False),
        Column("created", "Created", descending_first=True),
        Column("updated", "Updated", descending_first=True),
        Column("probes", "Probes", descending_first=True),
        Column("open_actions", "Open actions", descending_first=True),
    )
}
DEFAULT_COLUMNS = ("id", "title", "ml_model", "severity", "status", "owner", "tags", "updated")
# The title links to the finding: a table without it leads nowhere.
REQUIRED_COLUMNS = ("title",)

# Bulk changes name at most this many findings (a page holds at most 100).
BULK_MAX_IDS = 500


# -- state in the URL ------------------------------------------------------------------


def link(params, *, keep_page=False, **changes):
    """The query string of `params` with `changes` applied (None removes a key, a list
    sets every value of it); the page number is dropped unless `keep_page` (a new order or
    filter starts on page 1). What QueryDict.copy(), then setting and popping keys, then
    urlencode() gives, without copying the QueryDict (a page makes dozens of links)."""
    lists = dict(params.lists())
    if not keep_page:
        lists.pop("page", None)
    for key, value in changes.items():
        if value is None:
            lists.pop(key, None)
        else:
            lists[key] = value if isinstance(value, list) else [value]
    encoding = getattr(params, "encoding", None) or "utf-8"
    return urlencode(
        [
            (key.encode(encoding), str(value).encode(encoding))
            for key, values in lists.items()
            for value in values
        ]
    )


def is_table(params):
    return params.get("view") == TABLE


def view_links(params):
    """Links to the cards and to the table, each keeping every other part of the state."""
    return {
        "cards": link(params, keep_page=True, view=None),
        "table": link(params, keep_page=True, view=TABLE),
    }


def chosen_columns(params):
    """The columns `cols` names, in the table's own order, the title always among them; the
    default set when it names none."""
    named = {
        part.strip()
        for value in params.getlist("cols")
        for part in value.split(",")
        if part.strip() in COLUMNS
    }
    if not named:
        named = set(DEFAULT_COLUMNS)
    named.update(REQUIRED_COLUMNS)
    return [c for key, c in COLUMNS.items() if key in named]


def hidden_state(params, *, leave_out=()):
    """(name, value) pairs of the state for a GET form's hidden inputs, minus the fields the
    form shows itself and the page number."""
    skip = {"page", *leave_out}
    return [(k, v) for k, values in params.lists() if k not in skip for v in values]


def sort_label(sort):
    """How the sort menu names an order ("Newest", "Severity, descending")."""
    if sort in (sorting.RELEVANCE, *sorting.ALIASES):
        return sort.capitalize()
    name = sorting.ALIASES.get(sort, sort)
    column = COLUMNS[name.removeprefix("-")]
    return f"{column.label}, {'descending' if name.startswith('-') else 'ascending'}"


def sort_options(q, sort):
    """The sort menu: (value, label) pairs and the value selected.

    The menu's first entry is the default order, sent as an empty value: relevance when
    there is a query, else newest first. Leaving the menu alone is therefore no choice,
    and a new search from a list in its default order is ranked by relevance. Relevance
    is offered only with a query; an order chosen in the table's headers is listed too."""
    default = sorting.choose(q, "")
    options = [("", sort_label(default))]
    options += [(s, sort_label(s)) for s in ("newest", "oldest") if s != default]
    if sort not in (default, "newest", "oldest"):
        options.append((sort, sort_label(sort)))
    return options, "" if sort == default else sort


def headers(params, columns, sort):
    """The table's header cells: label, sort link and the direction it is sorted in."""
    cells = []
    for column in columns:
        cell = {"key": column.key, "label": column.label, "link": "", "direction": ""}
        if column.sortable:
            target = sorting.toggled(sort, column.key, descending_first=column.descending_first)
            cell["link"] = link(params, sort=target)
            cell["direction"] = sorting.direction(sort, column.key)
        cells.append(cell)
    return cells


def _day(value):
    """`{{ value|date:"Y-m-d" }}`: the day in the current time zone."""
    if value is None:
        return ""
    local = timezone.template_localtime(value)
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d}"


def _snippet(text, length=200):
    """`{{ text|truncatechars:200 }}`, without Truncator when nothing is cut."""
    normal = unicodedata.normalize("NFC", text or "")
    return normal if len(normal) <= length else Truncator(text).chars(length)


def _label_maps():
    """{field: {value: label}} of the finding's fields with choices, as get_FOO_display()
    shows them (in the active language: built per page)."""
    return {
        name: {value: str(label) for value, label in Finding._meta.get_field(name).flatchoices}
        for name in ("severity", "status", "risk_category")
    }


def _detail_url():
    """A function pk -> the finding's page (Finding.get_absolute_url), reversing once."""
    marker = "9876543210"
    url = reverse("catalog:finding_detail", args=[int(marker)])
    if url.count(marker) != 1:
        return lambda pk: reverse("catalog:finding_detail", args=[pk])
    head, tail = url.split(marker)
    return lambda pk: f"{head}{pk}{tail}"


def decorate(findings):
    """Give each finding of a page `show`: what its card or row displays (its page's
    address, its labels, its days, its tags with their link values, its summary cut to
    200 characters), worked out here
    once per page rather than by the template once per row (reversing the address,
    looking the labels up, formatting dates, building each tag's related manager)."""
    labels = _label_maps()
    url = _detail_url()
    for finding in findings:
        tags = [t.name for t in finding.tags.all()]
        finding.show = {
            "url": url(finding.pk),
            "severity": labels["severity"].get(finding.severity, finding.severity),
            "status": labels["status"].get(finding.status, finding.status),
            "risk_category": labels["risk_category"].get(
                finding.risk_category, finding.risk_category
            ),
            "created": _day(finding.created_at),
            "updated": _day(finding.updated_at),
            "tags": [(name, quote(name)) for name in tags],
            "summary": _snippet(finding.summary),
        }
    return findings


def annotate_counts(findings):
    """Give each finding of a page `probe_count` and `open_action_count` (one query)."""
    if not findings:
        return findings
    counts = {
        pk: (probes, actions)
        for pk, probes, actions in Finding.objects.filter(pk__in=[f.pk for f in findings])
        .annotate(
            probes_n=sorting.probe_count(Finding), actions_n=sorting.open_action_count(Finding)
        )
        .values_list("pk", "probes_n", "actions_n")
    }
    for finding in findings:
        finding.probe_count, finding.open_action_count = counts.get(finding.pk, (0, 0))
    return findings


def owner_choices():
    """The people a finding may be assigned to: those its edit form offers."""
    return FindingForm().fields["owner"].queryset


def context(request, page, sort):
    """What the table's template needs, beside the list's own context."""
    params = request.GET
    columns = chosen_columns(params)
    may_edit = edit_refusal(request.user) is None
    annotate_counts(page.object_list)
    return {
        "columns": columns,
        "column_keys": [c.key for c in columns],
        "all_columns": [(c, c in columns) for c in COLUMNS.values()],
        "required_columns": REQUIRED_COLUMNS,
        "headers": headers(params, columns, sort),
        "column_form_state": hidden_state(params, leave_out=("cols",)),
        "state": params.urlencode(),
        "tag_link_base": link(params, view=TABLE),
        "may_bulk_edit": may_edit,
        "owners": list(owner_choices().only("pk", "username")) if may_edit else [],
    }


# -- bulk changes ----------------------------------------------------------------------


def edit_refusal(user, finding=None):
    """Why `user` may not edit `finding` (None when they may): the rule of the finding's
    own edit page, which asks for the permission to change findings (a role grants it)."""
    if user.has_perm("catalog.change_finding"):
        return None
    return "your role does not let you edit findings"


def back_url(state):
    """The catalog page with `state` (a query string posted with the form): the same list
    the bulk change was made from. Only the query string is taken from the form."""
    query = QueryDict(state or "").urlencode()
    url = reverse("catalog:finding_list")
    return f"{url}?{query}" if query else url


@dataclass
class BulkChange:
    """A bulk change, validated: the findings' ids and either an owner or a tag name."""

    action: str
    ids: list
    owner: object = None
    tag_name: str = ""
    changed: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    refused: list = field(default_factory=list)  # (title or "#id", reason)

    ACTIONS = ("assign", "tag")

    @classmethod
    def from_post(cls, data):
        """Read the POSTed form; an InputError (a 400) for anything that is not a list of
        ids and one known change, before anything is saved."""
        action = data.get("action", "")
        if action not in cls.ACTIONS:
            raise hygiene.InputError("choose “Assign owner” or “Add tag”.", "action")
        raw = data.getlist("ids")
        if len(raw) > BULK_MAX_IDS:
            raise hygiene.InputError(f"at most {BULK_MAX_IDS} findings at a time.", "ids")
        ids = []
        for value in raw:
            pk = hygiene.parse_id(value, "ids")
            if pk is not None and pk not in ids:
                ids.append(pk)
        change = cls(action, ids)
        if action == "assign":
            owner_id = hygiene.parse_id(data.get("owner"), "owner")
            if owner_id is not None:
                change.owner = owner_choices().filter(pk=owner_id).first()
                if change.owner is None:
                    raise hygiene.InputError(
                        f"{owner_id} is not an active user who may own findings.", "owner"
                    )
        else:
            change.tag_name = hygiene.check_text(data.get("tag", ""), "tag").strip().lower()[:60]
        return change

    @property
    def missing(self):
        """What the form left out, said as the user would fix it; "" when complete."""
        if not self.ids:
            return "Tick the findings to change first."
        if self.action == "assign" and self.owner is None:
            return "Choose the owner to assign."
        if self.action == "tag" and not self.tag_name:
            return "Type the tag to add."
        return ""

    def apply(self, *, by):
        """Change each finding in its own transaction, through the domain's edit path
        (core.workflow.edit: lock, the edit rule, save, audit event): a finding is
        changed completely or not at all, and a refusal leaves the others changed."""
        found = {f.pk: f for f in Finding.objects.filter(pk__in=self.ids)}
        for pk in self.ids:
            finding = found.get(pk)
            if finding is None:
                self.refused.append((f"#{pk}", "no such finding"))
                continue
            try:
                change = self._assign if self.action == "assign" else self._tag
                did = change(finding, by)
            except TransitionError as exc:
                self.refused.append((finding.title, str(exc)))
                continue
            (self.changed if did else self.unchanged).append(finding)
        return self

    def _assign(self, finding, by):
        def apply(locked):
            if locked.owner_id == self.owner.pk:
                return False
            locked.owner = self.owner
            return True

        before = finding.owner_id
        edit(finding, by=by, may_edit=lambda locked, user: edit_refusal(user, locked), apply=apply)
        return finding.owner_id != before

    def _tag(self, finding, by):
        added = []

        def apply(locked):
            # Created here, once someone may edit: a refused change leaves no new tag.
            # The tag edit writes its own audit event (tags before and after); of the
            # finding's fields only its time of update changes.
            tag = Tag.from_names([self.tag_name])[0]
            if not locked.tags.filter(pk=tag.pk).exists():
                with acting_as(by):
                    locked.tags.add(tag)
                Finding.objects.filter(pk=locked.pk).update(updated_at=timezone.now())
                added.append(locked.pk)
            return False

        edit(finding, by=by, may_edit=lambda locked, user: edit_refusal(user, locked), apply=apply)
        return bool(added)

    def summary(self):
        """The message for the changes made ("" when none)."""
        n = len(self.changed)
        if not n:
            return ""
        findings = f"{n} finding{'s' if n != 1 else ''}"
        if self.action == "assign":
            return f"{self.owner.get_username()} now owns {findings}."
        return f"Tag “{self.tag_name}” added to {findings}."
