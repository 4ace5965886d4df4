"""Helpers to build real objects for tests: users per role, tables, fitted models."""

import numpy as np
import pandas as pd
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.test import Client
from rest_framework.test import APIClient


def make_user(username, *roles, **kwargs):
    kwargs.setdefault("email", f"{username}@example.com")
    user = User.objects.create_user(username=username, password="pw-" + username, **kwargs)
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    return user


def client_for(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def api_for(user):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def toy_frame(n=400, seed=0):
    """x1 drives the label; the model learns a clean boundary at x1 = 0."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    y = (x1 + 0.3 * rng.normal(size=n) > 0).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color, "y": y})


def csv_upload(frame, name="table.csv"):
    return ContentFile(frame.to_csv(index=False).encode(), name=name)


def fitted_model(frame=None, *, flip_above=None):
    """A real scikit-learn pipeline on the toy frame. With flip_above, labels of rows with
    x1 > flip_above are flipped before training: a model that is wrong there."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = toy_frame() if frame is None else frame
    y = frame["y"].copy()
    if flip_above is not None:
        y[frame["x1"] > flip_above] = 1 - y[frame["x1"] > flip_above]
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["x1", "x2"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    )
    return model.fit(frame.drop(columns="y"), y)


def skops_upload(model, name="model.skops"):
    import skops.io as sio

    return ContentFile(sio.dumps(model), name=name)
