"""Roles are Django groups; what each may do is a set of model permissions.

The groups are created by a data migration (remediation/migrations) from ROLE_PERMISSIONS,
so the admin, the web views and the API all read the same table. A superuser may do
everything every role may.
"""

from django.contrib.auth import get_user_model
from django.db.models import Q

VIEWER, CONTRIBUTOR, REVIEWER, MAINTAINER = "viewer", "contributor", "reviewer", "maintainer"
ROLES = (VIEWER, CONTRIBUTOR, REVIEWER, MAINTAINER)

_VIEW_ALL = [
    "catalog.view_finding",
    "catalog.view_tag",
    "registry.view_mlmodel",
    "registry.view_modelversion",
    "registry.view_dataset",
    "registry.view_deployment",
    "probes.view_probe",
    "probes.view_proberun",
    "probes.view_rerun",
    "remediation.view_remediationaction",
    "remediation.view_evaluation",
    "core.view_auditevent",
]

ROLE_PERMISSIONS = {
    VIEWER: _VIEW_ALL,
    CONTRIBUTOR: _VIEW_ALL
    + [
        "catalog.add_finding",
        "catalog.change_finding",
        "catalog.add_tag",
        "registry.add_dataset",
        "probes.add_probe",
        "probes.change_probe",
        "probes.run_probe",
        "remediation.add_remediationaction",
        "remediation.change_remediationaction",
    ],
    REVIEWER: _VIEW_ALL
    + [
        "catalog.review_finding",
        "remediation.review_action",
        "remediation.add_evaluation",
        "probes.run_probe",
    ],
    MAINTAINER: _VIEW_ALL
    + [
        "registry.add_mlmodel",
        "registry.change_mlmodel",
        "registry.add_modelversion",
        "registry.add_deployment",
        "registry.add_dataset",
        "probes.run_probe",
    ],
}


def roles_of(user):
    """The role names a user holds (all of them for a superuser)."""
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return set(ROLES)
    cached = getattr(user, "_boundary_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._boundary_roles = cached
    return cached


def has_role(user, role):
    return role in roles_of(user)


def members():
    """Active users who hold a role (superusers hold every role): the people an owner or
    a reviewer is chosen from."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=ROLES))
        .distinct()
        .order_by("username")
    )


def membership_refusal(user):
    """Why `user` cannot be given work (an action's owner or reviewer), or None: an
    inactive user, or one without any role."""
    if not user.is_active:
        return f"{user.get_username()} is inactive."
    if not user.is_superuser and not user.groups.filter(name__in=ROLES).exists():
        return f"{user.get_username()} has no role ({', '.join(ROLES)})."
    return None


def can_read(user):
    return user.is_authenticated and (user.is_superuser or user.has_perm("catalog.view_finding"))


def sync_role_groups():
    """Create or update the role groups from ROLE_PERMISSIONS (idempotent)."""
    from django.contrib.auth.models import Group, Permission

    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = [
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codename in (name.split(".") for name in names)
        ]
        group.permissions.set(perms)
