"""Deployments (DESIGN.md: which version serves in which environment since when): a new one
ends the current one in the same environment and no other; only maintainers record them;
a version of another ML model or a start before the one it replaces is refused."""

import datetime

import pytest
from django.utils import timezone

from registry.models import Deployment, MLModel, ModelVersion

from .factories import api_for, client_for, fitted_model, skops_upload


@pytest.fixture
def v2(people, ml_model):
    return ModelVersion.register(
        ml_model=ml_model,
        version="2",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )


def post(who, people, **body):
    return api_for(people[who]).post("/api/v1/deployments/", body, format="json")


def test_a_deployment_ends_the_current_one_in_its_environment_only(people, version, v2):
    monday = timezone.now() - datetime.timedelta(days=3)
    first = post(
        "maintainer",
        people,
        model_version=version.pk,
        environment="production",
        since=monday.isoformat(),
    )
    assert first.status_code == 201, first.content
    staging = post("maintainer", people, model_version=version.pk, environment="staging")
    assert staging.status_code == 201
    second = post(
        "maintainer",
        people,
        model_version=v2.pk,
        environment="production",
        note="v2 after the retrain",
    )
    assert second.status_code == 201, second.content
    body = second.json()
    assert body["ml_model"] == version.ml_model_id and body["until"] is None
    ended = Deployment.objects.get(pk=first.json()["id"])
    assert ended.until == Deployment.objects.get(pk=body["id"]).since
    assert Deployment.objects.get(pk=staging.json()["id"]).until is None
    current = api_for(people["viewer"]).get("/api/v1/deployments/?until__isnull=true").json()
    assert sorted((d["environment"], d["model_version"]) for d in current["results"]) == [
        ("production", v2.pk),
        ("staging", version.pk),
    ]


@pytest.mark.parametrize("who", ["viewer", "contributor", "reviewer"])
def test_only_maintainers_record_deployments(people, version, who):
    response = post(who, people, model_version=version.pk, environment="production")
    assert response.status_code == 403
    assert not Deployment.objects.exists()


def test_a_version_of_another_model_is_refused_at_its_field(people, version):
    other = MLModel.objects.create(name="other")
    response = post("maintainer", people, model_version=version.pk, environment="prod")
    assert response.status_code == 201
    other_version = ModelVersion.register(
        ml_model=other,
        version="1",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        enqueue=False,
    )
    # A deployment of `other` is fine; the ML model always follows the version.
    response = post("maintainer", people, model_version=other_version.pk, environment="prod")
    assert response.status_code == 201 and response.json()["ml_model"] == other.pk
    assert Deployment.objects.current().count() == 2


def test_a_start_before_the_replaced_deployment_is_refused(people, version, v2):
    assert (
        post("maintainer", people, model_version=version.pk, environment="production").status_code
        == 201
    )
    earlier = (timezone.now() - datetime.timedelta(days=30)).isoformat()
    response = post(
        "maintainer", people, model_version=v2.pk, environment="production", since=earlier
    )
    assert response.status_code == 400
    assert "cannot start earlier" in response.json()["since"][0]
    assert Deployment.objects.count() == 1 and Deployment.objects.get().until is None


def test_a_bad_environment_name_is_refused(people, version):
    response = post("maintainer", people, model_version=version.pk, environment="prod env!")
    assert response.status_code == 400 and "environment" in response.json()
    assert not Deployment.objects.exists()


def test_the_ml_model_page_records_and_lists_deployments(people, ml_model, version, v2):
    client = client_for(people["maintainer"])
    response = client.post(
        f"/models/{ml_model.slug}/deployments/new/",
        {"model_version": v2.pk, "environment": "production"},
    )
    assert response.status_code == 302
    page = client_for(people["viewer"]).get(ml_model.get_absolute_url()).content.decode()
    assert "production" in page and "serving" in page
    assert "Record deployment" not in page  # viewers read, maintainers record
    foreign = client.post(
        f"/models/{ml_model.slug}/deployments/new/",
        {"model_version": 99999, "environment": "production"},
        follow=True,
    )
    assert "Nothing recorded" in foreign.content.decode()
    assert Deployment.objects.count() == 1
