"""/console link|unlink|list, and console input typed into a linked channel (CONSOLE_INPUT=true)."""

from __future__ import annotations

import contextlib
import logging
import time

import discord
from discord import app_commands
from discord.ext import commands

from bot.access import Verdict
from bot.app import WingbeatBot
from bot.audit import AuditAction
from bot.discord_access import check_console_input, message_author_is_admin
from bot.guard import foreign_guild_refusal
from bot.health_report import LinkReport
from bot.lookup import ServerLookupError, resolve_server
from bot.panel.errors import PanelError
from bot.panel.models import Server
from bot.panel.pacing import Priority
from bot.redact import hide_addresses
from bot.render import label, name_label, plural, relative
from bot.replies import defer, reply
from bot.server_option import resolve, server_autocomplete
from bot.store import How, Link
from bot.tree import Refusal
from bot.wings.errors import ActionRefused, WingsError

log = logging.getLogger(__name__)

SENT, REFUSED, FAILED = "✅", "⛔", "⚠️"
# Only what a member typed counts: system messages (a thread named "stop", a pin, a join, a rename…) never do.
TYPED = (discord.MessageType.default, discord.MessageType.reply)
# What the bot needs in a channel to mirror a console into it (attachments carry floods and long lines).
NEEDED = ("view_channel", "send_messages")
NEEDED_IN_THREADS = ("view_channel", "send_messages_in_threads")
# The permissions as Discord's settings name them.
PERMISSION_NAMES = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "send_messages_in_threads": "Send Messages in Threads",
}
# A channel linked before its guild left GUILD_IDS is told why at most this often (seconds), however many type.
FOREIGN_REPLY_EVERY = 60.0


def _channel_id(
    interaction: discord.Interaction[WingbeatBot], channel: discord.TextChannel | discord.Thread | None
) -> int:
    if channel is not None:
        return channel.id
    if interaction.channel_id is None:
        raise Refusal("Choose a channel.")
    return interaction.channel_id


def _check_bot_can_post(interaction: discord.Interaction[WingbeatBot], channel_id: int) -> str:
    """Refuse a channel the bot cannot post in; returns a warning for what merely degrades the mirror."""
    guild = interaction.guild
    target = guild.get_channel_or_thread(channel_id) if guild is not None else None
    me = guild.me if guild is not None else None
    if target is None or me is None:
        return ""  # not cached: the relay reports a refusal in its own way
    if not isinstance(target, discord.abc.Messageable):
        raise Refusal(f"{target.mention} is not a channel Wingbeat can post messages in.")
    perms = target.permissions_for(me)
    needed = NEEDED_IN_THREADS if isinstance(target, discord.Thread) else NEEDED
    missing = [name for name in needed if not getattr(perms, name)]
    if missing:
        names = " and ".join(PERMISSION_NAMES[n] for n in missing)
        raise Refusal(f"Wingbeat lacks {names} in {target.mention}; grant it there and try again.")
    if not perms.attach_files:
        return (
            "\nNote: without Attach Files, long console output comes as several messages instead of one file."
        )
    return ""


def _link_servers(links: list[Link]) -> list[Server]:
    seen: dict[str, Server] = {}
    for link in links:
        seen.setdefault(link.server_identifier, Server(link.server_identifier, "", link.server_name))
    return list(seen.values())


def link_line(report: LinkReport) -> str:
    """One link of `/console list`: where it goes, its connection, and its relay figures."""
    link, conn, relay = report.link, report.connection, report.relay
    where = f"{name_label(link.server_name, link.server_identifier)} → <#{link.channel_id}>"
    if link.stopped_reason:
        return f"{where} · ⛔ stopped: {link.stopped_reason} (link it again to retry)"
    state = "not open" if conn is None else conn.state.value
    if conn is not None and conn.stopped_reason:
        state += f" ({conn.stopped_reason})"
    elif conn is not None and conn.last_error:
        state += f" (last error: {conn.last_error})"
    parts = [
        f"{name_label(link.server_name, link.server_identifier)} → <#{link.channel_id}>",
        f"console {state}",
    ]
    if relay is None:
        parts.append("not running in the relay")
    else:
        if relay.stopped:
            parts.append(f"stopped: {relay.stopped}")
        parts.append(f"{relay.messages} messages, last {relative(relay.last_post_at)}")
        if relay.pending_lines:
            parts.append(f"backlog {relay.pending_lines} lines ({relay.pending_bytes} bytes)")
        if relay.dropped:
            parts.append(f"{relay.dropped} lines dropped")
        if relay.last_error:
            parts.append(f"last error: {relay.last_error}")
    return hide_addresses(" · ".join(parts))


class ConsoleCog(commands.Cog):
    """Mirrors game server consoles into channels."""

    console = app_commands.Group(
        name="console", description="Mirror a game server's console into a channel", guild_only=True
    )

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot
        self._foreign_told: dict[int, float] = {}  # channel -> when it was last told (monotonic)

    @console.command(name="link", description="Start mirroring a game server's console into a channel")
    @app_commands.describe(server="The game server", channel="Where to post (default: this channel)")
    @app_commands.autocomplete(server=server_autocomplete)
    async def link(
        self,
        interaction: discord.Interaction[WingbeatBot],
        server: str,
        channel: discord.TextChannel | discord.Thread | None = None,
    ) -> None:
        channel_id = _channel_id(interaction, channel)
        note = _check_bot_can_post(interaction, channel_id)
        await defer(interaction, ephemeral=True)
        found = await resolve(self.bot.catalog, server, priority=Priority.ACTION)
        assert interaction.guild_id is not None  # the guard refuses DMs
        added = await self.bot.auditor.run(
            AuditAction.by(
                interaction, server=found.identifier, action="link", arguments=f"channel={channel_id}"
            ),
            self.bot.links.add(
                guild_id=interaction.guild_id,
                channel_id=channel_id,
                server=found,
                created_by=interaction.user.id,
            ),
            lambda ok: "linked" if ok else "already linked",
        )
        if added:
            text = f"Mirroring the console of {label(found)} into <#{channel_id}>.{note}"
        else:
            text = f"The console of {label(found)} is already mirrored into <#{channel_id}>."
        await reply(interaction, text, ephemeral=True)

    @console.command(name="unlink", description="Stop mirroring a game server's console into a channel")
    @app_commands.describe(server="The game server", channel="Which channel (default: this channel)")
    @app_commands.autocomplete(server=server_autocomplete)
    async def unlink(
        self,
        interaction: discord.Interaction[WingbeatBot],
        server: str,
        channel: discord.TextChannel | discord.Thread | None = None,
    ) -> None:
        channel_id = _channel_id(interaction, channel)
        await defer(interaction, ephemeral=True)
        assert interaction.guild_id is not None
        links = await self.bot.links.guild_links(interaction.guild_id)
        try:
            # A linked server is found even when the panel is down or no longer lists it.
            found = resolve_server(server, _link_servers(links))
        except ServerLookupError:
            found = await resolve(self.bot.catalog, server, priority=Priority.ACTION)
        removed = await self.bot.auditor.run(
            AuditAction.by(
                interaction, server=found.identifier, action="unlink", arguments=f"channel={channel_id}"
            ),
            self.bot.links.remove(channel_id=channel_id, server_identifier=found.identifier),
            lambda ok: "unlinked" if ok else "was not linked",
        )
        if removed:
            text = f"Stopped mirroring the console of {label(found)} into <#{channel_id}>."
        else:
            text = f"The console of {label(found)} is not mirrored into <#{channel_id}>."
        await reply(interaction, text, ephemeral=True)

    @console.command(name="list", description="This server's console links and the health of each")
    async def list_links(self, interaction: discord.Interaction[WingbeatBot]) -> None:
        assert interaction.guild_id is not None
        reports = await self.bot.reports.links(interaction.guild_id)
        if not reports:
            await reply(interaction, "No console links here yet; add one with /console link.", ephemeral=True)
            return
        lines = [f"{plural(len(reports), 'console link')}:", *("• " + link_line(r) for r in reports)]
        await reply(
            interaction,
            "\n".join(lines),
            ephemeral=True,
            filename="links.txt",
            summary=f"{lines[0]} see the file.",
        )

    # console input ------------------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        # Only new messages: an edit (on_message_edit, never listened to) is not a second command.
        if not self.bot.settings.console_input:
            return
        if message.guild is None or message.author.bot or message.webhook_id is not None:
            return
        if message.type not in TYPED:
            return
        if not self.bot.guard.is_allowed(message.guild.id):
            # Never a command. The operator sees the guild logged; only its admins typing where a console was
            # linked get an answer, since they expect one (`_refuse_foreign`).
            self.bot.guard.note_guild(message.guild.id, message.guild.name)
            await self._refuse_foreign(message)
            return
        servers = self.bot.relay.servers_for_channel(message.channel.id)
        if not servers or not message.content:
            return
        # The text exactly as typed is what is matched against the member's command patterns and what is sent.
        verdicts = [check_console_input(self.bot, message, server, message.content) for server in servers]
        if all(verdict is None for verdict in verdicts):
            return  # other people talk in console channels too: not an error, just not a command
        if self.bot.guard.closing:
            log.info("console input in channel %d ignored: shutting down", message.channel.id)
            return
        with self.bot.guard.tracked(message.id):
            await self._console_input(message, servers, verdicts[0])

    async def _refuse_foreign(self, message: discord.Message) -> None:
        """Tell an admin typing in a channel linked before its guild left GUILD_IDS why nothing happens.

        Once a minute per channel at most, and nothing reaches the panel, Wings or the store. Everyone else
        in a foreign guild, and every other channel there, is left alone: the bot does not talk where it may
        not be used, unless someone is evidently waiting for it.
        """
        assert message.guild is not None
        channel_id = message.channel.id
        if self.bot.links.foreign_guild(channel_id) is None or not message.content:
            return
        if not message_author_is_admin(message, self.bot.settings.admin_role_ids):
            return
        now = time.monotonic()
        told = self._foreign_told.get(channel_id)
        if told is not None and now - told < FOREIGN_REPLY_EVERY:
            return
        self._foreign_told[channel_id] = now
        await self.bot.discord_budget.acquire()
        try:
            await message.reply(
                foreign_guild_refusal(message.guild.id),
                allowed_mentions=discord.AllowedMentions.none(),
                mention_author=False,
            )
        except discord.HTTPException as exc:
            log.info("could not tell channel %d that its guild is not in GUILD_IDS: %s", channel_id, exc)

    async def _console_input(
        self, message: discord.Message, servers: list[str], verdict: Verdict | None
    ) -> None:
        command = message.content
        server = servers[0] if len(servers) == 1 else None
        action = AuditAction(
            message.guild.id if message.guild else None, message.author.id, server, "console input", command,
            How.CONSOLE_INPUT,
        )  # fmt: skip
        if server is None:
            # Recorded before the reaction, so a reaction always means the audit log has it.
            await self.bot.auditor.record(
                action, "refused: the channel mirrors several servers; use /command"
            )
            icon = REFUSED
        elif verdict is None or not verdict.allowed:
            # A member who may send some commands, but not this one (its patterns say so).
            reason = verdict.reason if verdict is not None else "not allowed"
            await self.bot.auditor.record(action, f"refused: {reason}")
            icon = REFUSED
        else:
            handle = await self.bot.auditor.start(action)
            icon, outcome = await self._send(server, command)
            await self.bot.auditor.finish(handle, outcome)
        with contextlib.suppress(discord.HTTPException):
            await message.add_reaction(icon)

    async def _send(self, server: str, command: str) -> tuple[str, str]:
        """Send one console-input command; the reaction and the audit outcome."""
        try:
            await self.bot.manager.send_command(server, command, window=0.0)
        except ActionRefused as exc:
            return REFUSED, f"refused: {exc}"
        except (WingsError, PanelError) as exc:
            return FAILED, f"failed: {exc}"
        except Exception as exc:
            log.exception("console input for %s failed", server)
            return FAILED, f"error: {type(exc).__name__}"
        return SENT, "sent"


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(ConsoleCog(bot))
