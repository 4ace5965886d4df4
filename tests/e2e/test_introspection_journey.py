"""Deeper introspection, in a real browser: a contributor uploads a later window of data and
reads its drift and the finding's slice share there, pins the finding's probe on both
datasets; a maintainer registers an ensemble and reads which component errs in the slice;
a reviewer finds the fix that holds only on the data it was designed on ("narrow") on the
board's needs-review lane."""

import re
import warnings

import pytest
from playwright.sync_api import expect

from .browser import reload_until, sign_in
from .test_journeys import choose

pytestmark = pytest.mark.django_db(transaction=True)


def later_window(path):
    """The toy data a season later: x1 moved up (drift), and the label turned for high x1,
    where the model now errs."""
    from ..factories import toy_frame

    frame = toy_frame(n=600, seed=21)
    frame["x1"] = frame["x1"] + 0.6
    high = frame["x1"] > 0.5
    frame.loc[high, "y"] = 1 - frame.loc[high, "y"]
    frame.to_csv(path, index=False)
    return path


def voting_artifact(path):
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    from ..factories import toy_frame

    frame = toy_frame()
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["x1", "x2"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ]
    )
    vote = VotingClassifier(
        [("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=2))],
        voting="soft",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Pipeline([("prep", prep), ("clf", vote)]).fit(frame.drop(columns="y"), frame["y"])
    path.write_bytes(sio.dumps(model))
    return path


def test_drift_a_probe_on_two_datasets_an_ensembles_components_and_a_narrow_fix(
    watched, people, ml_model, version, dataset, finding, tmp_path
):
    from probes.models import Probe, ProbeRun
    from registry.models import Dataset, ModelVersion
    from remediation.models import RemediationAction

    page = watched.page
    sign_in(page, "bob")

    # 1. A later window of data, uploaded through the form.
    page.goto("/datasets/new/")
    page.fill("input[name=name]", "toy-later-window")
    page.set_input_files("input[name=file]", str(later_window(tmp_path / "later.csv")))
    page.fill("input[name=target_column]", "y")
    page.click("button:has-text('Upload')")
    expect(page.locator("h1")).to_contain_text("toy-later-window")
    later = Dataset.objects.get(name="toy-later-window")
    reload_until(
        page, lambda p: p.locator("#profile .profile-column").count() > 0, 60, "the profile"
    )

    # 2. Its drift against the dataset the finding was made on: x1 moved.
    page.click("a:has-text('Compare with another dataset')")
    choose(page, "select[name=against]", "toy-eval")
    page.click("button:has-text('Compare')")
    reload_until(page, lambda p: p.locator("table.drift").count() > 0, 60, "the drift")
    x1 = page.locator("table.drift tr", has=page.locator("code", has_text=re.compile("^x1$")))
    expect(x1.locator(".badge")).to_have_text("major")

    # 3. The finding's slice holds a bigger share of the later window.
    page.goto(finding.get_absolute_url())
    reload_until(
        page,
        lambda p: p.locator("#slice-shares td:has-text('computing')").count() == 0,
        60,
        "the slice shares",
    )
    shares = page.locator("#slice-shares tbody tr")
    expect(shares).to_have_count(2)
    expect(shares.filter(has_text="toy-later-window")).to_contain_text("%")

    # 4. A probe that guards the finding on both datasets.
    page.click("a:has-text('Add a probe')")
    page.wait_for_load_state("load")
    page.select_option("select[name=kind]", "slice_error_rate")
    choose(page, "select[name=dataset]", "toy-eval")
    page.get_by_label(re.compile("toy-later-window")).check()
    page.fill("input[name=threshold]", "0.2")
    page.click("button:has-text('Add probe')")
    expect(page.locator("#probes")).to_contain_text("also on toy-later-window")
    probe = Probe.objects.get(finding=finding)
    assert list(probe.also_on.all()) == [later]

    # 5. A maintainer registers an ensemble and reads its components on the probe's page.
    page.context.clear_cookies()
    sign_in(page, "mona")
    page.goto(f"/models/{ml_model.slug}/versions/new/")
    page.fill("input[name=version]", "2")
    page.set_input_files("input[name=artifact]", str(voting_artifact(tmp_path / "vote.skops")))
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("v2")
    v2 = ModelVersion.objects.get(ml_model=ml_model, version="2")
    page.goto(probe.get_absolute_url())
    reload_until(page, lambda p: p.locator("table.components").count() > 0, 90, "the run on v2")
    components = page.locator(f"#inside-v{v2.pk} table.components")
    expect(components.locator("tbody th")).to_contain_text(["lr", "tree"])
    expect(components.locator("tbody tr")).to_have_count(2)
    expect(components.locator("tbody tr").first.locator("td").first).to_contain_text("%")
    # Both datasets' runs on v2, side by side.
    everywhere = page.locator("#everywhere table")
    expect(everywhere.locator("thead")).to_contain_text("toy-later-window")
    assert ProbeRun.objects.filter(probe=probe, model_version=v2).count() == 2

    # 6. The fix shipped in v2 holds on toy-eval and fails on the later window: narrow.
    action = RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain as a soft-voting ensemble",
        owner=people["contributor"],
        reviewer=people["reviewer"],
    )
    RemediationAction.objects.filter(pk=action.pk).update(status="in_progress")
    action.refresh_from_db()
    action.transition_to("implemented", by=people["contributor"], fixed_in_version=v2)
    action.refresh_from_db()
    assert action.status == "implemented"
    page.context.clear_cookies()
    sign_in(page, "rita")
    page.click("nav >> text=Review board")
    lane = page.locator("section.col-needs_review")
    expect(lane).to_contain_text(action.title)
    expect(lane.locator(".badge.outcome-narrow")).to_have_text("Narrow")
    expect(lane).to_contain_text("toy-later-window")
