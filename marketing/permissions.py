"""Who may do what in the admin: the groups a migration creates, and the permission every action names.

Django's admin runs an action for anyone who sees the list unless the action names permissions.
Every Kairos action names one of: `view`, `change`, `add`, `delete`, `launch` (sending to
customers: launching campaigns and broadcasts, enrolling by hand) or `activate` (changing what
records that are read-only in forms mean: activating or rolling back a model, starting a run).
"""

from django.contrib.auth import get_permission_codename

LAUNCH_PERMISSION = "campaigns.launch_campaign"
ERASE_PERMISSION = "marketing.erase_customer"

# The Kairos apps whose models the groups below are given permissions on.
KAIROS_APPS = ("marketing", "campaigns", "ml")
# What a marketer builds: everything but launching, sending, activating models and API keys.
MARKETER_MODELS = {
    "campaigns": {"campaign", "step", "emailtemplate", "templatevariant", "broadcast", "contentpiece", "conversation"},
    "marketing": {"segment", "segmentrule", "customer"},
}


def group_permissions(apps=None) -> dict[str, set[tuple[str, str]]]:
    """Return each group's permissions as (app_label, codename), from the installed (or a migration's) models."""
    if apps is None:
        from django.apps import apps

    view, marketer = set(), set()
    every = set()
    for app_label in KAIROS_APPS:
        for model in apps.get_app_config(app_label).get_models():
            opts = model._meta
            view.add((app_label, get_permission_codename("view", opts)))
            for action in ("add", "change", "delete", "view"):
                every.add((app_label, get_permission_codename(action, opts)))
            if opts.model_name in MARKETER_MODELS.get(app_label, set()):
                marketer |= {(app_label, get_permission_codename(action, opts)) for action in ("add", "change", "view")}
            for codename, _ in opts.permissions:
                every.add((app_label, codename))
    return {"Viewer": view, "Marketer": view | marketer, "Approver": every}


def sync_groups(apps=None) -> None:
    """Create or update the Viewer, Marketer and Approver groups with their permissions."""
    from django.contrib.auth.management import create_permissions

    if apps is None:
        from django.apps import apps
    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in group_permissions(apps).items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            [
                permission
                for permission in Permission.objects.select_related("content_type")
                if (permission.content_type.app_label, permission.codename) in wanted
            ]
        )


class AdminActionPermissions:
    """ModelAdmin mixin giving the `launch` and `activate` action permissions."""

    def has_launch_permission(self, request) -> bool:
        return request.user.has_perm(LAUNCH_PERMISSION)

    def has_activate_permission(self, request) -> bool:
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")
