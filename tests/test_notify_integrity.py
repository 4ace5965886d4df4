"""Regression notices that cannot be forged, redirected or lost: webhooks are never sent
unsigned (and check --deploy says so), a redirect is a failed delivery rather than a
request to wherever it points, and a finding title with a line break still gets its
e-mail."""

import http.server
import threading

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from remediation import notify


class Server:
    """A loopback HTTP server whose POST handler is `handle(request_handler)`."""

    def __init__(self, handle):
        self.hits = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hits.append(self.path)
                handle(self)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(notify, "WEBHOOK_BACKOFF_S", (0, 0, 0, 0))


def test_a_redirect_is_a_failed_delivery_not_a_second_request(settings, no_backoff):
    settings.WEBHOOK_SECRET = "k"
    target = Server(lambda h: (h.send_response(204), h.end_headers()))

    def redirect(handler):
        handler.send_response(307)
        handler.send_header("Location", target.url + "/internal")
        handler.end_headers()

    hook = Server(redirect)
    try:
        with pytest.raises(RuntimeError, match="redirects are not followed"):
            notify.deliver_webhook(hook.url + "/hook", {"event": "finding.regressed"})
    finally:
        hook.close()
        target.close()
    assert hook.hits == ["/hook"] * 5  # every attempt went to the configured address
    assert target.hits == []


def test_webhooks_are_never_sent_unsigned(settings, no_backoff):
    settings.WEBHOOK_SECRET = ""
    hook = Server(lambda h: (h.send_response(204), h.end_headers()))
    try:
        with pytest.raises(RuntimeError, match="WEBHOOK_SECRET is empty"):
            notify.deliver_webhook(hook.url, {"event": "finding.regressed"})
    finally:
        hook.close()
    assert hook.hits == []


def test_check_deploy_refuses_webhooks_without_a_secret(settings):
    settings.WEBHOOK_URLS = ["https://hooks.example.com/ledger"]
    settings.WEBHOOK_SECRET = ""
    with pytest.raises(SystemCheckError, match="remediation.E001"):
        call_command("check", "--deploy", "--fail-level", "ERROR")
    settings.WEBHOOK_SECRET = "a-long-shared-secret"
    try:
        call_command("check", "--deploy", "--fail-level", "ERROR")
    except SystemCheckError as exc:
        assert "remediation.E001" not in str(exc)


def test_a_title_with_a_line_break_still_gets_its_email(people, finding, probe, version):
    from probes.models import ProbeRun, Rerun

    finding.title = "Young applicants\nrefused too often"
    finding.owner = people["contributor"]
    finding.save()
    rerun = Rerun.queue(version, trigger="manual", probes=[probe], dispatch=False)
    run = ProbeRun.objects.get(rerun=rerun)
    ProbeRun.objects.filter(pk=run.pk).update(status="failed", value=0.5, passed=False)
    notify.notify_regression(finding.pk, run.pk)
    subjects = [m.subject for m in mail.outbox]
    assert subjects and all("\n" not in s for s in subjects)
    assert "Young applicants refused too often" in subjects[0]
    assert people["contributor"].email in [m.to[0] for m in mail.outbox]
