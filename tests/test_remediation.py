"""Evaluations, regressions, notifications, the board, the audit log and the reports."""

import csv
import hashlib
import hmac
import http.server
import io
import json
import threading
import zipfile

import pytest
from django.core import mail
from django.db import connection

from core.models import AuditEvent
from core.workflow import TransitionConflict
from probes.models import ProbeRun
from registry.models import ModelVersion
from remediation.models import Evaluation, Notification, RemediationAction
from remediation.notify import sign

from .factories import api_for, client_for, fitted_model, skops_upload


class WebhookReceiver:
    """A real HTTP server on loopback that records what it receives."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def register(ml_model, user, version, **kwargs):
    return ModelVersion.register(
        ml_model=ml_model, version=version, artifact=skops_upload(fitted_model(**kwargs)), by=user
    )


@pytest.mark.django_db(transaction=True)
def test_the_full_loop(people, ml_model, dataset, settings):
    """v1 shows the problem -> finding with a probe -> action approved, implemented with
    v2 -> rerun on v2 passes -> verified, resolved -> v3 fails -> regressed, mailed, and a
    signed webhook arrives."""
    from catalog.models import Finding
    from probes.models import Probe

    bob, rita, mona = people["contributor"], people["reviewer"], people["maintainer"]
    v1 = register(ml_model, mona, "1", flip_above=0.5)
    finding = Finding.objects.create(
        title="High x1 is misjudged",
        ml_model=ml_model,
        model_version=v1,
        dataset=dataset,
        slice=[{"feature": "x1", "op": ">", "value": 0.5}],
        owner=bob,
        reporter=bob,
    )
    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind="slice_error_rate",
        slice=finding.slice,
        threshold=0.2,
    )
    probe.full_clean()
    probe.save()
    api_for(bob).post(f"/api/v1/probes/{probe.pk}/run/", {"model_version": v1.pk})
    assert ProbeRun.objects.get(probe=probe, model_version=v1).status == "failed"

    action = (
        api_for(bob)
        .post(
            "/api/v1/actions/",
            {
                "finding": finding.pk,
                "kind": "relabeling",
                "title": "Relabel the high-x1 rows",
                "reviewer": rita.pk,
            },
        )
        .json()
    )
    url = f"/api/v1/actions/{action['id']}/transition/"
    assert api_for(rita).post(url, {"to": "approved"}).status_code == 200
    assert api_for(bob).post(url, {"to": "in_progress"}).status_code == 200
    v2 = register(ml_model, mona, "2")
    assert ProbeRun.objects.get(probe=probe, model_version=v2).status == "passed"
    # The rerun on v2 finished before the action named v2: it is evaluated from those runs.
    response = api_for(bob).post(url, {"to": "implemented", "fixed_in_version": v2.pk})
    assert response.status_code == 200, response.content
    action = RemediationAction.objects.get(pk=action["id"])
    assert action.status == "verified"
    evaluation = Evaluation.objects.get(action=action, model_version=v2)
    assert evaluation.outcome == "held"
    assert list(evaluation.probe_runs.all()) == [
        ProbeRun.objects.get(probe=probe, model_version=v2)
    ]
    assert ProbeRun.objects.filter(probe=probe, model_version=v2).count() == 1  # not rerun
    f_url = f"/api/v1/findings/{finding.pk}/transition/"
    assert api_for(bob).post(f_url, {"to": "remediating"}).status_code == 200
    assert api_for(rita).post(f_url, {"to": "resolved", "note": "held on v2"}).status_code == 200

    settings.WEBHOOK_URLS = []
    settings.WEBHOOK_SECRET = "s3cret"
    with WebhookReceiver() as hook:
        settings.WEBHOOK_URLS = [hook.url]
        v3 = register(ml_model, mona, "3", flip_above=0.5)
    finding.refresh_from_db()
    assert finding.status == "regressed"
    event = AuditEvent.objects.for_object(finding).filter(to_status="regressed").get()
    assert event.actor is None and "v3" in event.note and "Last held on toy-risk v2" in event.note
    assert finding.evidence["regression"]["broke_on_version"] == v3.pk
    assert finding.evidence["regression"]["last_held_version"] == v2.pk
    assert Evaluation.objects.get(action=action, model_version=v3).outcome == "regressed"
    assert {m.to[0] for m in mail.outbox} >= {"bob@example.com", "rita@example.com"}
    assert "Regression" in mail.outbox[0].subject
    assert Notification.objects.filter(recipient=bob, finding=finding).count() == 1
    assert len(hook.received) == 1
    headers, body = hook.received[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Boundary-Signature"] == expected
    payload = json.loads(body)
    assert payload["event"] == "finding.regressed"
    assert payload["finding"]["id"] == finding.pk
    assert payload["last_held_version"] == "toy-risk v2"
    assert payload["broke_on_version"] == "toy-risk v3"
    page = client_for(bob).get("/").content.decode()
    assert 'class="notif-count">1<' in page


@pytest.mark.django_db(transaction=True)
def test_an_ineffective_fix(people, ml_model, finding, probe):
    action = RemediationAction.objects.create(
        finding=finding, kind="retrain", title="t", owner=people["contributor"]
    )
    RemediationAction.objects.filter(pk=action.pk).update(status="in_progress")
    action.refresh_from_db()
    bad = register(ml_model, people["maintainer"], "2", flip_above=0.5)
    action.transition_to("implemented", by=people["contributor"], fixed_in_version=bad)
    action.refresh_from_db()
    assert action.status == "ineffective"
    event = AuditEvent.objects.for_object(action).filter(to_status="ineffective").get()
    assert event.actor_label == "system"


@pytest.mark.django_db(transaction=True)
def test_implemented_before_any_run_reruns_only_the_missing_probes(
    people, ml_model, finding, probe, version
):
    from probes.models import Probe

    other = Probe(finding=finding, dataset=probe.dataset, kind="margin_density", threshold=0.9)
    other.full_clean()
    other.save()
    # `version` was registered before the probes existed: it has no runs at all.
    assert not ProbeRun.objects.filter(model_version=version).exists()
    api_for(people["contributor"]).post(
        f"/api/v1/probes/{probe.pk}/run/", {"model_version": version.pk}
    )
    action = RemediationAction.objects.create(
        finding=finding, kind="retrain", title="t", owner=people["contributor"]
    )
    RemediationAction.objects.filter(pk=action.pk).update(status="in_progress")
    action.refresh_from_db()
    action.transition_to("implemented", by=people["contributor"], fixed_in_version=version)
    assert ProbeRun.objects.filter(probe=probe, model_version=version).count() == 1
    assert ProbeRun.objects.filter(probe=other, model_version=version).count() == 1
    action.refresh_from_db()
    evaluation = Evaluation.objects.get(action=action, model_version=version)
    assert action.status == "verified", evaluation.details


@pytest.mark.django_db
def test_manual_evaluation_from_the_finding_page(people, finding, version):
    action = RemediationAction.objects.create(finding=finding, kind="retrain", title="t")
    client = client_for(people["reviewer"])
    response = client.post(
        f"/actions/{action.pk}/evaluations/new/",
        {
            "model_version": version.pk,
            "outcome": "held",
            "notes": "User study, 12 people.",
        },
    )
    assert response.status_code == 302
    e = Evaluation.objects.get()
    assert e.is_manual and e.created_by == people["reviewer"] and e.notes.startswith("User")
    assert (
        client_for(people["contributor"])
        .post(
            f"/actions/{action.pk}/evaluations/new/",
            {"model_version": version.pk, "outcome": "held", "notes": "x"},
        )
        .status_code
        == 403
    )


@pytest.mark.django_db
def test_board_groups_filters_and_offers_only_allowed_moves(people, finding):
    import datetime

    from django.utils import timezone

    late = RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Late fix",
        owner=people["contributor"],
        due_date=timezone.localdate() - datetime.timedelta(days=3),
    )
    RemediationAction.objects.create(
        finding=finding, kind="relabeling", title="Other fix", owner=people["reviewer"]
    )
    page = client_for(people["reviewer"]).get("/review/").content.decode()
    assert "Late fix" in page and "(overdue)" in page and 'value="approved"' in page
    page = client_for(people["viewer"]).get("/review/").content.decode()
    assert 'value="approved"' not in page
    page = client_for(people["viewer"]).get("/review/?overdue=true").content.decode()
    assert "Late fix" in page and "Other fix" not in page
    page = (
        client_for(people["viewer"]).get(f"/review/?owner={people['reviewer'].pk}").content.decode()
    )
    assert "Other fix" in page and "Late fix" not in page
    page = client_for(people["viewer"]).get("/review/?changed_since=2999-01-01").content.decode()
    assert "Late fix" not in page
    client_for(people["reviewer"]).post(
        f"/actions/{late.pk}/transition/",
        {"to": "approved", "from": "proposed", "next": "/review/"},
    )
    late.refresh_from_db()
    assert late.status == "approved"


@pytest.mark.django_db
def test_stale_form_is_a_conflict_message(people, finding):
    action = RemediationAction.objects.create(finding=finding, kind="retrain", title="t")
    action.transition_to("approved", by=people["reviewer"])
    response = client_for(people["reviewer"]).post(
        f"/actions/{action.pk}/transition/", {"to": "rejected", "from": "proposed"}, follow=True
    )
    assert "changed by someone else" in response.content.decode()
    response = api_for(people["reviewer"]).post(
        f"/api/v1/actions/{action.pk}/transition/", {"to": "rejected", "from": "proposed"}
    )
    assert response.status_code == 409
    action.refresh_from_db()
    assert action.status == "approved"


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_two_reviewers_race_on_postgresql(people, finding):
    """Two real connections load the same proposed action and act at the same moment:
    exactly one wins, the other gets a conflict; one audit event, no lost update."""
    from django.db import connections

    action = RemediationAction.objects.create(finding=finding, kind="retrain", title="race")
    for _ in range(5):
        RemediationAction.objects.filter(pk=action.pk).update(status="proposed")
        barrier = threading.Barrier(2)
        outcomes = {}

        def act(target, name):
            try:
                mine = RemediationAction.objects.get(pk=action.pk)  # both see 'proposed'
                barrier.wait(timeout=10)
                mine.transition_to(target, by=people["reviewer"], note=name)
                outcomes[name] = "won"
            except TransitionConflict:
                outcomes[name] = "conflict"
            finally:
                connections.close_all()

        before = AuditEvent.objects.for_object(action).filter(verb="transition").count()
        threads = [
            threading.Thread(target=act, args=("approved", "a")),
            threading.Thread(target=act, args=("rejected", "b")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(outcomes.values()) == ["conflict", "won"], outcomes
        winner = next(k for k, v in outcomes.items() if v == "won")
        action.refresh_from_db()
        assert action.status == {"a": "approved", "b": "rejected"}[winner]
        events = AuditEvent.objects.for_object(action).filter(verb="transition")
        assert events.count() == before + 1
        assert events.first().note == winner
    assert connection.vendor == "postgresql"


@pytest.mark.django_db
def test_audit_log_page_filters_and_exports_csv(people, finding):
    finding.transition_to("remediating", by=people["contributor"], note="=cmd|' /C calc'!A0")
    client = client_for(people["viewer"])
    page = client.get("/audit/?verb=transition").content.decode()
    assert "open → remediating" in page
    response = client.get("/audit/?verb=transition&format=csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["to_status"] for r in rows] == ["remediating"]
    assert rows[0]["note"].startswith("'=")  # not a formula in a spreadsheet
    body = api_for(people["viewer"]).get("/api/v1/audit-events/?object_type=catalog.finding")
    assert {e["verb"] for e in body.json()["results"]} == {"create", "transition"}


@pytest.mark.django_db
def test_tag_edits_are_audited(people, finding):
    from catalog.models import Tag
    from core.audit import acting_as

    with acting_as(people["contributor"]):
        finding.tags.set(Tag.from_names(["calibration"]))
    event = AuditEvent.objects.for_object(finding).filter(verb="update").latest("pk")
    assert event.before == {"tags": []} and event.after == {"tags": ["calibration"]}
    assert event.actor == people["contributor"]


@pytest.mark.django_db(transaction=True)
def test_review_pack_and_evidence_pack(people, ml_model, finding, probe, version):
    from django.utils import timezone

    api_for(people["contributor"]).post(
        f"/api/v1/probes/{probe.pk}/run/", {"model_version": version.pk}
    )
    action = RemediationAction.objects.create(finding=finding, kind="retrain", title="Retrain")
    action.transition_to("approved", by=people["reviewer"], note="ok")
    finding.transition_to("remediating", by=people["contributor"])
    today = timezone.localdate().isoformat()
    client = client_for(people["viewer"])
    page = client.get(f"/review/pack/?start={today}&end={today}").content.decode()
    assert "Findings opened" in page and finding.title in page
    response = client.get(f"/review/pack/?start={today}&end={today}&format=csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    sections = {r["section"] for r in rows}
    assert {"findings_opened", "actions_by_status"} <= sections
    assert client.get("/review/pack/?start=2026-13-01", follow=True).status_code == 200

    response = client.get(f"/findings/{finding.pk}/evidence-pack.zip")
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = archive.read("MANIFEST.sha256").decode().splitlines()
    assert manifest
    for line in manifest:
        digest, name = line.split("  ")
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    data = json.loads(archive.read("finding.json"))
    assert data["runs"][0]["lineage"]["artifact_sha256"] == version.artifact_sha256
    assert [a["to"] for a in data["approvals"]] == ["approved"]
    assert f"charts/probe-{probe.pk}.svg" in archive.namelist()


@pytest.mark.django_db
def test_effectiveness_counts_fixes_by_kind(people, finding, version):
    action = RemediationAction.objects.create(
        finding=finding,
        kind="recalibration",
        title="t",
        fixed_in_version=version,
        status="verified",
    )
    Evaluation.objects.create(action=action, model_version=version, outcome="held")
    page = client_for(people["viewer"]).get("/review/effectiveness/")
    rows = {r["kind"]: r for r in page.context["rows"]}
    assert rows["recalibration"]["actions"] == 1 and rows["recalibration"]["held"] == 1
    assert rows["recalibration"]["held_share"] == 1.0
    assert rows["retrain"]["held_share"] is None


@pytest.mark.django_db
def test_notifications_list_and_mark_read(people, finding):
    Notification.objects.create(recipient=people["viewer"], finding=finding, subject="Hello")
    client = client_for(people["viewer"])
    assert 'class="notif-count">1<' in client.get("/notifications/").content.decode()
    api = api_for(people["viewer"])
    items = api.get("/api/v1/notifications/").json()["results"]
    assert [n["subject"] for n in items] == ["Hello"]
    assert api_for(people["reviewer"]).get("/api/v1/notifications/").json()["count"] == 0
    api.post(f"/api/v1/notifications/{items[0]['id']}/read/")
    assert "notif-count" not in client.get("/notifications/").content.decode()


def test_webhook_signature_and_retry(settings):
    from remediation.notify import deliver_webhook

    settings.WEBHOOK_SECRET = "k"
    assert sign(b"{}", "k") == "sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
    attempts = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            attempts.append(1)
            self.send_response(500 if len(attempts) < 3 else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status = deliver_webhook(f"http://127.0.0.1:{server.server_port}/", {"event": "x"})
    finally:
        server.shutdown()
        server.server_close()
    assert status == 200 and len(attempts) == 3
    with pytest.raises(ValueError):
        deliver_webhook("file:///etc/passwd", {"event": "x"})
