"""One server's incidents (crash, unexpected stop, unreachable console) read from what Wings says (no I/O).

Everything that moves the detector lives here. It is fed with `status` frames, console lines, whether the
console socket is up, "Wingbeat asked this server to stop" marks and clock readings, and answers with the
alerts to post: one when an incident starts and one when it ends.

How Wings reports trouble:

- A server that goes from `starting` or `running` straight to `offline` was not asked to stop: every
  stop, restart and kill Wings carries out passes through `stopping` first. Wings then runs its crash
  handler, which prints daemon lines right after the `status offline`::

      [Pterodactyl Daemon]: ---------- Detected server process in a crashed state! ----------
      [Pterodactyl Daemon]: Exit code: 137
      [Pterodactyl Daemon]: Out of memory: true
      [Pterodactyl Daemon]: Aborting automatic restart, last crash occurred less than 60 seconds ago.

  and, unless it aborts, starts the server again (`status starting`). With crash detection off it prints
  only `Aborting automatic restart, crash detection is disabled for this instance.`; a clean exit (code 0)
  prints nothing. So: crash lines within `crash_window` make a crash, silence makes an unexpected stop.
- A crash is one incident: the unexpected stop it began with is not reported as well, and crashes that
  follow before the server runs again belong to it. The incident ends when the server is `running`.
- A console socket down for `unreachable_after` seconds is an outage, which ends when the socket is back.
- Losing the socket also loses track of the power state: the first `status` after it comes back only says
  where things stand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from bot.wings.frames import PowerState

CRASH_WINDOW = 5.0  # seconds after an unexpected `offline` in which crash lines make it a crash
REPORT_WINDOW = 3.0  # seconds after the first crash line by which Wings has said whether it restarts
UNREACHABLE_AFTER = 120.0  # seconds a console socket must stay down before it is an outage
STOP_REQUEST_WINDOW = 60.0  # seconds a stop asked through Wingbeat excuses the next `offline`

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# "[Pterodactyl Daemon]:" on Pterodactyl, "[pelican Daemon]:" on Pelican: Wings prefixes its `app_name`, which
# hosts may set to their own brand ("[Acme Daemon]:").
_DAEMON = re.compile(r"\[[^\[\]]{1,64} daemon\]:\s?(?P<text>.*)", re.IGNORECASE)
_HEADER = "detected server process in a crashed state"
_EXIT_CODE = re.compile(r"exit code:\s*(?P<code>-?\d+)", re.IGNORECASE)
_OOM = re.compile(r"out of memory:\s*(?P<value>true|false)", re.IGNORECASE)
_TOO_SOON = re.compile(
    r"aborting automatic restart, last crash occurred less than (?P<seconds>\d+) seconds ago", re.IGNORECASE
)
_DISABLED = "aborting automatic restart, crash detection is disabled"
_HANDLER_FAILED = "server crash was detected but an error occurred while handling it"


class AlertKind(StrEnum):
    CRASH = "crash"
    UNEXPECTED_STOP = "unexpected stop"
    UNREACHABLE = "unreachable"


class Restart(StrEnum):
    """What Wings did after a crash."""

    RESTARTING = "restarting"  # it started the server again
    TOO_SOON = "too soon"  # it did not: the last crash was too recent
    DISABLED = "disabled"  # it did not: crash detection is off for this server
    FAILED = "failed"  # its crash handler failed
    UNKNOWN = "unknown"  # it did not say


@dataclass(frozen=True, slots=True)
class CrashReport:
    """Wings' crash report: exit code and out-of-memory flag (None when not printed) and the restart."""

    exit_code: int | None = None
    out_of_memory: bool | None = None
    restart: Restart = Restart.UNKNOWN
    too_soon_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """An incident that started (`ended` False) or ended (`ended` True, after `duration` seconds)."""

    server: str
    kind: AlertKind
    started_at: float  # on the detector's clock
    ended: bool = False
    duration: float = 0.0
    crash: CrashReport | None = None


def daemon_text(line: str) -> str | None:
    """The text of a Wings-generated console line, or None for the game's own output."""
    if "aemon]" not in line:  # fast path: nearly every line is the game's
        return None
    match = _DAEMON.match(_ESCAPES.sub("", line).lstrip())
    return match.group("text").strip() if match else None


@dataclass(slots=True)
class _Report:
    started: float
    exit_code: int | None = None
    out_of_memory: bool | None = None
    restart: Restart | None = None
    too_soon_seconds: int | None = None

    def done(self, restart: Restart) -> CrashReport:
        return CrashReport(self.exit_code, self.out_of_memory, self.restart or restart, self.too_soon_seconds)


@dataclass(slots=True)
class _Incident:
    kind: AlertKind
    started_at: float


@dataclass(slots=True)
class IncidentDetector:
    """Turns one server's frames, socket state and clock readings into alerts (see the module docstring)."""

    server: str
    crash_window: float = CRASH_WINDOW
    report_window: float = REPORT_WINDOW
    unreachable_after: float = UNREACHABLE_AFTER
    stop_request_window: float = STOP_REQUEST_WINDOW
    _power: PowerState | None = field(default=None, init=False)
    _stop_requested_until: float = field(default=float("-inf"), init=False)
    _offline_at: float | None = field(default=None, init=False)  # an unexpected offline awaiting crash lines
    _report: _Report | None = field(default=None, init=False)  # crash lines being collected
    _incident: _Incident | None = field(default=None, init=False)  # crash or unexpected stop, until running
    _down_since: float | None = field(default=None, init=False)
    _outage: _Incident | None = field(default=None, init=False)

    # -- inputs --------------------------------------------------------------------------------------------

    def stop_requested(self, now: float) -> None:
        """Wingbeat is about to stop, kill or restart the server: its next `offline` is no surprise."""
        self._stop_requested_until = now + self.stop_request_window

    def new_socket(self) -> None:
        """The next `status` comes on a fresh socket, after a gap however short: it only says where things stand."""
        self._power = None

    def status(self, state: PowerState, now: float) -> list[Alert]:
        """A `status` frame."""
        old, self._power = self._power, state
        out: list[Alert] = []
        if state is PowerState.OFFLINE:
            requested = now <= self._stop_requested_until
            self._stop_requested_until = float("-inf")
            # A requested stop may still crash on its way down: crash lines alone make a crash (see console()).
            unexpected = old in (PowerState.STARTING, PowerState.RUNNING) and not requested
            if unexpected and self._incident is None and self._offline_at is None:
                self._offline_at = now
        elif state is PowerState.STARTING:
            # Wings starts a crashed server again at once; an unexpected stop nobody explained is over too.
            out += self._flush(now, Restart.RESTARTING)
        elif state is PowerState.RUNNING:
            out += self._flush(now, Restart.RESTARTING)
            if self._incident is not None:
                incident, self._incident = self._incident, None
                out.append(self._end(incident, now))
        return out

    def console(self, line: str, now: float) -> list[Alert]:
        """A `console output` line; only Wings' own crash lines matter."""
        text = daemon_text(line)
        if text is None:
            return []
        return self.daemon(text, now)

    def daemon(self, text: str, now: float) -> list[Alert]:
        """Wings' own words: a daemon line's text, or a `daemon message` (where some Wings builds and forks put
        the crash report instead of prefixed console lines)."""
        text = daemon_text(text) or _ESCAPES.sub("", text).strip()
        lowered = text.lower()
        if _HEADER in lowered:
            if self._report is None:
                self._report = _Report(now)
            return []
        report = self._report
        if (match := _EXIT_CODE.match(text)) and report is not None:
            report.exit_code = int(match.group("code"))
        elif (match := _OOM.match(text)) and report is not None:
            report.out_of_memory = match.group("value").lower() == "true"
        elif match := _TOO_SOON.match(text):
            report = report or _Report(now)
            report.restart, report.too_soon_seconds = Restart.TOO_SOON, int(match.group("seconds"))
            return self._crashed(report, now)
        elif lowered.startswith(_DISABLED):
            report = report or _Report(now)
            report.restart = Restart.DISABLED
            return self._crashed(report, now)
        elif lowered.startswith(_HANDLER_FAILED):
            report = report or _Report(now)
            report.restart = Restart.FAILED
            return self._crashed(report, now)
        return []

    def connection(self, up: bool, now: float) -> list[Alert]:
        """Whether the console socket is authenticated (repeats of the same value change nothing)."""
        if not up:
            if self._down_since is None:
                self._down_since = now
                # Frames may be lost from here on: the next `status` only says where things stand.
                self._power = None
            return []
        out: list[Alert] = []
        if self._outage is not None:
            outage, self._outage = self._outage, None
            out.append(self._end(outage, now))
        self._down_since = None
        return out

    def connection_stopped(self) -> None:
        """The console socket stopped for good (server deleted or suspended, access refused): that is no outage,
        so none starts from here; one already reported ends only when the socket is back."""
        if self._outage is None:
            self._down_since = None

    def tick(self, now: float) -> list[Alert]:
        """A clock reading: windows that ran out become alerts."""
        out: list[Alert] = []
        if self._report is not None and now - self._report.started >= self.report_window:
            out += self._flush(now, Restart.UNKNOWN)
        if self._offline_at is not None and now - self._offline_at >= self.crash_window:
            out += self._flush(now, Restart.UNKNOWN)
        if (
            self._down_since is not None
            and self._outage is None
            and now - self._down_since >= self.unreachable_after
        ):
            self._outage = _Incident(AlertKind.UNREACHABLE, self._down_since)
            out.append(Alert(self.server, AlertKind.UNREACHABLE, self._down_since))
        return out

    # -- state for /alerts show and tests ------------------------------------------------------------------

    @property
    def open_incidents(self) -> tuple[AlertKind, ...]:
        return tuple(i.kind for i in (self._incident, self._outage) if i is not None)

    # -- internals -----------------------------------------------------------------------------------------

    def _flush(self, now: float, restart: Restart) -> list[Alert]:
        """Settle what is pending: collected crash lines make a crash, a lone unexpected offline a stop."""
        if self._report is not None:
            return self._crashed(self._report, now, restart)
        if self._offline_at is not None:
            started, self._offline_at = self._offline_at, None
            if self._incident is None:
                self._incident = _Incident(AlertKind.UNEXPECTED_STOP, started)
                return [Alert(self.server, AlertKind.UNEXPECTED_STOP, started)]
        return []

    def _crashed(self, report: _Report, now: float, restart: Restart = Restart.UNKNOWN) -> list[Alert]:
        self._report = None
        started = self._offline_at if self._offline_at is not None else report.started
        self._offline_at = None
        if self._incident is not None:
            return []  # a crash while the server never got back up: still the same incident
        self._incident = _Incident(AlertKind.CRASH, started)
        return [Alert(self.server, AlertKind.CRASH, started, crash=report.done(restart))]

    def _end(self, incident: _Incident, now: float) -> Alert:
        return Alert(
            self.server, incident.kind, incident.started_at, ended=True, duration=now - incident.started_at
        )
