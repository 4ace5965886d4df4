"""A user's permissions and groups read in one query per request.

Django's ModelBackend reads a user's permissions in two queries (the user's own, then
their groups'), and the page header reads their groups (roles) in a third. Every page and
every API call asks, so `PermissionsInOneQuery` reads the three in one query the first time
a request asks and keeps them on the user object for the rest of that request, in the very
attributes ModelBackend keeps them in. Nothing outlives the request: a role given or taken
away applies on the next one.

It only answers permission questions: signing in (and the backend recorded in the session)
stays with ModelBackend, which follows it in AUTHENTICATION_BACKENDS and finds the
permissions already read.
"""

from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connections, router

# Set on the user object with the names of their groups (superusers excepted).
GROUP_NAMES = "_group_names"


@cache
def _sql():
    """(SQL, number of user-id parameters): rows (kind, a, b) where kind "u" is one of
    the user's own permissions (app label, codename), "g" one of their groups'
    permissions, "n" the name of one of their groups (b is NULL)."""
    user_model = get_user_model()
    qn = connections[router.db_for_read(Permission)].ops.quote_name
    own = user_model._meta.get_field("user_permissions")
    member = user_model._meta.get_field("groups")
    granted = Group._meta.get_field("permissions")
    perm, ct, group = (qn(m._meta.db_table) for m in (Permission, ContentType, Group))
    up, ug, gp = (qn(f.remote_field.through._meta.db_table) for f in (own, member, granted))
    up_user, up_perm = qn(own.m2m_column_name()), qn(own.m2m_reverse_name())
    ug_user, ug_group = qn(member.m2m_column_name()), qn(member.m2m_reverse_name())
    gp_group, gp_perm = qn(granted.m2m_column_name()), qn(granted.m2m_reverse_name())
    ct_id = qn(Permission._meta.get_field("content_type").column)
    sql = (
        f"SELECT 'u', ct.app_label, p.codename FROM {up} AS up "  # noqa: S608
        f"JOIN {perm} AS p ON p.id = up.{up_perm} JOIN {ct} AS ct ON ct.id = p.{ct_id} "
        f"WHERE up.{up_user} = %s "
        f"UNION ALL SELECT 'g', ct.app_label, p.codename FROM {ug} AS ug "
        f"JOIN {gp} AS gp ON gp.{gp_group} = ug.{ug_group} "
        f"JOIN {perm} AS p ON p.id = gp.{gp_perm} JOIN {ct} AS ct ON ct.id = p.{ct_id} "
        f"WHERE ug.{ug_user} = %s "
        f"UNION ALL SELECT 'n', g.name, NULL FROM {ug} AS ug "
        f"JOIN {group} AS g ON g.id = ug.{ug_group} WHERE ug.{ug_user} = %s"
    )
    return sql, 3


def read_permissions(user):
    """Read `user`'s own permissions, their groups' permissions and their group names
    in one query, into the attributes ModelBackend caches them in (and GROUP_NAMES)."""
    sql, n = _sql()
    own, granted, names = set(), set(), set()
    with connections[router.db_for_read(Permission)].cursor() as cursor:
        cursor.execute(sql, [user.pk] * n)
        for kind, a, b in cursor.fetchall():
            if kind == "u":
                own.add(f"{a}.{b}")
            elif kind == "g":
                granted.add(f"{a}.{b}")
            else:
                names.add(a)
    user._user_perm_cache = own
    user._group_perm_cache = granted
    setattr(user, GROUP_NAMES, frozenset(names))


def group_names(user):
    """The names of `user`'s groups if this request has read them already, else None."""
    return getattr(user, GROUP_NAMES, None)


class PermissionsInOneQuery(ModelBackend):
    """ModelBackend's permissions, read in one query per request (see the module)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        return None  # signing in is ModelBackend's, next in AUTHENTICATION_BACKENDS

    def get_all_permissions(self, user_obj, obj=None):
        if (
            obj is None
            and user_obj.is_active
            and not user_obj.is_anonymous
            and not user_obj.is_superuser
            and not hasattr(user_obj, "_perm_cache")
            and not hasattr(user_obj, "_user_perm_cache")
            and not hasattr(user_obj, "_group_perm_cache")
        ):
            read_permissions(user_obj)
        return super().get_all_permissions(user_obj, obj)
