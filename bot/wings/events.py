"""What a Wings connection hands to the rest of the application: events, notices, health, action results."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.wings.frames import Frame, PowerAction, PowerState


@dataclass(frozen=True, slots=True)
class WingsEvent:
    """One frame from a server's socket, with the monotonic time it arrived.

    `recovered` marks console lines released from a `send logs` capture: not delivered before, in order, but
    late (lost in a gap, or live lines that arrived while the replay ran).
    """

    server: str
    frame: Frame
    at: float
    recovered: bool = False


class NoticeKind(StrEnum):
    """Reports worth posting in a linked channel ."""

    CONNECTION_LOST = "connection lost"
    CONNECTION_RESTORED = "connection restored"
    REFRESH_FAILED = "token refresh failed"
    JWT_ERROR = "jwt error"
    DAEMON_ERROR = "daemon error"
    SUSPENDED = "suspended"
    DELETED = "deleted"
    THROTTLED = "throttled"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Notice:
    """A short, user-facing report about one server's connection. `key` identifies repeats."""

    server: str
    kind: NoticeKind
    text: str
    key: str


class ConnectionState(StrEnum):
    """What /health and /servers show of a connection."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Health:
    """A snapshot of one connection's counters. Times are wall-clock UNIX seconds (None = never)."""

    server: str
    state: ConnectionState
    power: PowerState | None
    connected_since: float | None
    token_expires_at: float | None
    last_console_at: float | None
    last_stats_at: float | None
    reconnects: int
    refreshes: int
    last_error: str | None
    stopped_reason: str | None
    events: int
    skipped_frames: int = 0  # malformed frames and payloads, logged and skipped
    loop_error: str | None = (
        None  # the last unexpected failure of the connection's loops (traceback in the log)
    )
    subscribers: int = 0
    overflowed: int = 0


class PowerOutcome(StrEnum):
    """How a power action ended, as far as the socket showed it."""

    DONE = "done"
    DAEMON_ERROR = "daemon error"
    FAILED = "failed"
    TIMEOUT = "timeout"
    THROTTLED = "throttled"  # hardened Wings dropped the `set state` over its message limits
    ENDED = (
        "connection ended"  # the console connection stopped for good (e.g. the server was deleted) meanwhile
    )


@dataclass(frozen=True, slots=True)
class PowerResult:
    """What the socket showed after `set state`: the status transitions, or the error, within the timeout."""

    action: PowerAction
    initial: PowerState | None
    transitions: tuple[PowerState, ...]
    outcome: PowerOutcome
    elapsed: float
    error: str | None = None

    def describe(self) -> str:
        """E.g. "started: offline → starting → running in 41 s"."""
        verb = {"start": "started", "stop": "stopped", "restart": "restarted", "kill": "killed"}[
            self.action.value
        ]
        states: list[str] = []
        for state in ((self.initial,) if self.initial else ()) + self.transitions:
            if not states or states[-1] != state.value:  # a `status` repeating the state is no step
                states.append(state.value)
        path = " → ".join(states) if states else "no state change"
        secs = f"{self.elapsed:.0f} s" if self.elapsed >= 1 else f"{self.elapsed:.1f} s"
        if self.outcome is PowerOutcome.DONE:
            return f"{verb}: {path} in {secs}"
        if self.outcome is PowerOutcome.DAEMON_ERROR:
            return f"{self.action.value} failed: {self.error}" + (
                f" (seen: {path})" if self.transitions else ""
            )
        if self.outcome is PowerOutcome.ENDED:
            return f"{self.action.value}: outcome unknown, {self.error}" + (
                f" (seen: {path})" if self.transitions else ""
            )
        if self.outcome is PowerOutcome.THROTTLED:
            return f"{self.action.value} sent, but {self.error}"
        if self.outcome is PowerOutcome.FAILED:
            return f"{self.action.value} failed: {path} after {secs} (the server went offline; check its console)"
        if self.transitions:
            return f"{self.action.value} not finished within {secs}: {path}"
        return f"no state change within {secs} after {self.action.value}"


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The console lines that followed a command within the collection window."""

    command: str
    lines: tuple[str, ...]
    window: float
    # Wings had not said yet whether the server runs: the command went out, but Wings drops it if offline.
    state_unknown: bool = False
