"""The driver of one server's Wings console socket: the I/O around its `Session`.

The session (`bot.wings.session`) decides everything about the protocol; this module owns what it cannot: the
websocket (pings, the Origin header, frame size), the one timer the session asks for, the panel calls for
credentials, and the reconnect loop with its backoff. It feeds the session and carries out the actions it
returns. It never talks to Discord: events and notices go to an `EventSink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bot.panel.client import PanelClient
from bot.panel.errors import PanelError
from bot.wings.errors import ActionRefused, WingsUnavailable
from bot.wings.events import ConnectionState, Health, Notice, WingsEvent
from bot.wings.frames import MAX_INBOUND_FRAME, Event, PowerState, Stats, encode_frame
from bot.wings.limits import OutboundLimits
from bot.wings.session import (
    Action,
    CaptureDone,
    CapturePurpose,
    Connected,
    Deliver,
    FetchToken,
    FillGap,
    Notify,
    Reconnect,
    SendFrame,
    Session,
    SessionState,
    Stop,
    Timing,
    Verdict,
    backoff_delay,
)
from bot.wings.tokens import TokenClaims, has_permission

__all__ = ["EventSink", "Timing", "WingsConnection"]

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where a connection delivers what it receives. Both calls must return at once (no awaiting)."""

    def deliver(self, event: WingsEvent) -> None: ...

    def notice(self, notice: Notice) -> None: ...

    def wants_gap_fill(self, server: str) -> bool: ...

    def gap_filled(self, server: str) -> None:
        """A gap fill ended: every line it recovered has been delivered."""


class WingsConnection:
    """Keeps one server's console socket alive until closed or stopped for a reason retrying cannot fix."""

    def __init__(
        self,
        panel: PanelClient,
        server: str,
        sink: EventSink,
        *,
        origin: str,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.server = server
        self.timing = timing or Timing()
        self.session = Session(server, self.timing, rng=rng)
        self.clock = clock
        self._panel = panel
        self._sink = sink
        self._origin = origin
        self._wall = wall
        self._rng = rng
        self.state = ConnectionState.IDLE
        self.loop_error: str | None = None
        self._closed = False  # close() was called (and no start() since)
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._refresh_task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._verdict: Verdict | None = None
        self._authed_at: float | None = None
        self._ready = asyncio.Event()
        self._ended = asyncio.Event()  # the background task ended (stopped for good, or closed)
        self._watchers: set[Callable[[WingsEvent], None]] = set()
        self._logs_waiters: set[asyncio.Future[list[str]]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._send_lock = asyncio.Lock()
        self._limits = OutboundLimits.scaled(self.timing.outbound_scale)

    # -- what the rest of the application reads ----------------------------------------------------------------

    @property
    def power(self) -> PowerState | None:
        """The server's power state as Wings last said it (None until the socket's first `status`)."""
        return self.session.power

    @property
    def claims(self) -> TokenClaims | None:
        return self.session.claims

    @property
    def reconnects(self) -> int:
        return self.session.reconnects

    @property
    def refreshes(self) -> int:
        return self.session.refreshes

    @property
    def events(self) -> int:
        return self.session.events

    @property
    def skipped_frames(self) -> int:
        return self.session.skipped_frames

    @property
    def stopped_reason(self) -> str | None:
        return self.session.stopped_reason

    @property
    def last_error(self) -> str | None:
        return self.session.last_error

    def health(self) -> Health:
        s = self.session
        mono, wall = self.clock(), self._wall()

        def as_wall(t: float | None) -> float | None:
            return None if t is None else wall - (mono - t)

        exp = s.claims.exp if s.claims and self.state is ConnectionState.CONNECTED else None
        return Health(
            server=self.server,
            state=self.state,
            power=s.power,
            connected_since=as_wall(s.connected_at),
            token_expires_at=float(exp) if exp is not None else None,
            last_console_at=as_wall(s.last_console_at),
            last_stats_at=as_wall(s.last_stats_at),
            reconnects=s.reconnects,
            refreshes=s.refreshes,
            last_error=s.last_error,
            stopped_reason=s.stopped_reason,
            events=s.events,
            skipped_frames=s.skipped_frames,
            loop_error=self.loop_error,
        )

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or restart after a stop) the background task that keeps the socket up."""
        if self._task is None or self._task.done():
            self._closed = False
            self._ended.clear()
            self.session.restart()
            self.state = ConnectionState.CONNECTING
            self._task = asyncio.create_task(self._run(), name=f"wings:{self.server}")

    async def close(self) -> None:
        """Close the socket and end the task; nothing is reported."""
        self._closed = True  # before the task ends: whoever waits on it learns why
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._side_tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._cancel_timer()
        for fut in self._logs_waiters:
            fut.cancel()
        self.state = ConnectionState.CLOSED
        self._ended.set()
        self._ready.clear()

    async def wait_ready(self, timeout: float) -> None:
        """Wait for an authenticated socket; raise `WingsUnavailable` with the reason when there is none."""
        self.start()
        if self._ready.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self._ready.is_set():
                    if self._task is None or self._task.done():
                        break
                    waiter = asyncio.ensure_future(self._ready.wait())
                    try:
                        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
                    finally:  # also when the timeout cancels the wait: the waiter must not outlive it
                        waiter.cancel()
        if not self._ready.is_set():
            if self._closed:
                raise WingsUnavailable(
                    "Wingbeat closed the console connection before it was ready (it may be shutting down); "
                    "try again in a minute."
                )
            reason = self.session.stopped_reason or self.session.last_error or "no answer yet"
            raise WingsUnavailable(f"The server's console connection is not available: {reason}")

    def request_resume(self) -> None:
        """Fill a gap on the first authenticated socket (now, if one is up) though nothing was delivered yet.

        For a subscriber that posted this console before a restart: the backlog Wings replays is delivered as
        recovered lines, followed by `gap_filled`, and the subscriber keeps what it had not posted.
        """
        if self.session.state is SessionState.CONNECTED:
            self._apply(self.session.capture_logs(self.clock(), CapturePurpose.GAP_FILL))
        else:
            self.session.resume_requested = True

    # -- the reconnect loop ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        try:
            while True:
                verdict = await self._one_socket()
                if isinstance(verdict, Stop):
                    break
                # Every attempt fetches fresh credentials (a token lives minutes, and the server may have moved
                # to another node), and a Stop never comes back here: 4409, deletion, a panel refusal or a missing
                # permission cannot be fixed by retrying, only by someone acting on the panel.
                if (
                    self._authed_at is not None
                    and self.clock() - self._authed_at >= self.timing.healthy_after
                ):
                    attempt = 0  # a connection that had recovered retries quickly
                delay = max(verdict.retry_after, backoff_delay(attempt, self.timing, self._rng()))
                attempt += 1
                self.state = ConnectionState.RECONNECTING
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - logged with its traceback; the loop goes on
            self._unexpected("reconnect loop", exc)
            self._apply(self.session.give_up("internal error (see the bot's log)"))
        self.state = ConnectionState.STOPPED
        self._ended.set()
        self._ready.clear()

    async def _one_socket(self) -> Verdict:
        """Credentials, socket, auth, frames until the socket closes; returns the session's verdict on it."""
        self._verdict = None
        self._authed_at = None
        self.state = ConnectionState.CONNECTING
        try:
            creds = await self._panel.websocket_credentials(self.server)
        except Exception as exc:  # noqa: BLE001 - any failure, even a malformed panel answer, is retried with backoff
            if not isinstance(exc, PanelError):
                self._unexpected("credentials", exc)
            self._apply(self.session.credentials_failed(exc, self.clock()))
            return self._take_verdict()
        try:
            ws = await websockets.connect(
                creds.socket,
                origin=websockets.Origin(self._origin),
                open_timeout=self.timing.open_timeout,
                ping_interval=self.timing.ping_interval,
                ping_timeout=self.timing.ping_timeout,
                close_timeout=2,
                # Frames over MAX_INBOUND_FRAME are read, logged and skipped by the session; only a frame so large
                # that reading it endangers memory closes the socket (websockets' own limit).
                max_size=16 * MAX_INBOUND_FRAME,
                max_queue=64,
                compression=None,
                user_agent_header="Wingbeat",
                proxy=None,  # like the panel client: no proxy from the environment
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            self._apply(
                self.session.socket_failed(
                    f"HTTP {status}", self.clock(), http_status=status, detail=_wings_error(exc.response.body)
                )
            )
            return self._take_verdict()
        except Exception as exc:  # noqa: BLE001 - network errors, timeouts, handshake errors: retried
            if not isinstance(exc, OSError | TimeoutError | InvalidHandshake):
                self._unexpected("socket upgrade", exc)
            self._apply(self.session.socket_failed(_describe(exc), self.clock()))
            return self._take_verdict()
        self._ws = ws
        try:
            self._apply(self.session.socket_opened(creds.token, creds.socket, self.clock()))
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    self._receive(message)
        finally:
            self._ws = None
            self._ready.clear()
            if self._refresh_task is not None:
                self._refresh_task.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
        self._apply(self.session.socket_closed(ws.close_code, self.clock()))
        return self._take_verdict()

    def _take_verdict(self) -> Verdict:
        verdict, self._verdict = self._verdict, None
        if verdict is None:  # the session gives one per socket; never spin without a pause if it did not
            log.error("wings connection %s ended without a verdict", self.server)
            return Reconnect("ended without a verdict")
        return verdict

    def _receive(self, message: str | bytes) -> None:
        try:
            actions = self.session.receive(message, self.clock())
        except Exception as exc:  # noqa: BLE001 - logged with its traceback; the loop goes on
            # A bug in reading one frame must not end the socket: skip that frame, keep the rest.
            self._unexpected("frame handling", exc)
            return
        self._apply(actions)

    def _unexpected(self, where: str, exc: BaseException) -> None:
        self.loop_error = f"{where}: {_describe(exc)}"
        log.error("wings connection %s: unexpected failure in %s", self.server, where, exc_info=exc)

    # -- carrying out the session's actions --------------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Deliver(event):
                    for watcher in tuple(self._watchers):
                        watcher(event)
                    self._sink.deliver(event)
                case Notify(notice):
                    self._sink.notice(notice)
                case SendFrame(event, args):
                    if self._ws is not None:
                        self._spawn(self._send_raw(self._ws, event, *args), "send")
                case FetchToken():
                    self._refresh_task = self._spawn(self._fetch_token(), "refresh")
                case FillGap():
                    if self._sink.wants_gap_fill(self.server):
                        self._apply(self.session.capture_logs(self.clock(), CapturePurpose.GAP_FILL))
                case CaptureDone(lines, purposes):
                    for fut in self._logs_waiters:
                        if not fut.done():
                            fut.set_result(list(lines))
                    if CapturePurpose.GAP_FILL in purposes:
                        self._sink.gap_filled(self.server)
                case Connected():
                    self._authed_at = self.clock()
                    self.state = ConnectionState.CONNECTED
                    self._ready.set()
                case Stop() | Reconnect():
                    if self._verdict is None:
                        self._verdict = action
                    if self._ws is not None:
                        self._spawn(self._ws.close(), "close")
        self._reschedule()

    async def _fetch_token(self) -> None:
        try:
            creds = await self._panel.websocket_credentials(self.server)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the session backs off and retries whatever failed
            if not isinstance(exc, PanelError):
                self._unexpected("token refresh", exc)
            self._apply(self.session.credentials_failed(exc, self.clock()))
            return
        self._apply(self.session.credentials_received(creds.token, creds.socket, self.clock()))

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[None]:
        """Run a short side job, keeping a reference and logging failures."""
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"wings-{what}:{self.server}")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_done)
        return task

    def _side_done(self, task: asyncio.Task[None]) -> None:
        self._side_tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, ConnectionClosed):
            return  # a frame for a socket that just closed; the reader sees the close
        if exc is not None:
            self._unexpected(task.get_name(), exc)

    # -- the session's one timer -------------------------------------------------------------------------------

    def _reschedule(self) -> None:
        deadline = self.session.next_deadline()
        if deadline == self._timer_at:
            return
        self._cancel_timer()
        if deadline is None:
            return
        self._timer_at = deadline
        # A hair late rather than early: the loop may run a handle up to its clock resolution ahead of time.
        delay = max(0.0, deadline - self.clock()) + 0.001
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        try:
            self._apply(self.session.timer_fired(self.clock()))
        except Exception as exc:  # noqa: BLE001 - logged with its traceback; the loop goes on
            self._unexpected("timer", exc)
            self._reschedule_later()

    def _reschedule_later(self) -> None:
        # After a failure in the timer itself, try again in a while rather than at once in a tight loop.
        self._cancel_timer()
        self._timer_at = math.nan  # never equal to a real deadline, so the next input reschedules
        self._timer = asyncio.get_running_loop().call_later(self.timing.backoff_max / 10, self._on_timer)

    # -- what actions use (bot.wings.actions) ------------------------------------------------------------------

    async def _send_raw(self, ws: ClientConnection, event: Event, *args: str) -> None:
        if event is Event.AUTH:
            # A token must not queue behind paced commands (its auth deadline runs meanwhile); it has a bucket of
            # its own, and those waiting in line check again for the global one before they take from it.
            await self._paced_send(ws, event, args)
            return
        async with self._send_lock:  # in order
            await self._paced_send(ws, event, args)

    async def _paced_send(self, ws: ClientConnection, event: Event, args: tuple[str, ...]) -> None:
        # Pacing is a matter of time, not of an event: sleep until the buckets allow it (again, if an `auth` took
        # the global token meanwhile).
        wait = self._limits.wait_time(event.value, self.clock())
        while wait > 0:
            await asyncio.sleep(wait)
            wait = self._limits.wait_time(event.value, self.clock())
        self._limits.take(event.value, self.clock())
        await ws.send(encode_frame(event, *args))

    async def send(self, event: Event, *args: str) -> None:
        """Send one frame on the authenticated socket, paced to hardened Wings' buckets."""
        ws = self._ws
        if ws is None or not self._ready.is_set() or not self.session.may_send(event):
            raise WingsUnavailable("The server's console connection is not up; try again in a moment.")
        try:
            await self._send_raw(ws, event, *args)
        except ConnectionClosed:
            raise WingsUnavailable(
                "The server's console connection dropped; try again in a moment."
            ) from None

    @contextlib.asynccontextmanager
    async def watch(self, size: int = 4096) -> AsyncIterator[asyncio.Queue[WingsEvent]]:
        """Every event delivered while the block runs, in a bounded queue (what does not fit is dropped)."""
        queue: asyncio.Queue[WingsEvent] = asyncio.Queue(size)

        def put(event: WingsEvent) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

        self._watchers.add(put)
        try:
            yield queue
        finally:
            self._watchers.discard(put)

    async def next_event(self, queue: asyncio.Queue[WingsEvent]) -> WingsEvent | None:
        """The next event from a `watch()` queue, or None once the connection has ended (stopped or closed)."""
        if not queue.empty():
            return queue.get_nowait()
        if self._ended.is_set():
            return None
        get = asyncio.ensure_future(queue.get())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({get, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not get.done():
                get.cancel()
        return get.result() if get.done() and not get.cancelled() else None

    def require(self, permission: str, what: str) -> None:
        """Refuse before sending when the token lacks `permission` (Wings would drop `what` silently)."""
        claims = self.session.claims
        if not has_permission(claims.permissions if claims else frozenset(), permission):
            raise ActionRefused(
                f"The panel key's user lacks the `{permission}` permission on this server, so Wings would silently ignore {what}."
            )

    def fresh_stats(self, max_age: float) -> Stats | None:
        return self.session.fresh_stats(self.clock(), max_age)

    async def capture_logs(self) -> list[str]:
        """Wings' console backlog (`send logs`), captured until the replay goes quiet; never relayed as new."""
        if self.session.state is not SessionState.CONNECTED:
            raise WingsUnavailable("The server's console connection is not up; try again in a moment.")
        fut: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._logs_waiters.add(fut)
        try:
            self._apply(self.session.capture_logs(self.clock(), CapturePurpose.LOGS))
            async with asyncio.timeout(self.timing.logs_max + self.timing.gap_max + 1):
                return await fut
        except TimeoutError:
            raise WingsUnavailable("Wings did not replay the console in time.") from None
        finally:
            self._logs_waiters.discard(fut)


def _wings_error(body: bytes | bytearray | None) -> str:
    """The text of Wings' `{"error": "..."}` body, or "" for any other body."""
    try:
        obj = json.loads(body or b"")
    except (ValueError, RecursionError):
        return ""
    error = obj.get("error") if isinstance(obj, dict) else None
    return error if isinstance(error, str) else ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PanelError):
        return str(exc)
    if isinstance(exc, ssl.SSLError):
        # Its text names the node's host (e.g. "certificate is not valid for 'node.example.com'"), which a linked
        # channel must not see and no pattern can pick out of free text; the log keeps the whole error.
        log.warning("TLS to the Wings node failed: %s", exc)
        kind = "certificate" if isinstance(exc, ssl.SSLCertVerificationError) else "handshake"
        return f"TLS {kind} error talking to the node ({exc.reason or type(exc).__name__}; details in the bot's log)"
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        return f"socket closed ({f'code {rcvd.code}' if rcvd is not None else 'no close frame'})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
