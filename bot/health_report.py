"""What `/health` and `/console list` show: Wings connections, relay figures and saved links, joined up."""

from __future__ import annotations

from dataclasses import dataclass

from bot.catalog import ServerCatalog
from bot.relay.service import ConsoleRelay, LinkHealth
from bot.store import Link, Store
from bot.wings.events import Health
from bot.wings.manager import ConnectionManager


@dataclass(frozen=True, slots=True)
class LinkReport:
    """A saved link with its server's connection (None: not open) and its relay figures (None: not running)."""

    link: Link
    connection: Health | None
    relay: LinkHealth | None


@dataclass(frozen=True, slots=True)
class ServerReport:
    """One Wings connection, the server's name when known, and the relay figures of its links."""

    health: Health
    name: str | None
    links: tuple[LinkHealth, ...]


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Everything `/health` shows: the panel's last error (None: reachable), each connection, and the
    guild's links Discord refused (stopped)."""

    panel_error: str | None
    servers: tuple[ServerReport, ...]
    stopped_links: tuple[Link, ...]


class HealthReports:
    """Reads the state of the connections, the relay and the store for the admin views."""

    def __init__(
        self, store: Store, relay: ConsoleRelay, manager: ConnectionManager, catalog: ServerCatalog
    ) -> None:
        self._store = store
        self._relay = relay
        self._manager = manager
        self._catalog = catalog

    async def links(self, guild_id: int) -> list[LinkReport]:
        """The guild's saved links, each with its connection and relay state."""
        relay = {(h.server, h.channel_id): h for h in self._relay.link_health()}
        connections = {h.server: h for h in self._manager.health()}
        return [
            LinkReport(
                link,
                connections.get(link.server_identifier),
                relay.get((link.server_identifier, link.channel_id)),
            )
            for link in await self._store.links(guild_id)
        ]

    async def snapshot(self, guild_id: int) -> HealthSnapshot:
        """Every open Wings connection, with the relay figures of this guild's links only.

        The servers are the panel key's, the same for every allowed guild (anyone there may list them), so each
        guild sees every connection; links belong to a guild, so another guild's links are never counted.
        """
        names = {s.identifier: s.name for s in self._catalog.servers}
        saved = await self._store.links(guild_id)
        own = {(link.server_identifier, link.channel_id) for link in saved}
        links: dict[str, list[LinkHealth]] = {}
        for link in self._relay.link_health():
            if (link.server, link.channel_id) in own:
                links.setdefault(link.server, []).append(link)
                names.setdefault(link.server, link.server_name)
        servers = tuple(
            ServerReport(h, names.get(h.server), tuple(links.get(h.server, ())))
            for h in self._manager.health()
        )
        stopped = tuple(link for link in saved if link.stopped)
        return HealthSnapshot(self._catalog.last_error, servers, stopped)
