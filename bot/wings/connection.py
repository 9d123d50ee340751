"""One managed Wings console socket per game server: auth, token refresh, pings, reconnects, actions.

The rules (what a frame means, when to refresh, what an error text says) live in `protocol`; this module is
the I/O around them. It never talks to Discord: events and notices go to an `EventSink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bot.errors import WingbeatError
from bot.panel.client import PanelClient
from bot.panel.errors import (
    PanelAuthError,
    PanelConflict,
    PanelError,
    PanelForbidden,
    PanelNotFound,
    PanelRateLimited,
)
from bot.panel.models import WebsocketCredentials
from bot.wings.backlog import RecentLines, new_lines
from bot.wings.events import (
    CommandResult,
    ConnectionState,
    Health,
    Notice,
    NoticeKind,
    PowerOutcome,
    PowerResult,
    WingsEvent,
)
from bot.wings.limits import OutboundLimits
from bot.wings.protocol import (
    MAX_INBOUND_FRAME,
    ConnectionCloseKind,
    Event,
    Frame,
    FrameError,
    PowerAction,
    PowerState,
    Stats,
    TokenClaims,
    TokenError,
    check_command,
    classify_close,
    classify_jwt_error,
    decode_frame,
    encode_frame,
    expected_states,
    explain_daemon_error,
    explain_jwt_error,
    has_permission,
    jwt_cause_refreshable,
    jwt_cause_terminal,
    parse_stats,
    permission_for,
    read_claims,
    refresh_at,
    strip_error_prefix,
)

log = logging.getLogger(__name__)


# `transfer status` values after which the source node deletes its copy of the server (reference §3.1).
_TRANSFER_ENDED = frozenset({"completed", "success"})


class WingsError(WingbeatError):
    """A console action could not be done; the message is one sentence for the user."""


class ActionRefused(WingsError):
    """Refused before anything was sent (missing permission, wrong power state, bad command)."""


class WingsUnavailable(WingsError):
    """No usable socket (yet, or at all) for this server."""


class EventSink(Protocol):
    """Where a connection delivers what it receives. Both calls must return at once (no awaiting)."""

    def deliver(self, event: WingsEvent) -> None: ...

    def notice(self, notice: Notice) -> None: ...

    def wants_gap_fill(self, server: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Timing:
    """Every duration a connection uses, so tests can shrink them."""

    auth_timeout: float = 10.0
    open_timeout: float = 10.0
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    healthy_after: float = 60.0
    lost_grace: float = 10.0
    refresh_retry: float = 5.0
    min_refresh_gap: float = 2.0
    gap_first_line: float = 1.0
    gap_quiet: float = 0.25
    gap_max: float = 3.0
    power_timeout: float = 30.0
    command_window: float = 1.5
    logs_quiet: float = 0.3
    logs_max: float = 3.0
    outbound_scale: float = 1.0  # multiplies the refill periods of hardened Wings' buckets we pace to


class _Stop(Exception):
    """The connection must not retry (4409, deleted, 404, missing permission, uuid mismatch...)."""


class _Reconnect(Exception):
    """Drop this socket and start over with fresh credentials."""


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
        self._panel = panel
        self._sink = sink
        self._origin = origin
        self.timing = timing or Timing()
        self._clock = clock
        self._wall = wall
        self._rng = rng
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._ws: ClientConnection | None = None
        self._socket_url = ""
        self._send_lock = asyncio.Lock()
        self._limits = OutboundLimits.scaled(self.timing.outbound_scale)
        self._ready = asyncio.Event()
        self._watchers: set[Callable[[WingsEvent], None]] = set()
        self._recent = RecentLines()
        # token state
        self._claims: TokenClaims | None = None
        self._token_received_at = 0.0
        self._refresh_due = float("inf")
        self._refresh_now = asyncio.Event()
        self._auth_waiter: asyncio.Future[None] | None = None
        self._last_refresh_ok = float("-inf")
        self._lossy = False  # jwt errors may have replaced events since the last good token
        self._pending_stop: str | None = None  # set by a frame that means "never retry"; acted on at close
        self._transfer_ended = False  # a `deleted` right after a transfer means "moved", not "gone"
        # gap fill
        self._capture: list[str] | None = None
        self._capture_last = 0.0
        # health
        self.state = ConnectionState.IDLE
        self.power: PowerState | None = None
        self.stopped_reason: str | None = None
        self.last_error: str | None = None
        self.connected_since: float | None = None
        self.last_console_at: float | None = None
        self.last_stats_at: float | None = None
        self.last_stats: Stats | None = None
        self._last_stats_mono = float("-inf")
        self.reconnects = 0
        self.refreshes = 0
        self.events = 0
        self.skipped_frames = 0
        self._sessions = 0
        self._down_since: float | None = None
        self._lost_reported = False

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or restart after a stop) the background task that keeps the socket up."""
        if self._task is None or self._task.done():
            self.stopped_reason = None
            self.state = ConnectionState.CONNECTING
            self._task = asyncio.create_task(self._run(), name=f"wings:{self.server}")

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run a short side job (gap fill, closing the socket), keeping a reference and logging failures."""
        task = asyncio.create_task(coro, name=f"wings-{what}:{self.server}")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_done)

    def _side_done(self, task: asyncio.Task[None]) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("wings %s for %s failed", task.get_name(), self.server, exc_info=task.exception())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """Close the socket and end the task; nothing is reported."""
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._side_tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.state = ConnectionState.CLOSED
        self._ready.clear()

    def health(self) -> Health:
        exp = self._claims.exp if self._claims and self.state is ConnectionState.CONNECTED else None
        return Health(
            server=self.server,
            state=self.state,
            power=self.power,
            connected_since=self.connected_since,
            token_expires_at=float(exp) if exp is not None else None,
            last_console_at=self.last_console_at,
            last_stats_at=self.last_stats_at,
            reconnects=self.reconnects,
            refreshes=self.refreshes,
            last_error=self.last_error,
            stopped_reason=self.stopped_reason,
            events=self.events,
        )

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
                    await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
        if not self._ready.is_set():
            reason = self.stopped_reason or self.last_error or "no answer yet"
            raise WingsUnavailable(f"The server's console connection is not available: {reason}")

    # -- the loop ------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        try:
            while True:
                started = self._clock()
                try:
                    await self._one_session()
                except _Stop as stop:
                    self._stop(str(stop))
                    return
                except _Reconnect as why:
                    self._note_error(str(why))
                except PanelRateLimited as exc:
                    self._note_error(str(exc))
                    await self._sleep_down(max(exc.retry_after, self._backoff(attempt)))
                    attempt += 1
                    continue
                except (OSError, TimeoutError, InvalidHandshake, PanelError) as exc:
                    self._note_error(_describe(exc))
                except ConnectionClosed as exc:
                    self._note_error(f"socket closed ({_close_text(exc)})")
                finally:
                    self._on_socket_gone()
                if self._clock() - started >= self.timing.healthy_after:
                    attempt = 0
                await self._sleep_down(self._backoff(attempt))
                attempt += 1
                self.reconnects += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("wings connection %s failed unexpectedly", self.server)
            self._stop("internal error (see the bot's log)")

    def _backoff(self, attempt: int) -> float:
        # Full jitter: a uniform wait up to the exponential cap, so hundreds of sockets never retry in step.
        cap = min(self.timing.backoff_max, self.timing.backoff_min * 2.0 ** min(attempt, 30))
        return max(self.timing.backoff_min / 2, cap * self._rng())

    async def _sleep_down(self, delay: float) -> None:
        self.state = ConnectionState.RECONNECTING
        deadline = self._clock() + delay
        while (left := deadline - self._clock()) > 0:
            await asyncio.sleep(min(left, 1.0))
            self._maybe_report_lost()

    def _stop(self, reason: str) -> None:
        self.state = ConnectionState.STOPPED
        self.stopped_reason = reason
        self._ready.clear()
        log.warning("wings connection %s stopped: %s", self.server, reason)

    def _note_error(self, text: str) -> None:
        self.last_error = text
        log.info("wings connection %s: %s", self.server, text)

    def _on_socket_gone(self) -> None:
        self._ws = None
        self._ready.clear()
        self.connected_since = None
        self._fail_auth(_Reconnect("socket closed"))
        if self._down_since is None:
            self._down_since = self._clock()

    def _maybe_report_lost(self) -> None:
        if (
            not self._lost_reported
            and self._down_since is not None
            and self._clock() - self._down_since >= self.timing.lost_grace
        ):
            self._lost_reported = True
            reason = self.last_error or "unknown reason"
            self._notify(NoticeKind.CONNECTION_LOST, f"Lost the console connection ({reason}); retrying.")

    def _stopping(self, reason: str) -> _Stop:
        """A stop found outside the socket (panel refusal, Origin): tell the linked channels, since no frame did."""
        self._notify(
            NoticeKind.STOPPED,
            f"The console connection stopped: {reason} It resumes when someone acts on it again.",
        )
        return _Stop(reason)

    async def _credentials(self) -> WebsocketCredentials:
        try:
            return await self._panel.websocket_credentials(self.server)
        except (PanelNotFound, PanelForbidden, PanelAuthError) as exc:
            raise self._stopping(str(exc)) from None
        except PanelConflict as exc:
            self._notify(NoticeKind.STOPPED, str(exc), key=f"conflict:{exc.kind}")
            raise

    async def _one_session(self) -> None:
        self.state = ConnectionState.CONNECTING
        self._pending_stop = None
        creds = await self._credentials()
        try:
            ws = await websockets.connect(
                creds.socket,
                origin=websockets.Origin(self._origin),
                open_timeout=self.timing.open_timeout,
                ping_interval=self.timing.ping_interval,
                ping_timeout=self.timing.ping_timeout,
                close_timeout=2,
                # Frames over MAX_INBOUND_FRAME are read, logged and skipped (SPEC §10); only a frame so large
                # that reading it endangers memory closes the socket (websockets' own limit).
                max_size=16 * MAX_INBOUND_FRAME,
                max_queue=64,
                compression=None,
                user_agent_header="Wingbeat",
                proxy=None,  # like the panel client: no proxy from the environment
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 403:
                raise self._stopping(
                    "Wings refused the Origin header; set WINGS_ORIGIN to the panel URL configured in Wings (remote:)."
                ) from None
            raise _Reconnect(f"Wings answered HTTP {status} to the socket upgrade") from None
        self._ws = ws
        self._socket_url = creds.socket
        refresher: asyncio.Task[None] | None = None
        try:
            with contextlib.suppress(ConnectionClosed):
                await self._authenticate(ws, creds)
                refresher = asyncio.create_task(self._refresh_loop(ws), name=f"wings-refresh:{self.server}")
                gap = self._sessions > 0 or self._lossy
                self._sessions += 1
                if gap and self._sink.wants_gap_fill(self.server):
                    self._lossy = False
                    self._spawn(self._fill_gap(), "gap")
                async for message in ws:
                    self._on_message(message)
            # Closed, by Wings or by us: the close code (or a pending stop) says whether to come back.
            self._raise_for_close(ws)
        finally:
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await refresher
            await ws.close()

    def _raise_for_close(self, ws: ClientConnection) -> None:
        if self._pending_stop is not None:
            reason, self._pending_stop = self._pending_stop, None
            raise _Stop(reason)
        code = ws.close_code
        kind = classify_close(code)
        if kind is ConnectionCloseKind.SUSPENDED:
            self._notify(
                NoticeKind.SUSPENDED,
                "The server is suspended; the console stays disconnected until it is unsuspended and relinked.",
            )
            raise _Stop("server is suspended (close 4409)")
        raise _Reconnect(f"socket closed ({code if code is not None else 'no close frame'})")

    async def _authenticate(self, ws: ClientConnection, creds: WebsocketCredentials) -> None:
        claims = self._read_token(creds.token)
        self._auth_waiter = asyncio.get_running_loop().create_future()
        await self._send_raw(ws, Event.AUTH, creds.token)
        try:
            async with asyncio.timeout(self.timing.auth_timeout):
                while not self._auth_waiter.done():
                    message = await ws.recv()
                    self._on_message(message)
                await self._auth_waiter
        except TimeoutError:
            raise _Reconnect(f"no auth success within {self.timing.auth_timeout:g} s") from None
        self._accept_token(claims)
        self.state = ConnectionState.CONNECTED
        self.connected_since = self._wall()
        self._ready.set()
        if self._lost_reported:
            self._notify(NoticeKind.CONNECTION_RESTORED, "Console connection restored.")
        self._lost_reported = False
        self._down_since = None
        self.last_error = None
        log.info("wings connection %s authenticated", self.server)

    def _read_token(self, token: str) -> TokenClaims | None:
        try:
            return read_claims(token)
        except TokenError:
            log.warning(
                "wings token for %s has unreadable claims; refreshing on Wings' signals only", self.server
            )
            return None

    def _accept_token(self, claims: TokenClaims | None) -> None:
        now = self._clock()
        self._claims = claims
        self._token_received_at = now
        self._refresh_due = refresh_at(claims, now) if claims else float("inf")

    # -- token refresh -------------------------------------------------------------------------------------

    def _trigger_refresh(self) -> None:
        if self._clock() - self._last_refresh_ok >= self.timing.min_refresh_gap:
            self._refresh_now.set()

    async def _refresh_loop(self, ws: ClientConnection) -> None:
        while True:
            delay = max(0.0, self._refresh_due - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._refresh_now.wait()
            self._refresh_now.clear()
            try:
                await self._refresh(ws)
            except _Reconnect as why:
                self._note_error(str(why))
                await ws.close()
                return
            except _Stop as stop:
                self._stop_soon(str(stop))
                return
            except (PanelError, TimeoutError, ConnectionClosed, OSError) as exc:
                text = _describe(exc)
                self._note_error(f"token refresh failed: {text}")
                self._notify(
                    NoticeKind.REFRESH_FAILED, f"Could not refresh the console token ({text}); retrying."
                )
                self._refresh_due = self._clock() + self.timing.refresh_retry
            else:
                # Signals about the old token that came in while this refresh ran are answered by it.
                self._refresh_now.clear()

    async def _refresh(self, ws: ClientConnection) -> None:
        creds = await self._credentials()
        if creds.socket != self._socket_url:
            # The panel now points at another node (a finished transfer): start over there.
            raise _Reconnect("the server moved to another node")
        claims = self._read_token(creds.token)
        self._auth_waiter = asyncio.get_running_loop().create_future()
        await self._send_raw(ws, Event.AUTH, creds.token)
        async with asyncio.timeout(self.timing.auth_timeout):
            await self._auth_waiter
        self._accept_token(claims)
        self._last_refresh_ok = self._clock()
        self.refreshes += 1
        log.debug("wings token for %s refreshed", self.server)
        if self._lossy and self._sink.wants_gap_fill(self.server):
            self._lossy = False
            self._spawn(self._fill_gap(), "gap")
        self._lossy = False

    # -- inbound -------------------------------------------------------------------------------------------

    def _on_message(self, message: str | bytes) -> None:
        try:
            frame = decode_frame(message)
        except FrameError as exc:
            self.skipped_frames += 1
            log.warning("skipping a malformed frame from %s: %s", self.server, exc)
            return
        self.events += 1
        now = self._clock()
        match frame.known:
            case Event.AUTH_SUCCESS:
                if self._auth_waiter is not None and not self._auth_waiter.done():
                    self._auth_waiter.set_result(None)
                return
            case Event.CONSOLE_OUTPUT:
                self.last_console_at = self._wall()
                if self._capture is not None:
                    self._capture.append(frame.arg)
                    self._capture_last = now
                    return
                self._recent.add(frame.arg)
            case Event.STATUS:
                self._set_power(frame.arg)
                self._last_stats_mono = float("-inf")  # stats from before a state change are stale
            case Event.STATS:
                self.last_stats_at = self._wall()
                with contextlib.suppress(FrameError):
                    stats = parse_stats(frame.arg)
                    self.last_stats, self._last_stats_mono = stats, now
                    if stats.state is not None and stats.state is not self.power:
                        self.power = stats.state
            case Event.TOKEN_EXPIRING | Event.TOKEN_EXPIRED:
                self._trigger_refresh()
                return
            case Event.JWT_ERROR:
                self._on_jwt_error(frame.arg)
                return
            case Event.DAEMON_ERROR:
                during_auth = self._auth_waiter is not None and not self._auth_waiter.done()
                text = explain_daemon_error(frame.arg, during_auth=during_auth)
                self._notify(
                    NoticeKind.DAEMON_ERROR, text, key=f"daemon:{strip_error_prefix(frame.arg)[:80]}"
                )
                if during_auth and self._claims is None:
                    self._stop_soon(text)
            case Event.DELETED if self._transfer_ended:
                # A finished transfer deletes the server from its old node: follow it to the new one.
                self._transfer_ended = False
                if self._ws is not None:
                    self._spawn(self._ws.close(), "close")
            case Event.DELETED:
                self._notify(
                    NoticeKind.DELETED,
                    "The server was deleted from its node; its console is no longer mirrored.",
                )
                self._stop_soon("the server was deleted")
            case Event.TRANSFER_STATUS:
                self._transfer_ended = frame.arg in _TRANSFER_ENDED
            case Event.THROTTLED:
                self._notify(
                    NoticeKind.THROTTLED,
                    f"Wings throttled Wingbeat's `{frame.arg}` messages; slowing down.",
                    key=f"throttled:{frame.arg}",
                )
            case None:
                log.debug("ignoring unknown event %r from %s", frame.event, self.server)
                return
        self._dispatch(WingsEvent(self.server, frame, now))

    def _set_power(self, value: str) -> None:
        try:
            self.power = PowerState(value)
        except ValueError:
            log.debug("unknown power state %r from %s", value, self.server)

    def _fail_auth(self, exc: Exception) -> None:
        if self._auth_waiter is not None and not self._auth_waiter.done():
            self._auth_waiter.set_exception(exc)
            self._auth_waiter.exception()  # mark retrieved; the awaiting side re-raises it

    def _stop_soon(self, reason: str) -> None:
        """Close the socket and stop for good once it is closed (no reconnect)."""
        self._pending_stop = reason
        self._fail_auth(_Stop(reason))
        if self._ws is not None:
            self._spawn(self._ws.close(), "close")

    def _on_jwt_error(self, text: str) -> None:
        authing = self._auth_waiter is not None and not self._auth_waiter.done()
        # Wings prefixes "Error Event [..]: " only on a handler's answer, i.e. to our `auth`; unprefixed errors
        # are about the token it already holds (the flood that replaces events once that token went bad).
        answers_auth = authing and strip_error_prefix(text) != text.strip()
        # A token we fetched moments ago, refused as expired, means the panel's and node's clocks differ.
        cause = classify_jwt_error(text, fresh_token=answers_auth)
        self._notify(NoticeKind.JWT_ERROR, explain_jwt_error(cause), key=f"jwt:{cause}")
        if jwt_cause_terminal(cause):
            self._stop_soon(explain_jwt_error(cause))
        elif answers_auth:
            # The token we just sent was refused: a new socket with fresh credentials (after backoff) is the fix.
            self._fail_auth(_Reconnect(f"Wings refused the token ({cause})"))
        elif jwt_cause_refreshable(cause):
            self._lossy = True  # events were replaced by errors: fill the gap once a new token is accepted
            self._trigger_refresh()

    def _dispatch(self, event: WingsEvent) -> None:
        for watcher in tuple(self._watchers):
            watcher(event)
        self._sink.deliver(event)

    def _notify(self, kind: NoticeKind, text: str, *, key: str | None = None) -> None:
        self._sink.notice(Notice(self.server, kind, text, key or kind.value))

    # -- gap fill ------------------------------------------------------------------------------------------

    async def _fill_gap(self) -> None:
        """Replay the console backlog and deliver only what was not delivered before the gap."""
        if self._capture is not None or self._ws is None:
            return
        self._capture = []
        self._capture_last = self._clock()
        started = self._clock()
        try:
            await self._send(Event.SEND_LOGS)
            while True:
                await asyncio.sleep(self.timing.gap_quiet / 2)
                now = self._clock()
                if now - started >= self.timing.gap_max:
                    break
                if not self._capture and now - started >= self.timing.gap_first_line:
                    break
                if self._capture and now - self._capture_last >= self.timing.gap_quiet:
                    break
        except (WingsError, ConnectionClosed, OSError) as exc:
            log.info("gap fill for %s failed: %s", self.server, _describe(exc))
        finally:
            captured, self._capture = self._capture or [], None
        fresh = new_lines(self._recent.snapshot(), captured)
        now = self._clock()
        for line in fresh:
            self._recent.add(line)
            self._dispatch(
                WingsEvent(self.server, Frame(Event.CONSOLE_OUTPUT.value, (line,)), now, replayed=True)
            )
        log.info("gap fill for %s: %d replayed, %d new", self.server, len(captured), len(fresh))

    # -- outbound ------------------------------------------------------------------------------------------

    async def _send_raw(self, ws: ClientConnection, event: Event, *args: str) -> None:
        async with self._send_lock:
            wait = self._limits.wait_time(event.value, self._clock())
            if wait > 0:
                await asyncio.sleep(wait)
            self._limits.take(event.value, self._clock())
            await ws.send(encode_frame(event, *args))

    async def _send(self, event: Event, *args: str) -> None:
        ws = self._ws
        if ws is None or not self._ready.is_set():
            raise WingsUnavailable("The server's console connection is not up; try again in a moment.")
        await self._send_raw(ws, event, *args)

    @contextlib.asynccontextmanager
    async def _watch(self, size: int = 4096) -> AsyncIterator[asyncio.Queue[WingsEvent]]:
        queue: asyncio.Queue[WingsEvent] = asyncio.Queue(size)

        def put(event: WingsEvent) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

        self._watchers.add(put)
        try:
            yield queue
        finally:
            self._watchers.discard(put)

    def _require(self, permission: str, what: str) -> None:
        perms = self._claims.permissions if self._claims else frozenset()
        if not has_permission(perms, permission):
            raise ActionRefused(
                f"The panel key's user lacks the `{permission}` permission on this server, so Wings would silently ignore {what}."
            )

    async def set_state(self, action: PowerAction, *, timeout: float | None = None) -> PowerResult:
        """Send `set state` and report the `status` transitions (or the `daemon error`) seen within `timeout`."""
        timeout = self.timing.power_timeout if timeout is None else timeout
        await self.wait_ready(self.timing.auth_timeout + self.timing.open_timeout)
        self._require(permission_for(action), f"the {action.value} action")
        initial = self.power
        goals = list(expected_states(action, initial))
        if not goals:
            raise ActionRefused(
                f"The server is already {initial.value if initial else 'in that state'}; nothing to {action.value}."
            )
        transitions: list[PowerState] = []
        started = self._clock()
        async with self._watch() as queue:
            await self._send(Event.SET_STATE, action.value)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while goals:
                        event = await queue.get()
                        kind = event.frame.known
                        if kind is Event.DAEMON_ERROR:
                            return PowerResult(
                                action, initial, tuple(transitions), PowerOutcome.DAEMON_ERROR,
                                self._clock() - started, explain_daemon_error(event.frame.arg),
                            )  # fmt: skip
                        if kind is Event.STATUS:
                            try:
                                state = PowerState(event.frame.arg)
                            except ValueError:
                                continue
                            if transitions and transitions[-1] is state:
                                continue
                            transitions.append(state)
                            if state is goals[0]:
                                goals.pop(0)
                            elif _crashed(action, transitions):
                                return PowerResult(
                                    action,
                                    initial,
                                    tuple(transitions),
                                    PowerOutcome.FAILED,
                                    self._clock() - started,
                                )
            outcome = PowerOutcome.TIMEOUT if goals else PowerOutcome.DONE
            return PowerResult(action, initial, tuple(transitions), outcome, self._clock() - started)

    async def send_command(self, command: str, *, window: float | None = None) -> CommandResult:
        """Send a console command and collect the console lines that follow it for `window` seconds."""
        window = self.timing.command_window if window is None else window
        problem = check_command(command)
        if problem:
            raise ActionRefused(problem)
        await self.wait_ready(self.timing.auth_timeout + self.timing.open_timeout)
        self._require(permission_for("command"), "the command")
        if self.power in (None, PowerState.OFFLINE):
            raise ActionRefused("The server is offline, so Wings would drop the command; start it first.")
        lines: list[str] = []
        async with self._watch() as queue:
            await self._send(Event.SEND_COMMAND, command)
            deadline = self._clock() + window
            while (left := deadline - self._clock()) > 0:
                try:
                    async with asyncio.timeout(left):
                        event = await queue.get()
                except TimeoutError:
                    break
                if event.frame.known is Event.CONSOLE_OUTPUT and not event.replayed:
                    lines.append(event.frame.arg)
        return CommandResult(command, tuple(lines), window)

    async def fetch_stats(self, *, max_age: float = 2.0, wait: float | None = None) -> Stats:
        """The server's current `stats`: the last ones if fresher than `max_age` s, else asked for (`send stats`).

        `wait` bounds how long to wait for a socket (default: a whole connect and auth).
        """
        await self.wait_ready(self.timing.auth_timeout + self.timing.open_timeout if wait is None else wait)
        if self.last_stats is not None and self._clock() - self._last_stats_mono <= max_age:
            return self.last_stats
        async with self._watch() as queue:
            await self._send(Event.SEND_STATS)
            try:
                async with asyncio.timeout(self.timing.logs_max):
                    while True:
                        event = await queue.get()
                        if event.frame.known is Event.STATS and self.last_stats is not None:
                            return self.last_stats
            except TimeoutError:
                raise WingsUnavailable("Wings did not answer with the server's stats in time.") from None

    async def fetch_logs(self) -> list[str]:
        """Wings' console backlog (`send logs`), gathered until the replay goes quiet."""
        await self.wait_ready(self.timing.auth_timeout + self.timing.open_timeout)
        if self.power in (None, PowerState.OFFLINE):
            raise ActionRefused("The server is offline; Wings only replays the console of a running server.")
        lines: list[str] = []
        async with self._watch() as queue:
            await self._send(Event.SEND_LOGS)
            started = last = self._clock()
            while self._clock() - started < self.timing.logs_max:
                quiet = self.timing.logs_quiet if lines else self.timing.gap_first_line
                try:
                    async with asyncio.timeout(max(0.0, quiet - (self._clock() - last))):
                        event = await queue.get()
                except TimeoutError:
                    break
                if event.frame.known is Event.CONSOLE_OUTPUT:
                    lines.append(event.frame.arg)
                    last = self._clock()
        return lines


def _crashed(action: PowerAction, transitions: list[PowerState]) -> bool:
    """A start (or the start half of a restart) that fell back to offline after starting."""
    if action not in (PowerAction.START, PowerAction.RESTART) or transitions[-1] is not PowerState.OFFLINE:
        return False
    return (
        PowerState.STARTING in transitions[:-1]
        and transitions.index(PowerState.STARTING) < len(transitions) - 1
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PanelError):
        return str(exc)
    if isinstance(exc, ConnectionClosed):
        return f"socket closed ({_close_text(exc)})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_text(exc: ConnectionClosed) -> str:
    rcvd = exc.rcvd
    return f"code {rcvd.code}" if rcvd is not None else "no close frame"
