"""Tests for bot.access: capabilities, the command table, grants, the view rule and command patterns."""

from __future__ import annotations

import ast
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import bot.access
from bot.access import (
    COMMAND_CAPABILITY,
    MAX_PATTERN_LENGTH,
    MAX_PATTERNS,
    Capability,
    Member,
    PatternError,
    ServerScope,
    Verdict,
    autocomplete_capabilities,
    command_matches,
    decide,
    holds,
    is_admin,
    may_grant,
    may_revoke,
    parse_patterns,
    required_capability,
    servers_for,
    view_is_open,
)
from bot.errors import WingbeatError
from bot.store import ALL_SERVERS, Grant, TargetKind

GUILD = 1000
OTHER_GUILD = 2000
ADMIN_ROLE = 111
ADMIN_ROLES = frozenset({ADMIN_ROLE, 222})
MODS = 500
EVENTS = 600
SURVIVAL = "a1b2c3d4"
CREATIVE = "e5f6a7b8"
CONTROL = (Capability.LOGS, Capability.CONSOLE, Capability.START, Capability.STOP, Capability.RESTART)

PLAIN = Member(GUILD, 1)
MOD = Member(GUILD, 2, frozenset({MODS}))
EVENT_HELPER = Member(GUILD, 3, frozenset({EVENTS}))
ROLE_ADMIN = Member(GUILD, 4, frozenset({ADMIN_ROLE}))
PERMISSION_ADMIN = Member(GUILD, 5, administrator=True)


def role_grant(
    role: int, capability: str, server: str = ALL_SERVERS, commands: Sequence[str] = (), guild: int = GUILD
) -> Grant:
    return Grant(guild, TargetKind.ROLE, role, capability, server, tuple(commands))


def member_grant(
    user: int, capability: str, server: str = ALL_SERVERS, commands: Sequence[str] = ()
) -> Grant:
    return Grant(GUILD, TargetKind.MEMBER, user, capability, server, tuple(commands))


def check(
    member: Member,
    capability: Capability,
    server: str | None = SURVIVAL,
    grants: Sequence[Grant] = (),
    command: str | None = None,
) -> Verdict:
    return decide(member, capability, server, grants=grants, admin_role_ids=ADMIN_ROLES, command=command)


def allowed(*args: object, **kwargs: object) -> bool:
    return check(*args, **kwargs).allowed  # type: ignore[arg-type]


# -- the command table ---------------------------------------------------------------------------------------


def test_capabilities_use_the_panels_words() -> None:
    assert [c.value for c in Capability] == [
        "view",
        "logs",
        "control.console",
        "control.start",
        "control.stop",
        "control.restart",
        "admin",
    ]
    assert f"{Capability.CONSOLE}" == "control.console"


@pytest.mark.parametrize(
    ("command", "capability"),
    [
        ("servers", Capability.VIEW),
        ("/status", Capability.VIEW),
        ("select server", Capability.VIEW),
        ("logs", Capability.LOGS),
        ("button logs", Capability.LOGS),
        ("command", Capability.CONSOLE),
        ("console input", Capability.CONSOLE),
        ("button command", Capability.CONSOLE),
        ("power start", Capability.START),
        ("Power   STOP", Capability.STOP),
        ("power kill", Capability.STOP),
        ("button kill", Capability.STOP),
        ("power restart", Capability.RESTART),
        ("button restart", Capability.RESTART),
        ("power", Capability.ADMIN),  # without its action, /power fails closed
        ("power explode", Capability.ADMIN),
        ("something new", Capability.ADMIN),
        ("", Capability.ADMIN),
    ],
)
def test_required_capability(command: str, capability: Capability) -> None:
    assert required_capability(command) is capability


@pytest.mark.parametrize(
    "command",
    [
        "console link",
        "console unlink",
        "console list",
        "health",
        "board post",
        "board remove",
        "board card",
        "alerts set",
        "alerts off",
        "alerts show",
        "access grant",
        "access revoke",
        "access list",
        "audit show",
        "audit channel",
    ],
)
def test_admin_only_commands(command: str) -> None:
    assert COMMAND_CAPABILITY[command] is Capability.ADMIN


def test_command_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        COMMAND_CAPABILITY["power stop"] = Capability.VIEW  # type: ignore[index]


def test_autocomplete_capabilities() -> None:
    assert autocomplete_capabilities("power") == {Capability.START, Capability.STOP, Capability.RESTART}
    assert autocomplete_capabilities("power kill") == {Capability.STOP}
    assert autocomplete_capabilities("status") == {Capability.VIEW}
    assert autocomplete_capabilities("console link") == {Capability.ADMIN}


# -- admins --------------------------------------------------------------------------------------------------


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
    ],
)
def test_is_admin(administrator: bool, roles: list[int], admin_roles: frozenset[int], expected: bool) -> None:
    assert is_admin(administrator=administrator, role_ids=roles, admin_role_ids=admin_roles) is expected


def test_role_ids_are_compared_as_ints_not_strings() -> None:
    assert not is_admin(administrator=False, role_ids=[111], admin_role_ids={"111"})  # type: ignore[arg-type]


@pytest.mark.parametrize("member", [ROLE_ADMIN, PERMISSION_ADMIN])
@pytest.mark.parametrize("capability", list(Capability))
def test_admins_may_do_everything_everywhere(member: Member, capability: Capability) -> None:
    grants = [role_grant(MODS, "control.console", SURVIVAL, ["say *"]), role_grant(MODS, "view", SURVIVAL)]
    assert allowed(member, capability, SURVIVAL, grants, command="stop")
    assert allowed(member, capability, None, grants)
    assert servers_for(member, [capability], grants=grants, admin_role_ids=ADMIN_ROLES).everything


# -- no grants -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", [SURVIVAL, None])
def test_without_grants_everyone_may_view_and_nothing_else(server: str | None) -> None:
    assert allowed(PLAIN, Capability.VIEW, server)
    for capability in (*CONTROL, Capability.ADMIN):
        assert not allowed(PLAIN, capability, server), capability


def test_refusal_sentences() -> None:
    verdict = decide(
        PLAIN,
        Capability.STOP,
        SURVIVAL,
        grants=(),
        admin_role_ids=ADMIN_ROLES,
        what="/power stop",
        server_label="**Survival** (`a1b2c3d4`)",
    )
    assert verdict == Verdict(
        False,
        "Only admins, or members granted `control.stop` on **Survival** (`a1b2c3d4`), can use /power stop; "
        "an admin can give that with /access grant.",
    )
    no_label = check(PLAIN, Capability.LOGS)
    assert "`logs` on `a1b2c3d4`" in no_label.reason
    everywhere = check(PLAIN, Capability.LOGS, None)
    assert "`logs` on all servers" in everywhere.reason
    admin = decide(PLAIN, Capability.ADMIN, None, grants=(), admin_role_ids=ADMIN_ROLES, what="/health")
    assert admin.reason == (
        "Only admins can use /health: you need the Administrator permission or one of the admin roles."
    )
    no_roles = decide(PLAIN, Capability.ADMIN, None, grants=(), admin_role_ids=(), what="/health")
    assert no_roles.reason == "Only admins can use /health: you need the Administrator permission."


# -- grants --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("capability", CONTROL)
def test_each_capability_gives_itself_and_no_other(capability: Capability) -> None:
    grants = [role_grant(MODS, capability)]
    for other in CONTROL:
        assert allowed(MOD, other, SURVIVAL, grants) is (other is capability), (capability, other)
    assert not allowed(MOD, Capability.ADMIN, SURVIVAL, grants)
    assert not allowed(PLAIN, capability, SURVIVAL, grants)


def test_server_grant_reaches_only_its_server() -> None:
    grants = [role_grant(MODS, "control.restart", SURVIVAL)]
    assert allowed(MOD, Capability.RESTART, SURVIVAL, grants)
    assert not allowed(MOD, Capability.RESTART, CREATIVE, grants)
    assert not allowed(MOD, Capability.RESTART, None, grants)  # "all servers" needs a `*` grant
    assert not allowed(MOD, Capability.STOP, SURVIVAL, grants)


def test_all_servers_grant_reaches_every_server_and_adds_to_server_grants() -> None:
    grants = [role_grant(MODS, "control.restart"), role_grant(MODS, "control.stop", CREATIVE)]
    for server in (SURVIVAL, CREATIVE, "ffffffff", None):
        assert allowed(MOD, Capability.RESTART, server, grants)
    assert allowed(MOD, Capability.STOP, CREATIVE, grants)
    assert not allowed(MOD, Capability.STOP, SURVIVAL, grants)


def test_member_grants_and_role_grants_add_up() -> None:
    grants = [role_grant(MODS, "control.restart", SURVIVAL), member_grant(MOD.user_id, "logs", SURVIVAL)]
    assert allowed(MOD, Capability.RESTART, SURVIVAL, grants)
    assert allowed(MOD, Capability.LOGS, SURVIVAL, grants)
    other_mod = Member(GUILD, 99, frozenset({MODS}))
    assert allowed(other_mod, Capability.RESTART, SURVIVAL, grants)
    assert not allowed(other_mod, Capability.LOGS, SURVIVAL, grants)


def test_member_grant_is_for_that_user_only() -> None:
    grants = [member_grant(PLAIN.user_id, "control.start")]
    assert allowed(PLAIN, Capability.START, SURVIVAL, grants)
    assert not allowed(MOD, Capability.START, SURVIVAL, grants)
    # a role that happens to have the user's ID is not the user
    assert not allowed(Member(GUILD, 77, frozenset({PLAIN.user_id})), Capability.START, SURVIVAL, grants)


def test_grants_of_another_guild_count_for_nothing() -> None:
    grants = [role_grant(MODS, "control.start", guild=OTHER_GUILD)]
    assert not allowed(MOD, Capability.START, SURVIVAL, grants)
    assert not holds(MOD, grants[0])


def test_a_role_grant_to_everyone_reaches_every_member() -> None:
    grants = [role_grant(GUILD, "logs", SURVIVAL)]  # @everyone's role ID is the guild's ID
    assert allowed(PLAIN, Capability.LOGS, SURVIVAL, grants)
    assert allowed(MOD, Capability.LOGS, SURVIVAL, grants)
    assert not allowed(Member(OTHER_GUILD, 1), Capability.LOGS, SURVIVAL, grants)


def test_admin_grant_gives_everything_on_its_server() -> None:
    grants = [role_grant(MODS, "admin", SURVIVAL)]
    for capability in (*CONTROL, Capability.ADMIN, Capability.VIEW):
        assert allowed(MOD, capability, SURVIVAL, grants), capability
        if capability is not Capability.VIEW:
            assert not allowed(MOD, capability, CREATIVE, grants), capability
    assert not allowed(MOD, Capability.ADMIN, None, grants)  # /health and friends need admin on `*`
    everywhere = [role_grant(MODS, "admin")]
    assert allowed(MOD, Capability.ADMIN, None, everywhere)
    assert allowed(MOD, Capability.CONSOLE, CREATIVE, everywhere, command="stop")


# -- the view rule -------------------------------------------------------------------------------------------


def test_view_closes_once_any_view_grant_exists() -> None:
    others = [role_grant(MODS, "control.restart", SURVIVAL)]
    assert view_is_open(others)
    assert allowed(PLAIN, Capability.VIEW, SURVIVAL, others)  # grants of other capabilities leave it open
    closed = [*others, role_grant(EVENTS, "view", CREATIVE)]
    assert not view_is_open(closed)
    assert not allowed(PLAIN, Capability.VIEW, SURVIVAL, closed)
    assert not allowed(PLAIN, Capability.VIEW, None, closed)
    assert allowed(EVENT_HELPER, Capability.VIEW, CREATIVE, closed)
    assert not allowed(EVENT_HELPER, Capability.VIEW, SURVIVAL, closed)
    assert "`view` on `a1b2c3d4`" in check(PLAIN, Capability.VIEW, SURVIVAL, closed).reason


def test_a_view_grant_of_another_guild_does_not_close_view_here() -> None:
    assert allowed(PLAIN, Capability.VIEW, SURVIVAL, [role_grant(MODS, "view", guild=OTHER_GUILD)])


def test_any_capability_on_a_server_includes_viewing_it() -> None:
    grants = [role_grant(EVENTS, "view", CREATIVE), role_grant(MODS, "control.restart", SURVIVAL)]
    assert allowed(MOD, Capability.VIEW, SURVIVAL, grants)
    assert not allowed(MOD, Capability.VIEW, CREATIVE, grants)


# -- which servers autocomplete offers ----------------------------------------------------------------------


def scope(member: Member, capabilities: Sequence[Capability], grants: Sequence[Grant]) -> ServerScope:
    return servers_for(member, capabilities, grants=grants, admin_role_ids=ADMIN_ROLES)


def test_servers_for() -> None:
    grants = [
        role_grant(MODS, "control.restart", SURVIVAL),
        member_grant(MOD.user_id, "control.stop", CREATIVE),
        role_grant(EVENTS, "control.console", ALL_SERVERS, ["say *"]),
    ]
    assert scope(MOD, [Capability.RESTART], grants) == ServerScope(servers=frozenset({SURVIVAL}))
    power = autocomplete_capabilities("power")
    assert scope(MOD, sorted(power), grants).servers == {SURVIVAL, CREATIVE}
    assert scope(MOD, [Capability.LOGS], grants) == ServerScope()
    assert SURVIVAL not in scope(MOD, [Capability.LOGS], grants)
    assert scope(EVENT_HELPER, [Capability.CONSOLE], grants).everything
    assert scope(PLAIN, [Capability.VIEW], grants).everything  # view still open
    closed = [*grants, role_grant(EVENTS, "view", CREATIVE)]
    assert scope(PLAIN, [Capability.VIEW], closed) == ServerScope()
    assert scope(MOD, [Capability.VIEW], closed).servers == {SURVIVAL, CREATIVE}
    assert scope(MOD, [Capability.ADMIN], closed) == ServerScope()
    assert scope(MOD, [Capability.ADMIN], [role_grant(MODS, "admin", SURVIVAL)]).servers == {SURVIVAL}


# -- command patterns ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "command", "expected"),
    [
        ("say *", "say hi", True),
        ("say *", "say ", True),  # `*` matches nothing too
        ("say *", "say", False),
        ("say *", "SAY Hi", True),
        ("SAY *", "say hi", True),
        ("say *", " say hi", False),  # a leading space is part of the command
        (" say *", " say hi", True),
        ("say *", "say hi; stop", True),  # `;` is nothing special: one console line
        ("say *", "stop", False),
        ("stop", "stop", True),
        ("stop", "stop ", False),
        ("stop", " stop", False),
        ("stop", "Stop", True),
        ("whitelist add *", "whitelist add bob", True),
        ("whitelist add *", "whitelist remove bob", False),
        ("*", "anything at all", True),
        ("*", "", True),
        ("*list", "whitelist", True),
        ("*list", "whitelist add", False),
        ("give * diamond", "give bob diamond", True),
        ("give * diamond", "give bob diamond_block", False),
        ("a*a", "a", False),  # head and tail may not overlap
        ("a*a", "aa", True),
        ("*a*b*c*", "xxcxbxa", False),  # order matters
        ("*a*b*c*", "xaxbxcx", True),
        ("say ?", "say x", False),  # no `?` magic
        ("say ?", "say ?", True),
        ("say [ab]", "say a", False),  # no `[...]` magic
        ("say [ab]", "say [ab]", True),
        ("say .*", "say hello", False),  # no regex either
        ("straße *", "STRASSE x", True),  # case folding, not just lowercasing
    ],
)
def test_command_matches(pattern: str, command: str, expected: bool) -> None:
    assert command_matches(pattern, command) is expected


def test_pattern_matching_is_linear_on_long_commands_with_many_stars() -> None:
    # The classic backtracking killer: many stars and a command that almost matches.
    pattern = "a*" * 40 + "b"
    command = "a" * 4000
    started = time.perf_counter()
    for _ in range(20):
        assert not command_matches(pattern, command)
        assert command_matches(pattern, command + "b")
    assert time.perf_counter() - started < 0.5


def test_patterns_allow_and_refuse() -> None:
    grants = [role_grant(EVENTS, "control.console", CREATIVE, ["say *", "whitelist add *"])]
    assert allowed(EVENT_HELPER, Capability.CONSOLE, CREATIVE, grants, command="say hello")
    assert allowed(EVENT_HELPER, Capability.CONSOLE, CREATIVE, grants, command="Whitelist Add bob")
    assert allowed(EVENT_HELPER, Capability.CONSOLE, CREATIVE, grants)  # may send some command (opens a form)
    refused = check(EVENT_HELPER, Capability.CONSOLE, CREATIVE, grants, command="stop")
    assert refused == Verdict(
        False,
        "On `e5f6a7b8` you may send only commands matching `say *`, `whitelist add *`; "
        "`stop` matches none of them.",
    )
    assert not allowed(EVENT_HELPER, Capability.CONSOLE, CREATIVE, grants, command=" stop")
    assert not allowed(EVENT_HELPER, Capability.CONSOLE, SURVIVAL, grants, command="say hello")


def test_patterns_of_several_grants_add_up() -> None:
    grants = [
        role_grant(EVENTS, "control.console", CREATIVE, ["say *"]),
        member_grant(EVENT_HELPER.user_id, "control.console", ALL_SERVERS, ["whitelist add *"]),
    ]
    assert allowed(EVENT_HELPER, Capability.CONSOLE, CREATIVE, grants, command="say hi")
    assert allowed(EVENT_HELPER, Capability.CONSOLE, CREATIVE, grants, command="whitelist add bob")
    assert not allowed(EVENT_HELPER, Capability.CONSOLE, SURVIVAL, grants, command="say hi")
    assert allowed(EVENT_HELPER, Capability.CONSOLE, SURVIVAL, grants, command="whitelist add bob")


def test_a_grant_without_patterns_allows_any_command() -> None:
    grants = [
        role_grant(EVENTS, "control.console", CREATIVE, ["say *"]),
        member_grant(EVENT_HELPER.user_id, "control.console", CREATIVE),
    ]
    assert allowed(EVENT_HELPER, Capability.CONSOLE, CREATIVE, grants, command="stop")
    admin_grant = [role_grant(EVENTS, "control.console", CREATIVE, ["say *"]), role_grant(EVENTS, "admin")]
    assert allowed(EVENT_HELPER, Capability.CONSOLE, CREATIVE, admin_grant, command="stop")


def test_a_refusal_shows_a_long_command_and_many_patterns_briefly() -> None:
    patterns = [f"pattern{i:02d} " + "x" * 80 + " *" for i in range(MAX_PATTERNS)]
    grants = [role_grant(EVENTS, "control.console", CREATIVE, patterns)]
    refused = check(EVENT_HELPER, Capability.CONSOLE, CREATIVE, grants, command="`" * 4000)
    assert not refused.allowed
    assert len(refused.reason) < 1200
    assert "more" in refused.reason
    assert "```" not in refused.reason  # the command's backticks cannot open a code block


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("say *", ("say *",)),
        ("say *, whitelist add *", ("say *", "whitelist add *")),
        (" say * ,, whitelist add *,", ("say *", "whitelist add *")),
        ("say ***", ("say *",)),
        ("say *, SAY *", ("say *",)),
    ],
)
def test_parse_patterns(text: str, expected: tuple[str, ...]) -> None:
    assert parse_patterns(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "at least one"),
        (" , ,", "at least one"),
        ("say\nstop", "control character"),
        ("say \x1b[31m", "control character"),
        ("x" * (MAX_PATTERN_LENGTH + 1), f"at most {MAX_PATTERN_LENGTH} characters"),
        (",".join(f"p{i}" for i in range(MAX_PATTERNS + 1)), f"at most {MAX_PATTERNS} command patterns"),
    ],
)
def test_parse_patterns_refuses(text: str, problem: str) -> None:
    with pytest.raises(PatternError, match=problem) as caught:
        parse_patterns(text)
    assert isinstance(caught.value, WingbeatError)


# -- no privilege escalation -------------------------------------------------------------------------------


def test_an_admin_grant_cannot_give_or_take_admin() -> None:
    granted_admin = MOD  # holds an `admin` grant, not the permission or an admin role
    verdict = may_grant(granted_admin, Capability.ADMIN, TargetKind.MEMBER, 42, admin_role_ids=ADMIN_ROLES)
    assert not verdict.allowed and "Only admins" in verdict.reason
    assert not may_grant(
        granted_admin, Capability.ADMIN, TargetKind.MEMBER, granted_admin.user_id, admin_role_ids=ADMIN_ROLES
    ).allowed
    assert not may_revoke(granted_admin, Capability.ADMIN, admin_role_ids=ADMIN_ROLES).allowed
    for capability in CONTROL:
        assert may_grant(granted_admin, capability, TargetKind.ROLE, MODS, admin_role_ids=ADMIN_ROLES).allowed
        assert may_revoke(granted_admin, capability, admin_role_ids=ADMIN_ROLES).allowed


@pytest.mark.parametrize("admin", [ROLE_ADMIN, PERMISSION_ADMIN])
def test_real_admins_give_and_take_admin(admin: Member) -> None:
    assert may_grant(admin, Capability.ADMIN, TargetKind.ROLE, MODS, admin_role_ids=ADMIN_ROLES).allowed
    assert may_revoke(admin, Capability.ADMIN, admin_role_ids=ADMIN_ROLES).allowed


def test_admin_is_never_given_to_everyone() -> None:
    verdict = may_grant(
        PERMISSION_ADMIN, Capability.ADMIN, TargetKind.ROLE, GUILD, admin_role_ids=ADMIN_ROLES
    )
    assert not verdict.allowed and "@everyone" in verdict.reason
    # other capabilities may go to everyone, and admin may be taken back from everyone
    assert may_grant(PERMISSION_ADMIN, Capability.LOGS, TargetKind.ROLE, GUILD, admin_role_ids=()).allowed
    assert may_revoke(PERMISSION_ADMIN, Capability.ADMIN, admin_role_ids=()).allowed


def test_holding_an_admin_grant_is_not_being_admin() -> None:
    grants = [role_grant(MODS, "admin")]
    # an admin grant passes the check for /access, but giving `admin` itself stays with real admins
    assert allowed(MOD, Capability.ADMIN, None, grants)
    assert not may_grant(MOD, Capability.ADMIN, TargetKind.ROLE, EVENTS, admin_role_ids=ADMIN_ROLES).allowed


def test_module_is_pure() -> None:
    tree = ast.parse(Path(bot.access.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "discord" not in imported and "aiohttp" not in imported
