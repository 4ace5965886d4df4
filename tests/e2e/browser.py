"""Small helpers the browser journeys share."""

import time

from playwright.sync_api import Error as PlaywrightError


def sign_in(page, username, password=None):
    """Sign in through the login form, as a person would (fixtures' password: pw-<name>)."""
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password or f"pw-{username}")
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


def wait_for(condition, seconds=60, what="the condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def wait_in_page(page, condition, seconds=20):
    """Wait until `condition()` holds (or `seconds` pass), while the page delivers its
    events: Playwright's sync API hands them over only inside its own calls, never during
    a plain sleep. Returns whether the condition holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        page.wait_for_timeout(100)
    return True


def reload_until(page, condition, seconds=90, what="the page to change"):
    """Reload the page until `condition(page)` holds (a person pressing F5)."""
    deadline = time.monotonic() + seconds
    while True:
        if condition(page):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        time.sleep(1)
        try:
            page.reload()
        except PlaywrightError:  # the page reloaded itself meanwhile (live progress)
            page.wait_for_load_state()


# The impacts that fail a page: axe-core's "serious" and "critical" violations.
BLOCKING_IMPACTS = ("serious", "critical")


def page_width(page):
    """(the document's scroll width, the viewport's width) in CSS pixels."""
    return tuple(page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]"))


def accessibility_violations(page, impacts=BLOCKING_IMPACTS):
    """axe-core's violations on the page as it stands, of the given impacts: one line each,
    naming the rule, its impact, what it asks for and (some of) the elements that break it."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page).response
    lines = []
    for violation in results["violations"]:
        if violation["impact"] not in impacts:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        shown = ", ".join(targets[:4]) + (
            f" (+{len(targets) - 4} more)" if len(targets) > 4 else ""
        )
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}: {shown}")
    return lines


def check_page(page):
    """What would keep a person from using the page at its current width: sideways
    scrolling of the whole page, and serious or critical accessibility violations.
    Returns a list of problems, empty when there is none."""
    problems = []
    scroll_width, viewport = page_width(page)
    if scroll_width > viewport:
        problems.append(f"the page is {scroll_width}px wide in a {viewport}px window")
    return problems + accessibility_violations(page)
