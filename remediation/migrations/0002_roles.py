"""Create the four role groups with their permissions as they were defined then (a data
migration never imports live code: the table is copied here, with the app labels of
that time; later migrations move the models and their permissions along)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

_VIEW_ALL = [
    "catalog.view_finding",
    "catalog.view_tag",
    "probes.view_mlmodel",
    "probes.view_modelversion",
    "probes.view_dataset",
    "probes.view_probe",
    "probes.view_proberun",
    "probes.view_rerun",
    "remediation.view_remediationaction",
    "remediation.view_evaluation",
    "remediation.view_auditevent",
]

ROLE_PERMISSIONS = {
    "viewer": _VIEW_ALL,
    "contributor": _VIEW_ALL
    + [
        "catalog.add_finding",
        "catalog.change_finding",
        "catalog.add_tag",
        "probes.add_dataset",
        "probes.add_probe",
        "probes.change_probe",
        "probes.run_probe",
        "remediation.add_remediationaction",
        "remediation.change_remediationaction",
    ],
    "reviewer": _VIEW_ALL
    + [
        "catalog.review_finding",
        "remediation.review_action",
        "remediation.add_evaluation",
        "probes.run_probe",
    ],
    "maintainer": _VIEW_ALL
    + [
        "probes.add_mlmodel",
        "probes.change_mlmodel",
        "probes.add_modelversion",
        "probes.add_dataset",
        "probes.run_probe",
    ],
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; make them exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = []
        for name in names:
            app_label, codename = name.split(".")
            perms.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(perms)


class Migration(migrations.Migration):
    dependencies = [
        ("remediation", "0001_initial"),
        ("catalog", "0002_initial"),
        ("probes", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
