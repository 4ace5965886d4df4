"""The three journeys of the design, in a real browser.

1. A contributor logs a finding through the form with the slice builder, attaches a probe
   and proposes an action.
2. A new team member searches the catalog, opens a lesson and reads its timeline and charts.
3. A reviewer walks the review board, approves and verifies an action, and, after a new
   version is registered through the API with a real worker running, sees the regression
   and its notification, the fix under "regressed" on the board with its failing run, the
   version page's banner and failing gate; the pipeline's gate command exits 1.
"""

import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from .browser import reload_until, sign_in, wait_for, wait_in_page
from .conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def choose(page, selector, label):
    """Pick an <option> by its visible text (what a person reads), by regex."""
    page.select_option(
        selector,
        label=page.eval_on_selector(
            selector,
            "(el, re) => Array.from(el.options).map(o => o.label)"
            ".find(l => new RegExp(re).test(l))",
            label,
        ),
    )


def test_a_contributor_logs_a_finding_attaches_a_probe_and_proposes_an_action(
    watched, people, ml_model, version, dataset
):
    from catalog.models import Finding

    page = watched.page
    sign_in(page, "bob")
    page.click("text=Catalog")
    page.goto("/catalog/findings/new/")

    # The form, with the slice built row by row from the dataset's columns (written as
    # slice text).
    page.fill("input[name=title]", "High x1 applicants are misjudged")
    page.fill("input[name=summary]", "Errors concentrate where x1 is high and the colour red.")
    choose(page, "select[name=ml_model]", "toy-risk")
    choose(page, "select[name=model_version]", "toy-risk v1")
    choose(page, "select[name=dataset]", "toy-eval")
    builder = page.locator("#slice-builder")
    expect(builder).to_be_visible()
    rows = builder.locator(".slice-row")
    expect(rows).to_have_count(1)
    first = rows.nth(0)
    expect(first.locator("select.feature option")).to_contain_text(["x1 (numeric)"])
    first.locator("select.feature").select_option("x1")
    first.locator("select.op").select_option(">")
    first.locator("input.value").fill("0.5")
    builder.locator("button.add-row").click()
    second = rows.nth(1)
    second.locator("select.feature").select_option("color")
    # A categorical column offers no ordering operators.
    expect(second.locator("select.op option")).not_to_contain_text([">"])
    second.locator("select.op").select_option("in")
    second.locator("input.value").fill("red, blue")
    # The slice text follows the rows.
    expect(page.locator("textarea[name=slice]")).to_have_value(
        'x1 > 0.5 AND color in ("red", "blue")'
    )
    page.select_option("select[name=severity]", "high")
    page.fill("textarea[name=lesson]", "Check the upper tail of x1 before shipping.")
    page.fill("input[name=tag_names]", "tail-risk, colour")
    page.click("button:has-text('Log finding')")

    expect(page.locator("h1")).to_have_text("High x1 applicants are misjudged")
    expect(
        page.locator("dl.meta code", has_text='x1 > 0.5 AND color in ("red", "blue")')
    ).to_be_visible()
    finding = Finding.objects.get(title="High x1 applicants are misjudged")
    assert finding.reporter == people["contributor"]
    assert finding.slice[1] == {"feature": "color", "op": "in", "value": ["red", "blue"]}

    # A probe that demonstrates it, pre-filled from the finding's slice.
    page.click("a:has-text('Add a probe')")
    expect(page.locator("h1")).to_have_text("Add a probe")
    # The form's script attaches its handlers once the page has loaded; a busy machine
    # shows the heading well before that.
    page.wait_for_load_state("load")
    expect(page.locator("#slice-builder .slice-row")).to_have_count(2)
    page.select_option("select[name=kind]", "margin_density")
    assert '"margin"' in page.input_value("textarea[name=params]")
    page.fill("input[name=threshold]", "0.5")
    page.click("button:has-text('Add probe')")
    expect(page.locator("#probes")).to_contain_text("Margin density")
    probe = finding.probes.get()
    assert probe.kind == "margin_density" and probe.slice == finding.slice
    assert probe.threshold == 0.5

    # A fix, proposed for review.
    form = page.locator("details.add-action")
    if form.get_attribute("open") is None:
        form.locator("summary").click()
    page.select_option("#actions select[name=kind]", "relabeling")
    page.fill("#actions input[name=title]", "Relabel the high-x1 rows")
    page.fill("#actions textarea[name=description]", "Audit 200 rows and fix their labels.")
    page.click("button:has-text('Propose action')")
    action = page.locator("#actions article.action", has_text="Relabel the high-x1 rows")
    expect(action).to_be_visible()
    expect(action.locator(".badge")).to_contain_text(["Proposed"])
    created = finding.actions.get()
    assert created.status == "proposed" and created.owner == people["contributor"]
    assert re.search(r"/catalog/findings/\d+/", page.url)


def _lesson_with_history(people, ml_model, version, dataset, finding, probe):
    """A finding with a lesson, a probe measured on two versions and a verified fix."""
    from catalog.models import Finding
    from probes.models import Rerun
    from registry.models import ModelVersion
    from remediation.models import RemediationAction

    from ..factories import fitted_model, skops_upload

    finding.title = "Calibration drifts for high x1"
    finding.lesson = "Recalibrate on the upper tail before every release."
    finding.is_key_lesson = True
    finding.save()
    finding.tags.set([])
    Rerun.queue(version, trigger="manual", by=people["contributor"], probes=[probe])
    action = RemediationAction.objects.create(
        finding=finding,
        kind="recalibration",
        title="Isotonic recalibration",
        owner=people["contributor"],
        reviewer=people["reviewer"],
    )
    action.transition_to("approved", by=people["reviewer"])
    action.transition_to("in_progress", by=people["contributor"])
    finding.transition_to("remediating", by=people["contributor"])
    v2 = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
    )
    action.transition_to("implemented", by=people["contributor"], fixed_in_version=v2)
    Finding.objects.create(
        title="Unrelated: slow batch scoring",
        ml_model=ml_model,
        lesson="Cache the encoder.",
        owner=people["contributor"],
    )
    return action


def test_a_new_team_member_searches_the_catalog_and_reads_a_lesson(
    watched, people, ml_model, version, dataset, finding, probe
):
    action = _lesson_with_history(people, ml_model, version, dataset, finding, probe)
    action.refresh_from_db()
    assert action.status == "verified"  # the follow-up evaluation held on v2

    page = watched.page
    sign_in(page, "alice")
    # Where a newcomer starts: the key lessons, and a search of past lessons.
    page.click("nav >> text=Start here")
    expect(page.locator("h1")).to_have_text("Start here")
    expect(page.locator("ul.lessons")).to_contain_text("Calibration drifts for high x1")
    page.fill("form.start-search input[name=q]", "recalibrate upper tail")
    page.click("form.start-search button[type=submit]")
    results = page.locator("ol.result-list li.result")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("Calibration drifts for high x1")
    results.first.locator("h3 a").click()

    expect(page.locator("h1")).to_have_text("Calibration drifts for high x1")
    expect(page.locator("text=Recalibrate on the upper tail before every release.")).to_be_visible()
    # The story so far: discovery, the fix and how it fared, where it stands.
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("Discovered")
    expect(timeline).to_contain_text("Isotonic recalibration")
    expect(timeline).to_contain_text("Where it stands")
    # The probe's value across versions, as a chart with one point per measured version.
    chart = page.locator("#probes svg.chart").first
    expect(chart).to_be_visible()
    expect(chart.locator("circle.point")).to_have_count(2)
    expect(page.locator("#probes table.matrix")).to_contain_text("passed")
    # A viewer reads; the page offers no change of status or new action.
    expect(page.locator("form.transition button")).to_have_count(0)
    expect(page.locator("details.add-action")).to_have_count(0)


def test_a_reviewer_approves_and_verifies_then_sees_a_regression_and_its_notice(
    watched, worker, live_server, people, ml_model, version, dataset, finding, probe
):
    import requests
    from rest_framework.authtoken.models import Token

    from probes.models import ProbeRun, Rerun
    from registry.models import ModelVersion
    from remediation.models import Notification, RemediationAction

    from ..factories import fitted_model, skops_upload

    Rerun.queue(version, trigger="manual", by=people["contributor"], probes=[probe])
    finding.transition_to("remediating", by=people["contributor"])
    fix = ModelVersion.register(
        ml_model=ml_model,
        version="2",
        enqueue=False,
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
    )
    action = RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain with the upper tail reweighted",
        owner=people["contributor"],
        reviewer=people["reviewer"],
    )

    page = watched.page
    sign_in(page, "rita")
    page.click("nav >> text=Review board")
    ticket = page.locator(f"#action-{action.pk}")
    expect(page.locator("section.col-proposed")).to_contain_text(action.title)
    ticket.locator("button:has-text('Approve')").click()
    expect(page.locator("section.col-approved")).to_contain_text(action.title)

    # The owner does the work and says which version carries the fix (from a notebook,
    # through the API). Its follow-up evaluation is queued for the worker, not run here.
    worker.queue_tasks()
    bob = {"Authorization": f"Token {Token.objects.create(user=people['contributor']).key}"}
    for body in ({"to": "in_progress"}, {"to": "implemented", "fixed_in_version": fix.pk}):
        answer = requests.post(
            f"{live_server.url}/api/v1/actions/{action.pk}/transition/",
            json=body,
            headers=bob,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    page.reload()
    implemented = page.locator("section.col-implemented")
    expect(implemented).to_contain_text(action.title)
    page.locator(f"#action-{action.pk} button:has-text('Verify')").click()
    # Its finding's only action is verified: the board shows it ready to resolve.
    expect(page.locator("section.col-ready_to_resolve")).to_contain_text(action.title)

    # The finding is resolved...
    page.click(f"#action-{action.pk} a:has-text('{finding.title[:30]}')")
    page.click("button:has-text('Resolve')")
    expect(page.locator(".badge.status-resolved")).to_be_visible()

    # ...until a retrained version, registered through the API while a real worker runs,
    # breaks the probe again.
    worker.start()
    mona = {"Authorization": f"Token {Token.objects.create(user=people['maintainer']).key}"}
    bad = skops_upload(fitted_model(flip_above=0.5)).read()
    answer = requests.post(
        f"{live_server.url}/api/v1/model-versions/",
        headers=mona,
        data={"ml_model": ml_model.pk, "version": "3"},
        files={"artifact": ("model.skops", bad)},
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    v3 = answer.json()["id"]

    reload_until(
        page,
        lambda p: p.locator(".badge.status-regressed").count() > 0,
        120,
        "the worker to rerun the probes on v3 (worker log in test-artifacts/e2e)",
    )
    run = ProbeRun.objects.get(model_version_id=v3, probe=probe)
    assert run.status == "failed", worker.output()
    expect(page.locator("#timeline")).to_contain_text("Finding regressed")
    expect(page.locator("#timeline")).to_contain_text("on toy-risk v3, 0 of 1 pass")
    expect(page.locator("#probes table.matrix")).to_contain_text("failed")

    # The notice: a count in the header, the notification with its link to the finding.
    # The notices are written once the regression has committed, so the page that first
    # showed the badge may predate them: wait for them, then look again.
    wait_for(
        lambda: Notification.objects.filter(recipient=people["reviewer"], finding=finding).exists(),
        60,
        "the regression's notices",
    )
    page.reload()
    notice = page.locator("a.notif .notif-count")
    expect(notice).to_have_text("1")
    page.click("a.notif")
    item = page.locator("ul.notifications li.unread").first
    expect(item).to_contain_text(f"Regression: {finding.title} (toy-risk v3)")
    expect(item).to_contain_text("Last held on: toy-risk v2")
    assert Notification.objects.filter(recipient=people["reviewer"], finding=finding).count() == 1
    assert Notification.objects.filter(recipient=people["contributor"]).count() == 1
    action.refresh_from_db()
    assert action.status == "verified"
    # The fix's own version was evaluated by the same worker: its rerun found every probe
    # passing, and the evaluation settles as held once the moved-problem check queued after
    # that rerun has run (the worker may take v3's rerun first: it was queued earlier).
    try:
        wait_for(
            lambda: action.evaluations.filter(model_version=fix, outcome="held").exists(),
            120,
            "the fix's evaluation on v2 to settle as held",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the worker's log:\n{worker.output()}") from None
    action.refresh_from_db()

    # The same story everywhere a reviewer looks. The board lists the fix under
    # "regressed", with the version it broke on and the failing run, which the finding page
    # shows.
    assert action.broke_on_version_id == v3
    page.click("nav >> text=Review board")
    lane = page.locator("section.col-regressed")
    expect(lane).to_contain_text(action.title)
    expect(lane).to_contain_text("Broke on toy-risk v3")
    lane.locator(f"a:has-text('run #{run.pk}')").click()
    expect(page.locator(f"#run-{run.pk}")).to_contain_text("failed")
    # The version page: a banner, and the gate fails.
    page.goto(ModelVersion.objects.get(pk=v3).get_absolute_url())
    expect(page.locator("#broken-fixes")).to_contain_text(f"{finding.title}: probe #{probe.pk}")
    expect(page.locator("#release .badge.gate-fail")).to_be_visible()
    # The maintainer who registered the breaking version was told.
    assert Notification.objects.filter(recipient=people["maintainer"], finding=finding).count() == 1
    # The pipeline's question gets the same answer: the API and the command's exit status.
    gate = requests.get(
        f"{live_server.url}/api/v1/model-versions/{v3}/gate/", headers=mona, timeout=30
    )
    assert gate.json()["decision"] == "fail", gate.text
    command = subprocess.run(
        [sys.executable, "manage.py", "gate", ml_model.slug, "3", "--wait", "0"],
        cwd=ROOT,
        env=worker.environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert command.returncode == 1, command.stdout + command.stderr
    assert f"probe {probe.pk} (finding {finding.pk}): failed" in command.stdout


def test_the_watch_catches_what_the_policy_blocks(watched, people):
    """The page watch can fail: an inline script and a foreign image are reported."""
    page = watched.page
    page.goto("/login/")
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.x = 1';"
        " document.body.appendChild(s);"
        " const i = document.createElement('img'); i.src = 'https://example.invalid/x.png';"
        " document.body.appendChild(i); }"
    )

    # Chromium reports each violation twice, as an event and on the console: both
    # reports of both, before the lists are emptied for the page checks at the end.
    def reported(texts):
        text = " ".join(texts)
        return "script-src" in text and "img-src" in text

    def console():
        return [m for m in watched.console_errors if "Content Security Policy" in m]

    wait_in_page(page, lambda: reported(watched.csp_violations) and reported(console()))
    problems = watched.problems()
    assert reported(problems["csp violations"]), problems
    watched.csp_violations.clear()
    watched.console_errors.clear()
