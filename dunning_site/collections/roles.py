"""The finance team's roles, as groups with permissions (kept in step with the code after every migrate).

Viewer reads; Collector works cases; Manager also decides approvals and edits policies and
templates; Admin has everything (and staff status gives the Django admin).
"""

from django.contrib.auth.models import Group, Permission

VIEWER = "Viewer"
COLLECTOR = "Collector"
MANAGER = "Manager"
ADMIN = "Admin"

_READ = [
    "accounts.view_customer",
    "accounts.view_invoice",
    "accounts.view_payment",
    "accounts.view_creditnote",
    "accounts.view_consent",
    "collections.view_case",
    "collections.view_caseevent",
    "collections.view_approval",
    "collections.view_policy",
    "collections.view_step",
    "collections.view_paymentretry",
    "collections.view_promise",
    "notifications.view_message",
    "notifications.view_messagetemplate",
    "notifications.view_contactrules",
    "notifications.view_inboundsms",
]
_WORK = [
    "collections.work_case",
    "collections.view_draft",
    "collections.change_draft",
    "collections.view_calltask",
    "collections.change_calltask",
    "accounts.add_payment",
]
_MANAGE = [
    "collections.decide_approval",
    "collections.change_approval",
    "collections.add_policy",
    "collections.change_policy",
    "collections.add_step",
    "collections.change_step",
    "collections.delete_step",
    "notifications.add_messagetemplate",
    "notifications.change_messagetemplate",
    "notifications.add_contactrules",
    "notifications.change_contactrules",
]

ROLE_PERMISSIONS = {
    VIEWER: _READ,
    COLLECTOR: _READ + _WORK,
    MANAGER: _READ + _WORK + _MANAGE,
}


def roles_ensure(**kwargs) -> None:
    """Create the groups and give each exactly its permissions (Admin: all of them)."""
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(_permissions(names))
    admin, _ = Group.objects.get_or_create(name=ADMIN)
    admin.permissions.set(Permission.objects.all())


def _permissions(names: list[str]) -> list[Permission]:
    wanted = {tuple(name.split(".")) for name in names}
    found = [
        permission
        for permission in Permission.objects.select_related("content_type")
        if (permission.content_type.app_label, permission.codename) in wanted
    ]
    if len(found) != len(wanted):
        missing = wanted - {(p.content_type.app_label, p.codename) for p in found}
        raise LookupError(f"Roles name permissions that do not exist: {sorted(missing)}")
    return found
