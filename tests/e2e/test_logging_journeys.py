"""Logging a finding in one form, in a real browser.

(a) On a desktop (1280 px): the slice typed as text (the builder's rows follow it) and two
    probes added in the same submit.
(b) On a phone (390x844): the slice built row by row (the text follows the rows), the rows
    wrapping with a usable value box, a dataset change that keeps and flags a condition on
    a column the new dataset lacks (until it is removed), two probes; the page never
    scrolls sideways.
(c) A dataset of another ML model: not offered once the ML model is chosen, and refused
    beside the dataset field when a stale page sends it anyway; nothing is saved.
"""

import pandas as pd
import pytest
from playwright.sync_api import expect

from .browser import sign_in
from .test_journeys import choose

SIDEWAYS = "() => [document.documentElement.scrollWidth, window.innerWidth]"

pytestmark = pytest.mark.django_db(transaction=True)

SLICE_TEXT = 'x1 > 0.5 AND color in ("red", "blue")'
SLICE = [
    {"feature": "x1", "op": ">", "value": 0.5},
    {"feature": "color", "op": "in", "value": ["red", "blue"]},
]


def _dataset(people, name, frame, target):
    from registry.models import Dataset

    from ..factories import csv_upload

    return Dataset.create_from_upload(
        csv_upload(frame), name=name, target_column=target, by=people["contributor"]
    )


def _open_form(page):
    sign_in(page, "bob")
    page.goto("/catalog/findings/new/")
    # The form's scripts attach their handlers once the page has loaded.
    page.wait_for_load_state("load")


def _fill_probe_rows(page):
    """Two probes: the finding's slice and dataset (left empty), then another slice."""
    first, second = page.locator("[data-probe-row]").nth(0), page.locator("[data-probe-row]").nth(1)
    first.locator("select[name$=-kind]").select_option("slice_error_rate")
    expect(first.locator("select[name$=-comparator]")).to_have_value("<=")
    first.locator("input[name$=-threshold]").fill("0.3")
    second.locator("select[name$=-kind]").select_option("margin_density")
    expect(second.locator("textarea[name$=-params]")).to_have_value('{\n "margin": 0.1\n}')
    second.locator("textarea[name$=-slice]").fill("x2 < 0")
    second.locator("input[name$=-threshold]").fill("0.4")


def _assert_logged(page, people, title):
    from catalog.models import Finding

    expect(page.locator("h1")).to_have_text(title)
    expect(page.locator(".messages, .message, [role=status]").first).to_contain_text(
        "with 2 probes"
    )
    finding = Finding.objects.get(title=title)
    assert finding.slice == SLICE
    first, second = finding.probes.order_by("pk")
    assert (first.kind, first.slice, first.dataset, first.threshold) == (
        "slice_error_rate",
        SLICE,
        finding.dataset,
        0.3,
    )
    assert (second.kind, second.slice, second.params, second.threshold) == (
        "margin_density",
        [{"feature": "x2", "op": "<", "value": 0}],
        {"margin": 0.1},
        0.4,
    )
    assert finding.reporter == people["contributor"]


def test_a_contributor_logs_a_finding_with_a_text_slice_and_two_probes(
    watched, people, ml_model, version, dataset
):
    page = watched.page
    _open_form(page)
    title = "High x1 red and blue rows are misjudged"
    page.fill("input[name=title]", title)
    choose(page, "select[name=ml_model]", "toy-risk")
    choose(page, "select[name=model_version]", "toy-risk v1")
    # Before a dataset is chosen the builder says what it needs.
    builder = page.locator("#slice-builder")
    expect(builder.locator(".builder-status")).to_contain_text("Choose a dataset")
    choose(page, "select[name=dataset]", "toy-eval")

    # Typed as text, as every page shows slices: the builder's rows follow.
    page.fill("textarea[name=slice]", SLICE_TEXT)
    rows = builder.locator(".slice-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("select.feature")).to_have_value("x1")
    expect(rows.nth(0).locator("select.op")).to_have_value(">")
    expect(rows.nth(0).locator("input.value")).to_have_value("0.5")
    expect(rows.nth(1).locator("select.op")).to_have_value("in")
    expect(rows.nth(1).locator("input.value")).to_have_value("red, blue")

    _fill_probe_rows(page)
    page.click("button:has-text('Log finding')")
    _assert_logged(page, people, title)


def test_a_contributor_logs_a_finding_with_the_builder_on_a_phone(
    watched, people, ml_model, version, dataset
):
    from ..factories import toy_frame

    _dataset(people, "toy-regions", toy_frame(seed=5).assign(region="north"), "y")
    page = watched.page
    page.set_viewport_size({"width": 390, "height": 844})
    _open_form(page)
    title = "High x1 rows misjudged (phone)"
    page.fill("input[name=title]", title)
    choose(page, "select[name=ml_model]", "toy-risk")
    choose(page, "select[name=dataset]", "toy-regions")

    builder = page.locator("#slice-builder")
    rows = builder.locator(".slice-row")
    expect(rows).to_have_count(1)
    first = rows.nth(0)
    first.locator("select.feature").select_option("x1")
    first.locator("select.op").select_option(">")
    first.locator("input.value").fill("0.5")
    builder.locator("button.add-row").click()
    second = rows.nth(1)
    second.locator("select.feature").select_option("color")
    second.locator("select.op").select_option("in")
    second.locator("input.value").fill("red, blue")
    builder.locator("button.add-row").click()
    third = rows.nth(2)
    third.locator("select.feature").select_option("region")
    third.locator("select.op").select_option("==")
    third.locator("input.value").fill("north")
    expect(page.locator("textarea[name=slice]")).to_have_value(
        SLICE_TEXT + ' AND region == "north"'
    )

    # The value box is a box one can type in, and the rows fit the phone.
    value_box = first.locator("input.value").bounding_box()
    row_box = first.bounding_box()
    assert value_box["width"] >= 150, value_box
    assert row_box["x"] + row_box["width"] <= 390
    scroll_width, inner_width = page.evaluate(SIDEWAYS)
    assert scroll_width <= inner_width, (scroll_width, inner_width)

    # Another dataset without `region`: its condition is kept and flagged, not dropped.
    choose(page, "select[name=dataset]", "toy-eval")
    expect(rows).to_have_count(3)
    expect(rows.nth(2)).to_have_class("slice-row missing")
    expect(rows.nth(2).locator(".row-note")).to_contain_text("not a column of toy-eval v1")
    expect(rows.nth(0)).to_have_class("slice-row")
    expect(rows.nth(1)).to_have_class("slice-row")
    expect(page.locator("textarea[name=slice]")).to_have_value(
        SLICE_TEXT + ' AND region == "north"'
    )
    rows.nth(2).locator("button.remove-row").click()
    expect(page.locator("textarea[name=slice]")).to_have_value(SLICE_TEXT)

    _fill_probe_rows(page)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), (
        page.evaluate(SIDEWAYS)
    )
    page.click("button:has-text('Log finding')")
    _assert_logged(page, people, title)


def test_a_dataset_of_another_ml_model_is_refused_at_the_field(watched, people, ml_model, dataset):
    from catalog.models import Finding
    from probes.models import Probe
    from registry.models import MLModel, ModelVersion

    from ..factories import fitted_model, skops_upload, toy_frame

    training = _dataset(people, "toy-train", toy_frame(seed=3), "y")
    ModelVersion.register(
        ml_model=ml_model,
        version="1",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        training_dataset=training,
    )
    MLModel.objects.create(name="wine-quality", task="multiclass")
    wine = _dataset(
        people,
        "wine-holdout",
        pd.DataFrame({"alcohol": [12.1, 13.4, 11.9] * 10, "target": [0, 1, 2] * 10}),
        "target",
    )

    page = watched.page
    _open_form(page)
    page.fill("input[name=title]", "Wine rows logged on credit")
    choose(page, "select[name=dataset]", "wine-holdout")
    choose(page, "select[name=ml_model]", "toy-risk")
    # Not toy-risk's: no longer chosen, and not offered.
    expect(page.locator("select[name=dataset]")).to_have_value("")
    wine_option = page.locator(f"select[name=dataset] option[value='{wine.pk}']")
    expect(wine_option).to_be_disabled()
    expect(page.locator(f"select[name=dataset] option[value='{dataset.pk}']")).to_be_enabled()

    # A page opened before the choice changed sends it anyway: refused beside the field.
    page.evaluate(
        "(pk) => { const s = document.querySelector('select[name=dataset]');"
        " const o = s.querySelector(`option[value='${pk}']`);"
        " o.disabled = false; o.hidden = false; s.value = String(pk); }",
        wine.pk,
    )
    page.click("button:has-text('Log finding')")
    error = page.locator("#field-dataset .error")
    expect(error).to_have_text(
        "wine-holdout v1 is not a dataset of toy-risk: it lacks the columns toy-risk reads "
        "(x1, x2, color, y)."
    )
    expect(page.locator("#field-dataset")).to_have_class("field has-error")
    assert not Finding.objects.exists()
    assert not Probe.objects.exists()
