"""A table with a planted weak region, a model trained on clean labels, and the stored
objects around them, for the introspection tests (scans, maps, sweeps, privacy)."""

import numpy as np
import pandas as pd

from .factories import csv_upload, skops_upload

# Labels are corrupted only where x1 < 0.3 and x2 >= 0.6 (about 12% of the rows).
REGION = [{"feature": "x1", "op": "<", "value": 0.3}, {"feature": "x2", "op": ">=", "value": 0.6}]


def planted_frame(n=3000, seed=0, *, planted=True, noise=0.03, region_flip=0.6):
    """x1, x2 uniform on [0, 1]; y = x1 + x2 > 1 with `noise` of the labels flipped
    everywhere and `region_flip` of them flipped inside REGION. `zone` is a sensitive categorical
    column whose tokens are each shared by a handful of rows; `salary` a sensitive number
    with four decimals (both are model features, so they take part in computations)."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(0, 1, n).round(3)
    x2 = rng.uniform(0, 1, n).round(3)
    color = rng.choice(["red", "green", "blue"], n)
    zone = np.array([f"zz{k:05d}q" for k in rng.integers(0, 400, n)])
    salary = (rng.uniform(20000, 90000, n) + 0.1234).round(4)
    clean = (x1 + x2 > 1).astype(int)
    flip = rng.random(n) < noise
    if planted:
        region = (x1 < 0.3) & (x2 >= 0.6)
        flip |= region & (rng.random(n) < region_flip)
    y = np.where(flip, 1 - clean, clean)
    return pd.DataFrame(
        {"x1": x1, "x2": x2, "color": color, "zone": zone, "salary": salary, "y": y}
    )


def clean_model(frame=None, *, seed=1, shift=0.0):
    """A logistic regression fitted on clean labels of a fresh table (so it is right
    wherever the labels are). `shift` moves its boundary: x1 + x2 > 1 + shift."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = planted_frame(3000, seed=seed, planted=False, noise=0.0) if frame is None else frame
    y = (train["x1"] + train["x2"] > 1 + shift).astype(int)
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["x1", "x2", "salary"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["color", "zone"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(C=100.0, max_iter=1000)),
        ]
    )
    return model.fit(train.drop(columns="y"), y)


def corner_model(x1_below, *, seed=1):
    """A decision tree on x1 and x2 that learnt labels flipped where x1 < `x1_below` and
    x2 >= 0.6: a "fix" of REGION that is right there and, for x1_below > 0.3, wrong in the
    band next to it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    train = planted_frame(4000, seed=seed, planted=False, noise=0.0)
    clean = (train["x1"] + train["x2"] > 1).astype(int)
    corner = (train["x1"] < x1_below) & (train["x2"] >= 0.6)
    y = clean.where(~corner, 1 - clean)
    model = Pipeline(
        [
            ("prep", ColumnTransformer([("num", "passthrough", ["x1", "x2"])])),
            ("clf", DecisionTreeClassifier(random_state=0)),
        ]
    )
    return model.fit(train.drop(columns="y"), y)


def store_planted(people, ml_model, *, n=3000, versions=1):
    """The planted dataset (zone and salary sensitive) and `versions` registered versions
    (the second one's boundary shifted, so maps differ between versions)."""
    from registry.models import Dataset, ModelVersion

    dataset = Dataset.create_from_upload(
        csv_upload(planted_frame(n)),
        name="planted-eval",
        target_column="y",
        sensitive_columns=["zone", "salary"],
        by=people["contributor"],
    )
    stored = []
    for k in range(versions):
        stored.append(
            ModelVersion.register(
                ml_model=ml_model,
                version=str(k + 1),
                artifact=skops_upload(clean_model(shift=0.15 * k)),
                by=people["maintainer"],
            )
        )
    return dataset, stored


def sensitive_values(frame):
    """Every value of the sensitive columns as it would be printed."""
    return (
        set(frame["zone"])
        | {f"{v:.4f}" for v in frame["salary"]}
        | {repr(float(v)) for v in frame["salary"]}
    )
