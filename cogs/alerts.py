"""/alerts set|off|show: where this guild's crash and outage alerts go, and whom they mention."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.alerts.detector import AlertKind
from bot.app import WingbeatBot
from bot.audit import AuditAction
from bot.boards.render import markdown_name
from bot.replies import defer, reply
from bot.tree import Refusal

log = logging.getLogger(__name__)

KIND_TEXT = {
    AlertKind.CRASH: "crashed",
    AlertKind.UNEXPECTED_STOP: "stopped unexpectedly",
    AlertKind.UNREACHABLE: "unreachable",
}


def _guild(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:
        raise Refusal("Wingbeat's commands work in servers only, not in direct messages.")
    return interaction.guild_id


def _check_channel(interaction: discord.Interaction, channel: discord.TextChannel | discord.Thread) -> None:
    me = interaction.guild.me if interaction.guild is not None else None
    if me is None:
        return
    perms = channel.permissions_for(me)
    send = "send_messages_in_threads" if isinstance(channel, discord.Thread) else "send_messages"
    missing = [name for name in ("view_channel", send) if not getattr(perms, name)]
    if missing:
        names = " and ".join(n.replace("_", " ").title() for n in missing)
        raise Refusal(f"Wingbeat lacks {names} in {channel.mention}; grant it there and try again.")


def _role_note(interaction: discord.Interaction, role: discord.Role) -> str:
    """A role that cannot be mentioned by the bot would make every ping silent: say so now."""
    me = interaction.guild.me if interaction.guild is not None else None
    if role.mentionable or (me is not None and me.guild_permissions.mention_everyone):
        return ""
    return (
        f"\nNote: {role.mention} is not mentionable and Wingbeat lacks *Mention @everyone, @here and All Roles*, "
        "so alerts will name the role without pinging it."
    )


class AlertsCog(commands.Cog):
    """Crash and outage alerts."""

    alerts = app_commands.Group(
        name="alerts", description="Crash and outage alerts for the game servers", guild_only=True
    )

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot

    @alerts.command(
        name="set", description="Post crash and outage alerts in a channel, optionally pinging a role"
    )
    @app_commands.describe(channel="Where alerts go", role="A role to mention in each alert (default: none)")
    async def set_alerts(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread,
        role: discord.Role | None = None,
    ) -> None:
        guild_id = _guild(interaction)
        if role is not None and role.is_default():
            raise Refusal("Pick a role other than @everyone: alerts never ping everyone.")
        _check_channel(interaction, channel)
        await defer(interaction, ephemeral=True)
        role_id = role.id if role is not None else None
        arguments = f"set channel={channel.id}" + (f" role={role_id}" if role_id else "")
        await self.bot.auditor.run(
            AuditAction.by(interaction, server=None, action="alert", arguments=arguments),
            self.bot.alerts.set(guild_id, channel.id, role_id),
            lambda _: "set",
        )
        whom = f", mentioning {role.mention}" if role is not None else ""
        note = _role_note(interaction, role) if role is not None else ""
        await reply(
            interaction,
            f"Crash and outage alerts for every game server now go to {channel.mention}{whom}.{note}",
            ephemeral=True,
        )

    @alerts.command(name="off", description="Stop this server's crash and outage alerts")
    async def off(self, interaction: discord.Interaction) -> None:
        guild_id = _guild(interaction)
        await defer(interaction, ephemeral=True)
        had = await self.bot.auditor.run(
            AuditAction.by(interaction, server=None, action="alert", arguments="off"),
            self.bot.alerts.off(guild_id),
            lambda had: "turned off" if had else "already off",
        )
        text = "Alerts are off." if had else "Alerts were already off."
        await reply(interaction, text, ephemeral=True)

    @alerts.command(name="show", description="Where alerts go, and the incidents still open")
    async def show(self, interaction: discord.Interaction) -> None:
        guild_id = _guild(interaction)
        target = self.bot.alerts.target(guild_id)
        if target is None:
            await reply(interaction, "Alerts are off. Turn them on with `/alerts set`.", ephemeral=True)
            return
        whom = f", mentioning <@&{target.role_id}>" if target.role_id is not None else ", mentioning nobody"
        lines = [
            f"Alerts go to <#{target.channel_id}>{whom}; {self.bot.alerts.watched} game servers are watched."
        ]
        incidents = self.bot.alerts.open_incidents()
        if incidents:
            lines.append("Open incidents:")
            lines += [
                f"- **{markdown_name(name, 100)}** (`{server}`): {KIND_TEXT[kind]}"
                for server, name, kind in incidents
            ]
        else:
            lines.append("No open incidents.")
        await reply(interaction, "\n".join(lines), ephemeral=True)


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(AlertsCog(bot))
