"""The audit trail is tamper-evident: every event is chained to the one before it, and
`manage.py verify_audit` names the first broken link of an edited, removed, inserted or
truncated trail (edits made behind the application's back, in SQL)."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from core.models import GENESIS, AuditChain, AuditEvent, verify_chain


@pytest.fixture
def trail(finding, people):
    """A few real events: the finding's creation (fixture), edits, transitions."""
    finding.title = "Young applicants are refused too often"
    finding.save()
    finding.transition_to("remediating", by=people["contributor"], note="on it")
    events = list(AuditEvent.objects.order_by("pk"))
    assert len(events) >= 3
    return events


def _sql(statement, *params):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_every_event_is_chained_to_the_one_before(trail):
    assert trail[0].prev_hash == GENESIS
    for before, after in zip(trail, trail[1:], strict=False):
        assert after.prev_hash == before.hash
    chain = AuditChain.objects.get(pk=1)
    assert (chain.tip, chain.length) == (trail[-1].hash, len(trail))
    assert verify_chain() is None
    call_command("verify_audit")


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (
            lambda t: _sql(
                "UPDATE core_auditevent SET note = 'nothing to see' WHERE id = %s", t[1].pk
            ),
            "Event #{1} was changed",
        ),
        (
            lambda t: _sql(
                "UPDATE core_auditevent SET after = %s WHERE id = %s",
                '{"title": "rewritten"}',
                t[0].pk,
            ),
            "Event #{0} was changed",
        ),
        (
            lambda t: _sql(
                "UPDATE core_auditevent SET actor_label = 'someone' WHERE id = %s", t[-1].pk
            ),
            "Event #{-1} was changed",
        ),
        (
            lambda t: _sql("DELETE FROM core_auditevent WHERE id = %s", t[1].pk),
            "Event #{2} does not follow the chain",
        ),
        (lambda t: _sql("DELETE FROM core_auditevent WHERE id = %s", t[-1].pk), "were removed"),
        (
            lambda t: _sql(
                "UPDATE core_auditevent SET prev_hash = %s, hash = %s WHERE id = %s",
                "f" * 64,
                "e" * 64,
                t[1].pk,
            ),
            "Event #{1} does not follow the chain",
        ),
    ],
    ids=[
        "edited-note",
        "edited-after-json",
        "edited-last-actor",
        "removed-middle",
        "removed-last",
        "forged-link",
    ],
)
def test_verify_audit_names_the_first_broken_link(trail, tamper, named):
    tamper(trail)
    index = named[named.index("{") + 1 : named.index("}")] if "{" in named else None
    expected = named.replace("{" + index + "}", str(trail[int(index)].pk)) if index else named
    problem = verify_chain()
    assert problem is not None and expected in problem
    with pytest.raises(CommandError) as refused:
        call_command("verify_audit")
    assert expected in str(refused.value)
    assert refused.value.returncode == 1


def test_events_cannot_be_changed_or_deleted_through_the_application(trail):
    event = trail[0]
    event.note = "changed"
    with pytest.raises(Exception, match="immutable"):
        event.save()
    with pytest.raises(Exception, match="immutable"):
        event.delete()
    with pytest.raises(Exception, match="immutable"):
        AuditEvent.objects.filter(pk=event.pk).update(note="changed")
    assert verify_chain() is None


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain(people, ml_model):
    """Four real connections each save tags of their own at the same moment: every event
    lands on the one chain, none shares a predecessor, and the trail verifies."""
    import threading

    from django.db import connections

    from catalog.models import Finding

    findings = [Finding.objects.create(title=f"race {i}", ml_model=ml_model) for i in range(4)]
    barrier = threading.Barrier(len(findings))
    errors = []

    def write(finding):
        try:
            barrier.wait(timeout=10)
            for n in range(10):
                finding.summary = f"edit {n}"
                finding.save()
        except Exception as exc:  # reported below, with the thread's finding
            errors.append((finding.pk, exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(f,)) for f in findings]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert verify_chain() is None
    assert AuditChain.objects.get(pk=1).length == AuditEvent.objects.count()
    assert connection.vendor == "postgresql"
