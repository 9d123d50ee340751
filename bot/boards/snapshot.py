"""One server's figures as a board shows them, kept from Wings `status` and `stats` frames (no I/O).

The figures are rounded, and a rounded figure only moves when the raw value has left its step by a clear
margin (hysteresis), so an idle server whose CPU wobbles between 12 % and 13 % keeps showing the same text
and its board is not edited. Times are passed in: `wall` is UNIX seconds, `now` a monotonic reading.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from bot.wings.frames import PowerState, Stats

CPU_STEP = 5  # percent of one core
HYSTERESIS = 0.75  # a shown figure moves once the raw value is this many steps away from it
START_JITTER = 30.0  # seconds: start times estimated from `uptime` closer than this are the same start
UNKNOWN_AFTER = 15.0  # seconds without a console socket before the state shows as unknown
GIB = 1024**3


class Shown(StrEnum):
    """The state a board shows: Wings' four power states, or unknown (no socket, or no `status` yet)."""

    RUNNING = "running"
    STARTING = "starting"
    STOPPING = "stopping"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    """What a board shows of one server; equal snapshots render the same text.

    `cpu` is a multiple of CPU_STEP; memory figures are tenths of a GiB; times are whole UNIX seconds.
    """

    identifier: str
    name: str
    state: Shown = Shown.UNKNOWN
    cpu: int | None = None
    memory_tenths: int | None = None
    memory_limit_tenths: int | None = None
    started_at: int | None = None
    changed_at: int | None = None
    gone: bool = False  # the panel no longer lists the server

    @property
    def since(self) -> int | None:
        """When the state last changed, if known (a running server's start time stands in for it)."""
        if self.changed_at is not None:
            return self.changed_at
        return self.started_at if self.state is Shown.RUNNING else None


def _stepped(raw: float, shown: int | None, step: int) -> int:
    """`raw` rounded to a multiple of `step`, unless it is still within the margin around `shown`."""
    if shown is not None and abs(raw - shown) < HYSTERESIS * step:
        return shown
    return round(raw / step) * step


class ServerTracker:
    """Follows one server's frames and keeps its rounded snapshot; each method says whether it changed."""

    def __init__(self, identifier: str, name: str) -> None:
        self._snap = ServerSnapshot(identifier, name)
        self._power: PowerState | None = None
        self._down_since: float | None = None
        self._reachable = True

    @property
    def snapshot(self) -> ServerSnapshot:
        return self._snap

    def _set(self, snap: ServerSnapshot) -> bool:
        changed = snap != self._snap
        self._snap = snap
        return changed

    def _shown(self) -> Shown:
        if not self._reachable or self._power is None:
            return Shown.UNKNOWN
        return Shown(self._power.value)

    def rename(self, name: str, *, gone: bool = False) -> bool:
        """The panel's name for the server (and whether it still lists it)."""
        return self._set(replace(self._snap, name=name, gone=gone))

    def status(self, state: PowerState, wall: float) -> bool:
        """A `status` frame (or a stats `state` that disagrees with the last one)."""
        old = self._power
        self._power = state
        snap = self._snap
        changed_at = snap.changed_at
        if old is not None and old is not state:
            changed_at = int(wall)
        if state is PowerState.OFFLINE:
            # Wings zeroes the figures of a stopped server; none of them means anything until it runs again.
            snap = replace(snap, cpu=None, memory_tenths=None, started_at=None)
        return self._set(replace(snap, state=self._shown(), changed_at=changed_at))

    def stats(self, stats: Stats, wall: float) -> bool:
        """A `stats` frame: CPU, memory, limit and uptime (Wings sends them about once a second)."""
        before = self._snap
        if stats.state is not None and stats.state is not self._power:
            self.status(stats.state, wall)
        snap = self._snap
        limit = _tenths(stats.memory_limit_bytes) if stats.memory_limit_bytes else None
        if self._power is PowerState.OFFLINE:
            self._snap = replace(snap, memory_limit_tenths=limit)
            return self._snap != before
        cpu = _stepped(stats.cpu_absolute, snap.cpu, CPU_STEP)
        memory = _stepped(stats.memory_bytes / GIB * 10, snap.memory_tenths, 1)
        started = snap.started_at
        if stats.uptime_ms > 0:
            estimate = wall - stats.uptime_ms / 1000
            if started is None or abs(estimate - started) > START_JITTER:
                started = int(estimate)
        self._snap = replace(
            snap, cpu=cpu, memory_tenths=memory, memory_limit_tenths=limit, started_at=started
        )
        return self._snap != before

    def connection(self, up: bool, now: float) -> bool:
        """Whether the console socket is up; a state is shown as unknown once it has been down a while."""
        if up:
            self._down_since = None
            self._reachable = True
        else:
            if self._down_since is None:
                self._down_since = now
            if now - self._down_since >= UNKNOWN_AFTER and self._reachable:
                # What is known of a server that cannot be reached is stale: forget it until Wings says again.
                self._power = None
                self._reachable = False
                return self._set(
                    replace(self._snap, state=Shown.UNKNOWN, cpu=None, memory_tenths=None, changed_at=None)
                )
        return self._set(replace(self._snap, state=self._shown()))


def _tenths(size: float) -> int:
    return round(size / GIB * 10)
