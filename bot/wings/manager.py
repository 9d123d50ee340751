"""One shared Wings connection per server, opened for subscribers or on-demand use, closed when idle."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from bot.panel.client import PanelClient
from bot.wings import actions
from bot.wings.connection import WingsConnection
from bot.wings.events import CommandResult, Health, Notice, NoticeKind, PowerResult, WingsEvent
from bot.wings.frames import PowerAction, Stats
from bot.wings.session import Timing

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    """Receives a server's events and notices. Both calls must return at once: buffer, never await.

    A subscriber may also define `gap_filled(server)`: called when a gap fill has delivered its lines.
    """

    def deliver(self, event: WingsEvent) -> None: ...

    def notice(self, notice: Notice) -> None: ...


@dataclass(eq=False, slots=True)
class Subscription:
    """A registration of one subscriber on one server; pass it back to `unsubscribe`."""

    id: int
    server: str
    subscriber: Subscriber
    console: bool
    failures: int = 0


class QueueSubscriber:
    """A subscriber with a bounded queue; what does not fit is counted in `overflowed`, not blocked on."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.queue: asyncio.Queue[WingsEvent | Notice] = asyncio.Queue(maxsize)
        self.overflowed = 0

    def _put(self, item: WingsEvent | Notice) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed += 1

    def deliver(self, event: WingsEvent) -> None:
        self._put(event)

    def notice(self, notice: Notice) -> None:
        self._put(notice)


class NoticeFilter:
    """Lets the same notice (server + key) through at most once per `window` seconds.

    The lost-connection and restored notices are a pair, so a channel's last word on its connection stays true: a
    restored notice goes through exactly when its outage was told, and an outage held back because the last one was
    told less than `window` ago is due (`held_until`) once the window ends, if it still goes on.
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._told_down: set[str] = set()  # servers whose channels were told of an outage not yet over
        self._held: dict[str, float] = {}  # server -> when its held-back outage may be told

    def allow(self, notice: Notice) -> bool:
        now = self._clock()
        server = notice.server
        if notice.kind is NoticeKind.CONNECTION_RESTORED:
            self._held.pop(server, None)
            if server in self._told_down:
                self._told_down.discard(server)
                return True
            return False  # nobody was told of this outage: its end is no news
        key = (server, notice.key)
        last = self._last.get(key)
        if last is not None and now - last < self._window:
            if notice.kind is NoticeKind.CONNECTION_LOST and server not in self._told_down:
                self._held[server] = last + self._window
            return False
        self._last[key] = now
        if notice.kind is NoticeKind.CONNECTION_LOST:
            self._told_down.add(server)
            self._held.pop(server, None)
        if len(self._last) > 4096:  # forget old keys so the map stays small over weeks
            self._last = {k: t for k, t in self._last.items() if now - t < self._window}
        return True

    def held_until(self, server: str) -> float | None:
        """When the outage of `server` held back by the window may be told, or None if none is held."""
        return self._held.get(server)


class ConnectionManager:
    """Owns every `WingsConnection`; fans their events out to subscribers in order."""

    def __init__(
        self,
        panel: PanelClient,
        *,
        origin: str,
        timing: Timing | None = None,
        idle_close: float = 300.0,
        notice_window: float = 180.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._panel = panel
        self._origin = origin
        self.timing = timing or Timing()
        self._idle_close = idle_close
        self._clock = clock
        self._connections: dict[str, WingsConnection] = {}
        self._subs: dict[str, list[Subscription]] = {}
        self._uses: dict[str, int] = {}
        self._idle: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._notices = NoticeFilter(notice_window, clock)
        self._retell: dict[str, asyncio.TimerHandle] = {}

    # -- connections ---------------------------------------------------------------------------------------

    def connection(self, server: str) -> WingsConnection:
        """The server's connection, created and started if needed (a stopped one is restarted)."""
        conn = self._connections.get(server)
        if conn is None:
            conn = WingsConnection(self._panel, server, self, origin=self._origin, timing=self.timing)
            self._connections[server] = conn
        self._cancel_idle(server)
        conn.start()
        return conn

    def peek(self, server: str) -> WingsConnection | None:
        return self._connections.get(server)

    @contextlib.asynccontextmanager
    async def use(self, server: str) -> AsyncIterator[WingsConnection]:
        """Hold a server's connection open for an on-demand action."""
        self._uses[server] = self._uses.get(server, 0) + 1
        try:
            yield self.connection(server)
        finally:
            self._uses[server] -= 1
            self._maybe_idle(server)

    def _maybe_idle(self, server: str) -> None:
        if self._uses.get(server, 0) > 0 or self._subs.get(server) or server not in self._connections:
            return
        self._cancel_idle(server)
        loop = asyncio.get_running_loop()
        self._idle[server] = loop.call_later(self._idle_close, self._close_idle, server)

    def _cancel_idle(self, server: str) -> None:
        handle = self._idle.pop(server, None)
        if handle is not None:
            handle.cancel()

    def _close_idle(self, server: str) -> None:
        self._idle.pop(server, None)
        if self._uses.get(server, 0) > 0 or self._subs.get(server):
            return
        conn = self._connections.pop(server, None)
        if conn is not None:
            log.info("closing idle wings connection %s", server)
            task = asyncio.create_task(conn.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # -- subscribers ---------------------------------------------------------------------------------------

    def subscribe(
        self, server: str, subscriber: Subscriber, *, console: bool = True, resume: bool = False
    ) -> Subscription:
        """Register `subscriber` for `server` (opening its connection). `console` asks for gap fills; `resume`
        for one at once, so that a subscriber restarting can post what it missed (WingsConnection.request_resume)."""
        sub = Subscription(next(self._ids), server, subscriber, console)
        self._subs.setdefault(server, []).append(sub)
        conn = self.connection(server)
        if resume:
            conn.request_resume()
        outage = self.outage(server)
        if outage is not None:  # said to the others already (and filtered now): this one must hear it too
            try:
                subscriber.notice(outage)
            except Exception:  # noqa: BLE001 - logged in _subscriber_failed
                self._subscriber_failed(sub)
        return sub

    def outage(self, server: str) -> Notice | None:
        """The lost-connection notice while `server`'s reported outage goes on, else None."""
        conn = self._connections.get(server)
        return None if conn is None else conn.session.outage()

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.server, [])
        if sub in subs:
            subs.remove(sub)
        if not subs:
            self._subs.pop(sub.server, None)
            self._maybe_idle(sub.server)

    # -- EventSink -----------------------------------------------------------------------------------------

    def deliver(self, event: WingsEvent) -> None:
        for sub in self._subs.get(event.server, ()):
            try:
                sub.subscriber.deliver(event)
            except Exception:  # noqa: BLE001 - logged in _subscriber_failed
                self._subscriber_failed(sub)

    def notice(self, notice: Notice) -> None:
        if not self._notices.allow(notice):
            due = self._notices.held_until(notice.server)
            if due is not None and notice.server not in self._retell:
                delay = max(0.0, due - self._clock())
                loop = asyncio.get_running_loop()
                self._retell[notice.server] = loop.call_later(delay, self._retell_outage, notice.server)
            return
        log.info("notice for %s: %s", notice.server, notice.text)
        for sub in self._subs.get(notice.server, ()):
            try:
                sub.subscriber.notice(notice)
            except Exception:  # noqa: BLE001 - logged in _subscriber_failed
                self._subscriber_failed(sub)

    def _retell_outage(self, server: str) -> None:
        """An outage held back by the notice window: told now if it still goes on."""
        self._retell.pop(server, None)
        outage = self.outage(server)
        if outage is not None:
            self.notice(outage)

    def wants_gap_fill(self, server: str) -> bool:
        return any(sub.console for sub in self._subs.get(server, ()))

    def gap_filled(self, server: str) -> None:
        for sub in self._subs.get(server, ()):
            hook = getattr(sub.subscriber, "gap_filled", None)
            if hook is None:
                continue
            try:
                hook(server)
            except Exception:  # noqa: BLE001 - logged in _subscriber_failed
                self._subscriber_failed(sub)

    def _subscriber_failed(self, sub: Subscription) -> None:
        # One broken subscriber must not stop the socket or the others; it is logged (rarely) and skipped.
        sub.failures += 1
        if sub.failures in (1, 10, 100) or sub.failures % 1000 == 0:
            log.exception("subscriber %d of %s failed (%d times)", sub.id, sub.server, sub.failures)

    # -- actions -------------------------------------------------------------------------------------------

    async def set_state(
        self, server: str, action: PowerAction, *, timeout: float | None = None
    ) -> PowerResult:
        """Power action on the server's shared connection; see `bot.wings.actions.set_state`."""
        async with self.use(server) as conn:
            return await actions.set_state(conn, action, timeout=timeout)

    async def send_command(self, server: str, command: str, *, window: float | None = None) -> CommandResult:
        """Console command with its output; see `bot.wings.actions.send_command`."""
        async with self.use(server) as conn:
            return await actions.send_command(conn, command, window=window)

    async def fetch_stats(self, server: str, *, wait: float | None = None) -> Stats:
        """Current stats; see `bot.wings.actions.fetch_stats`."""
        async with self.use(server) as conn:
            return await actions.fetch_stats(conn, wait=wait)

    async def fetch_logs(self, server: str) -> list[str]:
        """The console backlog, for the asker only; see `bot.wings.actions.fetch_logs`."""
        async with self.use(server) as conn:
            return await actions.fetch_logs(conn)

    # -- health and shutdown -------------------------------------------------------------------------------

    def health(self) -> list[Health]:
        out = []
        for server, conn in sorted(self._connections.items()):
            subs = self._subs.get(server, [])
            overflow = sum(getattr(s.subscriber, "overflowed", 0) for s in subs)
            out.append(replace(conn.health(), subscribers=len(subs), overflowed=overflow))
        return out

    def connections(self) -> list[WingsConnection]:
        return list(self._connections.values())

    async def close(self) -> None:
        for handle in (*self._idle.values(), *self._retell.values()):
            handle.cancel()
        self._idle.clear()
        self._retell.clear()
        conns = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(c.close() for c in conns), *self._closing, return_exceptions=True)
