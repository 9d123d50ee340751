"""/audit show|channel: the guild's audit log from Discord, and the channel every audited action goes to."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WingbeatBot
from bot.audit import AuditAction
from bot.audit_text import audit_line, audit_plain
from bot.lookup import ServerLookupError
from bot.panel.pacing import Priority
from bot.render import name_label
from bot.replies import defer, reply
from bot.server_option import resolve, server_autocomplete
from bot.tree import Refusal

log = logging.getLogger(__name__)

MAX_LIMIT = 200
DEFAULT_LIMIT = 25
_IDENTIFIER = re.compile(r"[0-9a-f]{8}")


def _missing_permissions(channel: discord.abc.GuildChannel | discord.Thread, me: discord.Member) -> list[str]:
    perms = channel.permissions_for(me)
    needed = [
        "view_channel",
        "send_messages_in_threads" if isinstance(channel, discord.Thread) else "send_messages",
    ]
    return [name.replace("_", " ").title() for name in needed if not getattr(perms, name)]


class AuditCog(commands.Cog):
    """The audit log from Discord."""

    audit = app_commands.Group(
        name="audit", description="The log of what was done through Wingbeat", guild_only=True
    )

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot
        self.started_at = datetime.now(UTC)  # rows started before this and never completed were cut short

    async def _server(self, text: str) -> tuple[str, str | None]:
        """The identifier to filter on and its name; a server the panel no longer lists can be typed by its ID."""
        try:
            found = await resolve(self.bot.catalog, text, priority=Priority.ACTION)
        except ServerLookupError:
            if _IDENTIFIER.fullmatch(text.strip().lower()):
                return text.strip().lower(), None
            raise
        return found.identifier, found.name

    @audit.command(name="show", description="The latest audited actions in this server, newest first")
    @app_commands.describe(
        server="Only this game server",
        member="Only this member's actions",
        limit=f"How many entries (1–{MAX_LIMIT}, default {DEFAULT_LIMIT})",
    )
    @app_commands.autocomplete(server=server_autocomplete)
    async def show(
        self,
        interaction: discord.Interaction,
        server: str | None = None,
        member: discord.Member | discord.User | None = None,
        limit: app_commands.Range[int, 1, MAX_LIMIT] = DEFAULT_LIMIT,
    ) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None  # the tree refuses DMs
        if not 1 <= limit <= MAX_LIMIT:  # Discord enforces the range in its client only
            raise Refusal(f"limit must be between 1 and {MAX_LIMIT}.")
        await defer(interaction, ephemeral=True)
        identifier, name = (None, None) if server is None else await self._server(server)
        entries = await self.bot.store.recent_audit(
            limit, guild_id, server_identifier=identifier, user_id=member.id if member else None
        )
        names = {s.identifier: s.name for s in self.bot.catalog.servers}
        scope = ""
        if identifier is not None:
            scope += f" on {name_label(name, identifier)}"
        if member is not None:
            scope += f" by <@{member.id}>"
        if not entries:
            await reply(interaction, f"No audited actions{scope} yet.", ephemeral=True)
            return
        count = len(entries)
        head = f"The latest {count} audited action{'s' if count != 1 else ''}{scope}, newest first:"
        lines = [audit_line(e, server_names=names, since=self.started_at) for e in entries]
        plain = [audit_plain(e, server_names=names, since=self.started_at) for e in entries]
        await reply(
            interaction,
            "\n".join([head, *lines]),
            ephemeral=True,
            file_text="\n".join(plain) + "\n",
            filename="audit.txt",
            summary=f"{head} see the file.",
        )

    @audit.command(name="channel", description="Post every audited action to a channel; without one, stop")
    @app_commands.describe(channel="Where to post (leave out to stop posting)")
    async def channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | discord.Thread | None = None
    ) -> None:
        guild = interaction.guild
        guild_id = interaction.guild_id
        assert guild_id is not None
        feed = self.bot.audit_feed
        if channel is None:
            previous = feed.channel(guild_id)
            await self.bot.store.set_audit_channel(guild_id, None)
            feed.set_channel(guild_id, None)
            await self._audit(interaction, "audit channel", "off")
            text = (
                f"Audited actions are no longer posted to <#{previous}>; /audit show still lists them."
                if previous
                else "No audit channel was set; nothing changed."
            )
            await reply(interaction, text, ephemeral=True)
            return
        me = guild.me if guild is not None else None
        if me is not None:
            missing = _missing_permissions(channel, me)
            if missing:
                raise Refusal(
                    f"Wingbeat lacks {' and '.join(missing)} in {channel.mention}; grant it there and try again."
                )
        await self.bot.store.set_audit_channel(guild_id, channel.id)
        feed.set_channel(guild_id, channel.id)
        await self._audit(interaction, "audit channel", f"channel={channel.id}")
        await reply(
            interaction,
            f"Every audited action in this server will also be posted to {channel.mention}, one line each, "
            "without pinging anyone.",
            ephemeral=True,
        )

    async def _audit(self, interaction: discord.Interaction, action: str, arguments: str) -> None:
        await self.bot.auditor.record(
            AuditAction.by(interaction, server=None, action=action, arguments=arguments), "done"
        )


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(AuditCog(bot))
