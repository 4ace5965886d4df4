"""Bad input gets a clear message that names what is wrong, and saves nothing."""

import pickle

import pytest
from django.core.files.base import ContentFile
from django.db import connection  # noqa: F401 - read by the skipif conditions

from catalog.models import Finding
from registry.models import Dataset, ModelVersion

from .factories import api_for, client_for, csv_upload, fitted_model, skops_upload, toy_frame

pytestmark = pytest.mark.django_db


def post_dataset(user, file, **fields):
    data = {"name": "bad", "target_column": "y", "file": file, **fields}
    return api_for(user).post("/api/v1/datasets/", data, format="multipart")


@pytest.mark.parametrize(
    "payload, fields, message",
    [
        (b"", {}, "empty"),
        (b"\x00\x01\x02\x89PNG binary", {}, "neither CSV nor Parquet"),
        (b"a,b\n1,2\n", {}, "target column 'y' is not in the file"),
        (b"y,x\n", {}, "no rows"),
        (b"x,y\n1,2\n", {"sensitive_columns": ["ssn"]}, "ssn"),
        (b"x,y\n1,2\n", {"target_column": ""}, "target"),
    ],
)
def test_bad_dataset_uploads_are_refused(people, payload, fields, message):
    response = post_dataset(people["contributor"], ContentFile(payload, name="t.csv"), **fields)
    assert response.status_code == 400, response.content
    assert message in response.content.decode()
    assert Dataset.objects.count() == 0


def test_dataset_over_the_size_limit_is_refused(people, settings):
    settings.UPLOAD_MAX_BYTES = 100
    response = post_dataset(people["contributor"], csv_upload(toy_frame()))
    assert response.status_code == 400
    assert "limit is 100 bytes" in response.content.decode()
    assert Dataset.objects.count() == 0


def test_bad_dataset_upload_in_the_web_form(people):
    response = client_for(people["contributor"]).post(
        "/datasets/new/",
        {
            "name": "bad",
            "version": "1",
            "target_column": "label",
            "file": ContentFile(b"a,b\n1,2\n", name="t.csv"),
        },
    )
    assert response.status_code == 200
    assert "target column &#x27;label&#x27; is not in the file" in response.content.decode()
    assert Dataset.objects.count() == 0


def post_version(user, ml_model, artifact, version="2"):
    return api_for(user).post(
        "/api/v1/model-versions/",
        {"ml_model": ml_model.pk, "version": version, "artifact": artifact},
        format="multipart",
    )


def test_duplicate_model_version_is_refused(people, version, ml_model):
    response = post_version(people["maintainer"], ml_model, skops_upload(fitted_model()), "1")
    assert response.status_code == 400
    assert "already has a version '1'" in response.content.decode()
    assert ModelVersion.objects.count() == 1


def _upload_lands_first(model, make_row):
    """Just before the app saves its row, another connection stores the same version and
    commits: two uploads at the same moment, both past the app's "already exists" check."""
    import threading

    from django.db import connections
    from django.db.models.signals import pre_save

    def other_connection():
        try:
            make_row()
        finally:
            connections.close_all()

    def competitor(sender, instance, **kwargs):
        pre_save.disconnect(competitor, sender=model)
        thread = threading.Thread(target=other_connection)
        thread.start()
        thread.join(timeout=30)

    pre_save.connect(competitor, sender=model, weak=False)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_a_version_registered_at_the_same_moment_gets_the_clear_message(people, ml_model):
    _upload_lands_first(
        ModelVersion,
        lambda: ModelVersion.register(
            ml_model=ml_model,
            version="1",
            artifact=skops_upload(fitted_model()),
            by=people["maintainer"],
            enqueue=False,
        ),
    )
    response = post_version(people["maintainer"], ml_model, skops_upload(fitted_model()), "1")
    assert response.status_code == 400, response.content
    assert "toy-risk already has a version '1'" in response.content.decode()
    assert ModelVersion.objects.count() == 1


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_a_dataset_uploaded_at_the_same_moment_gets_the_clear_message(people):
    _upload_lands_first(
        Dataset,
        lambda: Dataset.create_from_upload(
            csv_upload(toy_frame()), name="bad", target_column="y", by=people["contributor"]
        ),
    )
    response = post_dataset(people["contributor"], csv_upload(toy_frame()))
    assert response.status_code == 400, response.content
    assert "Dataset 'bad' already has a version '1'" in response.content.decode()
    assert Dataset.objects.count() == 1


def test_pickle_artifacts_are_refused_by_default(people, ml_model):
    blob = pickle.dumps(fitted_model())
    response = post_version(people["maintainer"], ml_model, ContentFile(blob, name="m.skops"))
    assert response.status_code == 400
    assert "Pickle/joblib artifacts are refused" in response.content.decode()
    assert ModelVersion.objects.count() == 0


def test_pickle_opt_in_is_for_maintainers_only(people, ml_model, settings):
    settings.ALLOW_PICKLE_ARTIFACTS = True
    blob = pickle.dumps(fitted_model())
    response = post_version(people["admin"], ml_model, ContentFile(blob, name="m.pkl"))
    assert response.status_code == 201, response.content
    from registry.models import MLModel

    other = MLModel.objects.create(name="other")
    v = ModelVersion.register(
        ml_model=other,
        version="1",
        artifact=ContentFile(blob, "m.pkl"),
        by=people["maintainer"],
        enqueue=False,
    )
    assert v.artifact_format == "pickle"


def test_artifact_of_unknown_format_is_refused(people, ml_model):
    for payload in (b"just text, not a model", b"PK\x03\x04broken zip"):
        response = post_version(people["maintainer"], ml_model, ContentFile(payload, "m.skops"))
        assert response.status_code == 400
        assert "not a skops file" in response.content.decode()
    assert ModelVersion.objects.count() == 0


def test_empty_artifact_is_refused(people, ml_model):
    response = post_version(people["maintainer"], ml_model, ContentFile(b"", "m.skops"))
    assert response.status_code == 400
    assert "empty" in response.content.decode()


def test_bad_artifact_in_the_web_form(people, ml_model):
    response = client_for(people["maintainer"]).post(
        f"/models/{ml_model.slug}/versions/new/",
        {"version": "1", "artifact": ContentFile(b"hello", name="m.skops")},
    )
    assert response.status_code == 200
    assert "not a skops file" in response.content.decode()
    assert ModelVersion.objects.count() == 0


@pytest.mark.parametrize(
    "slice_, message",
    [
        ([{"feature": "agee", "op": "<", "value": 3}], "agee"),
        ([{"feature": "color", "op": ">", "value": "red"}], "color"),
        ([{"feature": "x1", "op": "between", "value": [1]}], "x1"),
        ([{"feature": "x1", "op": "in", "value": []}], "x1"),
        ([{"feature": "x1", "op": "~", "value": 1}], "~"),
        ({"feature": "x1"}, "list"),
    ],
)
def test_bad_slices_are_refused_by_the_api(people, ml_model, dataset, slice_, message):
    response = api_for(people["contributor"]).post(
        "/api/v1/findings/",
        {"title": "t", "ml_model": ml_model.pk, "dataset": dataset.pk, "slice": slice_},
        format="json",
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Finding.objects.count() == 0


def test_bad_slice_in_the_web_form_names_the_column(people, ml_model, dataset):
    response = client_for(people["contributor"]).post(
        "/catalog/findings/new/",
        {
            "title": "t",
            "ml_model": ml_model.pk,
            "dataset": dataset.pk,
            "severity": "low",
            "risk_category": "other",
            "slice": '[{"feature": "income", "op": "<", "value": 3}]',
        },
    )
    assert response.status_code == 200
    assert "income" in response.content.decode()
    assert Finding.objects.count() == 0


def test_slice_that_is_not_json_is_refused(people, ml_model, dataset):
    response = client_for(people["contributor"]).post(
        "/catalog/findings/new/",
        {
            "title": "t",
            "ml_model": ml_model.pk,
            "dataset": dataset.pk,
            "severity": "low",
            "risk_category": "other",
            "slice": "[{nope",
        },
    )
    assert "not valid JSON" in response.content.decode()
    assert Finding.objects.count() == 0


def test_nul_bytes_and_wrong_types_are_400(people, ml_model):
    api = api_for(people["contributor"])
    assert (
        api.post(
            "/api/v1/findings/", {"title": "a\x00b", "ml_model": ml_model.pk}, format="json"
        ).status_code
        == 400
    )
    assert (
        api.post("/api/v1/findings/", {"title": "t", "ml_model": "x"}, format="json").status_code
        == 400
    )
    assert (
        api.post("/api/v1/findings/", {"title": "t", "ml_model": 10**30}, format="json").status_code
        == 400
    )
    assert (
        api.post(
            "/api/v1/findings/",
            {"title": "t", "ml_model": ml_model.pk, "evidence": [1, 2]},
            format="json",
        ).status_code
        == 400
    )
    assert Finding.objects.count() == 0
