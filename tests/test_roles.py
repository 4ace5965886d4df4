"""Every role on every page and endpoint: anonymous -> login / 401, no role or the wrong
role -> 403, the right role -> success.

Who may is written out from DESIGN.md ("Roles (Django groups): viewer (reads everything),
contributor (logs findings, datasets, probes, proposes actions), reviewer (approves,
rejects, verifies, accepts risk), maintainer (registers model artifacts and deployments).
A superuser may do everything every role may."), one test id per (page or endpoint, person),
e.g. `page:catalog:finding_create:viewer`. The permission names behind these are checked in
test_roles_table.py.
"""

import pytest
from django.urls import reverse

from .factories import api_for, client_for, csv_upload, fitted_model, skops_upload, toy_frame

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "contributor", "reviewer", "maintainer", "superuser"]
EVERY_ROLE = set(ROLES)
LOGS = {"contributor", "superuser"}  # "contributor (logs findings, datasets, probes,
# proposes actions)"
REVIEWS = {"reviewer", "superuser"}  # "reviewer (approves, rejects, verifies, ...)"
REGISTERS = {"maintainer", "superuser"}  # "maintainer (registers model artifacts ...)"

MAINTAINER_DATASETS = (
    "DESIGN.md: contributor (logs findings, datasets, probes, proposes actions), maintainer "
    "(registers model artifacts and deployments) — not yet built (maintainers may upload "
    "datasets)"
)


@pytest.fixture
def person(people):
    """alice (viewer), bob (contributor), rita (reviewer), mona (maintainer), the superuser,
    nobody (no role) and the anonymous visitor, by the names the tables use."""
    return {**people, "superuser": people["admin"], "anonymous": None}


def _ids(kind, rows, who_may, people, not_yet_built=()):
    """One pytest.param per (row, person), expecting `who_may(row)` to hold the allowed set."""
    cases = []
    for row in rows:
        for who in people:
            case_id = f"{kind}:{row[0]}:{who}"
            marks = ()
            if case_id in not_yet_built:
                marks = pytest.mark.xfail(strict=True, reason=MAINTAINER_DATASETS)
            cases.append(pytest.param(*row, who, who in who_may(row), id=case_id, marks=marks))
    return cases


# --- Pages ----------------------------------------------------------------------------------

# (url name, its argument, who may open it)
PAGES = [
    ("catalog:finding_list", None, EVERY_ROLE),
    ("catalog:finding_detail", "finding", EVERY_ROLE),
    ("catalog:finding_create", None, LOGS),
    ("catalog:finding_edit", "finding", LOGS),  # who logs a finding keeps it up to date
    ("registry:mlmodel_list", None, EVERY_ROLE),
    ("registry:mlmodel_detail", "ml_model", EVERY_ROLE),
    # DESIGN names no role for an ML model (the family); it goes with registering its artifacts.
    ("registry:mlmodel_create", None, REGISTERS),
    ("registry:version_register", "ml_model", REGISTERS),
    ("registry:version_detail", "version", EVERY_ROLE),
    ("registry:dataset_list", None, EVERY_ROLE),
    ("registry:dataset_detail", "dataset", EVERY_ROLE),
    ("registry:dataset_columns", "dataset", EVERY_ROLE),
    ("registry:dataset_upload", None, LOGS),
]
PAGE_PEOPLE = ["anonymous", "nobody", *ROLES]


@pytest.mark.parametrize(
    ("name", "arg", "allowed", "who", "may"),
    _ids(
        "page",
        PAGES,
        lambda row: row[2],
        PAGE_PEOPLE,
        not_yet_built={"page:registry:dataset_upload:maintainer"},
    ),
)
def test_each_page_checks_the_role(
    name, arg, allowed, who, may, person, finding, version, dataset, ml_model
):
    args = {
        None: [],
        "finding": [finding.pk],
        "ml_model": [ml_model.slug],
        "version": [version.pk],
        "dataset": [dataset.pk],
    }[arg]
    response = client_for(person[who]).get(reverse(name, args=args))
    if who == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    else:
        assert response.status_code == (200 if may else 403)


@pytest.mark.parametrize("who", PAGE_PEOPLE, ids=[f"page:dashboard:{w}" for w in PAGE_PEOPLE])
def test_the_dashboard_for_each_person(who, person, finding):
    response = client_for(person[who]).get("/")
    if who == "anonymous":
        assert response.status_code == 302
    elif who == "nobody":
        assert response.status_code == 200 and b"no role yet" in response.content
    else:
        assert response.status_code == 200
        assert finding.title in response.content.decode()


def test_signing_in_and_out(people):
    client = client_for(None)
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302
    assert client.get("/catalog/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/catalog/").status_code == 302


# --- API lists: "viewer (reads everything)" -------------------------------------------------

API_LISTS = [
    (resource,)
    for resource in [
        "findings",
        "ml-models",
        "datasets",
        "model-versions",
        "probes",
        "probe-runs",
        "actions",
        "evaluations",
        "audit-events",
        "tags",
        "reruns",
    ]
]


@pytest.mark.parametrize(
    ("resource", "who", "may"), _ids("api-list", API_LISTS, lambda row: EVERY_ROLE, PAGE_PEOPLE)
)
def test_each_api_list_checks_the_role(resource, who, may, person, finding, probe):
    response = api_for(person[who]).get(f"/api/v1/{resource}/")
    if who == "anonymous":
        assert response.status_code == 401
    else:
        assert response.status_code == (200 if may else 403)


# --- API writes -----------------------------------------------------------------------------

# (resource, who may create one)
API_WRITES = [
    ("findings", LOGS),
    ("datasets", LOGS),
    ("probes", LOGS),
    ("actions", LOGS),
    ("evaluations", REVIEWS),  # a manual evaluation: a reviewer verifying by hand
    ("ml-models", REGISTERS),  # DESIGN names no role; it goes with registering artifacts
    ("model-versions", REGISTERS),
]
WRITE_PEOPLE = ["nobody", *ROLES]


def _body(resource, who, finding, ml_model, dataset):
    from remediation.models import RemediationAction

    if resource == "findings":
        return {"title": "Night-shift claims are misjudged", "ml_model": ml_model.pk}, "json"
    if resource == "datasets":
        return {
            "name": f"d-{who}",
            "target_column": "y",
            "file": csv_upload(toy_frame()),
        }, "multipart"
    if resource == "probes":
        return {
            "finding": finding.pk,
            "dataset": dataset.pk,
            "kind": "margin_density",
            "threshold": 0.3,
        }, "json"
    if resource == "actions":
        return {"finding": finding.pk, "kind": "retrain", "title": "Retrain"}, "json"
    if resource == "evaluations":
        action = RemediationAction.objects.create(finding=finding, kind="retrain", title="r")
        version = finding.model_version
        return {
            "action": action.pk,
            "model_version": version.pk,
            "outcome": "held",
            "notes": "user study",
        }, "json"
    if resource == "ml-models":
        return {"name": f"m-{who}", "task": "binary"}, "json"
    assert resource == "model-versions"
    return {
        "ml_model": ml_model.pk,
        "version": f"v-{who}",
        "artifact": skops_upload(fitted_model()),
    }, "multipart"


@pytest.mark.parametrize(
    ("resource", "allowed", "who", "may"),
    _ids(
        "api-create",
        API_WRITES,
        lambda row: row[1],
        WRITE_PEOPLE,
        not_yet_built={"api-create:datasets:maintainer"},
    ),
)
def test_each_api_create_checks_the_role(
    resource, allowed, who, may, person, finding, ml_model, dataset
):
    body, fmt = _body(resource, who, finding, ml_model, dataset)
    response = api_for(person[who]).post(f"/api/v1/{resource}/", body, format=fmt)
    assert response.status_code == (201 if may else 403), response.content


# --- Web forms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "may"),
    [pytest.param(who, who in LOGS, id=f"web:propose-action:{who}") for who in WRITE_PEOPLE],
)
def test_proposing_an_action_on_the_web_checks_the_role(who, may, person, finding):
    url = reverse("remediation:action_create", args=[finding.pk])
    response = client_for(person[who]).post(url, {"kind": "retrain", "title": "Retrain"})
    if may:
        assert response.status_code == 302
        assert finding.actions.get().owner == person[who]
    else:
        assert response.status_code == 403
        assert finding.actions.count() == 0
