"""Data profiles and drift (DESIGN.md "Data profiles and drift").

The numeric core against references computed here by hand (PSI by a plain loop, the tests
from scipy directly); then the stored profile, the API, the drift page and a finding's
slice shares.
"""

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp

from boundary.profiles import drift, fold_sensitive, level, profile
from boundary.slices import schema_of

from .factories import api_for, client_for, csv_upload, toy_frame

DECILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def plain_psi(ref, cur, bins_of):
    """PSI written out: shares per bin, each floored at 1e-4, sum of (c - r) * ln(c / r)."""
    bins = sorted({bins_of(v) for v in list(ref) + list(cur)})
    total = 0.0
    for b in bins:
        r = max(sum(1 for v in ref if bins_of(v) == b) / len(ref), 1e-4)
        c = max(sum(1 for v in cur if bins_of(v) == b) / len(cur), 1e-4)
        total += (c - r) * math.log(c / r)
    return total


def decile_bin(edges):
    def bin_of(v):
        b = 0
        while b < len(edges) and v > edges[b]:
            b += 1
        return b

    return bin_of


def column(result, name):
    return next(c for c in result["columns"] if c["name"] == name)


# --- the numeric core ---------------------------------------------------------------------


def test_it_profiles_a_numeric_column_with_nulls():
    frame = pd.DataFrame({"a": [1.0, 2.0, None, 3.0, 4.0]})
    a = column(profile(frame, {"a": "numeric"}), "a")
    assert (a["count"], a["nulls"], a["distinct"], a["distinct_capped"]) == (4, 1, 4, False)
    assert (a["min"], a["max"], a["mean"]) == (1.0, 4.0, 2.5)
    assert a["std"] == pytest.approx(math.sqrt(1.25))  # ddof 0
    assert a["quantiles"] == pytest.approx(
        {"p1": 1.03, "p5": 1.15, "p25": 1.75, "p50": 2.5, "p75": 3.25, "p95": 3.85, "p99": 3.97}
    )
    hist = a["histogram"]
    assert hist["edges"] == pytest.approx([1.0 + 0.15 * i for i in range(21)])
    expected = [0] * 20
    expected[0] = expected[6] = expected[13] = expected[19] = 1  # 1, 2, 3, 4
    assert hist["counts"] == expected


def test_it_profiles_a_constant_column():
    c = column(profile(pd.DataFrame({"k": [7] * 5}), {"k": "numeric"}), "k")
    assert (c["min"], c["max"], c["mean"], c["std"], c["distinct"]) == (7.0, 7.0, 7.0, 0.0, 1)
    assert set(c["quantiles"].values()) == {7.0}
    assert sum(c["histogram"]["counts"]) == 5


def test_it_profiles_an_empty_numeric_column():
    c = column(profile(pd.DataFrame({"e": [None, None]}, dtype=float), {"e": "numeric"}), "e")
    assert (c["count"], c["nulls"], c["min"], c["histogram"]) == (0, 2, None, None)


def test_it_lists_the_20_most_frequent_values_and_the_rest_as_other():
    # value v{i} appears i + 1 times: v24 most often; ties never happen.
    values = [f"v{i:02d}" for i in range(25) for _ in range(i + 1)]
    c = column(profile(pd.DataFrame({"c": values + [None]}), {"c": "categorical"}), "c")
    assert [t["value"] for t in c["top"]] == [f"v{i:02d}" for i in range(24, 4, -1)]
    assert [t["count"] for t in c["top"]] == list(range(25, 5, -1))
    assert c["other"] == {"count": 1 + 2 + 3 + 4 + 5, "values": 5}
    assert (c["count"], c["nulls"], c["distinct"]) == (325, 1, 25)


def test_ties_are_listed_by_value():
    c = column(profile(pd.DataFrame({"c": ["b", "a", "c", "a", "b"]}), {"c": "categorical"}), "c")
    assert c["top"] == [
        {"value": "a", "count": 2},
        {"value": "b", "count": 2},
        {"value": "c", "count": 1},
    ]


def test_distinct_is_capped_at_10000():
    c = column(profile(pd.DataFrame({"n": np.arange(10_050)}), {"n": "numeric"}), "n")
    assert (c["distinct"], c["distinct_capped"]) == (10_000, True)


def test_a_sensitive_column_never_lists_a_value_of_fewer_rows_than_the_minimum():
    frame = pd.DataFrame({"g": ["common"] * 12 + ["rare"] * 3 + ["alone"], "h": ["x"] * 16})
    kinds = {"g": "categorical", "h": "categorical"}
    folded = column(profile(frame, kinds, sensitive=["g"], min_rows=10), "g")
    assert folded["top"] == [{"value": "common", "count": 12}]
    assert folded["other"] == {"count": 4, "values": 2}
    plain = column(profile(frame, kinds, min_rows=10), "g")
    assert [t["value"] for t in plain["top"]] == ["common", "rare", "alone"]
    # Marked sensitive after profiling: folded the same way when shown.
    later = fold_sensitive(profile(frame, kinds), ["g"], 10)
    assert column(later, "g") == folded


def test_a_sensitive_numeric_column_shows_no_number_that_singles_out_a_few_rows():
    """Its minimum and maximum are one person's values, the histogram's outer edges are
    those extremes and a bin may hold one row, and p1/p99 of 200 values sit on 2 rows:
    withheld, profiled sensitive or marked so later. What describes many rows stays."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "age": rng.uniform(18, 90, 200).round(),
            "income": rng.gamma(3.0, 15000, 200),
            "born": pd.date_range("1950-01-01", periods=200, freq="70D"),
        }
    )
    kinds = {"age": "numeric", "income": "numeric", "born": "datetime"}
    stored = profile(frame, kinds, sensitive=["age", "born"], min_rows=10)
    age = column(stored, "age")
    assert (age["min"], age["max"], age["histogram"]) == (None, None, None)
    assert age["quantiles"]["p1"] is None and age["quantiles"]["p99"] is None
    assert age["quantiles"]["p5"] == pytest.approx(np.quantile(frame["age"], 0.05))
    assert age["mean"] == pytest.approx(frame["age"].mean())
    assert set(age["withheld"]) == {"min", "max", "histogram", "p1", "p99"}
    born = column(stored, "born")
    assert (born["min"], born["max"]) == (None, None)
    income = column(stored, "income")  # not sensitive: everything
    assert income["min"] == pytest.approx(frame["income"].min()) and income["histogram"]
    assert "withheld" not in income
    # Marked sensitive after profiling: withheld the same way when shown.
    assert fold_sensitive(profile(frame, kinds), ["age", "born"], 10) == stored
    # Fewer values than the minimum: no statistic at all.
    few = column(profile(frame.head(6), kinds, sensitive=["age"], min_rows=10), "age")
    assert [few[k] for k in ("min", "max", "mean", "std", "quantiles", "histogram")] == [None] * 6


def test_a_profile_is_plain_json_and_the_same_every_time():
    frame = toy_frame(200)
    frame.loc[3, "x1"] = None
    first = profile(frame, schema_of(frame))
    assert json.loads(json.dumps(first, allow_nan=False)) == first
    assert json.dumps(profile(frame.copy(), schema_of(frame))) == json.dumps(first)


def test_numeric_drift_matches_psi_by_a_plain_loop_and_scipy_ks():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=300)
    cur = rng.normal(0.4, 1.3, size=250)
    reference = pd.DataFrame({"x": np.append(ref, [np.nan] * 5)})
    current = pd.DataFrame({"x": np.append(cur, [np.nan] * 9)})
    x = column(drift(reference, current, {"x": "numeric"}), "x")
    expected = plain_psi(ref, cur, decile_bin(list(np.quantile(ref, DECILES))))
    ks = ks_2samp(ref, cur)
    assert x["psi"] == pytest.approx(expected, rel=1e-12)
    assert x["ks_statistic"] == pytest.approx(ks.statistic)
    assert x["p_value"] == pytest.approx(ks.pvalue)
    assert (x["test"], x["reference_nulls"], x["current_nulls"]) == ("ks", 5, 9)
    assert x["level"] == ("major" if expected >= 0.2 else "moderate" if expected >= 0.1 else "none")


def test_values_on_a_decile_fall_in_the_bin_it_closes():
    # ref 1..10: deciles 1.9, 2.8, ...; cur holds exactly the deciles and the extremes.
    ref = np.arange(1.0, 11.0)
    edges = list(np.quantile(ref, DECILES))
    cur = np.array([*edges, -100.0, 100.0])
    x = column(drift(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), {"x": "numeric"}), "x")
    assert x["psi"] == pytest.approx(plain_psi(ref, cur, decile_bin(edges)), rel=1e-12)


def test_categorical_drift_covers_unseen_categories():
    ref = ["a"] * 50 + ["b"] * 50
    cur = ["a"] * 30 + ["b"] * 30 + ["c"] * 40 + [None] * 3
    c = column(drift(pd.DataFrame({"c": ref}), pd.DataFrame({"c": cur}), {"c": "categorical"}), "c")
    present = [v for v in cur if v is not None]
    assert c["psi"] == pytest.approx(plain_psi(ref, present, lambda v: v), rel=1e-12)
    table = np.array([[50, 50, 0], [30, 30, 40]])
    assert c["p_value"] == pytest.approx(chi2_contingency(table).pvalue)
    assert (c["test"], c["ks_statistic"], c["level"], c["current_nulls"]) == (
        "chi2",
        None,
        "major",
        3,
    )


def test_constant_columns_do_not_drift():
    frame = pd.DataFrame({"k": [3.0] * 20, "c": ["same"] * 20})
    result = drift(frame, frame.head(7), {"k": "numeric", "c": "categorical"})
    k, c = column(result, "k"), column(result, "c")
    assert (k["psi"], k["level"], k["ks_statistic"], k["p_value"]) == (0.0, "none", 0.0, 1.0)
    assert (c["psi"], c["level"], c["p_value"]) == (0.0, "none", 1.0)


def test_a_column_without_values_has_no_drift_figures():
    ref = pd.DataFrame({"x": [1.0, 2.0]})
    cur = pd.DataFrame({"x": [None, None]}, dtype=float)
    x = column(drift(ref, cur, {"x": "numeric"}), "x")
    assert (x["psi"], x["level"], x["p_value"]) == (None, "none", None)
    assert x["note"] == "No values to compare."


@pytest.mark.parametrize(
    "psi, expected",
    [
        (None, "none"),
        (0.0, "none"),
        (0.0999, "none"),
        (0.1, "moderate"),
        (0.1999, "moderate"),
        (0.2, "major"),
        (3.0, "major"),
    ],
    ids=["no-psi", "zero", "below-0.1", "0.1", "below-0.2", "0.2", "large"],
)
def test_drift_levels(psi, expected):
    assert level(psi) == expected


def test_drift_lists_the_worst_column_first():
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200), "c": ["x"] * 200})
    cur = pd.DataFrame(
        {"a": rng.normal(size=200), "b": rng.normal(3, 1, size=200), "c": [None] * 200}
    )
    names = [c["name"] for c in drift(ref, cur, schema_of(ref))["columns"]]
    assert names == ["b", "a", "c"]


# --- stored profiles, pages and the API ----------------------------------------------------


def upload(frame, name, by, **kwargs):
    from registry.models import Dataset

    return Dataset.create_from_upload(
        csv_upload(frame), name=name, target_column="y", by=by, **kwargs
    )


def test_upload_profiles_the_dataset_and_the_page_never_reads_the_file(
    people, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        dataset = upload(toy_frame(), "profiled", people["contributor"])
    dataset.refresh_from_db()
    assert dataset.profiled_at is not None
    assert [c["name"] for c in dataset.profile["columns"]] == ["x1", "x2", "color", "y"]
    assert column(dataset.profile, "x1")["mean"] == pytest.approx(toy_frame()["x1"].mean())
    os.remove(dataset.file.path)  # whatever the page shows now comes from the database
    response = client_for(people["viewer"]).get(dataset.get_absolute_url())
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="profile"' in page and "Standard deviation" in page and "Upper quartile" in page
    assert page.count('<svg class="histogram"') == 3  # x1, x2 and the numeric target
    assert "<meter" in page and "Compute profile" not in page
    assert "css/profiles.css" in page


def test_the_page_offers_to_compute_a_missing_profile_to_contributors_only(
    people, dataset, django_capture_on_commit_callbacks
):
    assert dataset.profile is None  # the upload's task waits for the commit
    assert (
        "Compute profile"
        not in client_for(people["viewer"]).get(dataset.get_absolute_url()).content.decode()
    )
    url = f"/datasets/{dataset.pk}/profile/"
    assert client_for(people["viewer"]).post(url).status_code == 403
    bob = client_for(people["contributor"])
    assert "Compute profile" in bob.get(dataset.get_absolute_url()).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = bob.post(url)
    assert response.status_code == 302 and response["Location"].endswith("#profile")
    dataset.refresh_from_db()
    assert dataset.profile["rows"] == 400


def test_a_sensitive_columns_rare_values_stay_out_of_the_stored_profile(
    people, django_capture_on_commit_callbacks, settings
):
    frame = toy_frame(60)
    frame["town"] = ["Springfield"] * 55 + ["Smallville"] * 5
    with django_capture_on_commit_callbacks(execute=True):
        dataset = upload(frame, "with-town", people["contributor"], sensitive_columns=["town"])
    dataset.refresh_from_db()
    town = column(dataset.profile, "town")
    assert town["top"] == [{"value": "Springfield", "count": 55}]
    assert town["other"] == {"count": 5, "values": 1}
    assert "Smallville" not in json.dumps(dataset.profile)
    page = client_for(people["viewer"]).get(dataset.get_absolute_url()).content.decode()
    assert "Smallville" not in page and "Springfield" in page
    # x1 marked sensitive later: its extremes leave the page and the API alike.
    x1_max = f"{frame['x1'].max():.4g}"
    assert x1_max in page
    dataset.columns = [
        dict(c, sensitive=c.get("sensitive") or c["name"] == "x1") for c in dataset.columns
    ]
    dataset.save(update_fields=["columns"])
    page = client_for(people["viewer"]).get(dataset.get_absolute_url()).content.decode()
    assert x1_max not in page and "Withheld for privacy" in page
    shown = api_for(people["viewer"]).get(f"/api/v1/datasets/{dataset.pk}/profile/").json()
    x1 = column(shown, "x1")
    assert (x1["min"], x1["max"], x1["histogram"]) == (None, None, None)


def test_the_api_answers_the_profile_or_202_while_it_is_computed(
    people, dataset, django_capture_on_commit_callbacks
):
    api = api_for(people["viewer"])
    with django_capture_on_commit_callbacks(execute=True):
        queued = api.get(f"/api/v1/datasets/{dataset.pk}/profile/")
    assert queued.status_code == 202
    assert queued.json()["status"] == "queued" and queued.json()["columns"] == []
    done = api.get(f"/api/v1/datasets/{dataset.pk}/profile/")
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "done" and body["rows"] == 400 and body["dataset"] == dataset.pk
    assert column(body, "color")["top"][0]["count"] > 100


@pytest.fixture
def shifted(people, dataset):
    """The toy dataset's schema with x1 moved by 1.5."""
    frame = toy_frame(300, seed=5)
    frame["x1"] += 1.5
    return upload(frame, "toy-shifted", people["contributor"])


@pytest.fixture
def other_schema(people):
    return upload(toy_frame().assign(extra=1), "toy-extra", people["contributor"])


def test_the_api_computes_drift_against_a_reference(
    people, dataset, shifted, django_capture_on_commit_callbacks
):
    api = api_for(people["viewer"])
    url = f"/api/v1/datasets/{shifted.pk}/drift/?reference={dataset.pk}"
    with django_capture_on_commit_callbacks(execute=True):
        first = api.get(url)
    assert first.status_code == 202 and first.json()["status"] == "queued"
    response = api.get(url)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["dataset"], body["reference"]) == ("done", shifted.pk, dataset.pk)
    assert body["columns"][0]["name"] == "x1" and body["columns"][0]["level"] == "major"
    expected = drift(dataset.read(), shifted.read(), dataset.schema)["columns"]
    assert body["columns"] == expected
    # DESIGN.md's name for the parameter, and both names of the same dataset, read the
    # same result.
    for query in (f"against={dataset.pk}", f"against={dataset.pk}&reference={dataset.pk}"):
        assert api.get(f"/api/v1/datasets/{shifted.pk}/drift/?{query}").json() == body


@pytest.mark.parametrize(
    "query, key",
    [
        ("", "against"),
        ("?against=", "against"),
        ("?reference=abc", "reference"),
        ("?reference=999999", "reference"),
        ("?reference=99999999999999999999999", "reference"),
        ("?against=-1", "against"),
        ("?against=abc&reference=abc", "against"),
    ],
    ids=[
        "missing",
        "empty",
        "not-a-number",
        "unknown",
        "huge",
        "against-negative",
        "both-the-same-bad-value",
    ],
)
def test_the_api_refuses_a_bad_reference_by_name(people, dataset, query, key):
    response = api_for(people["viewer"]).get(f"/api/v1/datasets/{dataset.pk}/drift/{query}")
    assert response.status_code == 400
    assert list(response.json()) == [key]


def test_the_api_refuses_against_and_reference_naming_different_datasets(people, dataset, shifted):
    from registry.models import DatasetDrift

    response = api_for(people["viewer"]).get(
        f"/api/v1/datasets/{shifted.pk}/drift/?reference={shifted.pk}&against={dataset.pk}"
    )
    assert response.status_code == 400
    message = (
        f"against={dataset.pk} and reference={shifted.pk} name different datasets; "
        "reference is another name of against: give only against."
    )
    assert response.json() == {"against": [message], "reference": [message]}
    assert DatasetDrift.objects.count() == 0


def test_the_schema_documents_against_with_reference_as_its_other_name():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/datasets/{id}/drift/"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    assert parameters["against"]["required"] is True
    assert parameters["reference"].get("required", False) is False
    assert parameters["reference"]["deprecated"] is True
    assert "another name of `against`" in parameters["reference"]["description"]
    assert "naming different datasets" in operation["responses"]["400"]["description"]


def test_the_api_refuses_a_reference_of_another_schema(people, dataset, other_schema):
    from registry.models import DatasetDrift

    response = api_for(people["viewer"]).get(
        f"/api/v1/datasets/{dataset.pk}/drift/?reference={other_schema.pk}"
    )
    assert response.status_code == 400
    assert "also has extra" in response.json()["reference"][0]
    assert DatasetDrift.objects.count() == 0


def test_the_drift_page_shows_the_worst_column_first(
    people, dataset, shifted, other_schema, django_capture_on_commit_callbacks
):
    viewer = client_for(people["viewer"])
    form = viewer.get(f"/datasets/{shifted.pk}/drift/")
    assert form.status_code == 200
    assert [d.pk for d in form.context["references"]] == [dataset.pk]  # same schema only
    url = f"/datasets/{shifted.pk}/drift/?against={dataset.pk}"
    with django_capture_on_commit_callbacks(execute=True):
        waiting = viewer.get(url).content.decode()
    assert "job-queued" in waiting and 'http-equiv="refresh"' in waiting
    response = viewer.get(url)
    page = response.content.decode()
    assert 'http-equiv="refresh"' not in page
    rows = page.split('<table class="table compact drift">')[1].split("<tbody>")[1]
    assert rows.index("<code>x1</code>") < rows.index("<code>x2</code>")
    assert '<span class="badge drift-major">major</span>' in rows
    refused = viewer.get(f"/datasets/{shifted.pk}/drift/?reference={other_schema.pk}")
    assert "does not have the schema of" in refused.content.decode()


def test_a_finding_page_shows_its_slices_share_in_each_dataset_of_its_ml_model(
    people, finding, dataset, shifted, django_capture_on_commit_callbacks
):
    viewer = client_for(people["viewer"])
    with django_capture_on_commit_callbacks(execute=True):
        first = viewer.get(finding.get_absolute_url()).content.decode()
    assert "computing…" in first
    page = viewer.get(finding.get_absolute_url()).content.decode()
    panel = page.split('id="slice-shares"')[1].split("</section>")[0]
    for ds, frame in ((dataset, toy_frame()), (shifted, shifted.read())):
        rows = int((frame["x1"] > 0.5).sum())
        assert f"{rows:,} of {len(frame):,}" in panel
        assert f"{rows / len(frame) * 100:.3g}%" in panel
    assert "computing" not in panel


def test_a_slice_share_on_a_sensitive_column_with_few_rows_is_not_shown(
    people, ml_model, django_capture_on_commit_callbacks
):
    from catalog.models import Finding

    frame = toy_frame()
    frame["group"] = ["rare"] * 3 + ["common"] * 397
    dataset = upload(frame, "grouped", people["contributor"], sensitive_columns=["group"])
    finding = Finding.objects.create(
        title="Rare group",
        ml_model=ml_model,
        dataset=dataset,
        slice=[{"feature": "group", "op": "==", "value": "rare"}],
        severity="low",
        risk_category="fairness",
        reporter=people["contributor"],
    )
    viewer = client_for(people["viewer"])
    with django_capture_on_commit_callbacks(execute=True):
        viewer.get(finding.get_absolute_url())
    panel = viewer.get(finding.get_absolute_url()).content.decode().split('id="slice-shares"')[1]
    panel = panel.split("</section>")[0]
    assert "Not reported" in panel and "3 of" not in panel
