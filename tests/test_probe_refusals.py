"""A probe that can never run is refused when it is saved, with the message keyed by the
field it is about (DESIGN.md, "Probe kinds": a one-vs-rest metric without pos_label on a
multiclass model, a pos_label that is not a class, a dataset that is not the ML model's
schema), through the API and the web form alike; nothing is saved."""

import pandas as pd
import pytest
import skops.io as sio
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn.linear_model import LogisticRegression

from catalog.models import Finding
from probes.models import Probe
from registry.models import Dataset, MLModel, ModelVersion

from .factories import api_for, client_for, csv_upload

pytestmark = pytest.mark.django_db


def three_class_frame(n=300):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = np.where(x[:, 0] > 0.5, "high", np.where(x[:, 0] < -0.5, "low", "mid"))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y})


@pytest.fixture
def multiclass(people):
    frame = three_class_frame()
    ml = MLModel.objects.create(name="grades", task="multiclass")
    model = LogisticRegression(max_iter=500).fit(frame[["a", "b"]], frame["y"])
    version = ModelVersion.register(
        ml_model=ml,
        version="1",
        artifact=SimpleUploadedFile("m.skops", sio.dumps(model)),
        by=people["maintainer"],
        enqueue=False,
    )
    data = Dataset.create_from_upload(
        csv_upload(frame), name="grades-eval", target_column="y", by=people["contributor"]
    )
    finding = Finding.objects.create(
        title="Middle grades misjudged",
        ml_model=ml,
        model_version=version,
        dataset=data,
        severity="medium",
        risk_category="reliability",
        reporter=people["contributor"],
    )
    return finding, data


def body(finding, dataset, **extra):
    return {
        "finding": finding.pk,
        "dataset": dataset.pk,
        "kind": "slice_metric",
        "slice": [],
        "threshold": 0.5,
        **extra,
    }


@pytest.mark.parametrize(
    "params, field, words",
    [
        ({"metric": "recall"}, "params", "pos_label"),
        ({"metric": "precision"}, "params", "pos_label"),
        ({"metric": "recall", "pos_label": "top"}, "params", "top"),
    ],
    ids=["recall-without-pos-label", "precision-without-pos-label", "pos-label-not-a-class"],
)
def test_the_api_refuses_a_probe_that_could_never_run(people, multiclass, params, field, words):
    finding, dataset = multiclass
    answer = api_for(people["contributor"]).post(
        "/api/v1/probes/", body(finding, dataset, params=params), format="json"
    )
    assert answer.status_code == 400, answer.content
    errors = answer.json()
    assert set(errors) == {field}, errors
    assert words in errors[field][0]
    assert not Probe.objects.exists()


def test_a_class_that_exists_is_accepted(people, multiclass):
    finding, dataset = multiclass
    answer = api_for(people["contributor"]).post(
        "/api/v1/probes/",
        body(finding, dataset, params={"metric": "recall", "pos_label": "mid"}),
        format="json",
    )
    assert answer.status_code == 201, answer.content


def test_a_dataset_of_another_ml_model_is_refused_at_its_field(people, multiclass, dataset):
    finding, _own = multiclass  # `dataset` is the toy-risk fixture's: other columns
    answer = api_for(people["contributor"]).post(
        "/api/v1/probes/", body(finding, dataset, params={"metric": "accuracy"}), format="json"
    )
    assert answer.status_code == 400
    assert set(answer.json()) == {"dataset"}
    assert not Probe.objects.exists()


def test_messages_about_columns_and_thresholds_are_keyed_by_field(people, finding, dataset):
    api = api_for(people["contributor"])
    common = {"finding": finding.pk, "dataset": dataset.pk, "kind": "slice_error_rate"}
    bad_slice = api.post(
        "/api/v1/probes/",
        {**common, "slice": [{"feature": "nope", "op": ">", "value": 1}], "threshold": 0.2},
        format="json",
    )
    assert set(bad_slice.json()) == {"slice"} and "nope" in bad_slice.json()["slice"][0]
    bad_param = api.post(
        "/api/v1/probes/",
        {**common, "kind": "margin_density", "params": {"margin": 3}, "threshold": 0.2},
        format="json",
    )
    assert set(bad_param.json()) == {"params"}, bad_param.json()
    assert not Probe.objects.exists()


def test_the_web_form_shows_the_refusal_at_the_field(people, multiclass):
    finding, dataset = multiclass
    response = client_for(people["contributor"]).post(
        f"/findings/{finding.pk}/probes/new/",
        {
            "kind": "slice_metric",
            "dataset": dataset.pk,
            "slice": "",
            "params": '{"metric": "recall"}',
            "comparator": ">=",
            "threshold": "0.5",
            "tolerance": "0",
            "min_support": "30",
            "active": "on",
        },
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert "pos_label" in " ".join(form.errors.get("params", [])), form.errors
    assert not form.non_field_errors()
    assert not Probe.objects.exists()
