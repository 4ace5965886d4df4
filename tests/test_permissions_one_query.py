"""A user's permissions and roles are read in one query per request, and are exactly what
Django's ModelBackend and core.roles give; a role given or taken away applies on the next
request; signing in stays with ModelBackend."""

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.auth_backends import PermissionsInOneQuery, group_names
from core.roles import CONTRIBUTOR, REVIEWER, VIEWER, roles_of

from .factories import client_for, make_user

BACKENDS = [
    "config.auth_backends.PermissionsInOneQuery",
    "django.contrib.auth.backends.ModelBackend",
]


@pytest.fixture(autouse=True)
def _backends(settings):
    """The backends config/settings.py names (said here too, so that the test stands alone)."""
    settings.AUTHENTICATION_BACKENDS = BACKENDS


def model_backend_view(user):
    fresh = User.objects.get(pk=user.pk)
    backend = ModelBackend()
    return (
        backend.get_user_permissions(fresh),
        backend.get_group_permissions(fresh),
        backend.get_all_permissions(fresh),
    )


def test_permissions_are_modelbackends_read_in_one_query(people):
    user = people["contributor"]
    user.groups.add(Group.objects.get(name=REVIEWER))
    user.user_permissions.add(Permission.objects.get(codename="delete_tag"))
    expected_own, expected_groups, expected_all = model_backend_view(user)
    fresh = User.objects.get(pk=user.pk)
    with CaptureQueriesContext(connection) as ctx:
        assert PermissionsInOneQuery().get_all_permissions(fresh) == expected_all
        assert fresh.has_perm("catalog.delete_tag")
        assert fresh.has_perm("catalog.review_finding")
        assert not fresh.has_perm("registry.add_mlmodel")
    assert len(ctx.captured_queries) == 1
    assert fresh._user_perm_cache == expected_own
    assert fresh._group_perm_cache == expected_groups
    assert group_names(fresh) == {CONTRIBUTOR, REVIEWER}
    assert roles_of(User.objects.get(pk=user.pk)) == {CONTRIBUTOR, REVIEWER}


def test_without_a_role_nothing_is_granted(people):
    nobody = User.objects.get(pk=people["nobody"].pk)
    assert PermissionsInOneQuery().get_all_permissions(nobody) == set()
    assert group_names(nobody) == frozenset()
    assert not nobody.has_perm("catalog.view_finding")


def test_inactive_users_and_superusers_are_left_to_modelbackend(people):
    inactive = make_user("gone", VIEWER, is_active=False)
    assert PermissionsInOneQuery().get_all_permissions(inactive) == set()
    admin = User.objects.get(pk=people["admin"].pk)
    assert PermissionsInOneQuery().get_all_permissions(admin) == {
        f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.all()
    }
    assert group_names(admin) is None


def test_a_role_given_or_taken_applies_on_the_next_request(people):
    user = make_user("newcomer")
    client = client_for(user)
    assert client.get("/catalog/").status_code == 403
    user.groups.add(Group.objects.get(name=VIEWER))
    page = client.get("/catalog/")
    assert page.status_code == 200
    assert "(viewer)" in page.content.decode()
    user.groups.clear()
    assert client.get("/catalog/").status_code == 403


def test_the_header_names_the_roles(people):
    user = people["contributor"]
    user.groups.add(Group.objects.get(name=REVIEWER))
    page = client_for(user).get("/catalog/").content.decode()
    assert "(contributor, reviewer)" in page or "(reviewer, contributor)" in page


def test_signing_in_stays_with_modelbackend(people, client):
    response = client.post("/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302
    assert client.session["_auth_user_backend"] == "django.contrib.auth.backends.ModelBackend"
    assert client.get("/catalog/").status_code == 200
