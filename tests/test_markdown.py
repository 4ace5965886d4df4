"""Long free text is shown as Markdown: formatting comes through, anything that could run
or load does not, both from `render_markdown` and on the real pages."""

import datetime
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from core.markdown import ALLOWED_TAGS, render_markdown
from remediation.models import Evaluation, RemediationAction

from .factories import client_for

FORMATTED = (
    "We learned **two things** about *young applicants*:\n"
    "- the `age` feature alone is not enough\n"
    "- see the [notebook](https://nb.example.com/young.ipynb)\n"
)

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( java&#115;cript:alert(1))",
    "[ref][1]\n\n[1]: javascript:alert(1)",
    '<a href="javascript:alert(1)">click</a>',
    "<javascript:alert(1)>",
    '<iframe src="https://evil.example/"></iframe>',
    "<svg onload=alert(1)>",
    '<p style="position:fixed;top:0">styled</p>',
    "[d](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![i](data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=)",
    "![i](https://tracker.example/pixel.png)",
    "[v](vbscript:msgbox(1))",
    '<details open ontoggle="alert(1)">x</details>',
    "<!--><script>alert(1)</script>-->",
    "```\n</code></pre><script>alert(1)</script>\n```",
    '[t](https://ok.example "a\\" onmouseover=\\"alert(1)")',
]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: (v or "") for k, v in attrs}))

    handle_startendtag = handle_starttag


def _tags(html):
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_inert(html, *, allowed_tags=None):
    """Nothing in `html` can run script, load a resource or restyle the page: no event
    handler or style attribute, no inline script, frame, svg or object, and every link is
    http(s), mailto or relative."""
    for tag, attrs in _tags(html):
        if allowed_tags is not None:
            assert tag in allowed_tags, (tag, attrs)
        assert tag not in {"iframe", "frame", "svg", "math", "object", "embed", "base"}, tag
        assert tag != "img" or attrs.get("src", "").startswith("/"), attrs
        assert tag != "script" or attrs.get("src", "").startswith("/static/"), attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            assert name != "style", (tag, value)
            if name in ("href", "src", "action", "formaction"):
                url = value.strip().lower()
                assert not url.startswith(("javascript:", "vbscript:")), (tag, name, value)
                if tag == "a":
                    assert (
                        url.startswith(("http://", "https://", "mailto:", "/", "#", "?"))
                        or ":" not in url.split("/")[0]
                    ), (tag, name, value)


# -- the function ------------------------------------------------------------------------


def test_it_renders_emphasis_lists_code_and_links():
    html = render_markdown(FORMATTED)
    assert isinstance(html, SafeString)
    assert "<strong>two things</strong>" in html and "<em>young applicants</em>" in html
    assert "<ul>" in html and html.count("<li>") == 2  # a list right under a line of text
    assert "<code>age</code>" in html
    assert (
        '<a href="https://nb.example.com/young.ipynb" rel="noopener noreferrer nofollow">'
        "notebook</a>"
    ) in html


def test_it_renders_ordered_lists_code_blocks_quotes_and_tables():
    html = render_markdown(
        "1. first\n2. second\n\n```python\nif age < 22:\n    refuse()\n```\n\n"
        "> quoted\n\n| slice | error |\n|:--|--:|\n| young | 0.31 |\n\n---\n"
    )
    assert "<ol>\n<li>first</li>\n<li>second</li>\n</ol>" in html
    assert "<pre><code>if age &lt; 22:\n    refuse()\n</code></pre>" in html
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in html
    assert '<th align="left">slice</th>' in html and '<td align="right">0.31</td>' in html
    assert "<hr>" in html
    assert_inert(html, allowed_tags=ALLOWED_TAGS)


def test_it_keeps_line_breaks_and_shifts_headings_under_the_page():
    html = render_markdown("# Title\n## Part\nline one\nline two")
    assert "<h3>Title</h3>" in html and "<h4>Part</h4>" in html
    assert "<h1" not in html and "<h2" not in html
    assert "line one<br>\nline two" in html


def test_it_shows_text_that_looks_like_html_as_text():
    assert render_markdown("age < 22 & income <= 20000") == (
        "<p>age &lt; 22 &amp; income &lt;= 20000</p>"
    )
    assert render_markdown("<b>bold?</b>") == "<p>&lt;b&gt;bold?&lt;/b&gt;</p>"
    assert render_markdown("`<br>`") == "<p><code>&lt;br&gt;</code></p>"


@pytest.mark.parametrize("text", [None, "", "  \n "])
def test_it_renders_nothing_for_no_text(text):
    assert render_markdown(text) == ""


@pytest.mark.parametrize("payload", PAYLOADS)
def test_it_leaves_every_payload_inert(payload):
    html = render_markdown(f"{FORMATTED}\n{payload}\n")
    assert_inert(html, allowed_tags=ALLOWED_TAGS)
    assert "<script" not in html
    hrefs = [attrs["href"] for _, attrs in _tags(html) if "href" in attrs]
    assert set(hrefs) <= {"https://nb.example.com/young.ipynb", "https://ok.example"}
    assert "<strong>two things</strong>" in html  # the Markdown around it still renders


def test_a_dropped_link_keeps_its_text():
    assert render_markdown("[the notebook](javascript:alert(1))") == (
        '<p><a rel="noopener noreferrer nofollow">the notebook</a></p>'
    )


# -- the pages ---------------------------------------------------------------------------


def _story(people, finding, version, text):
    """`text` in every long free-text field that the finding's pages show."""
    for field in ("description", "harms", "affected_stakeholders", "lesson", "remaining_gaps"):
        setattr(finding, field, text)
    finding.is_key_lesson = True
    finding.save()
    action = RemediationAction.objects.create(
        finding=finding,
        kind="relabeling",
        title="Relabel the young slice",
        description=text,
        owner=people["contributor"],
        reviewer=people["reviewer"],
        created_by=people["contributor"],
    )
    action.transition_to("approved", by=people["reviewer"], note=text)
    Evaluation.objects.create(
        action=action,
        model_version=version,
        outcome="held",
        notes=text,
        is_manual=True,
        created_by=people["reviewer"],
    )
    finding.transition_to("remediating", by=people["contributor"], note=text)
    finding.transition_to(
        "accepted_risk",
        by=people["reviewer"],
        note=text,
        expires_on=timezone.localdate() + datetime.timedelta(days=90),
    )
    finding.refresh_from_db()
    assert finding.status_note == text.strip()
    return action


def _pages(finding):
    return {
        "finding": finding.get_absolute_url(),
        "start here": reverse("ledger:start_here"),
        "ml model": finding.ml_model.get_absolute_url(),
    }


def _section(html, marker):
    start = html.index(marker)
    return html[start : html.index("</section>", start)]


@pytest.mark.django_db
def test_the_finding_page_renders_every_long_text_as_markdown(people, finding, version):
    action = _story(people, finding, version, FORMATTED)
    html = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    prose = html[html.index("What was seen") : html.index('id="timeline"')]
    assert prose.count("<strong>two things</strong>") == 5  # the five finding texts
    assert prose.count("<li>the <code>age</code> feature alone is not enough</li>") == 5
    for marker in ('id="timeline"', f'id="action-{action.pk}"', 'id="history"'):
        part = (
            _section(html, marker)
            if marker != f'id="action-{action.pk}"'
            else html[html.index(marker) : html.index("</article>", html.index(marker))]
        )
        assert "<strong>two things</strong>" in part, marker
        assert (
            'href="https://nb.example.com/young.ipynb" rel="noopener noreferrer nofollow"' in part
        ), marker
    article = html[html.index(f'id="action-{action.pk}"') :]
    article = article[: article.index("</article>")]
    assert article.count("<em>young applicants</em>") == 2  # description and evaluation
    status = _section(html, "<h2>Status</h2>")
    assert '<div class="md status-note">' in status and "<strong>two things</strong>" in status


@pytest.mark.django_db
def test_lesson_excerpts_render_as_markdown(people, finding, version):
    _story(people, finding, version, FORMATTED)
    client = client_for(people["viewer"])
    start = client.get(reverse("ledger:start_here")).content.decode()
    assert "<strong>two things</strong>" in _section(start, "Key lessons")
    model = client.get(finding.ml_model.get_absolute_url()).content.decode()
    lessons = model[model.index('id="history-story"') :]
    lessons = lessons[lessons.index("<h3>Lessons</h3>") : lessons.index("<h3>Versions</h3>")]
    assert "<strong>two things</strong>" in lessons and "<ul>" in lessons


@pytest.mark.django_db
def test_a_long_lesson_excerpt_is_cut_without_breaking_the_page(people, finding, version):
    _story(people, finding, version, "**Start** " + "word " * 200 + "*end*")
    start = client_for(people["viewer"]).get(reverse("ledger:start_here")).content.decode()
    excerpt = _section(start, "Key lessons")
    assert "<strong>Start</strong>" in excerpt and "…</p></div>" in excerpt
    assert "<em>end</em>" not in excerpt


@pytest.mark.django_db
@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_in_long_texts_stay_inert_on_the_pages(people, finding, version, payload):
    _story(people, finding, version, f"{FORMATTED}\n{payload}\n")
    client = client_for(people["viewer"])
    for name, url in _pages(finding).items():
        response = client.get(url)
        assert response.status_code == 200, name
        html = response.content.decode()
        assert_inert(html)
        assert "<script>alert" not in html and "<img src=x" not in html, name
        assert "<strong>two things</strong>" in html, name  # the formatting still renders


@pytest.mark.django_db
def test_raw_html_is_shown_as_the_text_that_was_typed(people, finding, version):
    _story(people, finding, version, "Do not <script>alert(1)</script> here.")
    html = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert "<p>Do not &lt;script&gt;alert(1)&lt;/script&gt; here.</p>" in html
    assert "<script>alert(1)" not in html


@pytest.mark.django_db
def test_the_forms_say_markdown_is_supported(people, finding):
    client = client_for(people["contributor"])
    form = client.get(reverse("catalog:finding_edit", args=[finding.pk])).content.decode()
    assert form.count("Markdown supported") == 5
    page = client.get(finding.get_absolute_url()).content.decode()
    assert _section(page, 'id="actions"').count("Markdown supported") == 1
