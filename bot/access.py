"""Who may do what: capabilities, the command table, grants and console-command patterns. Pure rules.

Everything that decides an access question lives here, so each rule is one fast unit test:

- An *admin* holds the Discord Administrator permission or a role in ADMIN_ROLE_IDS, and may do everything,
  including giving and taking the `admin` capability.
- Anyone else may do what the guild's grants give them. A grant names a role or a member, a capability and a
  server (or `*` for all servers). Member grants and role grants add up, and so do server grants and `*` grants.
  A role grant to @everyone (whose role ID is the guild's ID) reaches every member.
- An `admin` grant gives every capability on its server (on `*`: every command), except giving or taking
  `admin` itself: no one can raise themselves or others above what an admin gave them.
- Any capability on a server also lets its holder see that server (`view`): one cannot sensibly restart a
  server one may not look at.
- `view` is open to everyone while the guild has no `view` grant at all; the first `view` grant closes it.
- A question about no particular server (`server=None`: /health, /access list…) needs the capability on all
  servers (`*`); a grant on one server does not reach commands about every server. A listing (/servers) is the
  exception: it is open to whoever may see some server, and shows just those (`bot.discord_access.LISTINGS`).
- `control.console` grants may carry command patterns; see `command_matches`.

What the panel key itself lacks is checked later, by the Wings layer: a grant never gives more than the key has.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from bot.errors import WingbeatError
from bot.store import ALL_SERVERS, Grant, TargetKind


class Capability(StrEnum):
    """What an action needs, in the panel's own words (its subuser permissions)."""

    VIEW = "view"
    LOGS = "logs"
    CONSOLE = "control.console"
    START = "control.start"
    STOP = "control.stop"  # stop and kill
    RESTART = "control.restart"
    ADMIN = "admin"


POWER_CAPABILITY: Mapping[str, Capability] = MappingProxyType(
    {
        "start": Capability.START,
        "stop": Capability.STOP,
        "kill": Capability.STOP,
        "restart": Capability.RESTART,
    }
)

# Keys: slash commands by qualified name (`/power` with its action: "power stop"), "console input" for messages
# typed into a linked channel, and "button <action>" / "select server" for the components of boards and cards.
COMMAND_CAPABILITY: Mapping[str, Capability] = MappingProxyType(
    {
        "servers": Capability.VIEW,
        "status": Capability.VIEW,
        "logs": Capability.LOGS,
        "command": Capability.CONSOLE,
        "console input": Capability.CONSOLE,
        **{f"power {action}": capability for action, capability in POWER_CAPABILITY.items()},
        **{f"button {action}": capability for action, capability in POWER_CAPABILITY.items()},
        "button logs": Capability.LOGS,
        "button command": Capability.CONSOLE,  # the button that opens the command modal, and the modal
        "select server": Capability.VIEW,  # a board's "Manage a server…" menu
        "console link": Capability.ADMIN,
        "console unlink": Capability.ADMIN,
        "console list": Capability.ADMIN,
        "health": Capability.ADMIN,
        "board post": Capability.ADMIN,
        "board remove": Capability.ADMIN,
        "board card": Capability.ADMIN,
        "alerts set": Capability.ADMIN,
        "alerts off": Capability.ADMIN,
        "alerts show": Capability.ADMIN,
        "access grant": Capability.ADMIN,
        "access revoke": Capability.ADMIN,
        "access list": Capability.ADMIN,
        "audit show": Capability.ADMIN,
        "audit channel": Capability.ADMIN,
    }
)

# Commands whose capability depends on one of their options (`/power`'s action): until that option is known,
# autocomplete offers the servers where any of these is held.
COMMAND_CAPABILITY_CHOICES: Mapping[str, frozenset[Capability]] = MappingProxyType(
    {"power": frozenset(POWER_CAPABILITY.values())}
)

MAX_PATTERNS = 20
MAX_PATTERN_LENGTH = 100
_SHOWN_PATTERNS_LENGTH = 800  # room for patterns in one refusal sentence


class PatternError(WingbeatError):
    """A list of command patterns that cannot be saved; `str()` says why."""


@dataclass(frozen=True, slots=True)
class Member:
    """The facts about a member that access depends on, read from the interaction or message itself."""

    guild_id: int
    user_id: int
    role_ids: frozenset[int] = frozenset()
    administrator: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of an access check: `allowed`, or `reason` (one sentence) for the refusal."""

    allowed: bool
    reason: str = ""


ALLOWED = Verdict(True)


@dataclass(frozen=True, slots=True)
class ServerScope:
    """The servers a member may pick for a command: every server, or these identifiers."""

    everything: bool = False
    servers: frozenset[str] = field(default_factory=frozenset)

    def __contains__(self, identifier: object) -> bool:
        return self.everything or identifier in self.servers

    def __bool__(self) -> bool:
        """True when the scope holds any server at all."""
        return self.everything or bool(self.servers)


# -- the command table -------------------------------------------------------------------------------------


def command_key(command: str) -> str:
    """A command's name as the table spells it: no slash, lower case, single spaces."""
    return " ".join(command.strip().lstrip("/").split()).lower()


def required_capability(command: str) -> Capability:
    """The capability a command needs; a command not listed (or /power without its action) needs ADMIN."""
    return COMMAND_CAPABILITY.get(command_key(command), Capability.ADMIN)


def autocomplete_capabilities(command: str) -> frozenset[Capability]:
    """What a command may need, for offering servers before all its options are filled in."""
    key = command_key(command)
    return COMMAND_CAPABILITY_CHOICES.get(key) or frozenset({required_capability(key)})


# -- admins and grants -------------------------------------------------------------------------------------


def is_admin(*, administrator: bool, role_ids: Iterable[int], admin_role_ids: Collection[int]) -> bool:
    """True when the member holds the Administrator permission or any admin role."""
    if administrator:
        return True
    if not admin_role_ids:
        return False
    return any(role_id in admin_role_ids for role_id in role_ids)


def member_is_admin(member: Member, admin_role_ids: Collection[int]) -> bool:
    """Admin by permission or role (an `admin` grant does not make one of these)."""
    return is_admin(
        administrator=member.administrator, role_ids=member.role_ids, admin_role_ids=admin_role_ids
    )


def holds(member: Member, grant: Grant) -> bool:
    """True when `grant` is given to this member, directly, through one of their roles or through @everyone."""
    if grant.guild_id != member.guild_id:
        return False
    if grant.target_kind is TargetKind.MEMBER:
        return grant.target_id == member.user_id
    return grant.target_id == member.guild_id or grant.target_id in member.role_ids


def _gives(grant: Grant, capability: Capability) -> bool:
    if grant.capability == capability or grant.capability == Capability.ADMIN:
        return True
    # Any capability on a server includes seeing it.
    return capability is Capability.VIEW


def _reaches(grant: Grant, server: str | None) -> bool:
    return grant.server_identifier == ALL_SERVERS or (
        server is not None and grant.server_identifier == server
    )


def view_is_open(grants: Iterable[Grant]) -> bool:
    """True while the guild has no `view` grant: then everyone may view."""
    return not any(grant.capability == Capability.VIEW for grant in grants)


def _covering(
    member: Member, grants: Sequence[Grant], capability: Capability, server: str | None
) -> list[Grant]:
    return [g for g in grants if holds(member, g) and _gives(g, capability) and _reaches(g, server)]


def decide(
    member: Member,
    capability: Capability,
    server: str | None,
    *,
    grants: Sequence[Grant],
    admin_role_ids: Collection[int],
    command: str | None = None,
    what: str = "that",
    server_label: str | None = None,
) -> Verdict:
    """May `member` use `capability` on `server` (None: not one particular server)?

    `grants` are the guild's grants. For `control.console`, `command` is the console command exactly as it will
    be sent (None asks whether the member may send some command, e.g. before opening a form). `what` ("/power
    stop") and `server_label` (the server's name and identifier) only shape the refusal sentence.
    """
    if member_is_admin(member, admin_role_ids):
        return ALLOWED
    if capability is Capability.VIEW and view_is_open(g for g in grants if g.guild_id == member.guild_id):
        return ALLOWED
    covering = _covering(member, grants, capability, server)
    if not covering:
        return Verdict(False, _refusal(capability, server, what, server_label, bool(admin_role_ids)))
    if capability is not Capability.CONSOLE or command is None:
        return ALLOWED
    patterns: list[str] = []
    for grant in covering:
        if grant.capability != Capability.CONSOLE or not grant.commands:
            return ALLOWED  # an admin grant, or a console grant without patterns: any command
        patterns.extend(p for p in grant.commands if p not in patterns)
    if any(command_matches(pattern, command) for pattern in patterns):
        return ALLOWED
    return Verdict(False, _pattern_refusal(patterns, command, server, server_label))


def servers_for(
    member: Member,
    capabilities: Collection[Capability],
    *,
    grants: Sequence[Grant],
    admin_role_ids: Collection[int],
) -> ServerScope:
    """The servers on which `member` holds at least one of `capabilities` (for autocomplete)."""
    if member_is_admin(member, admin_role_ids):
        return ServerScope(everything=True)
    if Capability.VIEW in capabilities and view_is_open(g for g in grants if g.guild_id == member.guild_id):
        return ServerScope(everything=True)
    servers: set[str] = set()
    for grant in grants:
        if holds(member, grant) and any(_gives(grant, c) for c in capabilities):
            if grant.server_identifier == ALL_SERVERS:
                return ServerScope(everything=True)
            servers.add(grant.server_identifier)
    return ServerScope(servers=frozenset(servers))


def may_grant(
    actor: Member,
    capability: Capability,
    target_kind: TargetKind,
    target_id: int,
    *,
    admin_role_ids: Collection[int],
) -> Verdict:
    """May `actor` (already allowed to use /access) give this grant? Only admins give `admin`, never to @everyone."""
    if capability is not Capability.ADMIN:
        return ALLOWED
    if not member_is_admin(actor, admin_role_ids):
        return Verdict(False, _ADMIN_ONLY_ADMIN)
    if target_kind is TargetKind.ROLE and target_id == actor.guild_id:
        return Verdict(
            False, "Giving `admin` to @everyone would make every member an admin; give it to a role instead."
        )
    return ALLOWED


def may_revoke(actor: Member, capability: Capability, *, admin_role_ids: Collection[int]) -> Verdict:
    """May `actor` (already allowed to use /access) take this grant away? Only admins take `admin`."""
    if capability is Capability.ADMIN and not member_is_admin(actor, admin_role_ids):
        return Verdict(False, _ADMIN_ONLY_ADMIN)
    return ALLOWED


_ADMIN_ONLY_ADMIN = (
    "Only admins (the Administrator permission or an admin role) can give or take the `admin` capability; "
    "an `admin` grant does not reach that far."
)


# -- refusal sentences -------------------------------------------------------------------------------------


def _where(server: str | None, server_label: str | None) -> str:
    if server is None:
        return "all servers"
    return server_label or f"`{server}`"


def _admin_means(admin_roles_configured: bool) -> str:
    if admin_roles_configured:
        return "the Administrator permission or one of the admin roles"
    return "the Administrator permission"


def _refusal(
    capability: Capability, server: str | None, what: str, server_label: str | None, admin_roles: bool
) -> str:
    if capability is Capability.ADMIN:
        return f"Only admins can use {what}: you need {_admin_means(admin_roles)}."
    return (
        f"Only admins, or members granted `{capability}` on {_where(server, server_label)}, can use {what}; "
        "an admin can give that with /access grant."
    )


def _inline(text: str, limit: int) -> str:
    text = text.replace("`", "ˋ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pattern_refusal(
    patterns: Sequence[str], command: str, server: str | None, server_label: str | None
) -> str:
    shown: list[str] = []
    used = 0
    for pattern in patterns:
        item = f"`{_inline(pattern, MAX_PATTERN_LENGTH)}`"
        if used + len(item) > _SHOWN_PATTERNS_LENGTH:
            shown.append(f"and {len(patterns) - len(shown)} more")
            break
        shown.append(item)
        used += len(item) + 2
    return (
        f"On {_where(server, server_label)} you may send only commands matching {', '.join(shown)}; "
        f"`{_inline(command, 100)}` matches none of them."
    )


# -- command patterns --------------------------------------------------------------------------------------


def command_matches(pattern: str, command: str) -> bool:
    """True when `command` matches `pattern` as a whole, ignoring case; `*` matches anything, even nothing.

    Every other character is literal (no `?` or `[...]`), and nothing in the command is special either: with
    `say *`, `say hi; stop` is allowed, because `;` separates nothing on most game consoles (one `send command`
    is one console line; Source-engine consoles are the exception the README warns about). The command is compared exactly as it will be sent: the bot trims nothing, so a leading
    space is part of the text (` stop` matches neither `stop` nor `say *`). Matching is greedy left to right,
    which is exact for a `*`-only glob: one scan of the command per literal piece, no backtracking.
    """
    text = command.casefold()
    pieces = pattern.casefold().split("*")
    if len(pieces) == 1:
        return text == pieces[0]
    head, *middle, tail = pieces
    if len(text) < len(head) + len(tail) or not text.startswith(head) or not text.endswith(tail):
        return False
    position, end = len(head), len(text) - len(tail)
    for piece in middle:
        if not piece:
            continue
        found = text.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def parse_patterns(text: str) -> tuple[str, ...]:
    """Comma-separated patterns as typed in /access grant, trimmed and de-duplicated; PatternError if unusable.

    A pattern cannot hold a comma (it separates them) or a control character, and runs of `*` mean one `*`.
    """
    patterns: list[str] = []
    for raw in text.split(","):
        pattern = raw.strip()
        while "**" in pattern:
            pattern = pattern.replace("**", "*")
        if not pattern:
            continue
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in pattern):
            raise PatternError("A command pattern cannot hold a line break or another control character.")
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise PatternError(
                f"A command pattern can be at most {MAX_PATTERN_LENGTH} characters long; "
                f"`{_inline(pattern, 40)}` has {len(pattern)}."
            )
        if pattern.casefold() not in (p.casefold() for p in patterns):
            patterns.append(pattern)
    if not patterns:
        raise PatternError("Give at least one command pattern, e.g. `say *, whitelist add *`.")
    if len(patterns) > MAX_PATTERNS:
        raise PatternError(
            f"One grant can hold at most {MAX_PATTERNS} command patterns; {len(patterns)} were given."
        )
    return tuple(patterns)
