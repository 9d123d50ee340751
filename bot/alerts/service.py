"""Crash and outage alerts: one detector per server the panel key sees, alerts posted to every alert channel.

While at least one allowed guild has an alert channel, every server the key sees (not suspended, installing
or transferring, where Wings refuses sockets by design) is followed over the shared Wings connections. The
detectors are fed each frame as it arrives and, once a tick, the sockets' health and the clock. Alerts go
out through one sender task, each message waiting for a slot in the bot's shared Discord request budget.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import aiohttp
import discord

from bot.alerts.detector import (
    CRASH_WINDOW,
    REPORT_WINDOW,
    STOP_REQUEST_WINDOW,
    UNREACHABLE_AFTER,
    Alert,
    AlertKind,
    IncidentDetector,
)
from bot.alerts.messages import alert_text
from bot.catalog import ServerCatalog
from bot.panel.models import Server
from bot.relay.budget import RequestBudget
from bot.relay.discord_poster import retry_after
from bot.store import GuildSettings, Shards, Store
from bot.wings.events import ConnectionState, Notice, WingsEvent
from bot.wings.frames import Event, PowerAction, PowerState
from bot.wings.manager import ConnectionManager, Subscription

log = logging.getLogger(__name__)

MAX_QUEUED = 1000  # alerts waiting to be posted; beyond this the oldest go (and the log says so)
POST_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class AlertTiming:
    """Every duration the alerts use, so tests can shrink them."""

    tick: float = 1.0
    crash_window: float = CRASH_WINDOW
    report_window: float = REPORT_WINDOW
    unreachable_after: float = UNREACHABLE_AFTER
    stop_request_window: float = STOP_REQUEST_WINDOW
    retry: float = 5.0


@dataclass(frozen=True, slots=True)
class Target:
    """Where one guild's alerts go."""

    guild_id: int
    channel_id: int
    role_id: int | None


@dataclass(frozen=True, slots=True)
class _Queued:
    alert: Alert
    name: str


class _Feed:
    """The alerts' subscriber on one server."""

    def __init__(self, service: AlertService, server: str) -> None:
        self._service = service
        self._server = server

    def deliver(self, event: WingsEvent) -> None:
        self._service._on_event(self._server, event)

    def notice(self, notice: Notice) -> None:
        """Socket ups and downs are read from the manager's health on each tick."""


def _watchable(server: Server) -> bool:
    """Wings refuses sockets to suspended, installing and transferring servers by design: no outage there."""
    installing = server.is_installing or server.status == "installing"
    return not (server.is_suspended or installing or server.is_transferring)


class AlertService:
    """Follows every server for incidents while some guild wants alerts, and posts them."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: ServerCatalog,
        manager: ConnectionManager,
        client: discord.Client,
        budget: RequestBudget,
        allowed_guilds: Collection[int],
        shards: Shards | None = None,
        timing: AlertTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._manager = manager
        self._client = client
        self._budget = budget
        self._allowed = frozenset(allowed_guilds)
        self._shards = shards  # several processes on one token: this one's guilds (bot.shards)
        self.timing = timing or AlertTiming()
        self._clock = clock
        self._targets: dict[int, Target] = {}
        self._detectors: dict[str, IncidentDetector] = {}
        self._subs: dict[str, Subscription] = {}
        self._names: dict[str, str] = {}
        self._sockets: dict[str, tuple[int, int]] = {}  # server -> the socket its last `status` came on
        self._queue: collections.deque[_Queued] = collections.deque(maxlen=MAX_QUEUED)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._seen_catalog: tuple[Server, ...] | None = None
        self.posted = 0
        self.last_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        for settings in await self._store.all_guild_settings(shards=self._shards):
            self._set_target(settings)
        if self._targets:
            log.info("alerts go to %d guild(s)", len(self._targets))
        self._watch()
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="alerts-tick"),
            asyncio.create_task(self._send_loop(), name="alerts-send"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for sub in self._subs.values():
            self._manager.unsubscribe(sub)
        self._subs.clear()
        self._detectors.clear()
        self._sockets.clear()

    # -- what the cogs call --------------------------------------------------------------------------------

    async def set(self, guild_id: int, channel_id: int, role_id: int | None) -> None:
        """Send the guild's alerts to `channel_id`, mentioning `role_id` when given."""
        await self._store.set_alerts(guild_id, channel_id, role_id)
        self._set_target(GuildSettings(guild_id, channel_id, role_id))
        self._watch()

    async def off(self, guild_id: int) -> bool:
        """Stop the guild's alerts; False when they were off already."""
        await self._store.set_alerts(guild_id, None, None)
        had = self._targets.pop(guild_id, None) is not None
        self._watch()
        return had

    def target(self, guild_id: int) -> Target | None:
        return self._targets.get(guild_id)

    @property
    def watched(self) -> int:
        """How many servers are followed for incidents."""
        return len(self._detectors)

    def open_incidents(self) -> list[tuple[str, str, AlertKind]]:
        """(server, name, kind) of every incident that has started and not ended."""
        return [
            (server, self._names.get(server, server), kind)
            for server, detector in sorted(self._detectors.items())
            for kind in detector.open_incidents
        ]

    def summary(self, guild_id: int) -> str:
        """One line for the guild's /health: where its alerts go, what is watched, and the latest trouble."""
        target = self._targets.get(guild_id)
        if target is None:
            return "Alerts: off"
        text = f"Alerts: to <#{target.channel_id}>, {self.watched} servers watched, {self.posted} posted"
        return text + (f" · ⚠️ last error: {self.last_error}" if self.last_error else "")

    def power_requested(self, server: str, action: PowerAction) -> None:
        """Wingbeat is about to stop, kill or restart `server`: its next `offline` is no incident."""
        detector = self._detectors.get(server)
        if detector is not None and action is not PowerAction.START:
            detector.stop_requested(self._clock())

    # -- following servers ---------------------------------------------------------------------------------

    def _set_target(self, settings: GuildSettings) -> None:
        if settings.guild_id not in self._allowed or settings.alert_channel_id is None:
            self._targets.pop(settings.guild_id, None)
            return
        self._targets[settings.guild_id] = Target(
            settings.guild_id, settings.alert_channel_id, settings.alert_role_id
        )

    def _watch(self) -> None:
        """Follow every watchable server while any guild wants alerts, and none otherwise."""
        servers = self._catalog.servers if self._targets else ()
        wanted = {s.identifier: s.name for s in servers if _watchable(s)}
        self._names.update(wanted)
        for server in [s for s in self._subs if s not in wanted]:
            self._manager.unsubscribe(self._subs.pop(server))
            self._detectors.pop(server, None)
            self._sockets.pop(server, None)
        t = self.timing
        for server in wanted:
            if server in self._subs:
                continue
            detector = IncidentDetector(
                server,
                crash_window=t.crash_window,
                report_window=t.report_window,
                unreachable_after=t.unreachable_after,
                stop_request_window=t.stop_request_window,
            )
            conn = self._manager.peek(server)
            if conn is not None and conn.state is ConnectionState.CONNECTED:
                # Open already for the relay or a board: its first `status` came before us.
                detector.connection(True, self._clock())
                if conn.power is not None:
                    detector.status(conn.power, self._clock())
                    self._sockets[server] = (id(conn), conn.reconnects)
            self._detectors[server] = detector
            self._subs[server] = self._manager.subscribe(server, _Feed(self, server), console=False)
        self._seen_catalog = self._catalog.servers

    def _on_event(self, server: str, event: WingsEvent) -> None:
        detector = self._detectors.get(server)
        if detector is None or event.recovered:
            return
        kind = event.frame.known
        if kind is Event.CONSOLE_OUTPUT:
            alerts = detector.console(event.frame.arg, self._clock())
        elif kind is Event.DAEMON_MESSAGE:
            alerts = detector.daemon(event.frame.arg, self._clock())
        elif kind is Event.STATUS:
            state = PowerState.parse(event.frame.arg)
            if state is None:
                return
            # A reconnect can be quicker than a tick notices: the socket's identity says whether it is new.
            conn = self._manager.peek(server)
            socket = (id(conn), conn.reconnects if conn is not None else 0)
            if self._sockets.get(server) != socket:
                self._sockets[server] = socket
                detector.new_socket()
            alerts = detector.status(state, self._clock())
        else:
            return
        self._enqueue(alerts)

    def _enqueue(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            log.info("alert: %s %s %s", alert.server, alert.kind.value, "ended" if alert.ended else "started")
            if len(self._queue) == self._queue.maxlen:
                log.warning("alert queue full; the oldest alert is dropped")
            self._queue.append(_Queued(alert, self._names.get(alert.server, alert.server)))
        if alerts:
            self._wake.set()

    # -- loops ---------------------------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            try:
                self._tick()
            except Exception as exc:
                log.exception("alert tick failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(self.timing.tick)

    def _tick(self) -> None:
        if self._catalog.servers != self._seen_catalog:
            self._watch()
        if not self._detectors:
            return
        states = {h.server: h.state for h in self._manager.health()}
        now = self._clock()
        alerts: list[Alert] = []
        for server, detector in self._detectors.items():
            state = states.get(server)
            if state is ConnectionState.CONNECTED:
                alerts += detector.connection(True, now)
            elif state in (ConnectionState.CONNECTING, ConnectionState.RECONNECTING):
                alerts += detector.connection(False, now)
            elif state in (ConnectionState.STOPPED, ConnectionState.CLOSED):
                detector.connection_stopped()  # stopped for good (deleted, suspended, refused): no outage
            # Idle means not opened yet.
            alerts += detector.tick(now)
        self._enqueue(alerts)

    async def _send_loop(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._queue.popleft()
            for target in list(self._targets.values()):
                try:
                    await self._post(target, item)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.exception("posting an alert to channel %d failed", target.channel_id)
                    self.last_error = f"{type(exc).__name__}: {exc}"

    async def _post(self, target: Target, item: _Queued) -> None:
        text = alert_text(item.alert, item.name, unreachable_after=self.timing.unreachable_after)
        if target.role_id is not None:
            text = f"<@&{target.role_id}> {text}"
            mentions = discord.AllowedMentions(
                everyone=False, users=False, roles=[discord.Object(target.role_id)], replied_user=False
            )
        else:
            mentions = discord.AllowedMentions.none()
        channel = self._client.get_partial_messageable(target.channel_id)
        for attempt in range(1, POST_ATTEMPTS + 1):
            await self._budget.acquire()
            try:
                await channel.send(text, allowed_mentions=mentions)
            except (discord.Forbidden, discord.NotFound) as exc:
                # The guild's settings stay: an admin fixes the channel's permissions or sets another one.
                self.last_error = f"channel {target.channel_id}: Discord refused it (code {exc.code})"
                log.warning("cannot post alerts to channel %d (code %s)", target.channel_id, exc.code)
                return
            except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.last_error = f"channel {target.channel_id}: {type(exc).__name__}"
                log.warning(
                    "posting an alert to channel %d failed (attempt %d): %s", target.channel_id, attempt, exc
                )
                wait = self.timing.retry * attempt
                if isinstance(exc, discord.HTTPException) and exc.status == 429:
                    # A proxy's 429 (discord.py waits out Discord's own): wait what it asks, slow everyone.
                    asked = await retry_after(exc)
                    self._budget.throttled(asked)
                    wait = max(wait, asked)
                await asyncio.sleep(wait)
                continue
            self.posted += 1
            self.last_error = None
            return
