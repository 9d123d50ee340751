"""Who may do what (SPEC §5): pure rules, no Discord imports.

The cogs read the member's Administrator permission and role IDs from the interaction and ask here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType


class Capability(StrEnum):
    """What a command needs: VIEW is open to everyone, ADMIN to admins only."""

    VIEW = "view"
    ADMIN = "admin"


# Keys are qualified command names as discord.py spells them (`Command.qualified_name`), plus
# "console input" for messages typed into a linked channel.
COMMAND_CAPABILITY: Mapping[str, Capability] = MappingProxyType(
    {
        "servers": Capability.VIEW,
        "status": Capability.VIEW,
        "power": Capability.ADMIN,
        "command": Capability.ADMIN,
        "logs": Capability.ADMIN,
        "console link": Capability.ADMIN,
        "console unlink": Capability.ADMIN,
        "console list": Capability.ADMIN,
        "console input": Capability.ADMIN,
        "health": Capability.ADMIN,
    }
)


def _command_key(command: str) -> str:
    return " ".join(command.strip().lstrip("/").split()).lower()


def required_capability(command: str) -> Capability:
    """The capability a command needs; a command not listed needs ADMIN (fail closed)."""
    return COMMAND_CAPABILITY.get(_command_key(command), Capability.ADMIN)


def is_admin(*, administrator: bool, role_ids: Iterable[int], admin_role_ids: Collection[int]) -> bool:
    """True when the member holds the Administrator permission or any admin role."""
    if administrator:
        return True
    if not admin_role_ids:
        return False
    return any(role_id in admin_role_ids for role_id in role_ids)


def allowed(
    capability: Capability, *, administrator: bool, role_ids: Iterable[int], admin_role_ids: Collection[int]
) -> bool:
    """True when a member with these permissions and roles has the capability."""
    if capability is Capability.VIEW:
        return True
    return is_admin(administrator=administrator, role_ids=role_ids, admin_role_ids=admin_role_ids)


def may_use(
    command: str, *, administrator: bool, role_ids: Iterable[int], admin_role_ids: Collection[int]
) -> bool:
    """True when the member may run the named command (see `required_capability`)."""
    return allowed(
        required_capability(command),
        administrator=administrator,
        role_ids=role_ids,
        admin_role_ids=admin_role_ids,
    )


def refusal_text(command: str, *, admin_roles_configured: bool = True) -> str:
    """One sentence telling a non-admin why a command was refused and what would allow it."""
    name = "/" + _command_key(command)
    if not admin_roles_configured:
        return f"Only admins can use {name}: you need the Administrator permission."
    return f"Only admins can use {name}: you need the Administrator permission or one of the admin roles."
