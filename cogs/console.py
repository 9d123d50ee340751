"""/console link|unlink|list, and console input typed into a linked channel (CONSOLE_INPUT=true)."""

from __future__ import annotations

import contextlib
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WingbeatBot
from bot.discord_access import message_author_is_admin
from bot.lookup import ServerLookupError, resolve_server
from bot.panel.errors import PanelError
from bot.panel.models import Server
from bot.relay.service import LinkHealth
from bot.store import How, Link
from bot.tree import Refusal
from bot.wings.connection import ActionRefused, WingsError
from cogs._common import ago, audited, defer, label, reply, resolve, server_autocomplete

log = logging.getLogger(__name__)

SENT, REFUSED, FAILED = "✅", "⛔", "⚠️"
# What the bot needs in a channel to mirror a console into it (attachments carry floods and long lines).
NEEDED = ("view_channel", "send_messages")
NEEDED_IN_THREADS = ("view_channel", "send_messages_in_threads")


def _channel_id(
    interaction: discord.Interaction, channel: discord.TextChannel | discord.Thread | None
) -> int:
    if channel is not None:
        return channel.id
    if interaction.channel_id is None:
        raise Refusal("Choose a channel.")
    return interaction.channel_id


def _check_bot_can_post(interaction: discord.Interaction, channel_id: int) -> str:
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
        names = " and ".join(n.replace("_", " ").title() for n in missing)
        raise Refusal(f"Wingbeat lacks {names} in {target.mention}; grant it there and try again.")
    if not perms.attach_files:
        return "\nNote: without Attach Files, floods of console output cannot be attached as files."
    return ""


def _link_servers(links: list[Link]) -> list[Server]:
    seen: dict[str, Server] = {}
    for link in links:
        seen.setdefault(link.server_identifier, Server(link.server_identifier, "", link.server_name))
    return list(seen.values())


def _health_text(link: Link, relay: LinkHealth | None, connection: str) -> str:
    name = f"**{discord.utils.escape_markdown(link.server_name)}** (`{link.server_identifier}`)"
    parts = [f"{name} → <#{link.channel_id}>", f"console {connection}"]
    if relay is None:
        parts.append("not running in the relay")
    else:
        if relay.stopped:
            parts.append(f"stopped: {relay.stopped}")
        parts.append(f"{relay.messages} messages, last {ago(relay.last_post_at)}")
        if relay.pending_lines:
            parts.append(f"backlog {relay.pending_lines} lines ({relay.pending_bytes} bytes)")
        if relay.dropped:
            parts.append(f"{relay.dropped} lines dropped")
        if relay.last_error:
            parts.append(f"last error: {relay.last_error}")
    return " · ".join(parts)


class ConsoleCog(commands.Cog):
    """Mirrors game server consoles into channels."""

    console = app_commands.Group(
        name="console", description="Mirror a game server's console into a channel", guild_only=True
    )

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot

    @console.command(name="link", description="Start mirroring a game server's console into a channel")
    @app_commands.describe(server="The game server", channel="Where to post (default: this channel)")
    @app_commands.autocomplete(server=server_autocomplete)
    async def link(
        self,
        interaction: discord.Interaction,
        server: str,
        channel: discord.TextChannel | discord.Thread | None = None,
    ) -> None:
        channel_id = _channel_id(interaction, channel)
        note = _check_bot_can_post(interaction, channel_id)
        await defer(interaction, ephemeral=True)
        found = await resolve(self.bot, server)
        assert interaction.guild_id is not None  # the tree refuses DMs
        added = await audited(
            interaction,
            server=found,
            action="link",
            arguments=f"channel={channel_id}",
            work=self.bot.add_link(
                guild_id=interaction.guild_id,
                channel_id=channel_id,
                server=found,
                created_by=interaction.user.id,
            ),
            outcome=lambda ok: "linked" if ok else "already linked",
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
        interaction: discord.Interaction,
        server: str,
        channel: discord.TextChannel | discord.Thread | None = None,
    ) -> None:
        channel_id = _channel_id(interaction, channel)
        await defer(interaction, ephemeral=True)
        assert interaction.guild_id is not None
        links = await self.bot.store.links(interaction.guild_id)
        try:
            # A linked server is found even when the panel is down or no longer lists it.
            found = resolve_server(server, _link_servers(links))
        except ServerLookupError:
            found = await resolve(self.bot, server)
        removed = await audited(
            interaction,
            server=found,
            action="unlink",
            arguments=f"channel={channel_id}",
            work=self.bot.remove_link(channel_id=channel_id, server_identifier=found.identifier),
            outcome=lambda ok: "unlinked" if ok else "was not linked",
        )
        if removed:
            text = f"Stopped mirroring the console of {label(found)} into <#{channel_id}>."
        else:
            text = f"The console of {label(found)} is not mirrored into <#{channel_id}>."
        await reply(interaction, text, ephemeral=True)

    @console.command(name="list", description="This server's console links and the health of each")
    async def list_links(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        links = await self.bot.store.links(interaction.guild_id)
        if not links:
            await reply(interaction, "No console links here yet; add one with /console link.", ephemeral=True)
            return
        relay = {(h.server, h.channel_id): h for h in self.bot.relay.link_health()}
        connections = {h.server: h for h in self.bot.manager.health()}
        lines = [f"{len(links)} console link{'s' if len(links) != 1 else ''}:"]
        for link in links:
            conn = connections.get(link.server_identifier)
            state = "not open" if conn is None else conn.state.value
            if conn is not None and conn.stopped_reason:
                state += f" ({conn.stopped_reason})"
            elif conn is not None and conn.last_error:
                state += f" (last error: {conn.last_error})"
            lines.append(
                "• " + _health_text(link, relay.get((link.server_identifier, link.channel_id)), state)
            )
        text = "\n".join(lines)
        await reply(
            interaction, text, ephemeral=True, filename="links.txt", summary=f"{lines[0]} see the file."
        )

    # console input ------------------------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not self.bot.settings.console_input:
            return
        if message.guild is None or message.author.bot or message.webhook_id is not None:
            return
        servers = self.bot.relay.servers_for_channel(message.channel.id)
        if not servers or not message.content:
            return
        if not message_author_is_admin(message, self.bot.settings.admin_role_ids):
            return  # other people talk in console channels too: not an error, just not a command
        await self._console_input(message, servers)

    async def _console_input(self, message: discord.Message, servers: list[str]) -> None:
        bot = self.bot
        command = message.content
        server = servers[0] if len(servers) == 1 else None
        if server is None:
            icon, outcome = REFUSED, "refused: the channel mirrors several servers; use /command"
        else:
            try:
                await bot.manager.send_command(server, command, window=0.0)
            except ActionRefused as exc:
                icon, outcome = REFUSED, f"refused: {exc}"
            except (WingsError, PanelError) as exc:
                icon, outcome = FAILED, f"failed: {exc}"
            except Exception as exc:
                log.exception("console input for %s failed", server)
                icon, outcome = FAILED, f"error: {type(exc).__name__}"
            else:
                icon, outcome = SENT, "sent"
        # Recorded before the reaction, so a reaction always means the audit log has it.
        await bot.audit(
            guild_id=message.guild.id if message.guild else None,
            user_id=message.author.id,
            server=server,
            action="console input",
            arguments=command,
            outcome=outcome,
            how=How.CONSOLE_INPUT,
        )
        with contextlib.suppress(discord.HTTPException):
            await message.add_reaction(icon)


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(ConsoleCog(bot))
