"""/servers and /status: what everyone may see."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WingbeatBot
from bot.panel.errors import PanelError
from bot.panel.models import Server
from bot.units import human_size
from bot.wings.errors import WingsError
from bot.wings.events import ConnectionState
from cogs._common import defer, duration, label, reply, resolve, server_autocomplete

log = logging.getLogger(__name__)

STATE_ICONS = {"running": "🟢", "starting": "🟡", "stopping": "🟡", "offline": "🔴"}
MAX_RESOURCE_LOOKUPS = 25  # /servers asks the panel for at most this many power states per call
LOOKUP_CONCURRENCY = 4
STATS_WAIT = 5.0  # how long /status waits for a console socket before asking the panel instead


class ServersCog(commands.Cog):
    """Lists servers and shows one server's state and usage."""

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot

    def _socket_power(self, server: Server) -> str | None:
        """The power state from an authenticated Wings socket: fresher than the panel's 20 s cache."""
        conn = self.bot.manager.peek(server.identifier)
        if conn is not None and conn.state is ConnectionState.CONNECTED and conn.power is not None:
            return conn.power.value
        return None

    async def _power(self, server: Server, budget: asyncio.Semaphore) -> str:
        if server.is_suspended:
            return "suspended"
        if server.is_installing or server.status == "installing":
            return "installing"
        if server.is_transferring:
            return "transferring"
        if server.status:
            return server.status.replace("_", " ")
        known = self._socket_power(server)
        if known is not None:
            return known
        async with budget:
            try:
                return (await self.bot.panel.resources(server.identifier)).current_state
            except PanelError as exc:
                log.debug("no power state for %s: %s", server.identifier, exc)
                return "unknown"

    @app_commands.command(name="servers", description="List the game servers the panel key can see")
    @app_commands.guild_only()
    async def servers(self, interaction: discord.Interaction) -> None:
        await defer(interaction, ephemeral=False)
        servers = sorted(await self.bot.catalog.refresh(), key=lambda s: s.name.casefold())
        if not servers:
            await reply(interaction, "The panel key can't see any servers.", ephemeral=False)
            return
        budget = asyncio.Semaphore(LOOKUP_CONCURRENCY)
        looked_up = servers[:MAX_RESOURCE_LOOKUPS]
        states = await asyncio.gather(*(self._power(s, budget) for s in looked_up))
        states += ["not checked"] * (len(servers) - len(looked_up))
        lines = [
            f"{STATE_ICONS.get(state, '⚪')} {label(s)}: {state}"
            for s, state in zip(servers, states, strict=True)
        ]
        header = f"{len(servers)} server{'s' if len(servers) != 1 else ''}:"
        text = "\n".join([header, *lines])
        await reply(
            interaction,
            text,
            ephemeral=False,
            file_text="\n".join(
                f"{s.name} ({s.identifier}): {st}" for s, st in zip(servers, states, strict=True)
            ),
            filename="servers.txt",
            summary=f"{header} the list is attached.",
        )

    @app_commands.command(name="status", description="Power state and resource usage of a game server")
    @app_commands.describe(server="The game server (name, identifier or UUID)")
    @app_commands.autocomplete(server=server_autocomplete)
    @app_commands.guild_only()
    async def status(self, interaction: discord.Interaction, server: str) -> None:
        await defer(interaction, ephemeral=False)
        found = await resolve(self.bot, server)
        try:
            stats = await self.bot.manager.fetch_stats(found.identifier, wait=STATS_WAIT)
        except WingsError as exc:
            # No console socket (Wings down, or the key lacks websocket.connect): the panel's copy, up to 20 s old.
            log.info("no Wings stats for %s (%s); asking the panel", found.identifier, exc)
            res = await self.bot.panel.resources(found.identifier)
            state = res.current_state + (" (suspended)" if res.is_suspended else "")
            usage = Usage(res.cpu_absolute, res.memory_bytes, 0, res.disk_bytes, res.network_rx_bytes,
                          res.network_tx_bytes, res.uptime_ms)  # fmt: skip
            text = (
                _status_text(found, state, usage) + "\n-# from the panel; the console socket is not available"
            )
        else:
            # The socket's power state follows `status` events, which are newer than any stats snapshot.
            state = str(self._socket_power(found) or stats.state or "unknown")
            usage = Usage(stats.cpu_absolute, stats.memory_bytes, stats.memory_limit_bytes, stats.disk_bytes,
                          stats.network_rx_bytes, stats.network_tx_bytes, stats.uptime_ms)  # fmt: skip
            text = _status_text(found, state, usage)
        await reply(interaction, text, ephemeral=False)


@dataclass(frozen=True, slots=True)
class Usage:
    """The figures /status shows, from Wings `stats` or the panel's resources."""

    cpu: float
    memory: int
    memory_limit: int
    disk: int
    rx: int
    tx: int
    uptime_ms: int


def _status_text(server: Server, state: str, usage: Usage) -> str:
    icon = STATE_ICONS.get(state.split(" ")[0], "⚪")
    memory = human_size(usage.memory) + (f" / {human_size(usage.memory_limit)}" if usage.memory_limit else "")
    return "\n".join(
        [
            f"{icon} {label(server)}: {state}",
            f"CPU {usage.cpu:.1f} % · Memory {memory} · Disk {human_size(usage.disk)}",
            f"Network ↓ {human_size(usage.rx)} ↑ {human_size(usage.tx)}",
            f"Uptime {duration(usage.uptime_ms / 1000) if usage.uptime_ms else '—'}",
        ]
    )


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(ServersCog(bot))
