"""Tests for bot.access: who may use which command."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bot.access
from bot.access import (
    COMMAND_CAPABILITY,
    Capability,
    allowed,
    is_admin,
    may_use,
    refusal_text,
    required_capability,
)

ADMIN_ROLES = frozenset({111, 222})
ADMIN_COMMANDS = [
    "power",
    "command",
    "logs",
    "console link",
    "console unlink",
    "console list",
    "console input",
    "health",
]


def test_capability_values() -> None:
    assert Capability("view") is Capability.VIEW
    assert Capability("admin") is Capability.ADMIN
    assert f"{Capability.ADMIN}" == "admin"


def test_command_table_matches_spec() -> None:
    assert COMMAND_CAPABILITY["servers"] is Capability.VIEW
    assert COMMAND_CAPABILITY["status"] is Capability.VIEW
    for command in ADMIN_COMMANDS:
        assert COMMAND_CAPABILITY[command] is Capability.ADMIN, command
    assert set(COMMAND_CAPABILITY) == {"servers", "status", *ADMIN_COMMANDS}


def test_command_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        COMMAND_CAPABILITY["power"] = Capability.VIEW  # type: ignore[index]


@pytest.mark.parametrize(
    ("command", "capability"),
    [
        ("status", Capability.VIEW),
        ("/servers", Capability.VIEW),
        ("  Console   Link ", Capability.ADMIN),
        ("power", Capability.ADMIN),
        ("something new", Capability.ADMIN),  # unknown commands fail closed
        ("", Capability.ADMIN),
    ],
)
def test_required_capability(command: str, capability: Capability) -> None:
    assert required_capability(command) is capability


@pytest.mark.parametrize(
    ("administrator", "roles", "admin_roles", "expected"),
    [
        (True, [], ADMIN_ROLES, True),
        (True, [], frozenset(), True),  # Administrator alone is enough, even with no roles set up
        (False, [111], ADMIN_ROLES, True),
        (False, [5, 6, 222], ADMIN_ROLES, True),
        (False, [5, 6], ADMIN_ROLES, False),
        (False, [], ADMIN_ROLES, False),
        (False, [111], frozenset(), False),
        (False, [], frozenset(), False),
    ],
)
def test_is_admin(administrator: bool, roles: list[int], admin_roles: frozenset[int], expected: bool) -> None:
    assert is_admin(administrator=administrator, role_ids=roles, admin_role_ids=admin_roles) is expected


def test_is_admin_accepts_one_shot_iterables_and_large_snowflakes() -> None:
    big = 2**63 - 1
    assert is_admin(administrator=False, role_ids=iter([1, big]), admin_role_ids={big})
    assert is_admin(administrator=False, role_ids=(r for r in [1, 2]), admin_role_ids=[2])
    assert not is_admin(administrator=False, role_ids=iter([big - 1]), admin_role_ids={big})


def test_role_ids_are_compared_as_ints_not_strings() -> None:
    # Settings parse ADMIN_ROLE_IDS into ints; a stray string must not match by accident.
    assert not is_admin(administrator=False, role_ids=[111], admin_role_ids={"111"})  # type: ignore[arg-type]


def test_view_is_allowed_for_everyone() -> None:
    assert allowed(Capability.VIEW, administrator=False, role_ids=[], admin_role_ids=frozenset())
    assert allowed(Capability.VIEW, administrator=False, role_ids=[5], admin_role_ids=ADMIN_ROLES)


def test_admin_capability_follows_is_admin() -> None:
    assert allowed(Capability.ADMIN, administrator=True, role_ids=[], admin_role_ids=ADMIN_ROLES)
    assert allowed(Capability.ADMIN, administrator=False, role_ids=[222], admin_role_ids=ADMIN_ROLES)
    assert not allowed(Capability.ADMIN, administrator=False, role_ids=[5], admin_role_ids=ADMIN_ROLES)


@pytest.mark.parametrize("command", ["servers", "status"])
def test_member_may_use_view_commands(command: str) -> None:
    assert may_use(command, administrator=False, role_ids=[], admin_role_ids=ADMIN_ROLES)


@pytest.mark.parametrize("command", ADMIN_COMMANDS)
def test_member_is_refused_every_admin_command(command: str) -> None:
    assert not may_use(command, administrator=False, role_ids=[5], admin_role_ids=ADMIN_ROLES)
    assert may_use(command, administrator=False, role_ids=[5, 111], admin_role_ids=ADMIN_ROLES)
    assert may_use(command, administrator=True, role_ids=[], admin_role_ids=ADMIN_ROLES)


def test_refusal_text_exact_sentence() -> None:
    assert refusal_text("power") == (
        "Only admins can use /power: you need the Administrator permission or one of the admin roles."
    )


def test_refusal_text_normalises_command_name() -> None:
    assert refusal_text("/console  link").startswith("Only admins can use /console link:")


def test_refusal_text_without_admin_roles_only_mentions_administrator() -> None:
    text = refusal_text("logs", admin_roles_configured=False)
    assert text == "Only admins can use /logs: you need the Administrator permission."
    assert "role" not in text


def test_module_is_pure() -> None:
    tree = ast.parse(Path(bot.access.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "discord" not in imported and "aiohttp" not in imported
