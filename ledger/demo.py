"""Demo data: real models trained on data that ships with scikit-learn (no network).

Three ML models, each with versions registered as skops artifacts, their evaluation data
stored as datasets, findings whose evidence is measured by the probe engine on real slices,
probes, and remediation actions in several states. Loading twice adds nothing: every object
is looked up by its natural key first.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from boundary import engine
from boundary.artifacts import dump_skops
from catalog.models import Finding, Tag
from core.csv import frame_csv
from core.roles import ROLES, sync_role_groups
from probes.choices import Trigger
from probes.models import Probe, Rerun
from registry.models import Dataset, MLModel, ModelVersion
from remediation.models import RemediationAction

LAST_DEMO_FINDING = "Flavanoid-rich wines are confused between cultivars"
DEMO_PASSWORDS = {
    "admin": "admin-demo-pass",
    "viewer": "viewer-demo-pass",
    "contributor": "contributor-demo-pass",
    "reviewer": "reviewer-demo-pass",
    "maintainer": "maintainer-demo-pass",
}


@dataclass
class DemoUser:
    username: str
    password: str
    role: str


def ensure_users():
    """One user per role plus an administrator; existing users keep their passwords."""
    sync_role_groups()
    User = get_user_model()
    created = []
    for username, password in DEMO_PASSWORDS.items():
        user, new = User.objects.get_or_create(
            username=username,
            defaults={"email": f"{username}@example.com", "first_name": username.title()},
        )
        if new:
            user.set_password(password)
            if username == "admin":
                user.is_staff = user.is_superuser = True
            user.save()
        if username in ROLES:
            user.groups.add(Group.objects.get(name=username))
        created.append(
            DemoUser(username, password, "superuser" if username == "admin" else username)
        )
    return created


def credit_table(n, seed, *, young_share=0.15):
    """A synthetic loan book. Low income usually means more defaults, except for applicants
    under 22 earning at most 20,000 (students with guarantors), who rarely default: an
    interaction a linear model cannot represent."""
    rng = np.random.default_rng(seed)
    young = rng.random(n) < young_share
    age = np.where(young, rng.uniform(18, 22, n), rng.uniform(22, 70, n)).round(1)
    income = np.where(young, rng.gamma(2.0, 9000, n), rng.gamma(3.0, 15000, n)).round(-2)
    debt_ratio = rng.beta(2, 5, n).round(3)
    employment = rng.choice(
        ["salaried", "self_employed", "student", "retired"], n, p=[0.6, 0.2, 0.12, 0.08]
    )
    region = rng.choice(["north", "south", "east", "west"], n)
    sex = rng.choice(["female", "male"], n)
    score = 4.0 * debt_ratio - income / 20000 + (employment == "self_employed") * 0.4
    guaranteed = (age < 22) & (income <= 20000)
    score = np.where(guaranteed, -1.5 + 2 * debt_ratio, score)
    p_default = 1 / (1 + np.exp(-2.5 * score))
    default = (rng.random(n) < p_default).astype(int)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "debt_ratio": debt_ratio,
            "employment": employment,
            "region": region,
            "sex": sex,
            "default": default,
        }
    )


def _credit_pipeline(estimator):
    numeric = ["age", "income", "debt_ratio"]
    categorical = ["employment", "region", "sex"]
    return Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), numeric),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
                    ]
                ),
            ),
            ("clf", estimator),
        ]
    )


def _skops_file(model, name):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.skops"
        dump_skops(model, path)
        return ContentFile(path.read_bytes(), name=f"{name}.skops")


def _csv_file(frame, name):
    return ContentFile(frame_csv(frame).encode(), name=f"{name}.csv")


def _dataset(name, frame, target, by, description, sensitive=()):
    existing = Dataset.objects.filter(name=name, version="1").first()
    if existing:
        return existing
    return Dataset.create_from_upload(
        _csv_file(frame, name),
        name=name,
        version="1",
        target_column=target,
        by=by,
        description=description,
        sensitive_columns=sensitive,
    )


def _version(ml_model, version, model, by, notes, training=None):
    existing = ModelVersion.objects.filter(ml_model=ml_model, version=version).first()
    if existing:
        return existing
    return ModelVersion.register(
        ml_model=ml_model,
        version=version,
        artifact=_skops_file(model, f"{ml_model.slug}-{version}"),
        by=by,
        notes=notes,
        training_dataset=training,
    )


def measure(model, frame, target, kind, slice_, params=None):
    """The engine's value for one probe definition (used as a finding's evidence)."""
    spec = engine.ProbeSpec(
        key=0,
        kind=kind,
        slice=slice_,
        params=params or {},
        comparator=engine.DEFAULT_COMPARATOR[kind],
        threshold=0.0,
        min_support=1,
    )
    result = engine.evaluate_probes(model, frame, target, [spec])[0]
    return result


def _finding(title, **fields):
    existing = Finding.objects.filter(title=title).first()
    if existing:
        return existing, False
    tags = fields.pop("tags", [])
    finding = Finding(title=title, **fields)
    finding.full_clean()
    finding.save()
    finding.tags.set(Tag.from_names(tags))
    return finding, True


def _probe(
    finding,
    dataset,
    kind,
    slice_,
    threshold,
    params=None,
    comparator=None,
    by=None,
    also_on=(),
):
    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind=kind,
        slice=slice_,
        params=params or {},
        threshold=threshold,
        comparator=comparator or engine.DEFAULT_COMPARATOR[kind],
        created_by=by,
    )
    probe.full_clean()
    probe.check_also_on(list(also_on))
    probe.save()
    probe.also_on.set(also_on)
    return probe


def _evidence(result, **extra):
    return {
        "value": round(result.value, 4) if result.value is not None else None,
        "ci_95": [round(result.ci_low, 4), round(result.ci_high, 4)]
        if result.ci_low is not None
        else None,
        "support": result.support,
        **extra,
    }


def load(stdout=None):
    """Build the demo catalog (idempotent). Returns the demo users."""
    users = ensure_users()
    User = get_user_model()
    people = {u.username: User.objects.get(username=u.username) for u in users}
    maint, contrib, review = people["maintainer"], people["contributor"], people["reviewer"]
    say = stdout.write if stdout else (lambda *_: None)
    if not Finding.objects.filter(title=LAST_DEMO_FINDING).exists():
        # Reruns happen inline while loading, so the catalog opens with run history.
        with override_settings(TASKS_SYNC=True):
            say("Training demo models on data shipped with scikit-learn…")
            _load_credit(maint, contrib, review, say)
            _load_tumour(maint, contrib, review, say)
            _load_wine(maint, contrib, review, say)
    _mark_key_lessons(review, say)
    return users


# What a newcomer reads first on "Start here": a fix that held until a retrain broke it,
# and the critical safety finding. Titles, as the loaders above write them.
KEY_LESSONS = (
    "Young low-income applicants are refused though they repay",
    "Borderline tumour sizes sit in the uncertain band",
)


def _mark_key_lessons(reviewer, say):
    """Mark the demo's key lessons, as a reviewer does from a finding's page; a catalog
    that already has key lessons (the demo's, or ones chosen since) is left as it is."""

    if Finding.objects.filter(is_key_lesson=True).exists():
        return
    for finding in Finding.objects.filter(title__in=KEY_LESSONS):
        finding.set_key_lesson(True, by=reviewer)
        say(f"  key lesson: {finding.title}")


def _rerun(version, probes, by):
    """Run these probes on an earlier version too, so each finding shows its history."""

    with transaction.atomic():
        Rerun.queue(version, trigger=Trigger.MANUAL, by=by, probes=probes)


def _load_credit(maint, contrib, review, say):
    credit, _ = MLModel.objects.get_or_create(
        slug="credit-risk",
        defaults={
            "name": "credit-risk",
            "task": "binary",
            "description": "Probability that a consumer loan defaults within 12 months.",
        },
    )
    train, evaluation = credit_table(6000, seed=1), credit_table(4000, seed=2)
    X, y = train.drop(columns="default"), train["default"]
    eval_ds = _dataset(
        "credit-eval",
        evaluation,
        "default",
        contrib,
        "Held-out loan book, 4,000 applications.",
        sensitive=("sex",),
    )
    train_ds = _dataset(
        "credit-train",
        train,
        "default",
        contrib,
        "Training loan book, 6,000 applications.",
        sensitive=("sex",),
    )
    # A later window of applications: twice as many young applicants (the drift page shows
    # age and income moving; the finding page, its slice's share growing). The key probe
    # also runs there, so a fix is held only when it holds on the new applicants too.
    later_ds = _dataset(
        "credit-2026-q3",
        credit_table(3000, seed=3, young_share=0.3),
        "default",
        contrib,
        "Applications of the third quarter of 2026, 3,000 applications.",
        sensitive=("sex",),
    )
    v1_model = _credit_pipeline(LogisticRegression(max_iter=500)).fit(X, y)
    v1 = _version(credit, "1", v1_model, maint, "Logistic regression baseline.", train_ds)
    young = [
        {"feature": "age", "op": "<", "value": 22},
        {"feature": "income", "op": "<=", "value": 20000},
    ]
    r = measure(v1_model, evaluation, "default", "slice_error_rate", young)
    overall = measure(v1_model, evaluation, "default", "slice_error_rate", [])
    with transaction.atomic():
        f1, new = _finding(
            "Young low-income applicants are refused though they repay",
            summary=f"Applicants under 22 earning at most 20,000 are misjudged {r.value:.0%} "
            f"of the time against {overall.value:.0%} overall: most of them repay, "
            "but a linear score reads low income as risk.",
            description="Reading credit-risk v1's errors on the held-out loan book by age "
            "and income showed the region age < 22 AND income <= 20000. Many of "
            "these applicants are "
            "students with guarantors; they default rarely. The logistic "
            "regression cannot represent the interaction between age and income, "
            "so it flags them as likely defaults and they are refused.",
            ml_model=credit,
            model_version=v1,
            dataset=eval_ds,
            slice=young,
            evidence=_evidence(r, overall_error_rate=round(overall.value, 4)),
            severity="high",
            risk_category="fairness",
            harms="Creditworthy young applicants are refused; the lender loses good loans.",
            affected_stakeholders="Applicants under 22, the lending book.",
            policy_reference="Credit policy CR-12 §4 (fair access)",
            lesson="Linear credit scores miss interactions between age and income at the low "
            "end. Before each release:\n\n"
            "- scan low-income slices for **age × income** effects;\n"
            "- keep a `slice_error_rate` probe on `age < 22 AND income <= 20000`.",
            remaining_gaps="Few applicants under 20 in the training data.",
            tags=["interaction", "young-applicants", "false-positives"],
            owner=contrib,
            reporter=contrib,
        )
        if new:
            _probe(f1, eval_ds, "slice_error_rate", young, 0.2, by=contrib, also_on=[later_ds])
            _probe(f1, eval_ds, "slice_error_gap", young, 0.05, by=contrib)
        g = measure(
            v1_model,
            evaluation,
            "default",
            "group_disparity",
            [],
            {"group_feature": "sex", "metric": "selection_rate"},
        )
        f3, new3 = _finding(
            "Selection rate differs slightly between sexes",
            summary=f"The share of applicants flagged as likely defaults differs by "
            f"{g.value:.1%} between women and men.",
            ml_model=credit,
            model_version=v1,
            dataset=eval_ds,
            slice=[],
            evidence=_evidence(g),
            severity="medium",
            risk_category="fairness",
            harms="Unequal access to credit.",
            affected_stakeholders="Applicants by sex.",
            policy_reference="Fair lending review FL-3",
            lesson="Monitor group disparity on every version, even for a feature the model "
            "is not meant to use.",
            tags=["fairness", "group-disparity"],
            owner=contrib,
            reporter=contrib,
        )
        if new3:
            _probe(
                f3,
                eval_ds,
                "group_disparity",
                [],
                0.05,
                by=contrib,
                params={"group_feature": "sex", "metric": "selection_rate"},
            )
            f3.transition_to(
                "accepted_risk",
                by=review,
                note="Disparity is within the 5-point tolerance of FL-3; reviewed quarterly.",
                expires_on=timezone.localdate() + timezone.timedelta(days=90),
            )
    if new:
        _rerun(v1, list(Probe.objects.filter(finding__in=[f1, f3])), contrib)
    say("  credit-risk v1 and its findings stored, probes run on v1")

    # The fix: a model that can represent the interaction, registered as v2.
    action = RemediationAction.objects.filter(finding=f1).first()
    if action is None:
        action = RemediationAction.objects.create(
            finding=f1,
            kind="retrain",
            title="Retrain with gradient boosting to capture the age × income interaction",
            owner=contrib,
            reviewer=review,
            created_by=contrib,
            due_date=timezone.localdate() + timezone.timedelta(days=14),
        )
        f1.transition_to("remediating", by=contrib, note="Retrain planned.")
        action.transition_to("approved", by=review, note="Go ahead.")
        action.transition_to("in_progress", by=contrib)
    v2_model = _credit_pipeline(HistGradientBoostingClassifier(random_state=0)).fit(X, y)
    v2 = _version(
        credit, "2", v2_model, maint, "Gradient boosting; captures interactions.", train_ds
    )
    action.refresh_from_db()
    if action.status == "in_progress":
        with transaction.atomic():
            action.transition_to(
                "implemented", by=contrib, fixed_in_version=v2, note="Shipped in v2."
            )
    action.refresh_from_db()
    f1.refresh_from_db()
    if action.status == "verified" and f1.status == "remediating":
        f1.transition_to("resolved", by=review, note="Verified on v2 by the follow-up evaluation.")
    say("  credit-risk v2 registered; the retrain was verified and the finding resolved")

    flips = [{"feature": "income", "op": "between", "value": [20000, 40000]}]
    flip_params = {"features": ["income", "debt_ratio"], "scale": 0.1}
    p = measure(v2_model, evaluation, "default", "perturbation_flip_rate", flips, flip_params)
    with transaction.atomic():
        f2, new = _finding(
            "Decisions flip under small income noise in the 20–40k band",
            summary=f"{p.value:.1%} of decisions in the band flip when income and debt ratio "
            "move by a tenth of their spread: the boosted model's boundary is jagged "
            "there.",
            ml_model=credit,
            model_version=v2,
            dataset=eval_ds,
            slice=flips,
            evidence=_evidence(p),
            severity="medium",
            risk_category="reliability",
            lesson="Income is self-reported and noisy; decisions near the boundary need a "
            "review band rather than a hard cut, and tree ensembles make it jagged.",
            tags=["robustness", "self-reported-data"],
            owner=contrib,
            reporter=contrib,
        )
        if new:
            probe = _probe(
                f2, eval_ds, "perturbation_flip_rate", flips, 0.05, by=contrib, params=flip_params
            )
            RemediationAction.objects.create(
                finding=f2,
                kind="fallback_rule",
                title="Route the uncertain band to manual review",
                description="Decisions with margin < 0.1 go to an underwriter.",
                owner=contrib,
                reviewer=review,
                created_by=contrib,
                due_date=timezone.localdate() - timezone.timedelta(days=5),
            )
    if new:
        _rerun(v2, [probe], contrib)
    say("  credit-risk flip finding stored")


def regressing_credit_artifact():
    """A credit-risk model retrained on a book that lost its young applicants: registering
    it as a new version makes the resolved finding regress (the demo's regression story)."""
    train = credit_table(6000, seed=1)
    train = train[train["age"] >= 25]
    model = _credit_pipeline(HistGradientBoostingClassifier(random_state=0)).fit(
        train.drop(columns="default"), train["default"]
    )
    return _skops_file(model, "credit-risk-v3-regresses")


def _load_tumour(maint, contrib, review, say):
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    train, test = train_test_split(frame, test_size=0.4, random_state=0, stratify=frame["target"])
    ml_model, _ = MLModel.objects.get_or_create(
        slug="tumour-screening",
        defaults={
            "name": "tumour-screening",
            "task": "binary",
            "description": "Flags breast-tissue samples as benign (1) or malignant (0) "
            "from cell-nucleus measurements.",
        },
    )
    ds = _dataset(
        "breast-cancer-holdout",
        test,
        "target",
        contrib,
        "40% stratified hold-out of the Wisconsin diagnostic data (sklearn).",
    )
    X, y = train.drop(columns="target"), train["target"]
    v1_model = Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(C=0.01, max_iter=1000))]
    ).fit(X, y)
    v1 = _version(ml_model, "1", v1_model, maint, "Strongly regularised logistic regression.")
    v2_model = Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(C=1.0, max_iter=1000))]
    ).fit(X, y)
    band = [{"feature": "mean_radius", "op": "between", "value": [12.5, 16.0]}]
    r = measure(v1_model, test, "target", "margin_density", band, {"margin": 0.4})
    with transaction.atomic():
        f, new = _finding(
            "Borderline tumour sizes sit in the uncertain band",
            summary=f"{r.value:.0%} of samples with a mean radius of 12.5–16 get a margin "
            "under 0.4: the model hedges exactly where radiologists need it most.",
            ml_model=ml_model,
            model_version=v1,
            dataset=ds,
            slice=band,
            evidence=_evidence(r, margin=0.4),
            severity="critical",
            risk_category="safety",
            harms="Malignant samples sent home with a benign call; needless biopsies.",
            affected_stakeholders="Patients, screening radiologists.",
            lesson="Heavy regularisation flattens the boundary; check margin density in the "
            "clinically ambiguous band, not only accuracy.",
            tags=["calibration", "uncertainty", "clinical"],
            owner=contrib,
            reporter=contrib,
        )
        if new:
            _probe(f, ds, "margin_density", band, 0.15, params={"margin": 0.4}, by=contrib)
            _probe(f, ds, "slice_ece", band, 0.08, by=contrib)
            RemediationAction.objects.create(
                finding=f,
                kind="recalibration",
                title="Recalibrate with isotonic regression",
                owner=contrib,
                reviewer=review,
                created_by=contrib,
                description="Fit CalibratedClassifierCV on a calibration split.",
            )
    if new:
        _rerun(v1, list(f.probes.all()), contrib)
    _version(ml_model, "2", v2_model, maint, "Less regularisation (C=1).")
    say("  tumour-screening v1, v2 and findings stored")


def _load_wine(maint, contrib, review, say):
    data = load_wine(as_frame=True)
    frame = data.frame.copy()
    frame["target"] = frame["target"].map({0: "cultivar_a", 1: "cultivar_b", 2: "cultivar_c"})
    train, test = train_test_split(frame, test_size=0.45, random_state=3, stratify=frame["target"])
    ml_model, _ = MLModel.objects.get_or_create(
        slug="wine-cultivar",
        defaults={
            "name": "wine-cultivar",
            "task": "multiclass",
            "description": "Identifies the cultivar of an Italian wine from its "
            "chemistry (sklearn wine data).",
        },
    )
    ds = _dataset("wine-holdout", test, "target", contrib, "45% hold-out of the wine data.")
    X, y = train.drop(columns="target"), train["target"]
    v1_model = RandomForestClassifier(n_estimators=5, max_depth=1, random_state=0).fit(X, y)
    v1 = _version(ml_model, "1", v1_model, maint, "Five decision stumps.")
    rich = [{"feature": "flavanoids", "op": ">=", "value": 1.5}]
    r = measure(v1_model, test, "target", "slice_error_rate", rich)
    recall = measure(
        v1_model,
        test,
        "target",
        "slice_metric",
        [],
        {"metric": "recall", "pos_label": "cultivar_b"},
    )
    with transaction.atomic():
        f, new = _finding(
            LAST_DEMO_FINDING,
            summary=f"Wines with flavanoids ≥ 1.5 are misclassified {r.value:.0%} of the "
            "time: stumps split on one chemical and cannot tell cultivars A and B "
            "apart there.",
            ml_model=ml_model,
            model_version=v1,
            dataset=ds,
            slice=rich,
            evidence=_evidence(r, recall_cultivar_b=round(recall.value, 4)),
            severity="low",
            risk_category="reliability",
            lesson="Depth-one trees see one feature at a time; flavanoid-rich wines need "
            "two signals (flavanoids and proline) to separate.",
            tags=["multiclass", "underfitting"],
            owner=contrib,
            reporter=contrib,
        )
        if new:
            _probe(f, ds, "slice_error_rate", rich, 0.15, by=contrib)
            _probe(
                f,
                ds,
                "slice_metric",
                [],
                0.85,
                by=contrib,
                params={"metric": "recall", "pos_label": "cultivar_b"},
            )
            RemediationAction.objects.create(
                finding=f,
                kind="retrain",
                title="Grow deeper trees (no depth limit)",
                owner=contrib,
                reviewer=review,
                created_by=contrib,
            )
    if new:
        _rerun(v1, list(f.probes.all()), contrib)
    v2_model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    _version(ml_model, "2", v2_model, maint, "100 full-depth trees.")
    say("  wine-cultivar v1, v2 and findings stored")
