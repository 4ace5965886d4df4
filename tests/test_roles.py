"""Every role on every page and endpoint: anonymous -> login / 401, no role or the wrong
role -> 403, the right role -> success."""

import pytest
from django.urls import reverse

from .factories import api_for, client_for, csv_upload, fitted_model, skops_upload, toy_frame

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "contributor", "reviewer", "maintainer", "admin"]
READERS = set(ROLES)


def page_matrix(finding, version, dataset, ml_model):
    """(url name, args, who may GET it)."""
    return [
        ("catalog:finding_list", [], READERS),
        ("catalog:finding_detail", [finding.pk], READERS),
        ("catalog:finding_create", [], {"contributor", "admin"}),
        ("catalog:finding_edit", [finding.pk], {"contributor", "admin"}),
        ("registry:mlmodel_list", [], READERS),
        ("registry:mlmodel_detail", [ml_model.slug], READERS),
        ("registry:mlmodel_create", [], {"maintainer", "admin"}),
        ("registry:version_register", [ml_model.slug], {"maintainer", "admin"}),
        ("registry:version_detail", [version.pk], READERS),
        ("registry:dataset_list", [], READERS),
        ("registry:dataset_detail", [dataset.pk], READERS),
        ("registry:dataset_columns", [dataset.pk], READERS),
        ("registry:dataset_upload", [], {"contributor", "maintainer", "admin"}),
    ]


def test_every_page_checks_the_role(people, finding, version, dataset, ml_model):
    for name, args, allowed in page_matrix(finding, version, dataset, ml_model):
        url = reverse(name, args=args)
        anon = client_for(None).get(url)
        assert anon.status_code == 302 and anon["Location"].startswith("/login/"), url
        for role in ROLES + ["nobody"]:
            with_role = client_for(people[role]).get(url)
            expected = 200 if role in allowed else 403
            assert with_role.status_code == expected, (url, role, with_role.status_code)


def test_dashboard_for_every_role(people, finding):
    assert client_for(None).get("/").status_code == 302
    for role in ROLES:
        response = client_for(people[role]).get("/")
        assert response.status_code == 200
        assert finding.title in response.content.decode()
    lonely = client_for(people["nobody"]).get("/")
    assert lonely.status_code == 200 and b"no role yet" in lonely.content


def test_login_and_logout_pages(people):
    client = client_for(None)
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302
    assert client.get("/catalog/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/catalog/").status_code == 302


API_LISTS = ["findings", "ml-models", "datasets", "model-versions", "probes", "probe-runs",
             "actions", "evaluations", "audit-events", "tags", "reruns"]


def test_every_api_list_checks_the_role(people, finding, probe):
    for resource in API_LISTS:
        url = f"/api/v1/{resource}/"
        assert api_for(None).get(url).status_code == 401, url
        assert api_for(people["nobody"]).get(url).status_code == 403, url
        for role in ROLES:
            assert api_for(people[role]).get(url).status_code == 200, (url, role)


def _bodies(finding, ml_model, version, dataset):
    action_id = None
    return {
        "findings": ({"title": "t", "ml_model": ml_model.pk}, "json", {"contributor", "admin"}),
        "ml-models": ({"name": "m2", "task": "binary"}, "json", {"maintainer", "admin"}),
        "probes": (
            {"finding": finding.pk, "dataset": dataset.pk, "kind": "margin_density",
             "threshold": 0.3},
            "json",
            {"contributor", "admin"},
        ),
        "actions": ({"finding": finding.pk, "kind": "retrain", "title": "Retrain"}, "json",
                    {"contributor", "admin"}),
        "action_id": action_id,
    }


def test_api_writes_check_the_role(people, finding, ml_model, version, dataset):
    bodies = _bodies(finding, ml_model, version, dataset)
    for resource in ["findings", "ml-models", "probes", "actions"]:
        body, fmt, allowed = bodies[resource]
        for role in ROLES:
            data = dict(body)
            if resource == "ml-models":
                data["name"] = f"m-{role}"
            response = api_for(people[role]).post(f"/api/v1/{resource}/", data, format=fmt)
            expected = 201 if role in allowed else 403
            assert response.status_code == expected, (resource, role, response.content)


def test_uploads_check_the_role(people, ml_model):
    for role in ROLES:
        response = api_for(people[role]).post(
            "/api/v1/datasets/",
            {"name": f"d-{role}", "target_column": "y", "file": csv_upload(toy_frame())},
            format="multipart",
        )
        expected = 201 if role in {"contributor", "maintainer", "admin"} else 403
        assert response.status_code == expected, (role, response.content)
        response = api_for(people[role]).post(
            "/api/v1/model-versions/",
            {"ml_model": ml_model.pk, "version": f"v-{role}",
             "artifact": skops_upload(fitted_model())},
            format="multipart",
        )
        expected = 201 if role in {"maintainer", "admin"} else 403
        assert response.status_code == expected, (role, response.content)


def test_manual_evaluations_are_for_reviewers(people, finding, version):
    from remediation.models import RemediationAction

    action = RemediationAction.objects.create(finding=finding, kind="retrain", title="r")
    for role in ROLES:
        response = api_for(people[role]).post(
            "/api/v1/evaluations/",
            {"action": action.pk, "model_version": version.pk, "outcome": "held",
             "notes": "user study"},
        )
        expected = 201 if role in {"reviewer", "admin"} else 403
        assert response.status_code == expected, (role, response.content)


def test_web_forms_refuse_writes_without_the_role(people, finding):
    url = reverse("remediation:action_create", args=[finding.pk])
    body = {"kind": "retrain", "title": "Retrain"}
    assert client_for(people["viewer"]).post(url, body).status_code == 403
    assert client_for(people["reviewer"]).post(url, body).status_code == 403
    assert finding.actions.count() == 0
    assert client_for(people["contributor"]).post(url, body).status_code == 302
    assert finding.actions.get().owner == people["contributor"]
