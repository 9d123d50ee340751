"""What `wingbeat check` concludes from what it observed: one `Line` per check, ✓ or ✗ and what to do.

Pure code: the facts arrive as small frozen dataclasses gathered by `bot.check.probes`, so every verdict
and every fix sentence is a fast unit test. No fact or line ever holds a secret (token, key, JWT).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

import discord

from bot.wings.tokens import has_permission

# -- lines ---------------------------------------------------------------------------------------------------


class Mark(StrEnum):
    """A check's outcome as printed."""

    PASS = "✓"
    FAIL = "✗"
    SKIP = "–"  # not checked, because an earlier check failed or there is nothing to check


@dataclass(frozen=True, slots=True)
class Line:
    """One check's result: `title: text`, indented `details`, and for a failure the `fix`."""

    mark: Mark
    title: str
    text: str
    fix: str = ""
    details: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.mark is Mark.FAIL


def _pass(title: str, text: str, details: Sequence[str] = ()) -> Line:
    return Line(Mark.PASS, title, text, details=tuple(details))


def _fail(title: str, text: str, fix: str, details: Sequence[str] = ()) -> Line:
    return Line(Mark.FAIL, title, text, fix, tuple(details))


def _skip(title: str, text: str) -> Line:
    return Line(Mark.SKIP, title, text)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def display_url(url: str) -> str:
    """`url` without any `user:password@` part, for printing."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


# -- settings ------------------------------------------------------------------------------------------------


def settings_failed(reason: str) -> Line:
    """The settings could not be loaded; `reason` names the variable (never its value)."""
    return _fail(
        "Settings",
        reason,
        "Fix that variable in the environment or in the .env file of the folder you run Wingbeat from "
        "(.env.example lists every setting).",
    )


def settings_loaded(*, panel_url: str, guilds: int, console_input: bool, source: str) -> Line:
    return _pass(
        "Settings",
        f"complete (read from {source}); panel {display_url(panel_url)}, {_plural(guilds, 'guild')} in GUILD_IDS, "
        f"CONSOLE_INPUT {'on' if console_input else 'off'}",
    )


# -- the panel and its key ----------------------------------------------------------------------------------

CLIENT_KEY_PREFIXES = ("ptlc_", "pacc_")  # Pterodactyl, Pelican
APPLICATION_KEY_PREFIXES = ("ptla_", "papp_")
_NEW_KEY = (
    "Log in to the panel as the user whose servers Wingbeat should control, open Account → API Credentials, "
    "create a key and put it in PANEL_API_KEY (a client key: ptlc_… on Pterodactyl, pacc_… on Pelican)."
)


class KeyKind(StrEnum):
    CLIENT = "client"
    APPLICATION = "application"
    UNKNOWN = "unknown"  # keys made before the panel added prefixes


def key_kind(key: str) -> tuple[KeyKind, str]:
    """The key's kind and its type prefix (e.g. `ptla_`, safe to print: it is the same for every key)."""
    for prefixes, kind in (
        (CLIENT_KEY_PREFIXES, KeyKind.CLIENT),
        (APPLICATION_KEY_PREFIXES, KeyKind.APPLICATION),
    ):
        for prefix in prefixes:
            if key.startswith(prefix):
                return kind, prefix
    return KeyKind.UNKNOWN, ""


class PanelOutcome(StrEnum):
    """How the panel answered `GET /api/client/account`."""

    OK = "ok"
    UNREACHABLE = "unreachable"  # no answer at all: DNS, refused, TLS, timeout
    NOT_A_PANEL = "not a panel"  # an answer, but not the panel's Client API
    KEY_REJECTED = "key rejected"  # 401
    APPLICATION_KEY = "application key"  # 403 saying an application key was used
    IP_NOT_ALLOWED = "ip not allowed"  # 403 from the key's IP allow-list
    ERROR = "error"  # 5xx or anything else


@dataclass(frozen=True, slots=True)
class PanelFacts:
    """The panel's answer to the first request; `message` is the client's own sentence for a failure."""

    url: str
    outcome: PanelOutcome
    message: str = ""
    username: str = ""

    @property
    def answered(self) -> bool:
        return self.outcome not in (PanelOutcome.UNREACHABLE, PanelOutcome.NOT_A_PANEL, PanelOutcome.ERROR)


def panel_answers(facts: PanelFacts) -> Line:
    title = "Panel answers"
    if facts.answered:
        return _pass(title, facts.url)
    if facts.outcome is PanelOutcome.UNREACHABLE:
        return _fail(
            title,
            f"no. {facts.message}",
            f"Check PANEL_URL ({facts.url}) and that this machine can reach it: DNS, firewall, TLS certificate, "
            "and that the panel is up.",
        )
    if facts.outcome is PanelOutcome.NOT_A_PANEL:
        return _fail(
            title,
            f"{facts.url} answered, but not as a Pterodactyl/Pelican panel ({facts.message})",
            "Set PANEL_URL to the panel's base address, the one you open in a browser, without /api.",
        )
    return _fail(title, f"the panel answered with an error: {facts.message}", "Look at the panel's own logs.")


def panel_key(facts: PanelFacts, kind: KeyKind, prefix: str) -> Line:
    title = "Panel key"
    if kind is KeyKind.APPLICATION or facts.outcome is PanelOutcome.APPLICATION_KEY:
        shown = f" ({prefix}…)" if prefix else ""
        return _fail(
            title, f"PANEL_API_KEY is an application key{shown}; Wingbeat needs a client key", _NEW_KEY
        )
    if facts.outcome is PanelOutcome.KEY_REJECTED:
        return _fail(title, "the panel rejected PANEL_API_KEY (401: unknown, revoked or mistyped)", _NEW_KEY)
    if facts.outcome is PanelOutcome.IP_NOT_ALLOWED:
        return _fail(
            title,
            "the key's IP allow-list does not include this machine",
            "Edit the key under Account → API Credentials and allow this machine's address, or create a key "
            "without an allow-list.",
        )
    if facts.outcome is PanelOutcome.OK:
        user = f" of panel user {facts.username!r}" if facts.username else ""
        return _pass(title, f"a client key{user}")
    return _skip(title, "not checked (the panel did not answer)")


# -- servers and their permissions ---------------------------------------------------------------------------

SERVER_PERMISSIONS = (
    "websocket.connect",
    "control.console",
    "control.start",
    "control.stop",
    "control.restart",
)


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """A server the key sees; `permissions` is the panel's `user_permissions` (None: could not be read)."""

    name: str
    identifier: str
    node: str = ""
    permissions: frozenset[str] | None = None
    error: str = ""


def missing_permissions(permissions: Collection[str]) -> tuple[str, ...]:
    """Which permissions Wingbeat uses are not granted, the way Wings decides (`*` covers them all)."""
    return tuple(p for p in SERVER_PERMISSIONS if not has_permission(permissions, p))


def servers_line(panel_ok: bool, servers: Sequence[ServerFacts] | None, error: str = "") -> Line:
    title = "Servers"
    if not panel_ok:
        return _skip(title, "not checked (the panel key does not work)")
    if servers is None:
        return _fail(
            title,
            f"the server list could not be read: {error}",
            "Run the check again; if it persists, look at the panel's logs.",
        )
    if not servers:
        return _fail(
            title,
            "the key sees no servers",
            "Use a key of a user who owns the servers or is a subuser on them (Account → API Credentials of that user).",
        )
    problems: list[str] = []
    for server in servers:
        label = f"{server.name} ({server.identifier})"
        if server.permissions is None:
            problems.append(f"{label}: permissions could not be read: {server.error}")
            continue
        missing = missing_permissions(server.permissions)
        if missing:
            problems.append(f"{label}: lacks {', '.join(missing)}")
    seen = f"the key sees {_plural(len(servers), 'server')}"
    if not problems:
        return _pass(title, f"{seen}, with every permission Wingbeat uses on each")
    return _fail(
        title,
        f"{seen}; {len(problems)} of them {'lacks' if len(problems) == 1 else 'lack'} permissions Wingbeat uses",
        "On the panel, give the key's user these permissions on those servers (the server's Users page), "
        "or use a key of the servers' owner. Commands needing a missing permission will be refused.",
        problems,
    )


# -- Wings -------------------------------------------------------------------------------------------------


class WingsOutcome(StrEnum):
    """What happened when one console socket was opened and authenticated."""

    OK = "ok"
    ORIGIN_REFUSED = "origin refused"  # HTTP 403 to the upgrade
    CLOCK_SKEW = "clock skew"  # an immediate `jwt: exp claim is invalid`
    TOKEN_REFUSED = "token refused"  # any other `jwt error`
    DAEMON_ERROR = "daemon error"
    UNREACHABLE = "unreachable"  # no TCP/TLS connection, or not a websocket server
    UPGRADE_FAILED = "upgrade failed"  # another HTTP status to the upgrade
    NO_ANSWER = "no answer"  # no `auth success` in time
    CLOSED = "closed"  # the socket closed before `auth success`
    NO_CREDENTIALS = "no credentials"  # the panel would not issue a token
    NO_SERVER = "no server"  # no server on the node the key may open a console on


@dataclass(frozen=True, slots=True)
class ClockReading:
    """Clock offsets against this machine, in seconds (None: not measured); `lifetime` of the token."""

    panel_offset: float | None
    node_offset: float | None
    lifetime: int | None


@dataclass(frozen=True, slots=True)
class WingsFacts:
    """One node's socket check. `issuer` is the token's `iss` claim: the panel's own idea of its URL."""

    node: str
    outcome: WingsOutcome
    address: str = ""
    server: str = ""
    detail: str = ""
    origin: str = ""
    issuer: str = ""
    clock: ClockReading | None = None


def wings_unchecked(why: str) -> Line:
    return _skip("Wings", f"not checked ({why})")


def _seconds(value: float) -> str:
    return f"{round(value):+d} s"


def clock_skew_text(clock: ClockReading | None) -> str:
    """How far apart the panel's and the node's clocks are, from what could be measured."""
    if clock is None:
        return "the clocks could not be measured"
    if clock.panel_offset is not None and clock.node_offset is not None:
        skew = clock.node_offset - clock.panel_offset
        direction = "ahead of" if skew >= 0 else "behind"
        return (
            f"the node's clock is {abs(skew):.0f} s {direction} the panel's "
            f"(against this machine: panel {_seconds(clock.panel_offset)}, node {_seconds(clock.node_offset)})"
        )
    if clock.panel_offset is not None:
        return (
            f"the panel's clock is {_seconds(clock.panel_offset)} from this machine's; "
            "the node's clock could not be read"
        )
    if clock.node_offset is not None:
        return f"the node's clock is {_seconds(clock.node_offset)} from this machine's"
    return "the clocks could not be measured"


def wings_line(facts: WingsFacts) -> Line:
    where = f" ({facts.address})" if facts.address else ""
    title = f"Wings on node {facts.node!r}{where}" if facts.node else f"Wings{where}"
    via = f" via {facts.server}" if facts.server else ""
    outcome = facts.outcome
    if outcome is WingsOutcome.OK:
        return _pass(title, f"console socket opened and authenticated{via}")
    if outcome is WingsOutcome.NO_SERVER:
        return _skip(title, "not checked: no server there on which the key may open a console")
    if outcome is WingsOutcome.ORIGIN_REFUSED:
        hint = ""
        if facts.issuer and facts.issuer.rstrip("/") != facts.origin:
            hint = (
                f" The panel calls itself {facts.issuer.rstrip('/')}, which is what the panel writes there."
            )
        return _fail(
            title,
            f"Wings refused the socket (HTTP 403): the Origin sent, {facts.origin}, is not the panel URL "
            "Wings is configured with",
            "Set WINGS_ORIGIN to exactly the `remote:` value in the node's Wings config.yml "
            f"(same scheme, host and port, no trailing slash).{hint}",
        )
    if outcome is WingsOutcome.CLOCK_SKEW:
        lifetime = facts.clock.lifetime if facts.clock is not None else None
        life = f" (tokens live {lifetime} s)" if lifetime else ""
        return _fail(
            title,
            f"Wings called a fresh token expired at once (jwt: exp claim is invalid): clock skew; "
            f"{clock_skew_text(facts.clock)}",
            "Synchronise the clocks of the panel and node machines with NTP (e.g. `timedatectl set-ntp true` "
            f"on each): a skew near the token lifetime{life} expires every token on arrival.",
        )
    if outcome is WingsOutcome.TOKEN_REFUSED:
        text = facts.detail
        low = text.lower()
        if "denylist" in low:
            fix = (
                "The token was issued before Wings started (or was revoked): if this persists, the node's clock "
                "is ahead of the panel's; synchronise both with NTP."
            )
        elif "connect permission" in low:
            fix = "Give the key's user the websocket.connect permission on that server."
        else:
            fix = "Check the node's configuration on the panel (its token must match Wings' config.yml)."
        return _fail(title, f"Wings refused the token: {text}", fix)
    if outcome is WingsOutcome.DAEMON_ERROR:
        return _fail(
            title,
            f"Wings answered the token with an error: {facts.detail}",
            "The node's token on the panel may not match Wings' config.yml (a bad signature shows as this "
            "error); reconfigure the node from the panel's Configuration tab.",
        )
    if outcome is WingsOutcome.NO_CREDENTIALS:
        return _fail(
            title,
            f"the panel would not issue a console token{via}: {facts.detail}",
            "Give the key's user the websocket.connect permission, or fix the server's state on the panel.",
        )
    if outcome is WingsOutcome.UNREACHABLE:
        return _fail(
            title,
            f"could not connect: {facts.detail}",
            "The node's address and port as the panel gives them (the node's FQDN and daemon port) must be "
            "reachable from this machine: check DNS, firewall and the node's TLS certificate.",
        )
    if outcome is WingsOutcome.UPGRADE_FAILED:
        return _fail(
            title,
            f"the socket upgrade failed: {facts.detail}",
            "Check that the node's FQDN and port point at Wings itself (a reverse proxy must pass websockets).",
        )
    if outcome is WingsOutcome.NO_ANSWER:
        return _fail(
            title,
            f"no answer to the token: {facts.detail}",
            "Check the node's health on the panel; a proxy in front of Wings may be holding websocket frames.",
        )
    return _fail(
        title,
        f"the socket closed before authenticating: {facts.detail}",
        "Look at Wings' log on the node (journalctl -u wings); the server may be suspended.",
    )


# -- Discord -------------------------------------------------------------------------------------------------

GATEWAY_MESSAGE_CONTENT = 1 << 19
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 18
_PORTAL = "https://discord.com/developers/applications"


class DiscordOutcome(StrEnum):
    OK = "ok"
    TOKEN_REJECTED = "token rejected"
    UNREACHABLE = "unreachable"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DiscordFacts:
    """The Discord application as seen with the bot token. None fields could not be read."""

    outcome: DiscordOutcome
    message: str = ""
    bot_name: str = ""
    bot_id: int = 0
    application_id: int = 0
    bot_public: bool | None = None
    flags: int | None = None
    guilds: tuple[tuple[int, str], ...] | None = None  # (id, name) of every guild the bot is in

    @property
    def ok(self) -> bool:
        return self.outcome is DiscordOutcome.OK


def discord_token_line(facts: DiscordFacts) -> Line:
    title = "Discord token"
    if facts.ok:
        return _pass(title, f"valid; the bot is {facts.bot_name} (id {facts.bot_id})")
    if facts.outcome is DiscordOutcome.TOKEN_REJECTED:
        return _fail(
            title,
            "Discord rejected DISCORD_TOKEN (401)",
            f"In the developer portal ({_PORTAL}) open your application → Bot → Reset Token, and put the new "
            "token in DISCORD_TOKEN.",
        )
    if facts.outcome is DiscordOutcome.UNREACHABLE:
        return _fail(
            title,
            f"Discord could not be reached: {facts.message}",
            "Check this machine's internet access, and DISCORD_API_URL if you set it.",
        )
    return _fail(title, f"Discord answered with an error: {facts.message}", "Run the check again later.")


def public_bot_line(facts: DiscordFacts) -> Line:
    title = "Public bot"
    if not facts.ok:
        return _skip(title, "not checked (no valid Discord token)")
    if facts.bot_public is None:
        return _fail(title, "the application could not be read", "Run the check again later.")
    if not facts.bot_public:
        return _pass(title, "off; only you can add the bot to a server")
    return _fail(
        title,
        "on; anyone with the invite link can add the bot to their Discord server. Wingbeat refuses guilds "
        "outside GUILD_IDS, but a private bot is the first line of defence for the panel key it holds",
        f"In the developer portal ({_PORTAL}) open your application → Bot and turn off Public Bot.",
    )


def invite_url(application_id: int, guild_id: int) -> str:
    """The bot's invite link for one guild, with the scopes and permissions Wingbeat uses."""
    perms = discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        attach_files=True,
        read_message_history=True,
        add_reactions=True,
        embed_links=True,
    )
    return discord.utils.oauth_url(
        application_id,
        permissions=perms,
        guild=discord.Object(guild_id),
        scopes=("bot", "applications.commands"),
        disable_guild_select=True,
    )


def guilds_line(facts: DiscordFacts, allowed: Sequence[int]) -> Line:
    title = "Guilds in GUILD_IDS"
    if not facts.ok:
        return _skip(title, "not checked (no valid Discord token)")
    if facts.guilds is None:
        return _fail(title, "the bot's guilds could not be read", "Run the check again later.")
    names = dict(facts.guilds)
    missing = [g for g in allowed if g not in names]
    if not missing:
        listed = ", ".join(names[g] or str(g) for g in allowed)
        return _pass(title, f"the bot is in each: {listed}")
    return _fail(
        title,
        f"the bot is not in {len(missing)} of the {len(allowed)}",
        "Invite the bot with the link shown for each (or remove that ID from GUILD_IDS).",
        [f"{g}: {invite_url(facts.application_id or facts.bot_id, g)}" for g in missing],
    )


def other_guilds_line(facts: DiscordFacts, allowed: Sequence[int]) -> Line:
    title = "Other guilds"
    if not facts.ok:
        return _skip(title, "not checked (no valid Discord token)")
    if facts.guilds is None:
        return _fail(title, "the bot's guilds could not be read", "Run the check again later.")
    foreign = [(g, name) for g, name in facts.guilds if g not in set(allowed)]
    if not foreign:
        return _pass(title, "none; the bot is in no guild outside GUILD_IDS")
    return _fail(
        title,
        f"the bot is also in {_plural(len(foreign), 'guild')} outside GUILD_IDS, where it refuses every command",
        "Remove the bot from those servers (Server Settings → Integrations), or add their IDs to GUILD_IDS if "
        "they should use Wingbeat.",
        [f"{name} ({g})" for g, name in foreign],
    )


def intent_line(facts: DiscordFacts, console_input: bool) -> Line:
    title = "Message content intent"
    if not console_input:
        return _pass(title, "not needed (CONSOLE_INPUT is off)")
    if not facts.ok:
        return _skip(title, "not checked (no valid Discord token)")
    if facts.flags is None:
        return _fail(title, "the application could not be read", "Run the check again later.")
    if facts.flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED):
        return _pass(title, "enabled, as CONSOLE_INPUT needs")
    return _fail(
        title,
        "disabled, but CONSOLE_INPUT is on: Discord would refuse the bot's gateway connection",
        f"In the developer portal ({_PORTAL}) open your application → Bot and turn on Message Content Intent, "
        "or set CONSOLE_INPUT=false.",
    )


# -- linked channels -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    """A linked channel; `missing` the needed permissions the bot lacks there (None: `error` says why unknown)."""

    channel_id: int
    servers: tuple[str, ...]
    name: str = ""
    missing: tuple[str, ...] | None = None
    error: str = ""


def store_line(*, postgres: bool, error: str, text: str) -> Line:
    """The store named by DATABASE_URL: `error` when it cannot be used (the bot would not start)."""
    if not error:
        return _pass("Store", text)
    if postgres:
        fix = (
            "Check DATABASE_URL (host, port, user, password, database name) and that the PostgreSQL server "
            "accepts connections from this machine; the database must exist and belong to that user."
        )
    else:
        fix = "Check DATABASE_URL, and that the user running Wingbeat may read and write that file and its folder."
    return _fail("Store", error, fix)


def channels_unchecked(why: str) -> Line:
    return _skip("Linked channels", f"not checked: {why}")


def channels_line(channels: Sequence[ChannelFacts], store_note: str = "") -> Line:
    title = "Linked channels"
    if not channels:
        return _pass(title, f"none yet{f' ({store_note})' if store_note else ''}")
    problems: list[str] = []
    for channel in channels:
        label = f"#{channel.name} ({channel.channel_id})" if channel.name else str(channel.channel_id)
        servers = ", ".join(channel.servers)
        if channel.missing is None:
            problems.append(f"{label}, linked to {servers}: {channel.error}")
        elif channel.missing:
            problems.append(f"{label}, linked to {servers}: the bot lacks {', '.join(channel.missing)}")
    count = _plural(len(channels), "channel")
    if not problems:
        names = ", ".join(f"#{c.name}" if c.name else str(c.channel_id) for c in channels)
        return _pass(title, f"{count}, with every permission the bot needs ({names})")
    return _fail(
        title,
        f"the bot cannot work in {len(problems)} of {count}",
        "Grant the bot's role these permissions in each channel (Edit Channel → Permissions), or unlink a "
        "channel that is gone with /console unlink.",
        problems,
    )
