"""/health: the state of every Wings connection and of the console relay, for admins."""

from __future__ import annotations

import time

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WingbeatBot
from bot.relay.service import LinkHealth
from bot.wings.events import Health
from cogs._common import ago, duration, reply


def _token(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "token —"
    left = expires_at - now
    return f"token expires in {duration(left)}" if left >= 0 else f"token expired {duration(-left)} ago"


def server_health(health: Health, name: str | None, links: list[LinkHealth], now: float) -> str:
    title = f"**{discord.utils.escape_markdown(name)}** (`{health.server}`)" if name else f"`{health.server}`"
    state = health.state.value + (f", {health.power.value}" if health.power else "")
    parts = [
        f"{title}: {state}",
        _token(health.token_expires_at, now),
        f"console {ago(health.last_console_at, now=now)}",
        f"stats {ago(health.last_stats_at, now=now)}",
        f"{health.reconnects} reconnects",
        f"{health.refreshes} token refreshes",
    ]
    if links:
        pending = sum(h.pending_lines for h in links)
        dropped = sum(h.dropped for h in links)
        parts.append(f"{len(links)} link{'s' if len(links) != 1 else ''}, backlog {pending} lines")
        if dropped:
            parts.append(f"{dropped} lines dropped")
    if health.stopped_reason:
        parts.append(f"stopped: {health.stopped_reason}")
    elif health.last_error:
        parts.append(f"last error: {health.last_error}")
    return " · ".join(parts)


class HealthCog(commands.Cog):
    """Connection and relay health."""

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot

    @app_commands.command(name="health", description="Wings connection and console relay health per server")
    @app_commands.guild_only()
    async def health(self, interaction: discord.Interaction) -> None:
        now = time.time()
        names = {s.identifier: s.name for s in self.bot.catalog.servers}
        links: dict[str, list[LinkHealth]] = {}
        for link in self.bot.relay.link_health():
            links.setdefault(link.server, []).append(link)
            names.setdefault(link.server, link.server_name)
        rows = [
            server_health(h, names.get(h.server), links.get(h.server, []), now)
            for h in self.bot.manager.health()
        ]
        panel = self.bot.catalog.last_error
        header = f"Panel: {'⚠️ ' + panel if panel else 'reachable'}"
        header += f"\n{self.bot.boards.summary()}\n{self.bot.alerts.summary()}"
        if not rows:
            await reply(interaction, f"{header}\nNo Wings connections are open.", ephemeral=True)
            return
        text = "\n".join([header, *("• " + row for row in rows)])
        await reply(
            interaction,
            text,
            ephemeral=True,
            filename="health.txt",
            summary=f"{header}\nThe details are attached.",
        )


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(HealthCog(bot))
