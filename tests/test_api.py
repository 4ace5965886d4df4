"""The public API v1: schema, resources, field names of the DESIGN.md contract."""

import pytest
import yaml  # noqa: F401  (drf-spectacular renders YAML by default)
from django.core.management import call_command

from .factories import api_for, client_for

pytestmark = pytest.mark.django_db

CONTRACT = {
    "ml-models": ["id", "name", "slug", "description", "task"],
    "datasets": ["id", "name", "version", "target_column", "sha256", "row_count", "columns"],
    "model-versions": [
        "id",
        "ml_model",
        "version",
        "artifact_sha256",
        "training_dataset",
        "notes",
        "registered_at",
    ],
    "findings": [
        "id",
        "title",
        "summary",
        "description",
        "ml_model",
        "model_version",
        "dataset",
        "slice",
        "evidence",
        "severity",
        "risk_category",
        "status",
        "accepted_until",
        "lesson",
        "remaining_gaps",
        "tags",
        "owner",
    ],
    "probes": [
        "id",
        "finding",
        "dataset",
        "kind",
        "slice",
        "params",
        "comparator",
        "threshold",
        "tolerance",
        "min_support",
        "active",
        "supersedes",
    ],
    "probe-runs": [
        "id",
        "probe",
        "model_version",
        "status",
        "value",
        "ci_low",
        "ci_high",
        "support",
        "passed",
        "trigger",
        "error",
    ],
    "actions": [
        "id",
        "finding",
        "kind",
        "title",
        "description",
        "owner",
        "reviewer",
        "status",
        "due_date",
        "fixed_in_version",
    ],
    "evaluations": ["id", "action", "model_version", "outcome", "probe_runs", "notes"],
}


def test_schema_lists_every_resource(people):
    response = api_for(people["viewer"]).get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for resource in CONTRACT:
        assert f"/api/v1/{resource}/" in paths, resource
    for op in [
        "/api/v1/probes/{id}/run/",
        "/api/v1/probes/{id}/revise/",
        "/api/v1/probes/{id}/retire/",
        "/api/v1/actions/{id}/transition/",
        "/api/v1/findings/{id}/transition/",
        "/api/v1/audit-events/",
    ]:
        assert op in paths


def test_docs_page_loads_without_a_cdn(people):
    page = client_for(people["viewer"]).get("/api/v1/docs/").content.decode()
    assert "swagger-ui" in page and "cdn" not in page.lower()


def test_resources_carry_the_contract_fields(people, finding, probe, version):
    from probes.models import Rerun
    from remediation.models import Evaluation, RemediationAction

    Rerun.queue(version, trigger="manual", dispatch=False)
    action = RemediationAction.objects.create(finding=finding, kind="retrain", title="r")
    Evaluation.objects.create(action=action, model_version=version, outcome="held")
    api = api_for(people["viewer"])
    for resource, fields in CONTRACT.items():
        body = api.get(f"/api/v1/{resource}/").json()
        assert body["results"], resource
        missing = set(fields) - set(body["results"][0])
        assert not missing, (resource, missing)


def test_finding_round_trip_with_tags(people, ml_model, dataset, version):
    api = api_for(people["contributor"])
    created = api.post(
        "/api/v1/findings/",
        {
            "title": "Borderline band",
            "ml_model": ml_model.pk,
            "model_version": version.pk,
            "dataset": dataset.pk,
            "slice": [{"feature": "x1", "op": "between", "value": [0, 1]}],
            "evidence": {"error_rate": 0.31},
            "severity": "high",
            "risk_category": "safety",
            "tags": ["Calibration", "band"],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["tags"] == ["band", "calibration"] and body["status"] == "open"
    assert body["reporter"] == people["contributor"].pk
    patched = api.patch(
        f"/api/v1/findings/{body['id']}/", {"tags": ["band"], "status": "resolved"}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["tags"] == ["band"] and patched.json()["status"] == "open"
    listed = api.get("/api/v1/findings/?search=borderline&severity=high&tag=band").json()
    assert [f["id"] for f in listed["results"]] == [body["id"]]
    assert api.get("/api/v1/findings/?severity=low").json()["count"] == 0


def test_create_api_token_prints_a_working_token(people, capsys):
    from rest_framework.test import APIClient

    call_command("create_api_token", "alice")
    token = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/findings/").status_code == 200
    with pytest.raises(Exception, match="No user named"):
        call_command("create_api_token", "ghost")


def test_datasets_never_expose_rows(people, dataset):
    body = api_for(people["viewer"]).get(f"/api/v1/datasets/{dataset.pk}/").json()
    assert "file" not in body and body["filename"] == "table.csv"
    assert body["row_count"] == 400 and len(body["sha256"]) == 64
