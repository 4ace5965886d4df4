"""A probe's own page: its definition in words, its value across versions as a chart, every
run with its anchor, and its history; the finding page's probe table links to it; the
glossary's tooltips; and no page of a scanned and logged world shows a raw data name."""

import re

import pytest
from django.template import Context, Template

from boundary.charts import value_chart_svg
from catalog.models import Finding
from introspection.models import SliceScan
from introspection.tasks import run_scan
from probes.models import Probe, ProbeRun, Rerun
from probes.tasks import run_rerun
from registry.models import ModelVersion

from .factories import client_for, fitted_model, skops_upload
from .planted import store_planted

pytestmark = pytest.mark.django_db

RAW_NAMES = ("ci_95", "p_value", "overall_error_rate", "features=", "pos_label", "min_support")


def _run(version, probes):
    rerun = Rerun.queue(version, trigger="manual", probes=probes, dispatch=False)
    run_rerun(rerun.pk)


def _visible_text(html):
    """The page's text as a reader sees it: no tags, scripts or attribute values."""
    html = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


@pytest.fixture
def two_versions(people, ml_model, finding, probe, version):
    """The probe has run on v1 (passed) and on v2 (failed)."""
    _run(version, [probe])
    newer = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        artifact=skops_upload(fitted_model(flip_above=0.5)),
        by=people["maintainer"],
        enqueue=False,
    )
    _run(newer, [probe])
    return version, newer


def test_the_probe_page_shows_its_definition_in_words(people, finding, probe, dataset):
    page = client_for(people["viewer"]).get(f"/probes/{probe.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Slice error rate" in html
    assert "<code>x1 &gt; 0.5</code>" in html
    assert "≤ 0.2" in html
    assert f'href="{finding.get_absolute_url()}"' in html
    assert f'href="{dataset.get_absolute_url()}"' in html
    assert "the measured value alone" in html and "30 rows in the slice" in html
    assert "This probe has not run yet." in html


def test_parameters_read_as_names_and_values(people, finding, dataset):
    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind="perturbation_flip_rate",
        slice=[],
        params={"features": ["x1", "x2"], "scale": 0.05, "repeats": 5, "seed": 0},
        threshold=0.1,
    )
    probe.full_clean()
    probe.save()
    html = client_for(people["viewer"]).get(probe.get_absolute_url()).content.decode()
    assert "<dt>Features</dt><dd>x1, x2</dd>" in html
    assert "<dt>Repeats per row</dt><dd>5</dd>" in html
    assert "<code>whole dataset</code>" in html
    finding_page = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert "Features: x1, x2" in finding_page
    for raw in ("features=", "['x1', 'x2']", "repeats="):
        assert raw not in html and raw not in finding_page


@pytest.mark.django_db(transaction=True)
def test_the_probe_page_charts_every_version_and_lists_every_run(people, probe, two_versions):
    html = client_for(people["viewer"]).get(f"/probes/{probe.pk}/").content.decode()
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert ">v1</text>" in svg and ">v2</text>" in svg
    assert 'class="threshold"' in svg and "threshold 0.2" in svg
    assert 'class="threshold-band"' in svg  # the failing side, above a "<=" threshold
    assert 'class="point passed"' in svg and 'class="point failed"' in svg
    assert ">model version</text>" in svg
    runs = list(ProbeRun.objects.filter(probe=probe).order_by("pk"))
    assert len(runs) == 2
    for run in runs:
        assert f'<tr id="run-{run.pk}">' in html and f"run #{run.pk}" in html
    assert html.index(f'id="run-{runs[0].pk}"') < html.index(f'id="run-{runs[1].pk}"')
    assert "Passed" in html and "Failed" in html and "Run now" in html


@pytest.mark.django_db(transaction=True)
def test_the_finding_page_links_each_probe_and_names_versions(people, finding, probe, two_versions):
    html = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert f'<a href="/probes/{probe.pk}/">probe #{probe.pk}</a>' in html
    assert f'href="/probes/{probe.pk}/#history">history</a>' in html
    assert "object_type=probes.probe" not in html
    head = html[html.index('<table class="table compact matrix">') :]
    head = head[: head.index("</thead>")]
    assert ">v1</a>" in head and ">v2</a>" in head
    for run in ProbeRun.objects.filter(probe=probe):
        assert f'id="run-{run.pk}"' in html
        assert f'href="/probes/{probe.pk}/#run-{run.pk}">run #{run.pk}</a>' in html


def test_the_probe_history_is_inline_with_what_changed(people, finding, probe):
    probe.edit({"threshold": 0.25}, by=people["contributor"], note="looser after review")
    html = client_for(people["viewer"]).get(f"/probes/{probe.pk}/").content.decode()
    history = html[html.index('id="history"') :]
    assert "looser after review" in history
    assert '<span class="field">Threshold</span>: <del>0.2</del> → <ins>0.25</ins>' in history


def test_a_revised_probe_links_both_ways_and_says_why_it_retired(people, finding, probe):
    probe.runs.create(
        model_version=finding.model_version,
        rerun=Rerun.queue(finding.model_version, trigger="manual", probes=[], dispatch=False),
        trigger="manual",
        status="passed",
        value=0.1,
    )
    revision = probe.revise({"threshold": 0.3}, by=people["contributor"], note="new policy")
    old = client_for(people["viewer"]).get(probe.get_absolute_url()).content.decode()
    assert f'Superseded by <a href="/probes/{revision.pk}/">probe #{revision.pk}</a>' in old
    assert "new policy" in old
    new = client_for(people["viewer"]).get(revision.get_absolute_url()).content.decode()
    assert f'<a href="/probes/{probe.pk}/">probe #{probe.pk}</a> (retired)' in new


def test_the_probe_page_needs_a_reader(people, probe):
    assert client_for(people["nobody"]).get(f"/probes/{probe.pk}/").status_code == 403
    assert client_for(people["viewer"]).get("/probes/999999/").status_code == 404


def test_the_value_chart_has_axes_ticks_error_bars_and_a_threshold_band():
    points = [
        {"label": "v1", "value": 0.31, "status": "failed", "ci_low": 0.22, "ci_high": 0.4},
        {"label": "v2", "value": 0.12, "status": "passed", "ci_low": 0.08, "ci_high": 0.17},
        {"label": "v3", "value": None, "status": "error"},
    ]
    svg = value_chart_svg(points, threshold=0.2, comparator="<=", title="error rate")
    assert svg == value_chart_svg(points, threshold=0.2, comparator="<=", title="error rate")
    assert 'width="640" height="260"' in svg
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', svg)
    assert ticks == ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5"]
    assert re.findall(r'<text class="version"[^>]*>([^<]+)</text>', svg) == ["v1", "v2", "v3"]
    assert svg.count('<g class="interval"') == 2
    assert 'class="threshold-band"' in svg and "style=" not in svg and "<script" not in svg
    below = value_chart_svg(points, threshold=0.2, comparator=">=")
    band = re.search(r'<rect class="threshold-band" x="\d+" y="([\d.]+)"', below)
    line = re.search(r'<line class="threshold" x1="\d+" y1="([\d.]+)"', below)
    assert band and line and band.group(1) == line.group(1)  # the band starts at the line


@pytest.mark.parametrize(
    "source, expected",
    [
        (
            '{% term "p_value" %}',
            '<abbr class="term" title="How likely a difference this large would be by '
            'chance alone; below 0.05 it is unlikely to be chance." tabindex="0">p-value</abbr>',
        ),
        ('{% term "ci_95" %}', ">95% interval</abbr>"),
        ('{% term "ci_low" %}', ">95% interval</abbr>"),
        ('{% term "overall_error_rate" %}', ">Error rate on the whole dataset</abbr>"),
        ('{% term "support" "Rows" %}', ">Rows</abbr>"),
        ('{% term "found_by" %}', "Found by"),
        ('{{ "overall_error_rate"|term_label }}', "Error rate on the whole dataset"),
        ("{{ value|term_value:'ci_95' }}", "0.2 – 0.4"),
    ],
    ids=[
        "p-value-tooltip",
        "ci_95",
        "ci_low",
        "overall-error-rate",
        "own-label",
        "unknown-name-as-words",
        "label-only",
        "interval-value",
    ],
)
def test_the_glossary_renders_labels_with_tooltips(source, expected):
    html = Template("{% load core_tags %}" + source).render(Context({"value": [0.2, 0.4]}))
    assert expected in html


@pytest.mark.parametrize(
    "term",
    [
        "ci",
        "p_value",
        "support",
        "ece",
        "psi",
        "error_rate",
        "overall_error_rate",
        "margin_density",
        "flip_rate",
        "disparity",
        "threshold",
        "tolerance",
        "baseline",
        "inconclusive",
    ],
)
def test_every_statistical_term_has_an_explanation(term):
    html = Template("{% load core_tags %}{% term name %}").render(Context({"name": term}))
    assert html.startswith('<abbr class="term" title="') and 'tabindex="0"' in html


@pytest.mark.django_db(transaction=True)
def test_no_page_of_a_scanned_world_shows_a_raw_data_name(people, ml_model):
    """A scan of a planted weak region, its best candidate logged as a finding (evidence
    with an interval, a p-value and the whole dataset's error rate), the finding's probes
    run, a flip-rate probe with parameters: the finding, scan, version and probe pages
    read in words."""
    dataset, (version,) = store_planted(people, ml_model)
    scan = SliceScan.queue(version, dataset, dispatch=False)
    run_scan(scan.pk)
    scan.refresh_from_db()
    client = client_for(people["contributor"])
    client.post(
        f"/scans/{scan.pk}/candidates/0/log/",
        {"c0-title": "Top-left corner", "c0-severity": "high", "c0-risk_category": "reliability"},
    )
    finding = Finding.objects.get()
    assert {"ci_95", "p_value", "overall_error_rate"} <= set(finding.evidence)
    flip = Probe(
        finding=finding,
        dataset=dataset,
        kind="perturbation_flip_rate",
        slice=finding.slice,
        params={"features": ["x1", "x2"]},
        threshold=0.2,
    )
    flip.full_clean()
    flip.save()
    _run(version, [flip])
    reader = client_for(people["viewer"])
    pages = [
        finding.get_absolute_url(),
        scan.get_absolute_url(),
        version.get_absolute_url(),
        flip.get_absolute_url(),
        *(p.get_absolute_url() for p in finding.probes.all()),
    ]
    for url in pages:
        response = reader.get(url)
        assert response.status_code == 200, url
        text = _visible_text(response.content.decode())
        for raw in RAW_NAMES:
            assert raw not in text, (url, raw)
    html = reader.get(finding.get_absolute_url()).content.decode()
    assert ">95% interval</abbr></th>" in html and ">p-value</abbr></th>" in html
    assert ">Error rate on the whole dataset</abbr></th>" in html
