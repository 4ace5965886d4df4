"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live server,
with a real django-q2 worker (`manage.py qcluster`) when a journey needs one.

- The worker is another process, so it must reach the test database: on SQLite the test
  database is a file here (not Django's default in-memory one); PostgreSQL's test database
  is reachable as it is. The worker gets the test database's name through DATABASE_URL.
- Every page a journey opens is watched: a Content-Security-Policy violation, a JavaScript
  error or a failed same-origin request fails the test.
- Every page a test opened is checked at the end, on a desktop (1280 px) and on a phone
  (390x844): a page that scrolls sideways, or that axe-core finds a serious or critical
  accessibility violation on, fails the test (browser.check_page).
- Each journey's last page is kept as a screenshot under test-artifacts/e2e/.
- Without /usr/bin/chromium the tests are skipped locally and fail in CI (CI=true).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from .browser import check_page, wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000
# The widths every page is checked at: a desktop, and a phone held upright.
WIDTHS = {1280: {"width": 1280, "height": 900}, 390: {"width": 390, "height": 844}}
# Pages that are not the app's own: the API's documentation and Django's admin.
NOT_CHECKED = ("/api/", "/admin/", "/static/", "/media/")

# A worker process must open the same test database: make SQLite's a file (this conftest
# is only loaded when browser tests are collected).
_db = django_settings.DATABASES["default"]
if _db["ENGINE"].endswith("sqlite3"):
    _db.setdefault("TEST", {})
    if not _db["TEST"].get("NAME"):
        _db["TEST"]["NAME"] = str(
            Path(tempfile.gettempdir()) / f"boundary-ledger-e2e-{os.getpid()}.sqlite3"
        )


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in the test thread, under which
    # Django's ORM (fixtures, assertions) would otherwise refuse to run.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Kept on the test, so that the `watched` fixture checks pages only after a test that
    # passed (a failure is reported as it is, not buried under the checks).
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class Watched:
    """A browser page that records what would show a broken page to a person, and the
    app's pages it opened, to check each of them at every width in WIDTHS."""

    def __init__(self, page, base_url):
        self.page, self.base_url = page, base_url
        self.visited = {}  # path (and query) -> None, in the order first opened
        self.checked = {}  # (path, width) -> problems found there
        self.console_errors, self.page_errors, self.failed_requests = [], [], []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)
        self.csp_violations = []
        # Reported the moment they happen, so that a violation just before a navigation
        # is not lost with the page.
        page.expose_function("__reportCspViolation", lambda text: self.csp_violations.append(text))
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', e =>"
            " window.__reportCspViolation(`${e.violatedDirective} blocked ${e.blockedURI}"
            " at ${e.sourceFile}:${e.lineNumber}`));"
        )

    def _console(self, message):
        if message.type == "error":
            self.console_errors.append(message.text)

    def _request_failed(self, request):
        # A request cut short by a navigation (a script reloading the page) is normal.
        aborted = "ERR_ABORTED" in (request.failure or "")
        if request.url.startswith(self.base_url) and not aborted:
            self.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def _response(self, response):
        # Subresources (CSS, JS, JSON the scripts fetch) must load; pages may be 4xx on
        # purpose, so only non-document requests are held to this.
        request = response.request
        path = response.url.removeprefix(self.base_url)
        if (
            request.resource_type == "document"
            and request.method == "GET"
            and response.status == 200
            and response.url.startswith(self.base_url)
            and not path.startswith(NOT_CHECKED)
            and "text/html" in response.headers.get("content-type", "")
        ):
            self.visited.setdefault(path.split("#")[0], None)
        if (
            response.url.startswith(self.base_url)
            and response.status >= 400
            and request.resource_type != "document"
        ):
            self.failed_requests.append(f"{request.method} {response.url}: {response.status}")

    def check(self, page=None):
        """Check the page as it stands, at its current width (browser.check_page);
        returns the problems found, and remembers them."""
        page = page or self.page
        path = page.url.removeprefix(self.base_url).split("#")[0]
        problems = check_page(page)
        self.checked[(path, page.viewport_size["width"])] = problems
        return problems

    def check_visited(self):
        """Open every page this test visited, in a new tab of the same session, at each
        width it was not checked at yet, and check it there."""
        pages = [
            path for path in self.visited if any((path, w) not in self.checked for w in WIDTHS)
        ]
        if not pages:
            return
        tab = self.page.context.new_page()
        try:
            for width, size in WIDTHS.items():
                tab.set_viewport_size(size)
                for path in pages:
                    if (path, width) not in self.checked:
                        tab.goto(path)
                        tab.wait_for_load_state("load")
                        self.check(tab)
        finally:
            tab.close()

    def problems(self):
        csp_console = [m for m in self.console_errors if "Content Security Policy" in m]
        return {
            "csp violations": self.csp_violations + csp_console,
            "javascript errors": self.page_errors,
            "console errors": [m for m in self.console_errors if m not in csp_console],
            "failed requests": self.failed_requests,
            "pages that scroll sideways or fail axe": {
                f"{path} at {width}px": found
                for (path, width), found in self.checked.items()
                if found
            },
        }


@pytest.fixture
def watched(browser, live_server, request):
    """A fresh browser context on the live server; fails the test on CSP violations,
    script errors and broken subresources, and (once the test passed) on any page it
    opened that scrolls sideways or fails axe at a width in WIDTHS; keeps a screenshot of
    the last page."""
    context = browser.new_context(base_url=live_server.url, viewport=WIDTHS[1280])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watch = Watched(page, live_server.url)
    yield watch
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        outcome = getattr(request.node, "report_call", None)
        if outcome is not None and outcome.passed:
            watch.check_visited()
    finally:
        problems = watch.problems()
        context.close()
    assert not any(problems.values()), problems


class Worker:
    """A real django-q2 cluster (`manage.py qcluster`) in its own process, on the live
    server's database and media folder. From `queue_tasks()` on, tasks are queued for it
    instead of running inline; `start()` starts it."""

    def __init__(self, settings, log_path):
        self.settings, self.log_path, self.process, self.log = settings, log_path, None, None

    def queue_tasks(self):
        self.settings.TASKS_SYNC = False

    def environment(self):
        from django.db import connection

        db = connection.settings_dict
        if db["ENGINE"].endswith("sqlite3"):
            url = f"sqlite:///{db['NAME']}"
        else:
            from urllib.parse import quote

            url = (
                f"postgres://{quote(db['USER'], safe='')}:{quote(db['PASSWORD'], safe='')}"
                f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
            )
        return {
            **os.environ,
            "DATABASE_URL": url,
            "MEDIA_ROOT": str(self.settings.MEDIA_ROOT),
            "TASKS_SYNC": "0",
            "REDIS_URL": "",
            "Q_WORKERS": "1",
            "Q_TIMEOUT": "120",
            "Q_RETRY": "180",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self):
        self.queue_tasks()
        self.log = open(self.log_path, "w")  # noqa: SIM115 (open while the worker runs)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=self.environment(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: (
                "ready for work" in self.log_path.read_text() or self.process.poll() is not None
            ),
            60,
            "the worker to start",
        )
        assert self.process.poll() is None, self.log_path.read_text()
        return self

    def output(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.log_path, ARTIFACTS / "qcluster.log")


@pytest.fixture
def worker(live_server, settings, tmp_path):
    worker = Worker(settings, tmp_path / "qcluster.log")
    yield worker
    worker.stop()
