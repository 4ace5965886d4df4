"""Who may move a finding or a remediation action, and where to.

The expected answers are written out from DESIGN.md ("Workflows", "Roles"), never read from
the code's own tables (catalog.models.FINDING_TRANSITIONS, remediation.models.
ACTION_TRANSITIONS). Every (from, to) pair is tried by every actor, one test id each, e.g.
`finding:open->remediating:contributor`. An allowed move changes the status and writes one
audit event; a refused one raises TransitionError (or a subclass), changes nothing and
writes no event.
"""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from catalog.models import Finding
from core.models import AuditEvent
from core.roles import CONTRIBUTOR, REVIEWER
from core.workflow import SYSTEM, TransitionError
from remediation.models import RemediationAction

from .factories import make_user

pytestmark = pytest.mark.django_db

SUPERUSER_MAY = "superuser"  # "A superuser may do everything every role may" (not the system's)

# --- Findings -------------------------------------------------------------------------------

FINDING_STATUSES = ["open", "remediating", "resolved", "regressed", "accepted_risk"]
FINDING_ACTORS = ["viewer", "contributor", "reviewer", "maintainer", "superuser", "system"]

# DESIGN.md, "Workflows": every move a finding may make and who may make it. Every other
# (from, to) pair, the same status included, is refused for everyone.
FINDING_MOVES = {
    # "open -> remediating -> resolved". DESIGN names no actor for starting remediation: it
    # is the work of those who propose actions (contributor) and approve them (reviewer).
    ("open", "remediating"): {"contributor", "reviewer", "superuser"},
    # "resolving stays a reviewer's decision"
    ("remediating", "resolved"): {"reviewer", "superuser"},
    # "resolved -> regressed only by the system, when a probe of the finding fails on a
    # newer version"
    ("resolved", "regressed"): {"system"},
    # "regressed -> remediating" (the same people as open -> remediating)
    ("regressed", "remediating"): {"contributor", "reviewer", "superuser"},
    # "open|remediating|regressed -> accepted_risk by a reviewer, with a justification and an
    # expiry date"
    ("open", "accepted_risk"): {"reviewer", "superuser"},
    ("remediating", "accepted_risk"): {"reviewer", "superuser"},
    ("regressed", "accepted_risk"): {"reviewer", "superuser"},
    # "at expiry the system moves it back to `open` and notifies"
    ("accepted_risk", "open"): {"system"},
}

# --- Remediation actions --------------------------------------------------------------------

ACTION_STATUSES = [
    "proposed",
    "approved",
    "rejected",
    "in_progress",
    "implemented",
    "verified",
    "ineffective",
    "cancelled",
]
# owner: bob, a contributor who owns the action (and created it); contributor: carol, a
# contributor who does not own it.
ACTION_ACTORS = ["viewer", "contributor", "owner", "reviewer", "maintainer", "superuser", "system"]

# DESIGN.md, "Workflows": every move an action may make and who may make it. Every other
# (from, to) pair, the same status included, is refused for everyone.
ACTION_MOVES = {
    # "proposed -> approved | rejected (reviewer)"
    ("proposed", "approved"): {"reviewer", "superuser"},
    ("proposed", "rejected"): {"reviewer", "superuser"},
    # "approved -> in_progress (owner)"
    ("approved", "in_progress"): {"owner", "superuser"},
    # "in_progress -> implemented (owner, naming the model version that carries the fix)"
    ("in_progress", "implemented"): {"owner", "superuser"},
    # "implemented -> verified | ineffective from the evaluation on that version" (the
    # system); Roles: the reviewer "verifies".
    ("implemented", "verified"): {"system", "reviewer", "superuser"},
    ("implemented", "ineffective"): {"system", "reviewer", "superuser"},
    # "any open state -> cancelled". DESIGN names no actor: those who may edit the action
    # ("Only the owner, the named reviewer or a reviewer may edit an action").
    ("proposed", "cancelled"): {"owner", "reviewer", "superuser"},
    ("approved", "cancelled"): {"owner", "reviewer", "superuser"},
    ("in_progress", "cancelled"): {"owner", "reviewer", "superuser"},
    ("implemented", "cancelled"): {"owner", "reviewer", "superuser"},
}

# Test ids where the code does not yet do what DESIGN.md says.
NOT_YET_BUILT: dict[str, str] = {}


def _cases(kind, statuses, actors, moves, *, allowed):
    cases = []
    for frm in statuses:
        for to in statuses:
            for actor in actors:
                if (actor in moves.get((frm, to), set())) != allowed:
                    continue
                case_id = f"{kind}:{frm}->{to}:{actor}"
                marks = ()
                if case_id in NOT_YET_BUILT:
                    marks = pytest.mark.xfail(strict=True, reason=NOT_YET_BUILT[case_id])
                cases.append(pytest.param(frm, to, actor, id=case_id, marks=marks))
    return cases


# --- People and objects ---------------------------------------------------------------------


@pytest.fixture
def cast(people):
    """The conftest people under the names the tables use, plus carol and the system."""
    return {
        "viewer": people["viewer"],  # alice
        "contributor": people["contributor"],  # bob
        "reviewer": people["reviewer"],  # rita
        "maintainer": people["maintainer"],  # mona
        "superuser": people["admin"],
        "system": SYSTEM,
        "carol": make_user("carol", CONTRIBUTOR),
    }


@pytest.fixture
def finding_in(cast, ml_model):
    """A finding reported and owned by bob, put straight into a status (no event written)."""

    def make(status, **fields):
        fields.setdefault("reporter", cast["contributor"])
        finding = Finding.objects.create(
            title="Young applicants are misjudged",
            ml_model=ml_model,
            owner=cast["contributor"],
            **fields,
        )
        Finding.objects.filter(pk=finding.pk).update(status=status)
        finding.refresh_from_db()
        return finding

    return make


@pytest.fixture
def action_in(cast, finding_in):
    """An action proposed by bob, who owns it, put straight into a status."""

    def make(status, **fields):
        fields.setdefault("created_by", cast["contributor"])
        action = RemediationAction.objects.create(
            finding=finding_in("remediating"),
            kind="retrain",
            title="Retrain with more data",
            owner=cast["contributor"],
            **fields,
        )
        RemediationAction.objects.filter(pk=action.pk).update(status=status)
        action.refresh_from_db()
        return action

    return make


def action_actor(cast, actor):
    """owner: bob, who owns the action; contributor: carol, who does not."""
    if actor == "owner":
        return cast["contributor"]
    return cast["carol"] if actor == "contributor" else cast[actor]


def accept_risk_fields(days=90):
    """A complete request to accept a risk: a justification and (DESIGN.md: `expires_on`) an
    expiry date. The expiry itself is checked by the accept-risk ids below; here it only
    keeps the request complete."""
    return {
        "note": "Within tolerance until the spring retrain.",
        "expires_on": timezone.localdate() + datetime.timedelta(days=days),
    }


def finding_fields(to):
    return accept_risk_fields() if to == "accepted_risk" else {"note": f"moving to {to}"}


def action_fields(to, request):
    fields = {"note": f"moving to {to}"}
    if to == "implemented":
        fields["fixed_in_version"] = request.getfixturevalue("version")
    return fields


def _row(obj):
    fresh = type(obj).objects.get(pk=obj.pk)
    return {f.attname: getattr(fresh, f.attname) for f in type(obj)._meta.concrete_fields}


def assert_moves(obj, to, by, **fields):
    """The move is taken: the status changes and exactly one audit event records it."""
    frm = obj.status
    earlier = list(AuditEvent.objects.for_object(obj).values_list("pk", flat=True))
    obj.transition_to(to, by=by, **fields)
    obj.refresh_from_db()
    assert obj.status == to
    event = AuditEvent.objects.for_object(obj).exclude(pk__in=earlier).get()
    assert (event.verb, event.from_status, event.to_status, event.note) == (
        "transition",
        frm,
        to,
        fields["note"],
    )
    assert event.actor == (None if by == SYSTEM else by)
    return event


def assert_refused(obj, to, by, errors=TransitionError, **fields):
    """The move is refused: an error, the row unchanged, no audit event."""
    before = _row(obj)
    events = AuditEvent.objects.for_object(obj).count()
    with pytest.raises(errors):
        obj.transition_to(to, by=by, **fields)
    assert _row(obj) == before
    obj.refresh_from_db()
    assert obj.status == before["status"]
    assert AuditEvent.objects.for_object(obj).count() == events


# --- The finding table ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frm", "to", "actor"),
    _cases("finding", FINDING_STATUSES, FINDING_ACTORS, FINDING_MOVES, allowed=True),
)
def test_a_finding_moves(frm, to, actor, cast, finding_in):
    assert_moves(finding_in(frm), to, cast[actor], **finding_fields(to))


@pytest.mark.parametrize(
    ("frm", "to", "actor"),
    _cases("finding", FINDING_STATUSES, FINDING_ACTORS, FINDING_MOVES, allowed=False),
)
def test_a_finding_move_is_refused(frm, to, actor, cast, finding_in):
    assert_refused(finding_in(frm), to, cast[actor], **finding_fields(to))


# --- The action table -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frm", "to", "actor"),
    _cases("action", ACTION_STATUSES, ACTION_ACTORS, ACTION_MOVES, allowed=True),
)
def test_an_action_moves(frm, to, actor, cast, action_in, request):
    assert_moves(action_in(frm), to, action_actor(cast, actor), **action_fields(to, request))


@pytest.mark.parametrize(
    ("frm", "to", "actor"),
    _cases("action", ACTION_STATUSES, ACTION_ACTORS, ACTION_MOVES, allowed=False),
)
def test_an_action_move_is_refused(frm, to, actor, cast, action_in, request):
    assert_refused(action_in(frm), to, action_actor(cast, actor), **action_fields(to, request))


# --- Accepting a risk: "with a justification and an expiry date (`expires_on`, at most
# `RISK_ACCEPTANCE_MAX_DAYS`, default 180)" ---------------------------------------------------

MAX_DAYS = 180  # DESIGN.md's default RISK_ACCEPTANCE_MAX_DAYS


def _expiry(days):
    return timezone.localdate() + datetime.timedelta(days=days)


def test_accepting_a_risk_without_a_justification_is_refused(cast, finding_in):
    fields = accept_risk_fields()
    del fields["note"]
    assert_refused(finding_in("open"), "accepted_risk", cast["reviewer"], **fields)


def test_accepting_a_risk_with_a_blank_justification_is_refused(cast, finding_in):
    fields = {**accept_risk_fields(), "note": "   "}
    assert_refused(finding_in("open"), "accepted_risk", cast["reviewer"], **fields)


def test_the_justification_is_the_audit_note(cast, finding_in):
    event = assert_moves(
        finding_in("open"), "accepted_risk", cast["reviewer"], **accept_risk_fields()
    )
    assert event.note == "Within tolerance until the spring retrain."


def test_accepting_a_risk_without_an_expiry_is_refused(cast, finding_in):
    assert_refused(
        finding_in("open"),
        "accepted_risk",
        cast["reviewer"],
        note="Within tolerance until the spring retrain.",
    )


def test_a_risk_may_be_accepted_for_the_longest_allowed_time(cast, finding_in):
    assert_moves(
        finding_in("open"),
        "accepted_risk",
        cast["reviewer"],
        note="Within tolerance until the spring retrain.",
        expires_on=_expiry(MAX_DAYS),
    )


def test_a_risk_accepted_for_longer_than_allowed_is_refused(cast, finding_in):
    assert_refused(
        finding_in("open"),
        "accepted_risk",
        cast["reviewer"],
        note="Within tolerance until the spring retrain.",
        expires_on=_expiry(MAX_DAYS + 1),
    )


def test_the_expiry_is_kept_as_accepted_until(cast, finding_in):
    finding = finding_in("open")
    finding.transition_to(
        "accepted_risk",
        by=cast["reviewer"],
        note="Within tolerance until the spring retrain.",
        expires_on=_expiry(90),
    )
    finding.refresh_from_db()
    assert finding.accepted_until == _expiry(90)


# --- Implementing: "in_progress -> implemented (owner, naming the model version that carries
# the fix)" -----------------------------------------------------------------------------------


def test_implementing_without_naming_the_fix_version_is_refused(cast, action_in):
    assert_refused(action_in("in_progress"), "implemented", cast["contributor"], note="done")


def test_implementing_with_a_version_of_another_ml_model_is_refused(cast, action_in):
    from registry.models import MLModel, ModelVersion

    from .factories import fitted_model, skops_upload

    other = MLModel.objects.create(name="fraud-screen", task="binary")
    elsewhere = ModelVersion.register(
        ml_model=other,
        version="3",
        artifact=skops_upload(fitted_model()),
        by=cast["maintainer"],
        enqueue=False,
    )
    # Refused as a bad move or as a field error keyed `fixed_in_version`: either is clear.
    assert_refused(
        action_in("in_progress"),
        "implemented",
        cast["contributor"],
        note="done",
        fixed_in_version=elsewhere,
        errors=(TransitionError, ValidationError),
    )


def test_the_fix_version_is_kept_on_the_action(cast, action_in, version):
    action = action_in("in_progress")
    action.transition_to(
        "implemented", by=cast["contributor"], note="done", fixed_in_version=version
    )
    action.refresh_from_db()
    assert action.fixed_in_version == version


# --- Separation of duties: "whoever created an action may not approve, reject or verify it;
# whoever reported a finding may not resolve it or accept its risk; when an action names a
# `reviewer`, only that user approves or rejects it (a superuser may do everything)" ----------


@pytest.fixture
def rex(people):
    """A second reviewer: the one an action names."""
    return make_user("rex", REVIEWER)


@pytest.mark.parametrize(
    ("frm", "to"),
    [
        pytest.param(
            "proposed", "approved", id="action:proposed->approved:reviewer-who-created-it"
        ),
        pytest.param(
            "proposed", "rejected", id="action:proposed->rejected:reviewer-who-created-it"
        ),
        pytest.param(
            "implemented", "verified", id="action:implemented->verified:reviewer-who-created-it"
        ),
    ],
)
def test_the_creator_of_an_action_may_not_review_it(frm, to, cast, action_in):
    action = action_in(frm, created_by=cast["reviewer"])
    assert_refused(action, to, cast["reviewer"], note="looks good")


@pytest.mark.parametrize(
    ("to", "actor", "allowed"),
    [
        pytest.param("approved", "rex", True, id="action:proposed->approved:the-named-reviewer"),
        pytest.param("rejected", "rex", True, id="action:proposed->rejected:the-named-reviewer"),
        pytest.param(
            "approved", "reviewer", False, id="action:proposed->approved:a-reviewer-not-named"
        ),
        pytest.param(
            "rejected", "reviewer", False, id="action:proposed->rejected:a-reviewer-not-named"
        ),
        pytest.param(
            "approved", "superuser", True, id="action:proposed->approved:a-superuser-not-named"
        ),
    ],
)
def test_a_named_reviewer_decides_alone(to, actor, allowed, cast, action_in, rex):
    action = action_in("proposed", reviewer=rex)
    by = rex if actor == "rex" else cast[actor]
    if allowed:
        assert_moves(action, to, by, note="decided")
    else:
        assert_refused(action, to, by, note="decided")


@pytest.mark.parametrize(
    ("frm", "to"),
    [
        pytest.param(
            "remediating", "resolved", id="finding:remediating->resolved:reviewer-who-reported-it"
        ),
        pytest.param(
            "open", "accepted_risk", id="finding:open->accepted_risk:reviewer-who-reported-it"
        ),
    ],
)
def test_the_reporter_of_a_finding_may_not_close_it(frm, to, cast, finding_in):
    finding = finding_in(frm, reporter=cast["reviewer"])
    assert_refused(finding, to, cast["reviewer"], **finding_fields(to))
