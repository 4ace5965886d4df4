"""API permissions: the role tables of core.roles, read through Django model permissions.

Reading needs the model's view permission (every role has it); writing needs add/change.
State-changing actions (transitions, runs) check their own rules in the model methods and
only require an authenticated member with read access here.
"""

from rest_framework.permissions import DjangoModelPermissions


class RolePermissions(DjangoModelPermissions):
    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request, view):
        extra = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if extra is not None:
            user = request.user
            return bool(user and user.is_authenticated and all(user.has_perm(p) for p in extra))
        return super().has_permission(request, view)
