"""Shared fixtures: named people per role, a small real dataset and real skops models.

Background tasks run inline (TASKS_SYNC) unless a test starts a real worker itself.
"""

import pytest
from django.contrib.auth.models import User

from core.roles import CONTRIBUTOR, MAINTAINER, REVIEWER, VIEWER, sync_role_groups

from .factories import csv_upload, fitted_model, make_user, skops_upload, toy_frame


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.TASKS_SYNC = True
    # Fast hashing: the suite creates many users; production keeps Django's default.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.WEBHOOK_URLS = []
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # The sign-in throttle counts failures in the cache: no test inherits another's.
    # (Only the in-process cache is emptied; clearing Redis would flush its whole db.)
    from django.core.cache import cache

    if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
        cache.clear()


@pytest.fixture
def people(db):
    """alice views, bob contributes, rita reviews, mona maintains, nobody has no role."""
    sync_role_groups()  # a transactional test flushes the groups the migration created
    return {
        "viewer": make_user("alice", VIEWER),
        "contributor": make_user("bob", CONTRIBUTOR),
        "reviewer": make_user("rita", REVIEWER),
        "maintainer": make_user("mona", MAINTAINER),
        "nobody": make_user("nobody"),
        "admin": User.objects.create_superuser("admin", "admin@example.com", "pw-admin"),
    }


@pytest.fixture
def ml_model(db):
    from registry.models import MLModel

    return MLModel.objects.create(name="toy-risk", task="binary")


@pytest.fixture
def dataset(people):
    from registry.models import Dataset

    return Dataset.create_from_upload(
        csv_upload(toy_frame()), name="toy-eval", target_column="y", by=people["contributor"]
    )


@pytest.fixture
def version(people, ml_model):
    from registry.models import ModelVersion

    return ModelVersion.register(
        ml_model=ml_model,
        version="1",
        artifact=skops_upload(fitted_model()),
        by=people["maintainer"],
    )


@pytest.fixture
def finding(people, ml_model, version, dataset):
    from catalog.models import Finding

    return Finding.objects.create(
        title="Positive x1 rows are misjudged",
        summary="The model errs when x1 is high.",
        ml_model=ml_model,
        model_version=version,
        dataset=dataset,
        slice=[{"feature": "x1", "op": ">", "value": 0.5}],
        severity="high",
        risk_category="reliability",
        owner=people["contributor"],
        reporter=people["contributor"],
    )


@pytest.fixture
def probe(finding, dataset, people):
    from probes.models import Probe

    probe = Probe(
        finding=finding,
        dataset=dataset,
        kind="slice_error_rate",
        slice=[{"feature": "x1", "op": ">", "value": 0.5}],
        threshold=0.2,
        created_by=people["contributor"],
    )
    probe.full_clean()
    probe.save()
    return probe
