"""Every main page, for every role, on a desktop and on a phone.

Each page is opened at 1280 px and at 390x844 (a phone held upright): the page must not
scroll sideways, and axe-core must find no serious or critical accessibility violation.
A screenshot of each page at each width is kept under test-artifacts/e2e/.
"""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from .browser import sign_in
from .conftest import ARTIFACTS, WIDTHS

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = {"viewer": "alice", "contributor": "bob", "reviewer": "rita", "maintainer": "mona"}


@pytest.fixture
def world(people, ml_model, version, dataset, finding, probe):
    """A catalog with something on every page: a key lesson with a probe run and a fix,
    a weak-slice scan, an unread notification for everyone, and a random forest version
    whose runs show their components and a feature interaction's heatmap."""
    from sklearn.ensemble import RandomForestClassifier

    from introspection.models import SliceScan
    from probes.models import Probe, Rerun
    from registry.models import ModelVersion
    from remediation.models import Notification, RemediationAction

    from ..factories import skops_upload
    from ..test_ensemble_pages import pipeline

    finding.lesson = "Check the upper tail of x1 before every release."
    finding.save()
    finding.set_key_lesson(True, by=people["reviewer"])
    Rerun.queue(version, trigger="manual", by=people["contributor"], probes=[probe])
    forest = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        artifact=skops_upload(pipeline(RandomForestClassifier(4, max_depth=3, random_state=0))),
        by=people["maintainer"],
        enqueue=False,
    )
    interaction = Probe(
        finding=finding,
        dataset=dataset,
        kind="feature_interaction",
        params={"features": ["x1", "x2"], "grid": 6},
        threshold=0.5,
        created_by=people["contributor"],
    )
    interaction.full_clean()
    interaction.save()
    Rerun.queue(forest, trigger="manual", by=people["contributor"], probes=[probe, interaction])
    RemediationAction.objects.create(
        finding=finding,
        kind="relabeling",
        title="Relabel the high-x1 rows",
        owner=people["contributor"],
        reviewer=people["reviewer"],
    )
    scan = SliceScan.queue(version, dataset, by=people["maintainer"])
    for person in people.values():
        Notification.objects.create(
            recipient=person,
            finding=finding,
            subject=f"Regression: {finding.title}",
            url=finding.get_absolute_url(),
        )
    return {
        "dashboard": reverse("dashboard"),
        "start-here": reverse("ledger:start_here"),
        "catalog": reverse("catalog:finding_list"),
        "finding": finding.get_absolute_url(),
        "probe": probe.get_absolute_url(),
        "probe-interaction": interaction.get_absolute_url(),
        "ml-model": ml_model.get_absolute_url(),
        "version": version.get_absolute_url(),
        "dataset": dataset.get_absolute_url(),
        "scan": scan.get_absolute_url(),
        "board": reverse("remediation:board"),
        "review-pack": reverse("remediation:review_pack"),
        "audit-log": reverse("remediation:audit_log"),
        "notifications": reverse("remediation:notifications"),
        "heatmap": reverse("ledger:heatmap"),
    }


@pytest.mark.parametrize("role", ROLES)
def test_every_page_fits_a_phone_and_passes_axe(watched, world, people, finding, role):
    page = watched.page
    sign_in(page, ROLES[role])
    pages = dict(world)
    if people[role].has_perm("probes.add_probe"):
        pages["probe-form"] = reverse("probes:probe_create", args=[finding.pk])
    problems = {}
    for width, size in WIDTHS.items():
        page.set_viewport_size(size)
        for name, url in pages.items():
            page.goto(url)
            page.wait_for_load_state("load")
            expect(page.locator("main")).to_be_visible()
            found = watched.check()
            page.screenshot(
                path=str(ARTIFACTS / f"every-page-{role}-{name}-{width}.png"), full_page=True
            )
            if found:
                problems[f"{name} ({url}) at {width}px"] = found
    assert not problems, problems


def test_the_menu_folds_away_on_a_phone(watched, people):
    """On a phone the header is one line; its menu button shows and hides the links."""
    page = watched.page
    page.set_viewport_size(WIDTHS[390])
    sign_in(page, "alice")
    menu, button = page.locator("#site-menu"), page.locator("button.menu-toggle")
    expect(button).to_be_visible()
    expect(menu).to_be_hidden()
    assert page.locator("header").bounding_box()["height"] < 80
    button.click()
    expect(button).to_have_attribute("aria-expanded", "true")
    page.locator("nav >> text=Review board").click()
    expect(page.locator("h1")).to_have_text("Review board")
    expect(menu).to_be_hidden()
    # A desktop shows the links, with no menu button.
    page.set_viewport_size(WIDTHS[1280])
    expect(button).to_be_hidden()
    expect(menu).to_be_visible()


def test_the_site_has_an_icon(watched, people):
    page = watched.page
    page.goto("/login/")
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert re.search(r"favicon\.svg$", icon)
    assert page.request.get(icon).headers["content-type"].startswith("image/svg+xml")
    answer = page.request.get("/favicon.ico", max_redirects=0)
    assert answer.status == 302 and answer.headers["location"] == icon
