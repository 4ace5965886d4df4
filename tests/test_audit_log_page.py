"""The audit log as a reader sees it: each row names its object in words and links to it,
and shows what changed field by field, with the fields' names."""

import datetime

import pytest

from core.audit import acting_as
from core.models import AuditEvent
from remediation.models import RemediationAction

from .factories import client_for

pytestmark = pytest.mark.django_db


def _row(html, event):
    start = html.index(f'<tr id="event-{event.pk}">')
    return html[start : html.index("</tr>", start)]


def test_a_finding_edit_names_the_finding_links_it_and_shows_the_changed_fields(people, finding):
    with acting_as(people["contributor"]):
        finding.severity = "critical"
        finding.summary = "Worse than we thought."
        finding.save()
    event = AuditEvent.objects.for_object(finding).filter(verb="update").latest("pk")
    html = client_for(people["viewer"]).get("/audit/").content.decode()
    row = _row(html, event)
    assert f"Finding #{finding.pk}" in row
    assert f'<a href="{finding.get_absolute_url()}">{finding.title}</a>' in row
    assert '<span class="field">Severity</span>: <del>High</del> → <ins>Critical</ins>' in row
    assert (
        '<span class="field">Summary</span>: <del>The model errs when x1 is high.</del> → '
        "<ins>Worse than we thought.</ins>"
    ) in row
    assert "catalog.finding" not in row and "Title" not in row  # unchanged fields stay out


def test_an_action_edit_names_the_action_and_shows_owner_and_due_date(people, finding):
    action = RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain with more young applicants",
        owner=people["contributor"],
        due_date=datetime.date(2030, 1, 1),
    )
    action.edit(
        {"owner": people["reviewer"], "due_date": datetime.date(2030, 2, 1), "kind": "relabeling"},
        by=people["reviewer"],
        note="rita takes it over",
    )
    event = AuditEvent.objects.for_object(action).filter(verb="update").latest("pk")
    html = client_for(people["viewer"]).get("/audit/?object_type=remediation.remediationaction")
    row = _row(html.content.decode(), event)
    assert f"Remediation action #{action.pk}" in row
    assert f'<a href="{action.get_absolute_url()}">' in row and "Retrain with more" in row
    assert '<span class="field">Owner</span>: <del>bob</del> → <ins>rita</ins>' in row
    assert (
        '<span class="field">Due date</span>: <del>2030-01-01</del> → <ins>2030-02-01</ins>' in row
    )
    assert '<span class="field">Kind</span>: <del>Retrain</del> → <ins>Relabeling</ins>' in row
    assert "rita takes it over" in row


def test_a_probe_row_links_to_the_probe_page(people, probe):
    probe.edit({"min_support": 50}, by=people["contributor"])
    event = AuditEvent.objects.for_object(probe).filter(verb="update").latest("pk")
    html = client_for(people["viewer"]).get("/audit/?object_type=probes.probe").content.decode()
    row = _row(html, event)
    assert f'<a href="/probes/{probe.pk}/">' in row and f"Probe #{probe.pk}" in row
    assert "<del>30</del> → <ins>50</ins>" in row


def test_a_transition_shows_the_status_move_in_words(people, finding):
    finding.transition_to("remediating", by=people["contributor"], note="on it")
    html = client_for(people["viewer"]).get("/audit/?verb=transition").content.decode()
    event = AuditEvent.objects.for_object(finding).filter(verb="transition").get()
    row = _row(html, event)
    assert "Status changed: open → remediating" in row and "on it" in row
    assert '<span class="field">Status</span>' not in row  # said once, as the move


def test_filters_keep_working_and_name_the_kinds_in_words(people, finding, probe):
    client = client_for(people["viewer"])
    html = client.get("/audit/?object_type=probes.probe").content.decode()
    assert f"Probe #{probe.pk}" in html and f"Finding #{finding.pk}" not in html
    assert '<option value="remediation.remediationaction">Remediation action</option>' in html
    assert '<option value="probes.probe" selected>Probe</option>' in html
    only = client.get(f"/audit/?object_type=catalog.finding&object_id={finding.pk}")
    assert f'name="object_id" value="{finding.pk}"' in only.content.decode()
    assert client.get("/audit/?actor=nobody-at-all").content.decode().count('<tr id="event-') == 0
