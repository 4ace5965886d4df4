"""The breakdown of an ensemble's components on the probe page and the finding page
(DESIGN.md, "Probe kinds": every run on an ensemble stores ``details.components``).

Real ensembles are trained here, registered and run like any version; the numbers each
page shows are computed again by hand from the fitted components: a component's slice
error rate, its agreement with the ensemble and the share of the ensemble's slice errors
it makes too. The component that errs most is marked; a model that is not an ensemble
shows no breakdown; a run whose breakdown failed says why.
"""

import re
import warnings

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from probes.models import Probe, ProbeRun, Rerun
from probes.tasks import run_rerun
from registry.models import ModelVersion

from .factories import client_for, skops_upload, toy_frame

pytestmark = pytest.mark.django_db

HIGH_X1 = [{"feature": "x1", "op": ">", "value": 0.2}]


def pipeline(final):
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["x1", "x2"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ]
    )
    toy = toy_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Pipeline([("prep", prep), ("clf", final)]).fit(toy.drop(columns="y"), toy["y"])


def voting():
    """A linear model and a tree grown to fit every training row: they err differently."""
    return pipeline(
        VotingClassifier(
            [("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(random_state=0))],
            voting="soft",
        )
    )


def forest():
    return pipeline(RandomForestClassifier(5, max_depth=2, random_state=0))


def register(ml_model, people, name, model):
    return ModelVersion.register(
        ml_model=ml_model,
        version=name,
        artifact=skops_upload(model),
        by=people["maintainer"],
        enqueue=False,
    )


def add_probe(finding, dataset, people, kind, params=None, slice_=HIGH_X1):
    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind=kind,
        slice=list(slice_),
        params=params or {},
        threshold=0.5,
        min_support=1,
        created_by=people["contributor"],
    )
    probe.full_clean()
    probe.save()
    return probe


def run(version, probes):
    rerun = Rerun.queue(version, trigger="manual", probes=probes, dispatch=False)
    run_rerun(rerun.pk)
    return {r.probe_id: r for r in ProbeRun.objects.filter(rerun=rerun)}


def percent(value):
    return f"{100 * value:.1f}%"


def by_hand(model, names):
    """[(name, error rate, agreement, shared errors)] of each component on HIGH_X1's rows,
    as the table prints them."""
    frame = toy_frame()
    X, y = frame.drop(columns="y"), frame["y"].to_numpy()
    inside = frame["x1"].to_numpy() > 0.2
    final = model.named_steps["clf"]
    fed = model[:-1].transform(X)
    if isinstance(final, RandomForestClassifier):
        fed = final._validate_X_predict(fed)
    ensemble = model.predict(X)[inside]
    target = y[inside]
    ensemble_wrong = ensemble != target
    rows = []
    for name, estimator in zip(names, final.estimators_, strict=True):
        chosen = final.classes_[np.argmax(estimator.predict_proba(fed), axis=1)][inside]
        wrong = chosen != target
        shared = (
            percent((wrong & ensemble_wrong).sum() / ensemble_wrong.sum())
            if ensemble_wrong.any()
            else "— (the ensemble makes none)"
        )
        rows.append((name, percent(wrong.mean()), percent((chosen == ensemble).mean()), shared))
    return rows


ROW = re.compile(
    r'<tr( class="worst")?>\s*<th scope="row">([^<]*)(?: <span class="badge run-failed">'
    r"errs most</span>)?</th>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>"
    r'(?:<span class="muted">)?([^<]*)(?:</span>)?</td>'
)


def tables(html):
    """Every component table of a page: (caption, [(worst, name, error, agreement,
    shared)])."""
    found = []
    for table in re.findall(r'<table class="table compact components">(.*?)</table>', html, re.S):
        caption = re.search(r"<caption>(.*?)</caption>", table, re.S).group(1)
        rows = [(bool(m[0]), m[1], m[2], m[3], m[4]) for m in ROW.findall(table)]
        found.append((re.sub(r"<[^>]+>", "", caption), rows))
    return found


def test_the_probe_page_shows_each_component_of_a_voting_ensemble(
    people, ml_model, finding, dataset
):
    model = voting()
    version = register(ml_model, people, "vote-1", model)
    probe = add_probe(finding, dataset, people, "ensemble_disagreement")
    stored = run(version, [probe])[probe.pk]
    assert stored.status in ("passed", "failed"), stored.error

    page = client_for(people["viewer"]).get(probe.get_absolute_url())

    assert page.status_code == 200
    html = page.content.decode()
    assert '<section class="card" id="inside">' in html
    ((caption, rows),) = tables(html)
    expected = by_hand(model, ["lr", "tree"])
    assert [row[1:] for row in rows] == expected
    # The tree fits every training row: the linear model errs most, and only it is marked.
    assert expected[1][1] == "0.0%" and expected[0][1] != "0.0%"
    assert [row[0] for row in rows] == [True, False]
    assert caption == (
        f"The ensemble's components on the slice of probe #{probe.pk}, v{version.version} "
        f"(run #{stored.pk}): lr errs most ({expected[0][1]} of the slice's rows)"
    )
    assert '<th scope="col">Error rate</th>' in html


def test_the_probe_page_shows_the_latest_run_on_each_version_newest_first(
    people, ml_model, finding, dataset
):
    first, second = voting(), forest()
    v1 = register(ml_model, people, "vote-1", first)
    probe = add_probe(finding, dataset, people, "slice_error_rate")
    old = run(v1, [probe])[probe.pk]
    latest = run(v1, [probe])[probe.pk]  # a second run on v1: the newer one is shown
    v2 = register(ml_model, people, "forest-2", second)
    on_v2 = run(v2, [probe])[probe.pk]

    html = client_for(people["viewer"]).get(probe.get_absolute_url()).content.decode()

    found = tables(html)
    assert [caption.split(": ")[0] for caption, _ in found] == [
        f"The ensemble's components on the slice of probe #{probe.pk}, vforest-2 (run #{on_v2.pk})",
        f"The ensemble's components on the slice of probe #{probe.pk}, vvote-1 (run #{latest.pk})",
    ]
    assert f"(run #{old.pk})" not in html
    assert [row[1:] for row in found[0][1]] == by_hand(second, [f"#{i}" for i in range(5)])
    assert [row[1:] for row in found[1][1]] == by_hand(first, ["lr", "tree"])
    # The newest version's breakdown is open, the older ones folded.
    assert re.search(rf'<details class="run-insight" id="inside-v{v2.pk}" open>', html)
    assert re.search(rf'<details class="run-insight" id="inside-v{v1.pk}">', html)


def test_the_finding_page_shows_the_run_on_the_newest_version_folded(
    people, ml_model, finding, dataset
):
    first, second = voting(), forest()
    v1 = register(ml_model, people, "vote-1", first)
    errors = add_probe(finding, dataset, people, "slice_error_rate")
    split = add_probe(finding, dataset, people, "ensemble_disagreement")
    run(v1, [errors, split])
    v2 = register(ml_model, people, "forest-2", second)
    on_v2 = run(v2, [errors])  # the disagreement probe has not run on v2 yet

    html = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()

    assert "<h3>Inside the newest runs</h3>" in html
    found = tables(html)
    assert [caption.split(": ")[0] for caption, _ in found] == [
        f"The ensemble's components on the slice of probe #{errors.pk}, vforest-2 "
        f"(run #{on_v2[errors.pk].pk})",
        # Not run on v2: its latest run on the newest version it ran on.
        f"The ensemble's components on the slice of probe #{split.pk}, vvote-1 "
        f"(run #{ProbeRun.objects.get(probe=split).pk})",
    ]
    assert [row[1:] for row in found[0][1]] == by_hand(second, [f"#{i}" for i in range(5)])
    assert [row[1:] for row in found[1][1]] == by_hand(first, ["lr", "tree"])
    summary = re.search(
        rf'<details class="run-insight" id="inside-probe-{split.pk}">\s*<summary>(.*?)</summary>',
        html,
        re.S,
    ).group(1)
    assert summary == (
        f"Probe #{split.pk} Ensemble disagreement on vvote-1: component lr errs most"
    )


def test_a_model_that_is_not_an_ensemble_shows_no_breakdown(people, finding, probe, version):
    stored = run(version, [probe])[probe.pk]
    assert stored.status in ("passed", "failed") and "components" not in stored.details
    viewer = client_for(people["viewer"])

    probe_page = viewer.get(probe.get_absolute_url()).content.decode()
    finding_page = viewer.get(finding.get_absolute_url()).content.decode()

    for html in (probe_page, finding_page):
        assert tables(html) == [] and "components-breakdown" not in html
        assert "run-insight" not in html
    assert 'id="inside"' not in probe_page


def test_a_breakdown_that_failed_says_why(people, ml_model, finding, dataset):
    version = register(ml_model, people, "forest-1", forest())
    probe = add_probe(finding, dataset, people, "slice_error_rate")
    stored = run(version, [probe])[probe.pk]
    message = "ValueError: a component knows 3 classes by label where the ensemble has 2"
    details = {k: v for k, v in stored.details.items() if k != "components"}
    ProbeRun.objects.filter(pk=stored.pk).update(details={**details, "components_error": message})

    for url in (probe.get_absolute_url(), finding.get_absolute_url()):
        html = client_for(people["viewer"]).get(url).content.decode()
        assert (
            '<p class="error" role="note">The components could not be measured on this run: '
            f"{message}</p>"
        ) in html
        assert tables(html) == []
    summary = re.search(r"<summary>(Probe #.*?)</summary>", html, re.S).group(1)
    assert summary.endswith("on vforest-1: components not measured")


def test_a_slice_without_ensemble_errors_shows_no_share(people, ml_model, finding, dataset):
    """The tree fits every training row: on its own rows the forest of one full tree makes
    no error, so no component shares one."""
    model = pipeline(RandomForestClassifier(2, bootstrap=False, random_state=0))
    version = register(ml_model, people, "exact-1", model)
    probe = add_probe(finding, dataset, people, "slice_error_rate")
    stored = run(version, [probe])[probe.pk]
    assert stored.value == 0.0

    html = client_for(people["viewer"]).get(probe.get_absolute_url()).content.decode()

    ((caption, rows),) = tables(html)
    assert rows == [
        (False, "#0", "0.0%", "100.0%", "— (the ensemble makes none)"),
        (False, "#1", "0.0%", "100.0%", "— (the ensemble makes none)"),
    ]
    assert "errs most" not in caption  # every component errs as often: none stands out
