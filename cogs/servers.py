"""/servers and /status: what everyone may see."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.access import Capability
from bot.app import WingbeatBot
from bot.discord_access import allowed_servers
from bot.names import safe_name
from bot.redact import hide_addresses
from bot.render import duration, label, plural, state_icon
from bot.replies import defer, reply
from bot.server_option import resolve, server_autocomplete
from bot.server_view import StatusView
from bot.units import human_size

# Per member, shared by /servers and /status: nobody can make the bot spend the panel's budget on views faster.
VIEW_COOLDOWN = app_commands.checks.cooldown(4, 20.0, key=lambda i: (i.guild_id, i.user.id))


def status_text(view: StatusView) -> str:
    """`/status`'s answer: state, then the figures, then where they came from when not from Wings."""
    usage = view.usage
    head = f"{state_icon(view.state)} {label(view.server)}: {view.state}"
    if usage is None:
        return f"{head}\n-# {hide_addresses(view.unchecked or 'The figures could not be checked.')}"
    memory = human_size(usage.memory) + (f" / {human_size(usage.memory_limit)}" if usage.memory_limit else "")
    lines = [
        head,
        f"CPU {usage.cpu:.1f} % · Memory {memory} · Disk {human_size(usage.disk)}",
        f"Network ↓ {human_size(usage.rx)} ↑ {human_size(usage.tx)}",
        f"Uptime {duration(usage.uptime_ms / 1000) if usage.uptime_ms else '—'}",
    ]
    if view.from_panel:
        lines.append("-# from the panel's copy (up to 20 s old): no console socket is open for this server")
    return "\n".join(lines)


class ServersCog(commands.Cog):
    """Lists servers and shows one server's state and usage."""

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot

    @app_commands.command(name="servers", description="List the game servers the panel key can see")
    @app_commands.guild_only()
    @VIEW_COOLDOWN
    async def servers(self, interaction: discord.Interaction[WingbeatBot]) -> None:
        await defer(interaction, ephemeral=False)
        # Members with `view` on some servers only see just those (the access check let them in for that).
        listing = await self.bot.views.server_list(allowed_servers(interaction, (Capability.VIEW,)))
        rows = listing.rows
        if not rows:
            await reply(interaction, "There are no servers here that you may see.", ephemeral=False)
            return
        header = f"{plural(len(rows), 'server')}:"
        footer = [f"-# {hide_addresses(listing.unchecked)}"] if listing.unchecked else []
        lines = [f"{state_icon(row.state)} {label(row.server)}: {row.state}" for row in rows]
        await reply(
            interaction,
            "\n".join([header, *lines, *footer]),
            ephemeral=False,
            file_text="\n".join(
                f"{safe_name(r.server.name)} ({r.server.identifier}): {r.state}" for r in rows
            ),
            filename="servers.txt",
            summary="\n".join([f"{header} the list is attached.", *footer]),
        )

    @app_commands.command(name="status", description="Power state and resource usage of a game server")
    @app_commands.describe(server="The game server (name, identifier or UUID)")
    @app_commands.autocomplete(server=server_autocomplete)
    @app_commands.guild_only()
    @VIEW_COOLDOWN
    async def status(self, interaction: discord.Interaction[WingbeatBot], server: str) -> None:
        await defer(interaction, ephemeral=False)
        found = await resolve(self.bot.catalog, server)
        await reply(interaction, status_text(await self.bot.views.status(found)), ephemeral=False)


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(ServersCog(bot))
