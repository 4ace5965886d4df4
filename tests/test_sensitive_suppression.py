"""Sensitive columns cannot be read by differencing (DESIGN.md): a result whose slice or
grouping involves a sensitive column and covers fewer than SENSITIVE_MIN_ROWS rows, none
included, is inconclusive with no value, support or interval and one fixed message, so a
1-row slice and an empty one look the same; above that, results are reported as usual."""

from functools import partial

import numpy as np
import pytest

from boundary.kinds import SENSITIVE_MESSAGE, ProbeSpec, evaluate_probes

from .factories import fitted_model, toy_frame


@pytest.fixture(scope="module")
def world():
    frame = toy_frame(n=400)
    frame["sex"] = np.where(np.arange(len(frame)) % 2 == 0, "female", "male")
    model = fitted_model(toy_frame(n=400))  # does not use `sex`: other columns are allowed
    return frame, model


def run(world, slice_, kind="slice_error_rate", params=None, sensitive=("sex",), min_rows=10):
    frame, model = world
    spec = ProbeSpec(
        key=1,
        kind=kind,
        slice=slice_,
        params=params or {},
        comparator="<=",
        threshold=0.5,
        min_support=1,
    )
    [result] = evaluate_probes(
        model,
        frame,
        "y",
        [spec],
        ignored_columns=["sex"],
        sensitive_columns=sensitive,
        sensitive_min_rows=min_rows,
    )
    return result


def pin_row(world, index, sex):
    """A slice that pins one row by all its other columns, plus a guess of its sex."""
    frame, _ = world
    row = frame.iloc[index]
    return [
        {"feature": "x1", "op": "==", "value": float(row.x1)},
        {"feature": "x2", "op": "==", "value": float(row.x2)},
        {"feature": "sex", "op": "==", "value": sex},
    ]


def shown(result):
    return (
        result.status,
        result.value,
        result.support,
        result.ci_low,
        result.ci_high,
        result.error,
    )


def test_two_guesses_of_one_rows_sex_look_the_same(world):
    """The attack of the issue: support 1 against "slice is empty" told the row's sex."""
    right, wrong = run(world, pin_row(world, 0, "female")), run(world, pin_row(world, 0, "male"))
    assert (
        shown(right) == shown(wrong) == ("inconclusive", None, None, None, None, SENSITIVE_MESSAGE)
    )


@pytest.mark.parametrize("rows", [0, 1, 5, 9], ids=lambda n: f"{n}-rows")
def test_sensitive_slices_below_the_minimum_are_suppressed(world, rows):
    frame, _ = world
    females = frame.index[frame.sex == "female"]
    cut = float(np.sort(frame.loc[females, "x1"].to_numpy())[rows - 1]) if rows else -99.0
    slice_ = [
        {"feature": "sex", "op": "==", "value": "female"},
        {"feature": "x1", "op": "<=", "value": cut},
    ]
    assert shown(run(world, slice_)) == ("inconclusive", None, None, None, None, SENSITIVE_MESSAGE)


def test_at_the_minimum_a_sensitive_slice_is_reported(world):
    frame, _ = world
    females = np.sort(frame.loc[frame.sex == "female", "x1"].to_numpy())
    slice_ = [
        {"feature": "sex", "op": "==", "value": "female"},
        {"feature": "x1", "op": "<=", "value": float(females[9])},
    ]
    result = run(world, slice_)
    assert result.support == 10 and result.value is not None


def test_a_tiny_slice_without_sensitive_columns_is_reported(world):
    frame, _ = world
    row = frame.iloc[3]
    result = run(world, [{"feature": "x1", "op": "==", "value": float(row.x1)}])
    assert result.support == 1 and result.status != "inconclusive"


def test_groups_of_a_sensitive_column_count_only_from_the_minimum_up(world):
    frame, _ = world
    tiny = frame.copy()
    tiny.loc[tiny.index[:3], "sex"] = "other"  # a group of three people
    result = evaluate_probes(
        world[1],
        tiny,
        "y",
        [
            ProbeSpec(
                key=1,
                kind="group_disparity",
                slice=[],
                params={"group_feature": "sex", "metric": "error_rate", "min_support": 1},
                comparator="<=",
                threshold=0.5,
                min_support=1,
            )
        ],
        ignored_columns=["sex"],
        sensitive_columns=["sex"],
        sensitive_min_rows=10,
    )[0]
    groups = [g["group"] for g in result.details["groups"]]
    assert "other" not in groups and sorted(groups) == ["female", "male"]
    unprotected = evaluate_probes(
        world[1],
        tiny,
        "y",
        [
            ProbeSpec(
                key=1,
                kind="group_disparity",
                slice=[],
                params={"group_feature": "sex", "metric": "error_rate", "min_support": 1},
                comparator="<=",
                threshold=0.5,
                min_support=1,
            )
        ],
        ignored_columns=["sex"],
    )[0]
    assert "other" in [g["group"] for g in unprotected.details["groups"]]


def test_a_rerun_suppresses_what_a_sensitive_slice_would_tell(people, ml_model, settings):
    """Through the whole rerun path: the dataset's sensitive marks reach the engine."""
    from probes.models import Probe, ProbeRun
    from registry.models import Dataset, ModelVersion

    from .factories import csv_upload, skops_upload

    frame = toy_frame(n=400)
    frame["sex"] = np.where(np.arange(len(frame)) % 2 == 0, "female", "male")
    dataset = Dataset.create_from_upload(
        csv_upload(frame),
        name="with-sex",
        target_column="y",
        sensitive_columns=["sex"],
        ignored_columns=["sex"],
        by=people["contributor"],
    )
    version = ModelVersion.register(
        ml_model=ml_model,
        version="1",
        artifact=skops_upload(fitted_model(toy_frame(n=400))),
        by=people["maintainer"],
        enqueue=False,
    )
    from catalog.models import Finding

    finding = Finding.objects.create(
        title="Pinned", ml_model=ml_model, dataset=dataset, model_version=version
    )
    probes = []
    for sex in ("female", "male"):
        probe = Probe(
            finding=finding,
            dataset=dataset,
            kind="slice_error_rate",
            slice=pin_row((frame, None), 0, sex),
            threshold=0.5,
            min_support=1,
        )
        probe.full_clean()
        probe.save()
        probes.append(probe)
    from django.db import transaction

    from probes.models import Rerun

    with transaction.atomic():
        rerun = Rerun.queue(version, trigger="manual", probes=probes, dispatch=False)
    from probes.tasks import run_rerun

    run_rerun(rerun.pk)
    runs = [ProbeRun.objects.get(probe=p, rerun=rerun) for p in probes]
    assert [(r.status, r.value, r.support, r.error) for r in runs] == [
        ("inconclusive", None, None, SENSITIVE_MESSAGE)
    ] * 2


# --- slice scans ------------------------------------------------------------------------------


def _scan(people, version, frame, *, sensitive, min_support):
    """A finished scan of `version` on `frame`, stored with the `sensitive` columns."""
    from introspection.models import SliceScan
    from introspection.tasks import run_scan
    from registry.models import Dataset

    from .factories import csv_upload

    dataset = Dataset.create_from_upload(
        csv_upload(frame),
        name="scanned-" + "-".join(sensitive),
        target_column="y",
        sensitive_columns=sensitive,
        by=people["contributor"],
    )
    scan = SliceScan.queue(version, dataset, min_support=min_support, dispatch=False)
    assert run_scan(scan.pk) == "done"
    scan.refresh_from_db()
    return scan


def _salary_scan(people, version, *, flipped, sensitive, min_support):
    """{description: support} of a scan on 1000 rows whose `flipped` best paid have their
    labels flipped (the model errs on them), with `salary` marked sensitive or not; `zone`,
    a sensitive column of rare tokens, is left out of every scan."""
    from .planted import planted_frame

    frame = planted_frame(n=1000, planted=False, noise=0.0)
    best_paid = frame["salary"].rank(ascending=False) <= flipped
    frame.loc[best_paid, "y"] = 1 - frame.loc[best_paid, "y"]
    marked = ["zone", "salary"] if sensitive else ["zone"]
    scan = _scan(people, version, frame, sensitive=marked, min_support=min_support)
    return {c["description"]: c["support"] for c in scan.candidates}


@pytest.fixture
def clean_version(people, ml_model):
    from registry.models import ModelVersion

    from .factories import skops_upload
    from .planted import clean_model

    return ModelVersion.register(
        ml_model=ml_model,
        version="1",
        artifact=skops_upload(clean_model()),
        by=people["maintainer"],
        enqueue=False,
    )


@pytest.mark.parametrize(
    "min_support, floor, found",
    [
        (5, 10, {"salary >= 89740.0": 7}),
        (None, 40, {"salary >= 87900.0": 30}),
    ],
    ids=["scan-asked-for-5-rows-floor-10", "scan-default-30-rows-floor-40"],
)
@pytest.mark.django_db
def test_a_scan_never_reports_a_slice_on_a_sensitive_column_below_the_minimum(
    people, clean_version, settings, min_support, floor, found
):
    settings.SENSITIVE_MIN_ROWS = floor
    scan = partial(_salary_scan, people, clean_version, flipped=7, min_support=min_support)
    assert scan(sensitive=False) == found  # where salary is not sensitive, it is reported
    assert scan(sensitive=True) == {}


@pytest.mark.django_db
def test_a_scan_reports_a_slice_on_a_sensitive_column_from_the_minimum_up(
    people, clean_version, settings
):
    settings.SENSITIVE_MIN_ROWS = 11
    scan = partial(_salary_scan, people, clean_version, flipped=12, min_support=5)
    assert scan(sensitive=True) == {"salary >= 89300.0": 11}


@pytest.mark.django_db
def test_a_scan_leaves_out_a_sensitive_category_rarer_than_the_minimum(
    people, clean_version, settings
):
    from .planted import planted_frame

    settings.SENSITIVE_MIN_ROWS = 10
    frame = planted_frame(n=1000, planted=False, noise=0.0)
    frame.loc[frame.index[:7], "color"] = "purple"  # seven people share this colour
    scan = _scan(people, clean_version, frame, sensitive=["zone", "color"], min_support=5)
    assert {"column": "color", "reason": "sensitive, with values shared by fewer than 10 rows"} in (
        scan.skipped_columns
    )
    assert "color" not in scan.lineage["scanned_columns"]
