from core.roles import roles_of
from remediation.models import Notification


def roles(request):
    """The signed-in user's roles and unread notification count, for the header."""

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"user_roles": set(), "unread_notifications": 0}
    return {
        "user_roles": roles_of(user),
        "unread_notifications": Notification.objects.unread_for(user).count(),
    }
