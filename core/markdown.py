"""Long free text (descriptions, lessons, notes) as Markdown, made safe to show.

1. Python-Markdown turns the text into HTML, with raw HTML switched off: a `<script>` the
   user typed comes out as the text "<script>", never as a tag.
2. nh3 then keeps only an explicit allow-list of tags and attributes, drops links whose
   scheme is not http, https or mailto, and marks every link noopener noreferrer nofollow.
   This second pass is what the page's safety rests on; the first only makes the output
   read like what was typed.
Headings move down to h3-h6 so that they sit under the page's own h1/h2.
"""

import re
import threading

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "em",
    "strong",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer nofollow"
HEADING_SHIFT = 2  # "# Title" becomes <h3>

# Under the text boxes whose text is shown this way.
HELP_TEXT = "Markdown supported: *emphasis*, **bold**, lists, `code`, [links](https://…)."

_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes=URL_SCHEMES,
    link_rel=LINK_REL,
)


class _ShiftHeadings(Treeprocessor):
    def run(self, root):
        for el in root.iter():
            if len(el.tag) == 2 and el.tag[0] == "h" and el.tag[1] in "123456":
                el.tag = f"h{min(6, int(el.tag[1]) + HEADING_SHIFT)}"


_LIST_ITEM = re.compile(r"(?:[-*+]|\d+\.)\s+\S")


class _ListAfterText(Preprocessor):
    """A list right under a line of text ("We learned:" then "- ...") is a list, as people
    type it into a text box and as GitHub shows it; plain Markdown wants a blank line."""

    def run(self, lines):
        out: list[str] = []
        for line in lines:
            prev = out[-1] if out else ""
            if (
                _LIST_ITEM.match(line)
                and prev.strip()
                and not prev[0].isspace()
                and not _LIST_ITEM.match(prev)
            ):
                out.append("")
            out.append(line)
        return out


class _Lessons(Extension):
    """No raw HTML (it is escaped as text), no images (they would load from anywhere; the
    text stays as typed), lists right under a line of text, headings shifted down."""

    def extendMarkdown(self, md):
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.inlinePatterns.deregister("image_link")
        md.inlinePatterns.deregister("image_reference")
        md.inlinePatterns.deregister("short_image_ref")
        # After fenced code has been set aside (25), so a "- " inside code stays put.
        md.preprocessors.register(_ListAfterText(md), "list_after_text", 15)
        md.treeprocessors.register(_ShiftHeadings(md), "shift_headings", 5)


_local = threading.local()


def _converter():
    # A Markdown instance keeps state between calls and is not thread-safe: one per thread.
    md = getattr(_local, "md", None)
    if md is None:
        md = _local.md = markdown.Markdown(
            extensions=["fenced_code", "tables", "sane_lists", "nl2br", _Lessons()],
            extension_configs={"tables": {"use_align_attribute": True}},
            output_format="html",
        )
    return md


def render_markdown(text) -> SafeString:
    """`text` as sanitised HTML; None or blank text gives ""."""
    if text is None or not str(text).strip():
        return SafeString("")
    html = _converter().reset().convert(str(text))
    return mark_safe(_cleaner.clean(html))  # noqa: S308 (nh3's allow-list, above)
