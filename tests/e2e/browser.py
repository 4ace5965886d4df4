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
