"""The Wings console protocol as one sans-I/O state machine: socket events and frames in, actions out.

Everything that affects the protocol's state lives here: the auth handshake, the token and when to refresh
it, what each frame and each error text means, when to stop for good and when to come back, gap fills and
their dedupe, the server's power state and stats, the notices a linked channel gets, and the health
counters. There is no socket, no timer and no clock in this module: every input carries `now` (a monotonic
reading), and every output is a small frozen `Action` the driver (`bot.wings.connection`) carries out.

States (`SessionState`)::

    DISCONNECTED    no socket: before the first one, or between a Reconnect verdict and the next socket
    AUTHENTICATING  socket open and `auth` sent; nothing else may be sent before `auth success`
    CONNECTED       authenticated: events flow; the token is refreshed by `auth` on the same socket
    CLOSING         a verdict (Stop or Reconnect) was given; frames still count until the socket is closed
    STOPPED         no retry until a user acts again (`restart()`)

Transitions (input -> new state, actions)::

    DISCONNECTED    socket_opened                  -> AUTHENTICATING  SendFrame(auth); auth deadline armed
    DISCONNECTED    credentials_failed (retryable) -> DISCONNECTED    Reconnect (after backoff)
    DISCONNECTED    credentials_failed (404/403/401), socket_failed (403 Origin)
                                                   -> STOPPED         Notify, Stop
    AUTHENTICATING  `auth success`                 -> CONNECTED       Connected; FillGap after a gap
    AUTHENTICATING  auth deadline passed           -> CLOSING         Reconnect
    AUTHENTICATING  `daemon error`                 -> CLOSING         Notify, Stop (the token is unusable);
                                                                      Reconnect if Wings has too many sockets
    AUTH./CONNECTED `jwt error`                    -> see _JWT_REACTIONS below
    CONNECTED       `deleted`                      -> CLOSING         Notify, Stop
    CONNECTED       `deleted` after a finished transfer, or refreshed credentials naming another node
                                                   -> CLOSING         Reconnect (to the new node)
    any with socket socket_closed                  -> DISCONNECTED    Reconnect; STOPPED + Stop on 4409
    CLOSING         socket_closed                  -> STOPPED or DISCONNECTED, as the verdict said
    STOPPED         restart()                      -> DISCONNECTED

Within CONNECTED the token refresh runs as its own small machine (`RefreshPhase`: IDLE -> FETCHING ->
AUTHENTICATING -> IDLE): it starts when `refresh_at` (bot.wings.tokens) comes due or on Wings' signals
(`token expiring`, `token expired`, a refreshable `jwt error`), one at a time and never twice within
`min_refresh_gap`; a failure backs off exponentially with jitter and retries, whatever it was.

A `send logs` replay is captured (`Capture`): while it runs, console lines go into the capture, not to
subscribers; when it goes quiet, only the lines not delivered before (bot.wings.backlog) are delivered, so a
replay never reaches a linked channel as new output and a live line in the replay window arrives once.
Wings' own daemon-prefixed lines are never in a replay, so they pass straight through.

Each socket ends with exactly one verdict, `Stop` or `Reconnect`; every Stop comes with a notice, so a
linked channel always learns why its console went quiet.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bot.panel.errors import (
    PanelAuthError,
    PanelConflict,
    PanelError,
    PanelForbidden,
    PanelNotFound,
    PanelRateLimited,
)
from bot.wings.backlog import RecentLines, new_lines
from bot.wings.error_texts import (
    DaemonErrorKind,
    JwtErrorCause,
    classify_daemon_error,
    classify_jwt_error,
    explain_daemon_error,
    explain_jwt_error,
    strip_error_prefix,
)
from bot.wings.events import Notice, NoticeKind, WingsEvent
from bot.wings.frames import (
    ConnectionCloseKind,
    Event,
    Frame,
    FrameError,
    PowerState,
    Stats,
    classify_close,
    decode_frame,
    parse_stats,
)
from bot.wings.tokens import TokenClaims, TokenError, read_claims, refresh_at

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Timing:
    """Every duration a connection and its session use, so tests can shrink them."""

    auth_timeout: float = 10.0
    open_timeout: float = 10.0
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    healthy_after: float = 60.0
    lost_grace: float = 10.0
    min_refresh_gap: float = 2.0
    gap_first_line: float = 1.0
    gap_quiet: float = 0.25
    gap_max: float = 3.0
    power_timeout: float = 30.0
    command_window: float = 1.5
    logs_quiet: float = 0.3
    logs_max: float = 3.0
    first_status_wait: float = 2.0  # how long actions wait for the first `status` before calling it unknown
    outbound_scale: float = 1.0  # multiplies the refill periods of hardened Wings' buckets we pace to


def backoff_delay(attempt: int, timing: Timing, rng: float) -> float:
    """Full jitter: a uniform wait up to the exponential cap, so hundreds of sockets never retry in step.

    `attempt` counts failures since the last success (0 for the first retry, which is therefore quick);
    `rng` is a uniform draw in [0, 1).
    """
    cap = min(timing.backoff_max, timing.backoff_min * 2.0 ** min(attempt, 30))
    return max(timing.backoff_min / 2, cap * rng)


# -- states --------------------------------------------------------------------------------------------------


class SessionState(StrEnum):
    """Where the session is with its current socket (see the module docstring)."""

    DISCONNECTED = "disconnected"
    AUTHENTICATING = "authenticating"
    CONNECTED = "connected"
    CLOSING = "closing"
    STOPPED = "stopped"


class RefreshPhase(StrEnum):
    """The token refresh on a connected socket: one at a time."""

    IDLE = "idle"
    FETCHING = "fetching"  # the driver is getting fresh credentials from the panel
    AUTHENTICATING = "authenticating"  # the fresh token went out with `auth`; waiting for `auth success`


class CapturePurpose(StrEnum):
    """Why a `send logs` replay is being captured."""

    GAP_FILL = "gap fill"  # recover what a reconnect or a jwt error flood may have lost
    LOGS = "logs"  # a user asked for the console backlog


# -- actions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendFrame:
    """Send this frame on the socket (paced to hardened Wings' buckets)."""

    event: Event
    args: tuple[str, ...] = ()

    def __repr__(self) -> str:  # an `auth` frame carries the token, a secret: keep it out of logs
        shown = ("<token>",) if self.event is Event.AUTH else self.args
        return f"SendFrame({self.event.value!r}, {shown!r})"


@dataclass(frozen=True, slots=True)
class FetchToken:
    """Get fresh credentials from the panel for a refresh; answer with credentials_received/_failed."""


@dataclass(frozen=True, slots=True)
class FillGap:
    """Events may have been lost: if anyone mirrors the console, call capture_logs(GAP_FILL)."""


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand this event to the subscribers and to the actions watching the socket."""

    event: WingsEvent


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell the linked channels (deduplicated by the notice's key downstream)."""

    notice: Notice


@dataclass(frozen=True, slots=True)
class Connected:
    """The socket authenticated: actions may use it now."""


@dataclass(frozen=True, slots=True)
class CaptureDone:
    """A `send logs` capture ended; `lines` is everything it caught, for whoever asked for the logs."""

    lines: tuple[str, ...]
    purposes: frozenset[CapturePurpose] = frozenset()


@dataclass(frozen=True, slots=True)
class Stop:
    """Close the socket and do not retry: only a user acting again can help."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Close the socket (if any) and open a new one with fresh credentials, after at least `retry_after` s."""

    reason: str
    retry_after: float = 0.0


Action = SendFrame | FetchToken | FillGap | Deliver | Notify | Connected | CaptureDone | Stop | Reconnect
Verdict = Stop | Reconnect


# -- rule tables ---------------------------------------------------------------------------------------------


class JwtReaction(StrEnum):
    """What a `jwt error` makes the session do."""

    STOP = "stop"  # no retry can help until the panel changes
    RECONNECT = "reconnect"  # the token we just sent was refused: a new socket with fresh credentials
    REFRESH = "refresh"  # the token went stale: mark lossy, refresh on this socket, then fill the gap
    REPORT = "report"  # tell the channels; nothing to do


# A `jwt error` about the token Wings already holds (no "Error Event [..]" prefix: it replaced an event).
_JWT_REACTIONS: dict[JwtErrorCause, JwtReaction] = {
    JwtErrorCause.EXPIRED: JwtReaction.REFRESH,
    JwtErrorCause.DENYLISTED: JwtReaction.REFRESH,
    JwtErrorCause.NOT_PRESENT: JwtReaction.REFRESH,
    JwtErrorCause.NO_CONNECT_PERMISSION: JwtReaction.STOP,
    JwtErrorCause.UUID_MISMATCH: JwtReaction.STOP,
    JwtErrorCause.CLOCK_SKEW: JwtReaction.REFRESH,  # each fresh token buys some time; the notice names the cause
    JwtErrorCause.BAD_TOKEN: JwtReaction.REPORT,
    JwtErrorCause.OTHER: JwtReaction.REPORT,
}


def jwt_reaction(cause: JwtErrorCause, *, answers_auth: bool) -> JwtReaction:
    """The reaction to a `jwt error`; one answering our own `auth` means that token is no good: reconnect."""
    reaction = _JWT_REACTIONS[cause]
    if answers_auth and reaction is not JwtReaction.STOP:
        return JwtReaction.RECONNECT
    return reaction


# A token Wings calls expired this long (s) before its own lifetime ran out cannot have aged out: the node's clock
# is ahead of the panel's. Wings' expiry checks are whole seconds; this leaves room for slow delivery too.
EARLY_EXPIRY_MARGIN = 30.0
# ...but an error in the first moments after a re-auth may still be about the token it replaced.
STALE_ERROR_GRACE = 1.0

# What a socket closed by Wings (no verdict of ours yet) means.
_CLOSE_STOPS: dict[ConnectionCloseKind, str] = {
    ConnectionCloseKind.SUSPENDED: "server is suspended (close 4409)",
}

# `transfer status` values after which the source node deletes its copy of the server.
_TRANSFER_ENDED = frozenset({"completed", "success"})

# Wings' own console lines (crash reports, throttle warnings...) never appear in a `send logs` replay.
_DAEMON_LINE_MARK = " Daemon]:\x1b[39m "


def is_daemon_line(line: str) -> bool:
    """True for a Wings-generated console line (`[Pterodactyl Daemon]:`, Pelican's `[pelican Daemon]:`)."""
    return line.startswith("\x1b[33m\x1b[1m[") and _DAEMON_LINE_MARK in line[:64]


# A replay is Wings' last ~150 lines (at most 64 KiB each); live lines printed meanwhile join it. Past this many
# bytes (text plus LINE_COST a line: a str's header and its list slot) it is a flood, and the capture ends.
CAPTURE_LIMIT = 16 * 1024 * 1024
LINE_COST = 64


@dataclass(slots=True)
class Capture:
    """A `send logs` replay being gathered until it goes quiet."""

    started: float
    first_line: float
    quiet: float
    longest: float
    purposes: set[CapturePurpose] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)
    last_line_at: float = 0.0
    held: int = 0  # what `lines` hold, counted as the CAPTURE_LIMIT counts it

    def ends_at(self) -> float:
        """When the capture is over: quiet after its last line, or no first line in time, or too long."""
        end = self.started + self.longest
        if self.lines:
            return min(end, self.last_line_at + self.quiet)
        return min(end, self.started + self.first_line)


class Session:
    """The protocol state of one server's console connection; see the module docstring."""

    def __init__(self, server: str, timing: Timing | None = None, *, rng: Callable[[], float]) -> None:
        self.server = server
        self.timing = timing or Timing()
        self._rng = rng
        self.state = SessionState.DISCONNECTED
        self.stopped_reason: str | None = None
        self._verdict_given = False
        self._stop_verdict: Stop | None = None  # remembered until the socket is closed
        self.socket_url = ""
        self.sockets = 0  # sockets opened; every one after the first follows a gap
        self._auth_deadline = math.inf
        # token
        self.claims: TokenClaims | None = None
        self._claims_at = -math.inf  # when Wings accepted `claims`
        self._pending_claims: TokenClaims | None = None
        self.refresh_phase = RefreshPhase.IDLE
        self.refresh_due = math.inf
        self._last_refresh_ok = -math.inf
        self._refresh_failures = 0
        self._lossy = False  # jwt errors may have replaced events since the last good token
        self._transfer_ended = False  # a `deleted` right after a transfer means "moved", not "gone"
        # console
        self._recent = RecentLines()
        self.capture: Capture | None = None
        # A subscriber resuming after a restart asked for the console backlog: the first authenticated socket
        # fills a gap too, though nothing was delivered before (it aligns the lines with what it had posted).
        self.resume_requested = False
        # power and stats
        self.power: PowerState | None = None
        self.last_stats: Stats | None = None
        self._stats_fresh_since = -math.inf
        # health (monotonic times; the driver turns them into wall-clock ones)
        self.connected_at: float | None = None
        self.last_console_at: float | None = None
        self.last_stats_at: float | None = None
        self.last_error: str | None = None
        self.reconnects = 0
        self.refreshes = 0
        self.events = 0
        self.skipped_frames = 0
        self._down_since: float | None = None
        self._lost_reported = False

    # -- clock -------------------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest `now` at which timer_fired() has something to do, or None."""
        deadline = math.inf
        if self.state is SessionState.AUTHENTICATING or self.refresh_phase is RefreshPhase.AUTHENTICATING:
            deadline = self._auth_deadline
        if self.state is SessionState.CONNECTED and self.refresh_phase is RefreshPhase.IDLE:
            deadline = min(deadline, self.refresh_due)
        if self.capture is not None:
            deadline = min(deadline, self.capture.ends_at())
        if (
            self._down_since is not None
            and not self._lost_reported
            and self.state is not SessionState.STOPPED
        ):
            deadline = min(deadline, self._down_since + self.timing.lost_grace)
        return None if deadline == math.inf else deadline

    def timer_fired(self, now: float) -> list[Action]:
        """Act on whatever came due: auth timeout, refresh, end of a capture, the lost-connection notice."""
        out: list[Action] = []
        if now >= self._auth_deadline:
            if self.state is SessionState.AUTHENTICATING:
                self._auth_deadline = math.inf
                out += self._reconnect(f"no auth success within {self.timing.auth_timeout:g} s", now)
            elif self.refresh_phase is RefreshPhase.AUTHENTICATING:
                self._auth_deadline = math.inf
                out += self._refresh_failed("Wings did not accept the new token in time", now)
        if self.capture is not None and now >= self.capture.ends_at():
            out += self._end_capture(now)
        if (
            self._down_since is not None
            and not self._lost_reported
            and self.state is not SessionState.STOPPED
            and now - self._down_since >= self.timing.lost_grace
        ):
            self._lost_reported = True
            out.append(self._lost_notice())
        out += self._maybe_refresh(now)
        return out

    def outage(self) -> Notice | None:
        """The lost-connection notice while an outage that was already reported goes on (else None): for a
        subscriber that joins meanwhile and would otherwise hear nothing until the connection is back."""
        if self._lost_reported and self._down_since is not None and self.state is not SessionState.STOPPED:
            return self._lost_notice().notice
        return None

    def _lost_notice(self) -> Notify:
        reason = self.last_error or "unknown reason"
        return self._notice(NoticeKind.CONNECTION_LOST, f"Lost the console connection ({reason}); retrying.")

    # -- socket events -----------------------------------------------------------------------------------------

    def restart(self) -> None:
        """A user acts on a stopped connection: try again from scratch."""
        if self.state is SessionState.STOPPED:
            self.state = SessionState.DISCONNECTED
            self.stopped_reason = None
            self._down_since = None
            self._lost_reported = False

    def credentials_failed(self, error: BaseException, now: float) -> list[Action]:
        """The panel did not hand out credentials (for a new socket, or for a refresh)."""
        text = str(error) if isinstance(error, PanelError) else _describe_unexpected(error)
        if isinstance(error, PanelNotFound | PanelForbidden | PanelAuthError):
            return self._stop_with_notice(text, NoticeKind.STOPPED, _stopped_text(text))
        out: list[Action] = []
        if isinstance(error, PanelConflict):
            out.append(self._notice(NoticeKind.STOPPED, text, key=f"conflict:{error.kind}"))
        retry_after = error.retry_after if isinstance(error, PanelRateLimited) else 0.0
        if self.refresh_phase is RefreshPhase.FETCHING:
            return out + self._refresh_failed(text, now, retry_after=retry_after)
        return out + self._reconnect(text, now, retry_after=retry_after)

    def socket_failed(
        self, reason: str, now: float, *, http_status: int | None = None, detail: str = ""
    ) -> list[Action]:
        """The websocket could not be opened (network error, timeout, refused upgrade).

        `detail` is Wings' own error text from the refusal's body (e.g. "Too many open websocket connections."), if any.
        """
        if http_status == 403:
            text = "Wings refused the Origin header; set WINGS_ORIGIN to the panel URL configured in Wings (remote:)."
            return self._stop_with_notice(text, NoticeKind.STOPPED, _stopped_text(text))
        if http_status is not None:
            reason = f"Wings answered HTTP {http_status} to the socket upgrade"
            detail = " ".join(detail.split())[:200].rstrip(".")
            if detail:
                reason += f": {detail}"
        return self._reconnect(reason, now)

    def socket_opened(self, token: str, socket_url: str, now: float) -> list[Action]:
        """A new socket is open: authenticate, and send nothing else until `auth success`."""
        self.state = SessionState.AUTHENTICATING
        self._verdict_given = False
        self._stop_verdict = None
        self.socket_url = socket_url
        self.sockets += 1
        self.claims = None
        self.power = None  # a new socket learns the state again from its first `status`
        self._refresh_failures = 0
        self._transfer_ended = False
        self._pending_claims = self._read_token(token)
        self._auth_deadline = now + self.timing.auth_timeout
        return [SendFrame(Event.AUTH, (token,))]

    def credentials_received(self, token: str, socket_url: str, now: float) -> list[Action]:
        """Fresh credentials for a refresh: re-authenticate on this socket, unless the server moved."""
        if self.refresh_phase is not RefreshPhase.FETCHING or self.state is not SessionState.CONNECTED:
            return []  # the socket went away meanwhile; the next one fetches its own
        if socket_url != self.socket_url:
            # The panel now points at another node (a finished transfer): start over there.
            self.refresh_phase = RefreshPhase.IDLE
            return self._reconnect("the server moved to another node", now)
        self.refresh_phase = RefreshPhase.AUTHENTICATING
        self._pending_claims = self._read_token(token)
        self._auth_deadline = now + self.timing.auth_timeout
        return [SendFrame(Event.AUTH, (token,))]

    def socket_closed(self, code: int | None, now: float) -> list[Action]:
        """The socket is gone; its verdict, if none was given yet, follows from the close code."""
        out = self._end_capture(now) if self.capture is not None else []
        self.refresh_phase = RefreshPhase.IDLE
        self._auth_deadline = math.inf
        self.connected_at = None
        if self._stop_verdict is not None:
            self._become_stopped(self._stop_verdict.reason)
            return out
        if not self._verdict_given:
            stop = _CLOSE_STOPS.get(classify_close(code))
            if stop is not None:
                out += self._stop_with_notice(
                    stop,
                    NoticeKind.SUSPENDED,
                    "The server is suspended; the console stays disconnected until it is unsuspended and relinked.",
                )
                self._become_stopped(stop)
                return out
            out += self._reconnect(f"socket closed ({code if code is not None else 'no close frame'})", now)
        self.state = SessionState.DISCONNECTED
        self._verdict_given = False
        self.reconnects += 1  # counted once the socket is really gone, as the driver goes to retry
        return out

    def give_up(self, reason: str) -> list[Action]:
        """The driver cannot go on at all: stop, and say so."""
        out = self._stop_with_notice(reason, NoticeKind.STOPPED, _stopped_text(reason))
        self._become_stopped(reason)
        return out

    # -- requests from actions ---------------------------------------------------------------------------------

    def may_send(self, event: Event) -> bool:
        """Only `auth` before `auth success`; nothing once a verdict was given."""
        if event is Event.AUTH:
            return self.state in (SessionState.AUTHENTICATING, SessionState.CONNECTED)
        return self.state is SessionState.CONNECTED

    def capture_logs(self, now: float, purpose: CapturePurpose) -> list[Action]:
        """Ask Wings to replay its console backlog and capture it; joins a capture already running."""
        if self.state is not SessionState.CONNECTED:
            return []
        t = self.timing
        quiet, longest = (
            (t.gap_quiet, t.gap_max) if purpose is CapturePurpose.GAP_FILL else (t.logs_quiet, t.logs_max)
        )
        if self.capture is not None:
            cap = self.capture
            cap.purposes.add(purpose)
            cap.quiet, cap.longest = max(cap.quiet, quiet), max(cap.longest, longest)
            return []
        self.capture = Capture(now, t.gap_first_line, quiet, longest, {purpose})
        return [SendFrame(Event.SEND_LOGS)]

    def fresh_stats(self, now: float, max_age: float) -> Stats | None:
        """The last stats if they arrived within `max_age` s and no state change made them stale."""
        if self.last_stats is not None and now - self._stats_fresh_since <= max_age:
            return self.last_stats
        return None

    # -- frames ------------------------------------------------------------------------------------------------

    def receive(self, data: str | bytes | Frame, now: float) -> list[Action]:
        """One frame from Wings. A malformed frame or payload is logged and skipped, never fatal."""
        if isinstance(data, Frame):
            frame = data
        else:
            try:
                frame = decode_frame(data)
            except FrameError as exc:
                self.skipped_frames += 1
                log.warning("skipping a malformed frame from %s: %s", self.server, exc)
                return []
        self.events += 1
        kind = frame.known
        if kind is None:
            log.debug("ignoring unknown event %r from %s", frame.event, self.server)
            return []
        handler = _HANDLERS.get(kind)
        if handler is None:
            return [self._deliver(frame, now)]
        try:
            return handler(self, frame, now)
        except FrameError as exc:
            self.skipped_frames += 1
            log.warning("skipping a malformed %r payload from %s: %s", frame.event, self.server, exc)
            return []

    def _deliver(self, frame: Frame, now: float, *, recovered: bool = False) -> Deliver:
        return Deliver(WingsEvent(self.server, frame, now, recovered))

    def _on_auth_success(self, frame: Frame, now: float) -> list[Action]:
        if self.state is SessionState.AUTHENTICATING:
            return self._authenticated(now)
        if self.refresh_phase is RefreshPhase.AUTHENTICATING:
            return self._refreshed(now)
        return []

    def _on_console(self, frame: Frame, now: float) -> list[Action]:
        self.last_console_at = now
        line = frame.arg
        if is_daemon_line(line):
            return [self._deliver(frame, now)]  # never replayed, never part of the alignment
        if self.capture is not None:
            cap = self.capture
            cap.lines.append(line)
            cap.last_line_at = now
            cap.held += len(line) + LINE_COST
            if cap.held > CAPTURE_LIMIT:  # far more than a replay: a flood; what follows goes out live
                log.warning(
                    "console of %s flooded a log replay past %d bytes; ending it", self.server, cap.held
                )
                return self._end_capture(now)
            return []
        self._recent.add(line)
        return [self._deliver(frame, now)]

    def _on_status(self, frame: Frame, now: float) -> list[Action]:
        state = PowerState.parse(frame.arg)
        if state is None:
            # Not a state Wings has: malformed, so nobody is told of it (nor shown its text).
            self.skipped_frames += 1
            log.warning(
                "skipping a status frame with an unknown state %r from %s", frame.arg[:40], self.server
            )
            return []
        self.power = state
        self._stats_fresh_since = -math.inf  # stats from before a state change are stale
        if frame.args != (state.value,):  # e.g. "Running" or extra args: pass on the state as Wings spells it
            frame = Frame(frame.event, (state.value,))
        return [self._deliver(frame, now)]

    def _on_stats(self, frame: Frame, now: float) -> list[Action]:
        self.last_stats_at = now
        out: list[Action] = [self._deliver(frame, now)]
        try:
            stats = parse_stats(frame.arg)
        except FrameError as exc:
            self.skipped_frames += 1
            log.warning("skipping malformed stats from %s: %s", self.server, exc)
            return out
        self.last_stats, self._stats_fresh_since = stats, now
        if stats.state is not None:
            self.power = stats.state
        return out

    def _on_token_signal(self, frame: Frame, now: float) -> list[Action]:
        return self._request_refresh(now)

    def _on_jwt_error(self, frame: Frame, now: float) -> list[Action]:
        text = frame.arg
        # Wings prefixes "Error Event [..]: " only on a handler's answer, i.e. to our `auth`; unprefixed errors
        # are about the token it already holds (the flood that replaces events once that token went bad). Before
        # the first `auth success` it holds none and we sent nothing else: any jwt error answers that `auth`.
        answers_auth = self.state is SessionState.AUTHENTICATING or (
            self.refresh_phase is RefreshPhase.AUTHENTICATING and strip_error_prefix(text) != text.strip()
        )
        # A token we fetched moments ago, refused as expired, means the panel's and node's clocks differ; so
        # does one Wings held that it calls expired long before its lifetime ran out.
        cause = classify_jwt_error(text, fresh_token=answers_auth or self._expired_early(now))
        explained = explain_jwt_error(cause)
        out: list[Action] = [self._notice(NoticeKind.JWT_ERROR, explained, key=f"jwt:{cause}")]
        match jwt_reaction(cause, answers_auth=answers_auth):
            case JwtReaction.STOP:
                out += self._stop(explained)
            case JwtReaction.RECONNECT:
                self.refresh_phase = RefreshPhase.IDLE
                out += self._reconnect(f"Wings refused the token ({cause})", now)
            case JwtReaction.REFRESH if self.state is SessionState.CONNECTED:
                # Events were replaced by errors: fill the gap once a new token is accepted.
                self._lossy = True
                out += self._request_refresh(now)
            case _:
                pass  # reported; before the first `auth success` no event can have been replaced
        return out

    def _on_daemon_error(self, frame: Frame, now: float) -> list[Action]:
        first_auth = self.state is SessionState.AUTHENTICATING
        during_auth = first_auth or self.refresh_phase is RefreshPhase.AUTHENTICATING
        text = explain_daemon_error(frame.arg, during_auth=during_auth)
        out: list[Action] = [
            self._notice(NoticeKind.DAEMON_ERROR, text, key=f"daemon:{strip_error_prefix(frame.arg)[:80]}"),
            self._deliver(frame, now),  # a power action waiting for its outcome reads it
        ]
        if first_auth:
            if classify_daemon_error(frame.arg) is DaemonErrorKind.TOO_MANY_CONNECTIONS:
                # Newest Wings refuses a 31st authenticated socket: others hold the slots, and may let go.
                return out + self._reconnect(
                    "Wings has too many open console connections for the server", now
                )
            out += self._stop(text)  # Wings cannot read our token at all: retrying cannot help
        return out

    def _on_deleted(self, frame: Frame, now: float) -> list[Action]:
        out: list[Action] = [self._deliver(frame, now)]
        if self._transfer_ended:
            # A finished transfer deletes the server from its old node: follow it to the new one.
            self._transfer_ended = False
            return out + self._reconnect("the server moved to another node (transfer finished)", now)
        out.append(
            self._notice(
                NoticeKind.DELETED, "The server was deleted from its node; its console is no longer mirrored."
            )
        )
        return out + self._stop("the server was deleted")

    def _on_transfer_status(self, frame: Frame, now: float) -> list[Action]:
        self._transfer_ended = frame.arg in _TRANSFER_ENDED
        return [self._deliver(frame, now)]

    def _on_throttled(self, frame: Frame, now: float) -> list[Action]:
        name = " ".join(frame.arg.split())[:40]
        # "global" is the connection's overall bucket; anything else names the event Wings dropped.
        what = f"`{name}` messages" if name and name != "global" else "messages"
        return [
            self._notice(
                NoticeKind.THROTTLED,
                f"Wings throttled Wingbeat's {what} on this console connection; slowing down.",
                key=f"throttled:{name}",
            ),
            self._deliver(frame, now),
        ]

    # -- auth and refresh --------------------------------------------------------------------------------------

    def _read_token(self, token: str) -> TokenClaims | None:
        try:
            return read_claims(token)
        except TokenError:
            log.warning(
                "wings token for %s has unreadable claims; refreshing on Wings' signals only", self.server
            )
            return None

    def _expired_early(self, now: float) -> bool:
        lifetime = self.claims.lifetime if self.claims else None
        held = now - self._claims_at
        return lifetime is not None and STALE_ERROR_GRACE <= held < lifetime - EARLY_EXPIRY_MARGIN

    def _accept_token(self, now: float) -> None:
        self.claims, self._pending_claims = self._pending_claims, None
        self._claims_at = now
        self._auth_deadline = math.inf
        self.refresh_due = refresh_at(self.claims, now) if self.claims else math.inf

    def _authenticated(self, now: float) -> list[Action]:
        self._accept_token(now)
        self.state = SessionState.CONNECTED
        self.connected_at = now
        self.last_error = None
        out: list[Action] = [Connected()]
        if self._lost_reported:
            out.append(self._notice(NoticeKind.CONNECTION_RESTORED, "Console connection restored."))
        self._lost_reported = False
        self._down_since = None
        log.info("wings connection %s authenticated", self.server)
        if self.sockets > 1 or self._lossy or self.resume_requested:
            self._lossy = self.resume_requested = False
            out.append(FillGap())
        return out + self._maybe_refresh(now)

    def _refreshed(self, now: float) -> list[Action]:
        self._accept_token(now)
        self.refresh_phase = RefreshPhase.IDLE
        self._last_refresh_ok = now
        self._refresh_failures = 0
        self.refreshes += 1
        log.debug("wings token for %s refreshed", self.server)
        if self._lossy:
            self._lossy = False
            return [FillGap()]
        return []

    def _request_refresh(self, now: float) -> list[Action]:
        """Wings says the token is (nearly) stale: refresh now, unless one runs, just ran, or is backing off."""
        if self.refresh_phase is not RefreshPhase.IDLE or self._refresh_failures:
            return []
        if now - self._last_refresh_ok < self.timing.min_refresh_gap:
            return []
        self.refresh_due = min(self.refresh_due, now)
        return self._maybe_refresh(now)

    def _maybe_refresh(self, now: float) -> list[Action]:
        if (
            self.state is SessionState.CONNECTED
            and self.refresh_phase is RefreshPhase.IDLE
            and now >= self.refresh_due
        ):
            self.refresh_phase = RefreshPhase.FETCHING
            return [FetchToken()]
        return []

    def _refresh_failed(self, text: str, now: float, *, retry_after: float = 0.0) -> list[Action]:
        self.refresh_phase = RefreshPhase.IDLE
        self._pending_claims = None
        delay = max(retry_after, backoff_delay(self._refresh_failures, self.timing, self._rng()))
        self._refresh_failures += 1
        self.refresh_due = now + delay
        self.last_error = f"token refresh failed: {text}"
        log.info("wings connection %s: %s; retrying in %.1f s", self.server, self.last_error, delay)
        return [
            self._notice(
                NoticeKind.REFRESH_FAILED, f"Could not refresh the console token ({text}); retrying."
            )
        ]

    # -- gap fill ----------------------------------------------------------------------------------------------

    def _end_capture(self, now: float) -> list[Action]:
        cap, self.capture = self.capture, None
        if cap is None:
            return []
        delivered = self._recent.snapshot()
        if delivered or CapturePurpose.GAP_FILL in cap.purposes:
            fresh = new_lines(delivered, cap.lines)
        else:
            # Nothing delivered yet to align a mere replay with: post none of it. The asker gets every line; a
            # linked channel may miss a live line printed in this window by a server silent until then.
            fresh = []
        out: list[Action] = []
        for line in fresh:
            self._recent.add(line)
            out.append(self._deliver(Frame(Event.CONSOLE_OUTPUT.value, (line,)), now, recovered=True))
        out.append(CaptureDone(tuple(cap.lines), frozenset(cap.purposes)))
        log.info(
            "%s for %s: %d replayed, %d new",
            ", ".join(sorted(cap.purposes)),
            self.server,
            len(cap.lines),
            len(fresh),
        )
        return out

    # -- verdicts ----------------------------------------------------------------------------------------------

    def _notice(self, kind: NoticeKind, text: str, *, key: str | None = None) -> Notify:
        return Notify(Notice(self.server, kind, text, key or kind.value))

    def _went_down(self, now: float) -> None:
        if self._down_since is None:
            self._down_since = now

    def _reconnect(self, reason: str, now: float, *, retry_after: float = 0.0) -> list[Action]:
        if self._verdict_given:
            return []
        self.last_error = reason
        self._went_down(now)
        log.info("wings connection %s: %s", self.server, reason)
        if self.state in (SessionState.AUTHENTICATING, SessionState.CONNECTED):
            self.state = SessionState.CLOSING  # socket_closed() counts the reconnect
            self._verdict_given = True
        else:
            self.reconnects += 1
        return [Reconnect(reason, retry_after)]

    def _stop(self, reason: str) -> list[Action]:
        """Stop for good once the socket is closed (the caller already sent the notice that says why)."""
        if self._verdict_given:
            return []
        verdict = Stop(reason)
        if self.state in (SessionState.AUTHENTICATING, SessionState.CONNECTED):
            self.state = SessionState.CLOSING
            self._verdict_given = True
            self._stop_verdict = verdict
        else:
            self._become_stopped(reason)
        return [verdict]

    def _stop_with_notice(self, reason: str, kind: NoticeKind, text: str) -> list[Action]:
        if self._verdict_given:
            return []
        # Keyed by the reason: a stop for another reason soon after (someone fixed one thing, the next shows) is news.
        return [self._notice(kind, text, key=f"{kind.value}:{reason[:80]}"), *self._stop(reason)]

    def _become_stopped(self, reason: str) -> None:
        self.state = SessionState.STOPPED
        self.stopped_reason = reason
        self._verdict_given = False
        self._stop_verdict = None
        self._down_since = None
        self._lossy = False
        log.warning("wings connection %s stopped: %s", self.server, reason)


def _stopped_text(reason: str) -> str:
    return f"The console connection stopped: {reason} It resumes when someone acts on it again."


def _describe_unexpected(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# Which handler reads which event; events without one are delivered as they are.
_HANDLERS: dict[Event, Callable[[Session, Frame, float], list[Action]]] = {
    Event.AUTH_SUCCESS: Session._on_auth_success,
    Event.CONSOLE_OUTPUT: Session._on_console,
    Event.STATUS: Session._on_status,
    Event.STATS: Session._on_stats,
    Event.TOKEN_EXPIRING: Session._on_token_signal,
    Event.TOKEN_EXPIRED: Session._on_token_signal,
    Event.JWT_ERROR: Session._on_jwt_error,
    Event.DAEMON_ERROR: Session._on_daemon_error,
    Event.DELETED: Session._on_deleted,
    Event.TRANSFER_STATUS: Session._on_transfer_status,
    Event.THROTTLED: Session._on_throttled,
}
