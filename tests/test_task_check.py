"""The ML model's task is checked against the artifact's `classes_` at registration
(DESIGN.md, "Model artifacts are code"), read from the skops schema without loading it:
a 10-class model does not register under a binary ML model, nor a 2-class one under a
multiclass ML model; the refusal names the classes, and nothing is saved."""

import numpy as np
import pytest
import skops.io as sio
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn.datasets import load_digits, load_iris
from sklearn.ensemble import RandomForestClassifier, StackingClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from boundary.artifacts import artifact_classes
from registry.models import MLModel, ModelVersion

from .factories import api_for, fitted_model, skops_upload

IRIS_X, IRIS_Y = load_iris(return_X_y=True)


def upload(model):
    return SimpleUploadedFile("model.skops", sio.dumps(model))


@pytest.mark.parametrize(
    "model, classes",
    [
        (make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), [0, 1, 2]),
        (RandomForestClassifier(n_estimators=3, random_state=0), [0, 1, 2]),
        (
            VotingClassifier(
                [("lr", LogisticRegression(max_iter=500)), ("rf", RandomForestClassifier(3))],
                voting="soft",
            ),
            [0, 1, 2],
        ),
        (StackingClassifier([("lr", LogisticRegression(max_iter=500))]), [0, 1, 2]),
    ],
    ids=["pipeline", "forest", "voting", "stacking"],
)
def test_classes_are_read_from_the_schema(model, classes):
    assert artifact_classes(sio.dumps(model.fit(IRIS_X, IRIS_Y))) == classes


def test_string_and_boolean_classes():
    y = np.array(["no", "yes"])[(IRIS_Y > 0).astype(int)]
    assert artifact_classes(sio.dumps(LogisticRegression().fit(IRIS_X, y))) == ["no", "yes"]
    # Labels from a pandas column are an object array, stored item by item as JSON.
    objects = y.astype(object)
    assert artifact_classes(sio.dumps(LogisticRegression().fit(IRIS_X, objects))) == ["no", "yes"]
    assert artifact_classes(b"not a zip") is None


pytestmark = pytest.mark.django_db


def test_a_ten_class_model_is_refused_under_a_binary_ml_model(people, ml_model):
    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=30).fit(X[:300], y[:300])
    with pytest.raises(ValidationError) as refused:
        ModelVersion.register(
            ml_model=ml_model, version="2", artifact=upload(model), by=people["maintainer"]
        )
    message = refused.value.message_dict["artifact"][0]
    assert "10 classes (0, 1, 2, 3, 4, 5, ...)" in message and "binary ML model" in message
    assert not ModelVersion.objects.exists()


def test_a_two_class_model_is_refused_under_a_multiclass_ml_model(people):
    wine = MLModel.objects.create(name="wine", task="multiclass")
    answer = api_for(people["maintainer"]).post(
        "/api/v1/model-versions/",
        {"ml_model": wine.pk, "version": "1", "artifact": skops_upload(fitted_model())},
        format="multipart",
    )
    assert answer.status_code == 400
    assert "multiclass ML model" in answer.json()["artifact"][0]
    assert not ModelVersion.objects.exists()


def test_a_model_of_the_right_task_registers(people, ml_model):
    wine = MLModel.objects.create(name="wine", task="multiclass")
    iris = LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y)
    ModelVersion.register(ml_model=wine, version="1", artifact=upload(iris), enqueue=False)
    ModelVersion.register(
        ml_model=ml_model, version="2", artifact=skops_upload(fitted_model()), enqueue=False
    )
    assert ModelVersion.objects.count() == 2
