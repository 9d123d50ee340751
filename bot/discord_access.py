"""The Discord-facing side of access: read a member's facts from Discord objects, ask `bot.access`.

Everything is read from the data that came with the interaction or message itself (the member's own role IDs
and the permissions Discord computed for it), never from a member cache that could be stale or empty. The
guild's grants come from the bot's grant book, in memory: a check costs no store query.

`check_action` is the one check for everything that acts on a server: slash commands (`check_command`, which
the guard runs for the tree), buttons, selects and modals (boards), and console input (`check_console_input`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import discord

from bot.access import (
    ALLOWED,
    Capability,
    Member,
    ServerScope,
    Verdict,
    autocomplete_capabilities,
    decide,
    is_admin,
    required_capability,
    servers_for,
)
from bot.catalog import ServerCatalog
from bot.grants import GrantBook
from bot.lookup import ServerLookupError, resolve_server
from bot.panel.models import Server
from bot.render import label as label_of
from bot.settings import Settings

DM_REFUSAL = "Wingbeat's commands work in servers only, not in direct messages."
LOOKUP_WAIT = (
    1.5  # the check answers within Discord's 3 s: the cached server list, or this long for a first one
)


class AccessHost(Protocol):
    """What the check needs from the bot: its settings (admin roles) and the grant book."""

    @property
    def settings(self) -> Settings: ...

    @property
    def grant_book(self) -> GrantBook: ...

    @property
    def catalog(self) -> ServerCatalog: ...


def _role_ids(member: discord.Member) -> list[int]:
    # `_roles` holds exactly the role IDs of the payload; `Member.roles` would drop IDs the guild
    # cache does not know yet, which would silently demote an admin.
    return list(member._roles)


def interaction_member(interaction: discord.Interaction) -> Member | None:
    """The access facts of the member behind an interaction (None outside a guild)."""
    user = interaction.user
    if interaction.guild_id is None or not isinstance(user, discord.Member):
        return None
    return Member(
        interaction.guild_id, user.id, frozenset(_role_ids(user)), interaction.permissions.administrator
    )


def message_member(message: discord.Message) -> Member | None:
    """The access facts of a guild message's author (None for DMs, webhooks and departed members)."""
    author = message.author
    if message.guild is None or message.webhook_id is not None or not isinstance(author, discord.Member):
        return None
    return Member(
        message.guild.id, author.id, frozenset(_role_ids(author)), author.guild_permissions.administrator
    )


def member_is_admin(member: discord.Member, *, administrator: bool, admin_role_ids: Collection[int]) -> bool:
    """True when `member` holds the Administrator permission or an admin role."""
    return is_admin(administrator=administrator, role_ids=_role_ids(member), admin_role_ids=admin_role_ids)


def interaction_is_admin(interaction: discord.Interaction, admin_role_ids: Collection[int]) -> bool:
    """Admin standing from the interaction's own member data (False outside a guild)."""
    member = interaction_member(interaction)
    return member is not None and is_admin(
        administrator=member.administrator, role_ids=member.role_ids, admin_role_ids=admin_role_ids
    )


def message_author_is_admin(message: discord.Message, admin_role_ids: Collection[int]) -> bool:
    """Admin standing of a guild message's author (False for DMs, webhooks and departed members)."""
    member = message_member(message)
    return member is not None and is_admin(
        administrator=member.administrator, role_ids=member.role_ids, admin_role_ids=admin_role_ids
    )


# -- the one check -------------------------------------------------------------------------------------------


def _server_parts(server: Server | str | None) -> tuple[str | None, str | None]:
    if isinstance(server, Server):
        return server.identifier, label_of(server)
    return server, None


def _host(client: discord.Client) -> AccessHost:
    return cast(AccessHost, client)


def decide_for(
    host: AccessHost,
    member: Member,
    capability: Capability,
    server: Server | str | None,
    command: str | None = None,
    *,
    what: str = "that",
    label: str | None = None,
) -> Verdict:
    """`bot.access.decide` with the host's grants and admin roles; `server` may be a Server (named in refusals)."""
    identifier, named = _server_parts(server)
    label = label or named
    return decide(
        member,
        capability,
        identifier,
        grants=host.grant_book.grants(member.guild_id),
        admin_role_ids=host.settings.admin_role_ids,
        command=command,
        what=what,
        server_label=label,
    )


def check_action(
    interaction: discord.Interaction,
    capability: Capability,
    server: Server | str | None,
    command: str | None = None,
    *,
    what: str = "that",
) -> Verdict:
    """May the member behind `interaction` use `capability` on `server` (None: no one server)?

    `command` is a console command exactly as it will be sent (for `control.console`); `what` names the action
    in the refusal ("/power stop", "the Restart button"). Outside a guild the answer is always no.
    """
    member = interaction_member(interaction)
    if member is None:
        return Verdict(False, DM_REFUSAL)
    return decide_for(_host(interaction.client), member, capability, server, command, what=what)


def check_console_input(
    host: AccessHost, message: discord.Message, server: str, command: str
) -> Verdict | None:
    """May this message's author send `command` to `server` as console input?

    None when the author holds no `control.console` on that server at all: their message is conversation, not
    a command, and is left alone. A Verdict otherwise (a refusal names the allowed patterns).
    """
    member = message_member(message)
    if member is None:
        return None
    if not decide_for(host, member, Capability.CONSOLE, server).allowed:
        return None
    return decide_for(host, member, Capability.CONSOLE, server, command, what="console input")


def allowed_servers(interaction: discord.Interaction, capabilities: Collection[Capability]) -> ServerScope:
    """The servers the member behind `interaction` may pick where one of `capabilities` is needed."""
    member = interaction_member(interaction)
    if member is None:
        return ServerScope()
    host = _host(interaction.client)
    return servers_for(
        member,
        capabilities,
        grants=host.grant_book.grants(member.guild_id),
        admin_role_ids=host.settings.admin_role_ids,
    )


# -- slash commands ---------------------------------------------------------------------------------------


# Commands that list servers rather than act on one: allowed to a member who may see any server, and they
# show just those servers.
LISTINGS = frozenset({"servers"})


@dataclass(frozen=True, slots=True)
class CommandCheck:
    """The verdict on a slash command, the table key it was judged by ("power stop"), and the server judged."""

    verdict: Verdict
    key: str
    server: str | None = None


def _leaf(data: MutableMapping[str, Any]) -> list[MutableMapping[str, Any]]:
    options: list[MutableMapping[str, Any]] = data.get("options") or []
    while len(options) == 1 and "options" in options[0] and "value" not in options[0]:
        options = options[0]["options"] or []
    return options


def _pin_server(data: MutableMapping[str, Any], identifier: str) -> None:
    # The command runs with the identifier the check judged, not the typed name resolved again later against
    # a server list that may have changed meanwhile (a new server named exactly like the typed prefix).
    for option in _leaf(data):
        if option.get("name") == "server":
            option["value"] = identifier


async def check_command(interaction: discord.Interaction) -> CommandCheck:
    """May the member run this slash command, with these options? Decided before anything else happens.

    The `server` option is read from the interaction's own data and resolved against the cached server list
    (answered within Discord's 3 s); when the verdict needed it, the option is pinned to the identifier judged.
    `/command`'s `command` is judged against the member's command patterns.
    """
    command = interaction.command
    name = command.qualified_name if command is not None else ""
    data = cast(MutableMapping[str, Any], interaction.data or {})
    options = leaf_options(data)
    key = command_key(name, options)
    member = interaction_member(interaction)
    if member is None:
        return CommandCheck(Verdict(False, DM_REFUSAL), key)
    capability = required_capability(key)
    console = options.get("command") if capability is Capability.CONSOLE else None
    text = options.get("server")
    host = _host(interaction.client)
    what = f"/{key}"
    if not isinstance(text, str):
        if key in LISTINGS and allowed_servers(interaction, (capability,)):
            return CommandCheck(ALLOWED, key)  # the listing shows only the servers the member may see
        return CommandCheck(decide_for(host, member, capability, None, _text(console), what=what), key)
    # Admins, `*` grants, an open view and a picked identifier are settled without looking the server up.
    first = decide_for(host, member, capability, text, _text(console), what=what, label=f"`{_short(text)}`")
    if first.allowed:
        return CommandCheck(first, key)
    try:
        server = resolve_server(text, await host.catalog.cached(LOOKUP_WAIT))
    except ServerLookupError:
        # An unknown server: only grants on all servers could have allowed it, and none did.
        return CommandCheck(first, key)
    verdict = decide_for(host, member, capability, server, _text(console), what=what)
    if verdict.allowed:
        _pin_server(data, server.identifier)
    return CommandCheck(verdict, key, server.identifier)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split()).replace("`", "ˋ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- reading a slash command's options ---------------------------------------------------------------------


def leaf_options(data: Mapping[str, Any] | None, *, focused: bool = True) -> dict[str, Any]:
    """A command interaction's own option values by name, below any subcommand (group).

    `focused=False` leaves out the option an autocomplete is for: its value is partial text, not a choice.
    """
    options: Sequence[Mapping[str, Any]] = (data or {}).get("options") or []
    while len(options) == 1 and "options" in options[0] and "value" not in options[0]:
        options = options[0]["options"] or []
    return {
        str(o["name"]): o.get("value")
        for o in options
        if "name" in o and "options" not in o and (focused or not o.get("focused"))
    }


def command_key(name: str, options: Mapping[str, Any]) -> str:
    """The access table's key for a command: `/power` with its action ("power stop"), others by name."""
    if name == "power" and isinstance(options.get("action"), str):
        return f"power {options['action']}"
    return name


def capability_of(name: str, options: Mapping[str, Any]) -> Capability:
    """What invoking command `name` with these options needs."""
    return required_capability(command_key(name, options))


def autocomplete_scope(interaction: discord.Interaction) -> ServerScope:
    """The servers to offer while a member types the `server` option of the command being invoked."""
    command = interaction.command
    if command is None:
        return ServerScope()
    options = leaf_options(cast(Mapping[str, Any], interaction.data), focused=False)
    key = command_key(command.qualified_name, options)
    return allowed_servers(interaction, autocomplete_capabilities(key))


def filter_servers(servers: Iterable[Server], scope: ServerScope) -> list[Server]:
    """The servers in `scope`, in the given order."""
    return [server for server in servers if server.identifier in scope]
