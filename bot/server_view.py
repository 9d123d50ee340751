"""What `/servers` and `/status` show: a server's power state and usage from the freshest source at hand.

A power state comes from, in order: what the panel's server list says for the whole server (suspended,
installing, transferring, restoring a backup), the Wings socket's `status` events, the latest `stats`,
the panel's resources (its own copy, up to 20 s old).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.catalog import ServerCatalog
from bot.panel.client import PanelClient
from bot.panel.errors import PanelError
from bot.panel.models import Server
from bot.wings.connection import WingsError
from bot.wings.events import ConnectionState
from bot.wings.manager import ConnectionManager

log = logging.getLogger(__name__)

MAX_RESOURCE_LOOKUPS = 25  # /servers asks the panel for at most this many power states per call
LOOKUP_CONCURRENCY = 4
STATS_WAIT = 5.0  # how long /status waits for a console socket before asking the panel instead


def panel_state(server: Server) -> str | None:
    """The state the panel's list gives a whole server (suspended, installing…), or None when it runs normally."""
    if server.is_suspended:
        return "suspended"
    if server.is_installing or server.status == "installing":
        return "installing"
    if server.is_transferring:
        return "transferring"
    if server.status:
        return server.status.replace("_", " ")
    return None


def power_state(
    server: Server, *, socket: str | None = None, stats: str | None = None, resources: str | None = None
) -> str:
    """The state word to show, from the sources in the order this module's docstring gives."""
    return panel_state(server) or socket or stats or resources or "unknown"


@dataclass(frozen=True, slots=True)
class ServerRow:
    """One line of `/servers`."""

    server: Server
    state: str


@dataclass(frozen=True, slots=True)
class Usage:
    """The figures `/status` shows, from Wings `stats` or the panel's resources."""

    cpu: float
    memory: int
    memory_limit: int
    disk: int
    rx: int
    tx: int
    uptime_ms: int


@dataclass(frozen=True, slots=True)
class StatusView:
    """One server's state and usage; `from_panel` when the console socket could not give them."""

    server: Server
    state: str
    usage: Usage
    from_panel: bool


class ServerViews:
    """Builds the views everyone may ask for, from the catalog, the Wings sockets and the panel."""

    def __init__(self, catalog: ServerCatalog, manager: ConnectionManager, panel: PanelClient) -> None:
        self._catalog = catalog
        self._manager = manager
        self._panel = panel

    def socket_state(self, server: Server) -> str | None:
        """The power state from an authenticated Wings socket: fresher than the panel's 20 s cache."""
        conn = self._manager.peek(server.identifier)
        if conn is not None and conn.state is ConnectionState.CONNECTED and conn.power is not None:
            return conn.power.value
        return None

    async def server_list(self) -> list[ServerRow]:
        """Every server the key sees, by name, with its power state. Raises PanelError."""
        servers = sorted(await self._catalog.refresh(), key=lambda s: s.name.casefold())
        budget = asyncio.Semaphore(LOOKUP_CONCURRENCY)
        looked_up = servers[:MAX_RESOURCE_LOOKUPS]
        states = await asyncio.gather(*(self._list_state(s, budget) for s in looked_up))
        states += ["not checked"] * (len(servers) - len(looked_up))
        return [ServerRow(s, state) for s, state in zip(servers, states, strict=True)]

    async def _list_state(self, server: Server, budget: asyncio.Semaphore) -> str:
        known = panel_state(server) or self.socket_state(server)
        if known is not None:
            return known
        async with budget:
            try:
                resources = await self._panel.resources(server.identifier)
            except PanelError as exc:
                log.debug("no power state for %s: %s", server.identifier, exc)
                return "unknown"
        return power_state(server, resources=resources.current_state)

    async def status(self, server: Server) -> StatusView:
        """State and usage from Wings' live stats, or from the panel when no console socket is available."""
        try:
            stats = await self._manager.fetch_stats(server.identifier, wait=STATS_WAIT)
        except WingsError as exc:
            # No console socket (Wings down, or the key lacks websocket.connect): the panel's copy, up to 20 s old.
            log.info("no Wings stats for %s (%s); asking the panel", server.identifier, exc)
            res = await self._panel.resources(server.identifier)
            state = res.current_state + (" (suspended)" if res.is_suspended else "")
            usage = Usage(res.cpu_absolute, res.memory_bytes, 0, res.disk_bytes, res.network_rx_bytes,
                          res.network_tx_bytes, res.uptime_ms)  # fmt: skip
            return StatusView(server, power_state(server, resources=state), usage, from_panel=True)
        # The socket's power state follows `status` events, which are newer than any stats snapshot.
        state = power_state(
            server, socket=self.socket_state(server), stats=stats.state.value if stats.state else None
        )
        usage = Usage(stats.cpu_absolute, stats.memory_bytes, stats.memory_limit_bytes, stats.disk_bytes,
                      stats.network_rx_bytes, stats.network_tx_bytes, stats.uptime_ms)  # fmt: skip
        return StatusView(server, state, usage, from_panel=False)
