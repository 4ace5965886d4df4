"""Which role may do what, checked through the permission names of core/roles.py.

The expected answers are written out from DESIGN.md ("Roles (Django groups): viewer (reads
everything), contributor (logs findings, datasets, probes, proposes actions), reviewer
(approves, rejects, verifies, accepts risk), maintainer (registers model artifacts and
deployments). A superuser may do everything every role may."), never read from
ROLE_PERMISSIONS. One test id per (ability, person), e.g. `logs findings:contributor`.
The groups come from the migrations; people are put in them with tests.factories.make_user.
"""

import pytest

pytestmark = pytest.mark.django_db

PEOPLE = ["viewer", "contributor", "reviewer", "maintainer", "superuser", "nobody"]
EVERY_ROLE = {"viewer", "contributor", "reviewer", "maintainer", "superuser"}

# "viewer (reads everything)": reading is what every role stands on; a user with no role
# reads nothing.
READS = [
    ("reads findings", "catalog.view_finding"),
    ("reads tags", "catalog.view_tag"),
    ("reads ML models", "registry.view_mlmodel"),
    ("reads model versions", "registry.view_modelversion"),
    ("reads datasets", "registry.view_dataset"),
    ("reads deployments", "registry.view_deployment"),
    ("reads probes", "probes.view_probe"),
    ("reads probe runs", "probes.view_proberun"),
    ("reads reruns", "probes.view_rerun"),
    ("reads actions", "remediation.view_remediationaction"),
    ("reads evaluations", "remediation.view_evaluation"),
    ("reads the audit trail", "core.view_auditevent"),
]

# (ability in DESIGN.md's words, permission, who may) — everyone else may not.
WRITES = [
    ("logs findings", "catalog.add_finding", {"contributor", "superuser"}),
    ("logs datasets", "registry.add_dataset", {"contributor", "superuser"}),
    ("logs probes", "probes.add_probe", {"contributor", "superuser"}),
    ("proposes actions", "remediation.add_remediationaction", {"contributor", "superuser"}),
    (
        "approves, rejects and verifies actions",
        "remediation.review_action",
        {"reviewer", "superuser"},
    ),
    # A manual evaluation is a reviewer verifying an action by hand.
    ("verifies with a manual evaluation", "remediation.add_evaluation", {"reviewer", "superuser"}),
    ("accepts risk", "catalog.review_finding", {"reviewer", "superuser"}),
    ("registers model artifacts", "registry.add_modelversion", {"maintainer", "superuser"}),
    ("registers deployments", "registry.add_deployment", {"maintainer", "superuser"}),
]

NOT_YET_BUILT = {
    "logs datasets:maintainer": "DESIGN.md: contributor (logs findings, datasets, probes, "
    "proposes actions), "
    "maintainer (registers model artifacts and deployments) — not yet built "
    "(maintainers also hold registry.add_dataset)",
}


def _cases():
    rows = [(ability, perm, EVERY_ROLE) for ability, perm in READS] + WRITES
    cases = []
    for ability, perm, allowed in rows:
        for person in PEOPLE:
            case_id = f"{ability}:{person}"
            marks = ()
            if case_id in NOT_YET_BUILT:
                marks = pytest.mark.xfail(strict=True, reason=NOT_YET_BUILT[case_id])
            cases.append(pytest.param(perm, person, person in allowed, id=case_id, marks=marks))
    return cases


@pytest.fixture
def person(people):
    """alice (viewer), bob (contributor), rita (reviewer), mona (maintainer), the superuser
    and nobody (no role), by the names the table uses."""
    return {**people, "superuser": people["admin"]}


@pytest.mark.parametrize(("perm", "who", "may"), _cases())
def test_what_each_role_may_do(perm, who, may, person):
    from django.contrib.auth.models import User

    user = User.objects.get(pk=person[who].pk)  # a fresh user: no permission cache
    assert user.has_perm(perm) is may
