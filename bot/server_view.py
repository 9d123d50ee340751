"""What `/servers` and `/status` show: a server's power state and usage from the freshest source at hand.

A power state comes from, in order: what the panel's server list says for the whole server (suspended,
installing, transferring, restoring a backup), the open Wings socket's `status` events, its latest `stats`,
the panel's resources (its own copy, up to 20 s old).

Views answer within a few seconds from what is known rather than queueing behind the panel: the server list
is used while it is at most 20 s old (and refreshed in the background otherwise), no Wings socket is opened
for a view, and the panel is asked at the lowest priority, only for what nothing else knows, with a short
deadline. What could not be checked is said, in one sentence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

from bot.catalog import ServerCatalog
from bot.errors import WingbeatError
from bot.panel.backoff import Backoff
from bot.panel.client import PanelClient
from bot.panel.errors import PanelError
from bot.panel.models import Resources, Server
from bot.panel.pacing import Priority
from bot.wings.errors import WingsError
from bot.wings.events import ConnectionState
from bot.wings.manager import ConnectionManager

log = logging.getLogger(__name__)

FRESH = 20.0  # the server list and the panel's resources are used as they are while this young
PANEL_WAIT = 3.0  # how long a view waits for the panel in all, so it answers within 5 s
STATS_WAIT = 1.5  # how long /status waits for an open socket's stats
MAX_RESOURCE_LOOKUPS = 25  # /servers asks the panel for at most this many power states per call
LOOKUP_CONCURRENCY = 4
NO_ANSWER = "The panel did not answer within a few seconds, so this was not checked; try again shortly."


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
class ServerList:
    """Every server the key sees, by name; `unchecked` says (one sentence) what could not be checked."""

    rows: tuple[ServerRow, ...]
    unchecked: str | None = None


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

    @classmethod
    def of(cls, res: Resources) -> Usage:
        return cls(res.cpu_absolute, res.memory_bytes, 0, res.disk_bytes, res.network_rx_bytes,
                   res.network_tx_bytes, res.uptime_ms)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StatusView:
    """One server's state and usage. `from_panel` when they came from the panel's copy; `usage` None (and
    `unchecked` saying why) when neither Wings nor the panel could give them in time."""

    server: Server
    state: str
    usage: Usage | None
    from_panel: bool
    unchecked: str | None = None


class ServerViews:
    """Builds the views everyone may ask for, from the catalog, the open Wings sockets and the panel."""

    def __init__(
        self,
        catalog: ServerCatalog,
        manager: ConnectionManager,
        panel: PanelClient,
        *,
        panel_wait: float = PANEL_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._manager = manager
        self._panel = panel
        self._panel_wait = panel_wait
        self._clock = clock
        self._resources: dict[str, tuple[float, Resources]] = {}
        # Per server, after the panel failed to give its resources: the backoff, when to ask again, and why.
        self._failing: dict[str, tuple[Backoff, float, str]] = {}

    def socket_state(self, server: Server) -> str | None:
        """The power state from an authenticated Wings socket: fresher than the panel's 20 s cache."""
        conn = self._manager.peek(server.identifier)
        if conn is not None and conn.state is ConnectionState.CONNECTED and conn.power is not None:
            return conn.power.value
        return None

    async def server_list(self, shown: Container[str] | None = None) -> ServerList:
        """The servers the key sees (those in `shown` when given), by name, with their power state.

        Raises PanelError without any list.
        """
        servers, unchecked = await self._servers()
        ordered = sorted(
            (s for s in servers if shown is None or s.identifier in shown), key=lambda s: s.name.casefold()
        )
        states: dict[str, str] = {}
        wanted: list[Server] = []
        for server in ordered:
            known = panel_state(server) or self.socket_state(server)
            cached = self._cached_resources(server.identifier)
            if known is None and cached is not None:
                known = cached.current_state
            if known is not None:
                states[server.identifier] = known
            elif len(wanted) < MAX_RESOURCE_LOOKUPS:
                wanted.append(server)
        looked_up, problem = await self._look_up(wanted)
        states.update((ident, res.current_state) for ident, res in looked_up.items())
        rows = tuple(ServerRow(s, states.get(s.identifier, "not checked")) for s in ordered)
        if any(row.state == "not checked" for row in rows):
            unchecked = (
                unchecked
                or problem
                or "Only 25 power states are looked up at a time; ask again in a moment for the others."
            )
        return ServerList(rows, unchecked)

    async def status(self, server: Server) -> StatusView:
        """State and usage from an open socket's live stats, else from the panel's copy (never opens a socket)."""
        socket = self.socket_state(server)
        if socket is not None:
            try:
                async with asyncio.timeout(STATS_WAIT):
                    stats = await self._manager.fetch_stats(server.identifier, wait=0.5)
            except (WingsError, TimeoutError) as exc:
                log.info("no Wings stats for %s (%s); asking the panel", server.identifier, exc)
            else:
                # The socket's power state follows `status` events, which are newer than any stats snapshot.
                state = power_state(
                    server, socket=self.socket_state(server), stats=stats.state.value if stats.state else None
                )
                usage = Usage(stats.cpu_absolute, stats.memory_bytes, stats.memory_limit_bytes, stats.disk_bytes,
                              stats.network_rx_bytes, stats.network_tx_bytes, stats.uptime_ms)  # fmt: skip
                return StatusView(server, state, usage, from_panel=False)
        found, problem = await self._look_up([server])
        res = found.get(server.identifier)
        if res is None:
            return StatusView(
                server, power_state(server, socket=socket), None, from_panel=True, unchecked=problem
            )
        state = power_state(server, socket=socket, resources=res.current_state)
        if res.is_suspended and state == res.current_state:
            state += " (suspended)"
        return StatusView(server, state, Usage.of(res), from_panel=True)

    # -- the panel, within the view's deadline ---------------------------------------------------------------

    async def _servers(self) -> tuple[Sequence[Server], str | None]:
        """The server list: the catalog's while fresh, else refreshed within the deadline, else the older one."""
        age = self._catalog.age()
        if age is not None and age <= FRESH:
            return self._catalog.servers, None
        try:
            async with asyncio.timeout(self._panel_wait):
                return await self._catalog.refresh(priority=Priority.VIEW), None
        except (PanelError, TimeoutError) as exc:
            # The refresh goes on in the background (the catalog shields it) for the next view.
            if self._catalog.age() is None:
                if isinstance(exc, PanelError):
                    raise
                raise WingbeatError(NO_ANSWER) from None
            return self._catalog.servers, _problem(exc)

    def _cached_resources(self, server: str) -> Resources | None:
        entry = self._resources.get(server)
        if entry is None or self._clock() - entry[0] > FRESH:
            return None
        return entry[1]

    async def _look_up(self, servers: Sequence[Server]) -> tuple[dict[str, Resources], str | None]:
        """The panel's resources of these servers (cached for 20 s), as many as the deadline allows."""
        found: dict[str, Resources] = {}
        problems: list[str] = []
        todo = []
        now = self._clock()
        for server in servers:
            cached = self._cached_resources(server.identifier)
            failing = self._failing.get(server.identifier)
            if cached is not None:
                found[server.identifier] = cached
            elif failing is not None and now < failing[1]:
                problems.append(
                    failing[2]
                )  # it failed moments ago: not asked again before its backoff is over
            else:
                todo.append(server)
        if not todo:
            return found, (problems[0] if problems else None)
        limit = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def one(server: Server) -> None:
            async with limit:
                try:
                    res = await self._panel.resources(server.identifier, priority=Priority.VIEW)
                except PanelError as exc:
                    log.debug("no resources for %s: %s", server.identifier, exc)
                    problems.append(_problem(exc))
                    self._failed(server.identifier, _problem(exc))
                    return
            found[server.identifier] = res
            self._failing.pop(server.identifier, None)
            self._remember(server.identifier, res)

        tasks = {asyncio.create_task(one(s)): s for s in todo}
        _, late = await asyncio.wait(tasks, timeout=self._panel_wait)
        for task in late:
            task.cancel()
            self._failed(tasks[task].identifier, NO_ANSWER)
        await asyncio.gather(*late, return_exceptions=True)
        if late:
            problems.append(NO_ANSWER)
        return found, (problems[0] if problems else None)

    def _failed(self, server: str, problem: str) -> None:
        """Back off asking the panel for this server: about 1 s, doubling on each failure up to 60 s."""
        backoff = self._failing[server][0] if server in self._failing else Backoff()
        self._failing[server] = (backoff, self._clock() + backoff.next(), problem)
        if len(self._failing) > 4 * MAX_RESOURCE_LOOKUPS:  # a server gone from the panel is not kept for ever
            now = self._clock()
            self._failing = {k: v for k, v in self._failing.items() if v[1] > now - 60.0}

    def _remember(self, server: str, res: Resources) -> None:
        now = self._clock()
        self._resources[server] = (now, res)
        if len(self._resources) > 4 * MAX_RESOURCE_LOOKUPS:  # forget stale entries so the map stays small
            self._resources = {k: v for k, v in self._resources.items() if now - v[0] <= FRESH}


def _problem(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, PanelError) else NO_ANSWER
