"""Logging a finding in one form: the slice as text, choices that fit the chosen ML model
(refused at the field otherwise), and its probes saved with it in one submit, or nothing."""

import json

import pandas as pd
import pytest
from django.urls import reverse

from catalog.models import Finding
from probes.models import Probe, Rerun
from registry.models import Dataset, ModelVersion

from .factories import api_for, client_for, csv_upload, fitted_model, skops_upload, toy_frame

SLICE_TEXT = 'x1 > 0.5 AND color in ("red", "blue")'
SLICE = [
    {"feature": "x1", "op": ">", "value": 0.5},
    {"feature": "color", "op": "in", "value": ["red", "blue"]},
]


@pytest.fixture
def training(people):
    return Dataset.create_from_upload(
        csv_upload(toy_frame(seed=3)), name="toy-train", target_column="y", by=people["contributor"]
    )


@pytest.fixture
def trained_version(people, ml_model, training):
    """A version of toy-risk trained on toy-train: toy-risk reads x1, x2, color; y."""
    return ModelVersion.register(
        ml_model=ml_model,
        version="2",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
        training_dataset=training,
    )


@pytest.fixture
def wine(people):
    frame = pd.DataFrame({"alcohol": [12.1, 13.4, 11.9] * 10, "target": [0, 1, 2] * 10})
    return Dataset.create_from_upload(
        csv_upload(frame), name="wine-holdout", target_column="target", by=people["contributor"]
    )


WINE_REFUSED = (
    "wine-holdout v1 is not a dataset of toy-risk: it lacks the columns toy-risk reads "
    "(x1, x2, color, y)."
)


def finding_data(ml_model, dataset, **extra):
    data = {
        "title": "High x1 rows are misjudged",
        "ml_model": ml_model.pk,
        "dataset": dataset.pk,
        "slice": SLICE_TEXT,
        "severity": "high",
        "risk_category": "reliability",
    }
    data.update(extra)
    return data


def probe_rows(*rows):
    data = {
        "probes-TOTAL_FORMS": str(max(len(rows), 2)),
        "probes-INITIAL_FORMS": "0",
        "probes-MIN_NUM_FORMS": "0",
        "probes-MAX_NUM_FORMS": "10",
    }
    for i, row in enumerate(rows):
        data.update({f"probes-{i}-{key}": value for key, value in row.items()})
    return data


# ------------------------------------------------------------------- the slice as text


def test_it_logs_a_finding_with_a_text_slice(people, ml_model, dataset):
    response = client_for(people["contributor"]).post(
        reverse("catalog:finding_create"), finding_data(ml_model, dataset)
    )
    assert response.status_code == 302
    finding = Finding.objects.get()
    assert finding.slice == SLICE
    assert finding.slice_text == SLICE_TEXT
    assert finding.reporter == people["contributor"]


def test_it_still_reads_a_json_slice(people, ml_model, dataset):
    response = client_for(people["contributor"]).post(
        reverse("catalog:finding_create"),
        finding_data(ml_model, dataset, slice=json.dumps(SLICE)),
    )
    assert response.status_code == 302
    assert Finding.objects.get().slice == SLICE


def test_it_refuses_unreadable_slice_text_at_the_field(people, ml_model, dataset):
    response = client_for(people["contributor"]).post(
        reverse("catalog:finding_create"), finding_data(ml_model, dataset, slice="x1 >")
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "slice": [
            "The slice cannot be read: expected a value for column 'x1' at character 5, "
            "found the end of the text."
        ]
    }
    assert not Finding.objects.exists()


def test_it_names_a_column_the_dataset_lacks_at_the_slice(people, ml_model, dataset):
    response = client_for(people["contributor"]).post(
        reverse("catalog:finding_create"),
        finding_data(ml_model, dataset, slice="income <= 20000"),
    )
    assert response.context["form"].errors == {"slice": ["column 'income' is not in the dataset"]}
    assert not Finding.objects.exists()


def test_the_edit_form_shows_the_slice_as_text(people, finding):
    page = client_for(people["contributor"]).get(reverse("catalog:finding_edit", args=[finding.pk]))
    assert page.context["form"]["slice"].value() == "x1 > 0.5"
    assert "x1 &gt; 0.5</textarea>" in page.content.decode()


def test_the_form_labels_the_ml_model_so(people):
    page = client_for(people["contributor"]).get(reverse("catalog:finding_create"))
    assert page.context["form"]["ml_model"].label == "ML model"
    assert ">ML model *</label>" in page.content.decode()


def test_the_slice_text_endpoint_reads_and_writes_slice_text(people, dataset):
    client = client_for(people["viewer"])
    url = reverse("catalog:slice_text")
    read = client.get(url, {"text": SLICE_TEXT + " AND income > 3", "dataset": dataset.pk})
    assert read.json() == {
        "slice": [*SLICE, {"feature": "income", "op": ">", "value": 3}],
        "text": SLICE_TEXT + " AND income > 3",
        "missing": ["income"],
    }
    written = client.get(url, {"slice": json.dumps(SLICE)})
    assert written.json() == {"slice": SLICE, "text": SLICE_TEXT, "missing": []}
    bad = client.get(url, {"text": "x1 >"})
    assert bad.json() == {
        "error": "expected a value for column 'x1' at character 5, found the end of the text",
        "position": 5,
    }
    assert client.get(url, {"slice": "[1]"}).json()["error"] == "A slice is a list of predicates."


# ------------------------------------------------------- choices that fit the ML model


def test_it_refuses_a_dataset_of_another_model_at_the_field(
    people, ml_model, trained_version, wine
):
    response = client_for(people["contributor"]).post(
        reverse("catalog:finding_create"), finding_data(ml_model, wine, slice="")
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {"dataset": [WINE_REFUSED]}
    assert not Finding.objects.exists()


def test_a_dataset_with_the_models_columns_fits(people, ml_model, trained_version, dataset):
    response = client_for(people["contributor"]).post(
        reverse("catalog:finding_create"),
        finding_data(ml_model, dataset, model_version=trained_version.pk),
    )
    assert response.status_code == 302


def test_the_options_say_which_ml_model_they_belong_to(
    people, ml_model, trained_version, wine, dataset
):
    page = client_for(people["contributor"]).get(reverse("catalog:finding_create"))
    html = page.content.decode()
    assert f'<option value="{wine.pk}" data-ml-models="">' in html
    assert f'<option value="{dataset.pk}" data-ml-models="{ml_model.pk}">' in html
    assert f'<option value="{trained_version.pk}" data-ml-model="{ml_model.pk}">' in html


def test_the_probe_form_offers_and_accepts_only_the_models_datasets(
    people, finding, trained_version, wine, dataset
):
    client = client_for(people["contributor"])
    url = reverse("probes:probe_create", args=[finding.pk])
    offered = [v for v, _ in client.get(url).context["form"]["dataset"].field.widget.choices if v]
    assert wine.pk not in [getattr(v, "value", v) for v in offered]
    assert dataset.pk in [getattr(v, "value", v) for v in offered]
    response = client.post(
        url,
        {
            "kind": "slice_error_rate",
            "dataset": wine.pk,
            "comparator": "<=",
            "threshold": "0.2",
            "tolerance": "0",
            "min_support": "30",
        },
    )
    assert response.context["form"].errors == {"dataset": [WINE_REFUSED]}
    assert not Probe.objects.exists()


def test_an_empty_threshold_is_refused_once_at_the_field(people, finding, dataset):
    response = client_for(people["contributor"]).post(
        reverse("probes:probe_create", args=[finding.pk]),
        {
            "kind": "slice_error_rate",
            "dataset": dataset.pk,
            "slice": "x1 > 0.5",
            "comparator": "<=",
            "threshold": "",
            "tolerance": "0",
            "min_support": "30",
        },
    )
    assert response.context["form"].errors == {
        "threshold": ["A threshold is required with the comparator ≤ threshold."]
    }
    assert response.content.decode().count("A threshold is required") == 1


def test_an_engine_message_shows_at_its_field(people, finding, dataset):
    response = client_for(people["contributor"]).post(
        reverse("probes:probe_create", args=[finding.pk]),
        {
            "kind": "margin_density",
            "dataset": dataset.pk,
            "slice": "x1 > 0.5",
            "params": '{"margin": 3}',
            "comparator": "<=",
            "threshold": "0.2",
            "tolerance": "0",
            "min_support": "30",
        },
    )
    assert response.context["form"].errors == {"params": ["margin must be in (0, 1], not 3"]}


def test_the_probe_form_and_the_revision_form_read_slice_text(people, finding, dataset, probe):
    client = client_for(people["contributor"])
    added = client.post(
        reverse("probes:probe_create", args=[finding.pk]),
        {
            "kind": "slice_error_rate",
            "dataset": dataset.pk,
            "slice": "x2 between -1 and 1",
            "comparator": "<=",
            "threshold": "0.2",
            "tolerance": "0",
            "min_support": "30",
        },
    )
    assert added.status_code == 302
    assert Probe.objects.latest("pk").slice == [
        {"feature": "x2", "op": "between", "value": [-1, 1]}
    ]
    revised = client.post(
        reverse("probes:probe_revise", args=[probe.pk]),
        {
            "kind": "slice_error_rate",
            "dataset": dataset.pk,
            "slice": 'color == "red"',
            "comparator": "<=",
            "threshold": "0.2",
            "tolerance": "0",
            "min_support": "30",
            "note": "Only the red rows.",
        },
    )
    assert revised.status_code == 302
    assert Probe.objects.get(supersedes=probe).slice == [
        {"feature": "color", "op": "==", "value": "red"}
    ]


def test_the_scan_form_offers_the_models_datasets_evaluation_first(
    people, ml_model, trained_version, training, wine, dataset
):
    client = client_for(people["maintainer"])
    page = client.get(reverse("introspection:scan_new", args=[trained_version.pk]))
    form = page.context["form"]
    assert form["dataset"].value() == dataset.pk
    assert [
        (getattr(v, "value", v), label) for v, label in form.fields["dataset"].widget.choices
    ] == [
        ("", "---------"),
        (dataset.pk, "toy-eval v1"),
        (training.pk, "toy-train v1 (training data)"),
    ]
    refused = client.post(
        reverse("introspection:scan_new", args=[trained_version.pk]),
        {"dataset": wine.pk, "top_k": 5, "max_predicates": 2},
    )
    assert refused.context["form"].errors == {"dataset": [WINE_REFUSED]}


# ------------------------------------------------------- probes logged with the finding


def test_it_logs_a_finding_and_two_probes_in_one_submit(people, ml_model, version, dataset):
    data = finding_data(ml_model, dataset, model_version=version.pk)
    data.update(
        probe_rows(
            {"kind": "slice_error_rate", "comparator": "<=", "threshold": "0.25"},
            {
                "kind": "margin_density",
                "dataset": dataset.pk,
                "slice": "x2 < 0",
                "params": '{"margin": 0.2}',
                "comparator": "<=",
                "threshold": "0.3",
            },
        )
    )
    response = client_for(people["contributor"]).post(reverse("catalog:finding_create"), data)
    assert response.status_code == 302
    finding = Finding.objects.get()
    first, second = finding.probes.order_by("pk")
    assert (first.kind, first.dataset, first.slice, first.threshold) == (
        "slice_error_rate",
        dataset,
        SLICE,
        0.25,
    )
    assert (second.kind, second.slice, second.params, second.threshold) == (
        "margin_density",
        [{"feature": "x2", "op": "<", "value": 0}],
        {"margin": 0.2},
        0.3,
    )
    assert {first.created_by, second.created_by} == {people["contributor"]}
    # Each starts its history as a probe added on its own does: a first run queued.
    assert Rerun.objects.filter(model_version=version, trigger="manual").count() == 2


def test_an_invalid_probe_row_saves_neither_finding_nor_probes(people, ml_model, dataset):
    data = finding_data(ml_model, dataset)
    data.update(
        probe_rows(
            {"kind": "slice_error_rate", "comparator": "<=", "threshold": "0.25"},
            {"kind": "slice_error_rate", "comparator": "<=", "threshold": ""},
        )
    )
    response = client_for(people["contributor"]).post(reverse("catalog:finding_create"), data)
    assert response.status_code == 200
    formset = response.context["parts"][0].formset
    assert formset.errors == [
        {},
        {"threshold": ["A threshold is required with the comparator ≤ threshold."]},
    ]
    assert response.context["form"].errors == {}
    assert not Finding.objects.exists()
    assert not Probe.objects.exists()


def test_a_probe_row_on_another_models_dataset_is_refused_at_its_field(
    people, ml_model, trained_version, dataset, wine
):
    data = finding_data(ml_model, dataset)
    data.update(
        probe_rows(
            {"kind": "slice_error_rate", "dataset": wine.pk, "threshold": "0.2", "comparator": "<="}
        )
    )
    response = client_for(people["contributor"]).post(reverse("catalog:finding_create"), data)
    assert response.context["parts"][0].formset.errors[0] == {"dataset": [WINE_REFUSED]}
    assert not Finding.objects.exists()


def test_rows_without_a_kind_are_left_out(people, ml_model, dataset):
    data = finding_data(ml_model, dataset)
    data.update(probe_rows({"kind": "", "threshold": "0.2"}, {"kind": ""}))
    response = client_for(people["contributor"]).post(reverse("catalog:finding_create"), data)
    assert response.status_code == 302
    assert not Finding.objects.get().probes.exists()


def test_a_viewer_is_offered_no_probe_rows_and_may_not_log(people):
    page = client_for(people["contributor"]).get(reverse("catalog:finding_create"))
    assert 'name="probes-TOTAL_FORMS"' in page.content.decode()
    assert client_for(people["viewer"]).get(reverse("catalog:finding_create")).status_code == 403


# ---------------------------------------------------------------------------- the API


def test_the_api_takes_and_gives_slice_text(people, ml_model, dataset):
    api = api_for(people["contributor"])
    created = api.post(
        "/api/v1/findings/",
        {"title": "t", "ml_model": ml_model.pk, "dataset": dataset.pk, "slice_text": SLICE_TEXT},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["slice"] == SLICE
    assert created.json()["slice_text"] == SLICE_TEXT
    finding = created.json()["id"]
    probe = api.post(
        "/api/v1/probes/",
        {
            "finding": finding,
            "dataset": dataset.pk,
            "kind": "slice_error_rate",
            "slice_text": "x2 is not null",
            "threshold": 0.2,
        },
        format="json",
    )
    assert probe.status_code == 201, probe.json()
    assert probe.json()["slice"] == [{"feature": "x2", "op": "not_null"}]
    assert probe.json()["slice_text"] == "x2 is not null"


def test_the_api_refuses_unreadable_or_doubled_slices(people, ml_model, dataset):
    api = api_for(people["contributor"])
    base = {"title": "t", "ml_model": ml_model.pk, "dataset": dataset.pk}
    bad = api.post("/api/v1/findings/", {**base, "slice_text": "x1 >"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["slice_text"] == [
        "expected a value for column 'x1' at character 5, found the end of the text"
    ]
    both = api.post(
        "/api/v1/findings/", {**base, "slice_text": "x1 > 1", "slice": []}, format="json"
    )
    assert both.status_code == 400
    assert "slice_text" in both.json()
    assert not Finding.objects.exists()


def test_a_put_may_send_back_slice_and_slice_text_when_they_agree(people, finding):
    api = api_for(people["contributor"])
    url = f"/api/v1/findings/{finding.pk}/"
    body = api.get(url).json()
    assert body["slice_text"] == "x1 > 0.5"
    assert api.put(url, body, format="json").status_code == 200
    body["slice_text"] = "x1 > 0.7"
    refused = api.put(url, body, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"slice_text": ["Give the slice as slice or as slice_text, not both."]}


def test_the_api_refuses_a_dataset_of_another_model(
    people, ml_model, trained_version, wine, finding
):
    api = api_for(people["contributor"])
    refused = api.post(
        "/api/v1/probes/",
        {"finding": finding.pk, "dataset": wine.pk, "kind": "slice_error_rate", "threshold": 0.2},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["dataset"] == [WINE_REFUSED]
