"""The catalog's table in a browser: switch to it, sort, choose a column, tag two findings at
once, on a desktop and on a phone (where the table scrolls in its own box, not the page)."""

import re

import pytest
from playwright.sync_api import expect

from catalog.models import Finding

from .browser import sign_in

SCREENS = {"desktop": (1280, 900), "phone": (390, 844)}


def fits_the_screen(page):
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("screen", list(SCREENS), ids=list(SCREENS))
def test_a_contributor_sorts_the_table_picks_a_column_and_tags_two_findings(
    watched, people, ml_model, screen
):
    for title, severity in (
        ("Charlie: thin files misjudged by the scorecard", "medium"),
        ("Alpha: young applicants refused despite repaying", "low"),
        ("Bravo: scores overconfident near the threshold", "critical"),
    ):
        Finding.objects.create(
            title=title, ml_model=ml_model, severity=severity, owner=people["contributor"]
        )
    page = watched.page
    width, height = SCREENS[screen]
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, "bob")

    page.goto("/catalog/?severity=&per_page=25")
    page.click("nav.view-toggle >> text=Table")
    table = page.locator("table.catalog-table")
    expect(table).to_be_visible()
    assert "view=table" in page.url and "per_page=25" in page.url
    assert fits_the_screen(page)

    # Sort by title, A to Z, then Z to A.
    page.click("th.col-title a")
    expect(page.locator("th.col-title")).to_have_attribute("aria-sort", "ascending")
    titles = page.locator("tbody td.col-title a")
    expect(titles.first).to_contain_text("Alpha")
    page.click("th.col-title a")
    expect(page.locator("th.col-title")).to_have_attribute("aria-sort", "descending")
    expect(titles.first).to_contain_text("Charlie")
    assert "sort=-title" in page.url

    # Show the number of open actions too.
    page.click("details.column-picker summary")
    page.check("form.column-form input[value=open_actions]")
    page.click("form.column-form button[type=submit]")
    expect(page.locator("th.col-open_actions")).to_be_visible()
    assert "cols=open_actions" in page.url and "sort=-title" in page.url
    assert fits_the_screen(page)

    # Tick Charlie and Bravo (the first two rows) and tag them.
    boxes = page.locator('tbody input[name="ids"]')
    boxes.nth(0).check()
    boxes.nth(1).check()
    expect(page.locator(".bulk-count")).to_have_text("2 ticked")
    page.fill("#bulk-tag", "needs-review")
    page.click("button[value=tag]")
    expect(page.locator(".messages")).to_contain_text("Tag “needs-review” added to 2 findings.")
    # Back at the same list: the table, its order and its columns.
    assert "view=table" in page.url and "sort=-title" in page.url
    assert "cols=open_actions" in page.url
    expect(page.locator("th.col-title")).to_have_attribute("aria-sort", "descending")
    rows = page.locator("tbody tr")
    expect(rows.nth(0).locator("td.col-tags")).to_contain_text("needs-review")
    expect(rows.nth(1).locator("td.col-tags")).to_contain_text("needs-review")
    expect(rows.nth(2).locator("td.col-tags")).not_to_contain_text("needs-review")
    assert sorted(
        Finding.objects.filter(tags__name="needs-review").values_list("title", flat=True)
    ) == [
        "Bravo: scores overconfident near the threshold",
        "Charlie: thin files misjudged by the scorecard",
    ]
    assert fits_the_screen(page)
    if screen == "phone":
        # The table is wider than the phone: it scrolls inside its own box.
        box = page.locator(".table-scroll")
        assert box.evaluate("el => el.scrollWidth > el.clientWidth")
        assert re.search(r"[?&]view=table", page.url)
