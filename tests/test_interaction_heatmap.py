"""The interaction surface of a feature_interaction run (DESIGN.md, "Probe kinds").

* The run stores the grids of a and b and the partial dependences PD_ab, PD_a and PD_b it
  computed H² from: they are scikit-learn's brute partial dependence (kind "average") at
  the same grid, over the same sampled rows, to 1e-9, and JSON without NaN.
* The surface PD_ab − PD_a − PD_b (each centred) is what H² sums the squares of.
* The heatmap (boundary.charts.heatmap_svg): axis titles and grid values, a legend with
  its ends, red for positive, blue for negative, white for 0, names escaped.
* The probe page and the finding page draw it for the latest run, with the grid as a
  table; a run stored before the grids were kept says so.
"""

import json
import re

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import partial_dependence

from boundary.charts import heatmap_svg
from boundary.measures import GRID_DECIMALS, interaction_surface
from probes.models import ProbeRun
from probes.templatetags.run_details import TABLE_MAX_CELLS

from .factories import client_for
from .test_ensemble_pages import add_probe, pipeline, register, run
from .test_new_kinds import FEATURES, INTERACTION_CASES, fit, frame
from .test_new_kinds import run as evaluate


def sampled_rows(df, slice_, sample, seed):
    inside = np.ones(len(df), dtype=bool)
    for predicate in slice_:
        assert predicate["op"] == ">"
        inside &= df[predicate["feature"]].to_numpy() > predicate["value"]
    rows = np.flatnonzero(inside)
    if rows.size > sample:
        rows = rows[np.sort(np.random.default_rng(seed or 0).choice(rows.size, sample, False))]
    return rows


def sklearn_pd(model, X, features, grids, column):
    """scikit-learn's brute average partial dependence of the probability of
    classes_[column] at the given grid values."""
    out = partial_dependence(
        model,
        X,
        features,
        method="brute",
        kind="average",
        custom_values={f: np.asarray(grids[f]) for f in features},
    )
    average = out["average"]
    if len(model.classes_) == 2:  # a binary model's output is P(classes_[1]) only
        return average[0] if column == 1 else 1 - average[0]
    return average[column]


@pytest.mark.parametrize(
    "make, params, slice_, classes",
    [case[1:] for case in INTERACTION_CASES],
    ids=[case[0] for case in INTERACTION_CASES],
)
def test_the_stored_partial_dependences_are_scikit_learns_at_the_stored_grid(
    make, params, slice_, classes
):
    df = frame(classes=classes)
    model = fit(make(), df)
    result = evaluate(model, df, "feature_interaction", params, slice_)
    assert result.status in ("passed", "failed"), result.error
    details = json.loads(json.dumps(result.details, allow_nan=False))  # JSON as stored
    a, b = params["features"]
    grids = details["grid"]
    rows = sampled_rows(df, slice_, params.get("sample", 500), params.get("seed"))
    X = df[FEATURES].iloc[rows]
    column = list(model.classes_).index(details["pos_label"])

    expected_ab = sklearn_pd(model, X, [a, b], grids, column)
    expected_a = sklearn_pd(model, X, [a], grids, column)
    expected_b = sklearn_pd(model, X, [b], grids, column)

    assert np.array(details["pd_ab"]).shape == (len(grids[a]), len(grids[b]))
    np.testing.assert_allclose(details["pd_ab"], expected_ab, rtol=0, atol=1e-9)
    np.testing.assert_allclose(details["pd_a"], expected_a, rtol=0, atol=1e-9)
    np.testing.assert_allclose(details["pd_b"], expected_b, rtol=0, atol=1e-9)
    # Rounded to GRID_DECIMALS: no more digits than that.
    assert all(round(v, GRID_DECIMALS) == v for line in details["pd_ab"] for v in line)
    # H² is the surface's sum of squares over that of the centred PD_ab.
    surface = interaction_surface(
        np.array(details["pd_ab"]), np.array(details["pd_a"]), np.array(details["pd_b"])
    )
    centred = np.array(details["pd_ab"]) - np.mean(details["pd_ab"])
    if (centred**2).sum() > 0:
        assert (surface**2).sum() / (centred**2).sum() == pytest.approx(result.value, abs=1e-8)


def test_a_flat_partial_dependence_is_stored_as_a_flat_zero_surface():
    df = frame()
    df["y"] = np.where(df.c > 0, "yes", "no")
    from sklearn.tree import DecisionTreeClassifier

    stump = fit(DecisionTreeClassifier(max_depth=1), df)
    details = evaluate(stump, df, "feature_interaction", {"features": ["a", "b"]}).details
    assert len({v for line in details["pd_ab"] for v in line}) == 1
    surface = interaction_surface(
        np.array(details["pd_ab"]), np.array(details["pd_a"]), np.array(details["pd_b"])
    )
    assert (surface == 0).all()


# ------------------------------------------------------------------------- the heatmap


def cells(svg):
    return re.findall(r'<rect class="cell" [^>]*fill="(#[0-9a-f]{6})"[^>]*><title>([^<]*)', svg)


def test_the_heatmap_has_axes_grid_values_a_legend_and_a_diverging_scale():
    values = [[-0.2, 0.0], [0.1, 0.2]]  # rows: income 10 and 20; columns: age 1 and 2.5
    svg = heatmap_svg(
        values,
        [10, 20],
        [1, 2.5],
        row_title="income",
        column_title="age",
        title="Interaction of income and age",
        legend_title="PD_ab − PD_a − PD_b",
        cell_notes=[["joint 0.1", "joint 0.2"], ["joint 0.3", "joint 0.4"]],
    )
    assert svg.startswith('<svg class="chart heatmap-chart" ')
    assert 'role="img" aria-label="Interaction of income and age"' in svg
    assert "style=" not in svg and "<script" not in svg  # the page's CSP allows neither
    assert cells(svg) == [
        ("#2f5bea", "income 10, age 1: PD_ab − PD_a − PD_b -0.2; joint 0.1"),
        ("#ffffff", "income 10, age 2.5: PD_ab − PD_a − PD_b +0; joint 0.2"),
        # Half-way from white to #c0292b (192, 41, 43): (224, 148, 149).
        ("#e09495", "income 20, age 1: PD_ab − PD_a − PD_b +0.1; joint 0.3"),
        ("#c0292b", "income 20, age 2.5: PD_ab − PD_a − PD_b +0.2; joint 0.4"),
    ]
    # The first row (income 10) is drawn at the bottom: income grows upward.
    ys = [float(y) for y in re.findall(r'<rect class="cell" x="[^"]*" y="([^"]*)"', svg)]
    assert ys[0] > ys[2]
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg)
    assert ticks == ["10", "20", "1", "2.5"]
    titles = re.findall(r'<text class="axis-title"[^>]*>([^<]*)</text>', svg)
    assert titles == ["income", "age"]
    legend = re.findall(r'<text class="legend-(?:title|tick)"[^>]*>([^<]*)</text>', svg)
    assert legend == ["PD_ab − PD_a − PD_b", "-0.2", "0", "+0.2"]
    assert svg.count('class="legend-step"') == 11


def test_the_heatmap_escapes_names_and_prints_large_grid_values_whole():
    svg = heatmap_svg(
        [[0.0]],
        [25000.0],
        [0.5],
        row_title="<b>income</b>",
        column_title='a "b"',
        title="<x>",
    )
    assert "<b>" not in svg and "&lt;b&gt;income&lt;/b&gt;" in svg
    assert "25,000" in svg and "e+04" not in svg
    assert heatmap_svg([], [], [], row_title="a", column_title="b") == ""


# -------------------------------------------------------------------------------- pages


@pytest.fixture
def interaction(people, ml_model, finding, dataset):
    """A forest version, and a feature_interaction probe of x1 and x2 run on it."""
    version = register(
        ml_model, people, "forest-1", pipeline(RandomForestClassifier(20, random_state=0))
    )
    probe = add_probe(
        finding, dataset, people, "feature_interaction", {"features": ["x1", "x2"], "grid": 5}, []
    )
    stored = run(version, [probe])[probe.pk]
    assert stored.status in ("passed", "failed"), stored.error
    return probe, stored


def table_of(html):
    """The grid table: (b's grid values, [(a's grid value, [cell texts])])."""
    table = re.search(r'<table class="table compact grid-table">(.*?)</table>', html, re.S)[1]
    head = re.findall(r'<th scope="col">([^<]*)</th>', table)[1:]
    body = [
        (
            line[0],
            re.findall(r"<td>([^<]*) <small class=\"muted\">\(([^)]*)\)</small></td>", line[1]),
        )
        for line in re.findall(r'<tr><th scope="row">([^<]*)</th>(.*?)</tr>', table, re.S)
    ]
    return head, body


@pytest.mark.django_db
def test_the_probe_and_finding_pages_draw_the_surface_of_the_latest_run(
    people, finding, interaction
):
    probe, stored = interaction
    details = stored.details
    grid_a, grid_b = details["grid"]["x1"], details["grid"]["x2"]
    surface = interaction_surface(
        np.array(details["pd_ab"]), np.array(details["pd_a"]), np.array(details["pd_b"])
    )
    viewer = client_for(people["viewer"])

    for url in (probe.get_absolute_url(), finding.get_absolute_url()):
        html = viewer.get(url).content.decode()
        (svg,) = re.findall(r'<svg class="chart heatmap-chart".*?</svg>', html, re.S)
        assert len(cells(svg)) == len(grid_a) * len(grid_b)
        ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg)
        assert ticks == [f"{v:.3g}" for v in grid_a + grid_b]
        assert re.findall(r'<text class="axis-title"[^>]*>([^<]*)</text>', svg) == ["x1", "x2"]
        assert "PD_ab − PD_a − PD_b (probability of 1)" in svg
        head, body = table_of(html)
        assert head == [f"{v:.3g}" for v in grid_b]
        assert body == [
            (
                f"{value_a:.3g}",
                [
                    (
                        "0.0000" if abs(surface[i, j]) < 5e-5 else f"{surface[i, j]:+.4f}",
                        f"{details['pd_ab'][i][j]:.3f}",
                    )
                    for j in range(len(grid_b))
                ],
            )
            for i, value_a in enumerate(grid_a)
        ]
        assert f"(run #{stored.pk}, H² {stored.value:.4f})" in html


@pytest.mark.django_db
def test_a_run_stored_before_the_grids_were_kept_says_so(people, finding, interaction):
    probe, stored = interaction
    old = {k: v for k, v in stored.details.items() if k not in ("pd_ab", "pd_a", "pd_b")}
    ProbeRun.objects.filter(pk=stored.pk).update(details=old)

    html = client_for(people["viewer"]).get(probe.get_absolute_url()).content.decode()

    assert "heatmap-chart" not in html
    assert (
        f"Run #{stored.pk} stores no partial dependence grid (it ran before grids were kept); "
        "its next run will."
    ) in html


@pytest.mark.django_db
def test_a_grid_too_large_to_list_is_drawn_without_a_table(people, finding, interaction):
    probe, stored = interaction
    n = int(TABLE_MAX_CELLS**0.5) + 1
    details = {
        **stored.details,
        "grid": {"x1": list(range(n)), "x2": list(range(n))},
        "pd_ab": [[(i * j) / n**2 for j in range(n)] for i in range(n)],
        "pd_a": [0.5] * n,
        "pd_b": [0.5] * n,
    }
    ProbeRun.objects.filter(pk=stored.pk).update(details=details)

    html = client_for(people["viewer"]).get(probe.get_absolute_url()).content.decode()

    assert "heatmap-chart" in html and "grid-table" not in html
    assert f"The grid has {n * n} cells, too many to list here" in html
