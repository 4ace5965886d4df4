from core.roles import ROLES, roles_of
from remediation.models import Notification

from .auth_backends import group_names


def roles(request):
    """The signed-in user's roles and unread notification count, for the header."""

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"user_roles": set(), "unread_notifications": 0}
    # The groups came with the permissions when the view checked them (one query for
    # both); otherwise roles_of reads them.
    names = None if user.is_superuser else group_names(user)
    return {
        "user_roles": roles_of(user) if names is None else {n for n in names if n in ROLES},
        "unread_notifications": Notification.objects.unread_for(user).count(),
    }
