"""Request pacing for the panel's per-user budget (720/min on Pterodactyl), as plain logic with no I/O.

The panel counts every Client API request of the key's user in a fixed 60 s window, including the ones its
web UI makes, so Wingbeat keeps its own rate below the budget, slows down further when the panel says little
is left (`X-RateLimit-Remaining`), and stops entirely until `Retry-After` has passed after a 429.

What budget there is goes by priority: Wings credentials first (a socket without a fresh token loses its
console), then admins' actions, then views. Requests waiting for a slot are served in that order, then in
arrival order; a view that would wait longer than a few seconds is refused at once (`Refusal`), so whoever
shows it answers from what is already known instead of sitting in a queue behind the budget.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from bot.buckets import TokenBucket

DEFAULT_VIEW_WAIT = 3.0


class Priority(IntEnum):
    """Who gets the panel budget first: the lower the value, the earlier it is served."""

    CREDENTIALS = 0  # Wings websocket tokens: connecting and refreshing
    ACTION = 1  # power, commands, server details for an admin's action
    VIEW = 2  # lists and usage for /servers, /status, autocomplete and boards


@dataclass(slots=True)
class RequestPacer:
    """Token bucket plus the panel's own signals: when the next requests may go, and recording those sent."""

    per_minute: float = 600.0
    burst: float = 20.0
    low_water: int = 30
    window: float = 60.0
    _bucket: TokenBucket = field(init=False)
    _blocked_until: float = 0.0
    _remaining: int | None = None
    _limit: int | None = None
    _last_sent: float = -math.inf

    def __post_init__(self) -> None:
        self._bucket = TokenBucket(self.burst, 60.0 / self.per_minute)

    def delay(self, now: float, ahead: int = 0) -> float:
        """Seconds until the request with `ahead` others before it may be sent (0: the next may go now)."""
        wait = self._bucket.time_for(now, ahead + 1)
        gap = self._gap()
        if gap:
            wait = max(wait, self._last_sent + gap * (ahead + 1) - now)
        return max(0.0, wait, self._blocked_until - now)

    def take(self, now: float) -> None:
        """A request is being sent now."""
        self._bucket.take(now)
        self._last_sent = now
        if self._remaining is not None:
            self._remaining = max(0, self._remaining - 1)

    def _gap(self) -> float:
        """The spacing between requests while the panel says little is left in its window (0: none)."""
        if self._remaining is None:
            return 0.0
        low_water = max(1, min(self.low_water, self._limit // 10)) if self._limit else 0
        if self._remaining > low_water:
            return 0.0
        # The panel does not say when its window ends: spread what remains over half a window.
        return self.window / max(self._remaining, 1) / 2

    def observe(self, *, limit: str | None, remaining: str | None) -> None:
        """Record the panel's `X-RateLimit-*` headers from a response."""
        if limit and limit.isdigit():
            self._limit = int(limit)
        if remaining is not None and remaining.lstrip("-").isdigit():
            self._remaining = max(0, int(remaining))

    def block(self, now: float, retry_after: float) -> None:
        """A 429 arrived: nothing goes out until `retry_after` seconds from `now`."""
        self._blocked_until = max(self._blocked_until, now + retry_after)
        self._remaining = None


@dataclass(eq=False, slots=True)
class Ticket:
    """One request waiting for a slot; `deadline` is when a bounded one gives up."""

    priority: Priority
    seq: int
    deadline: float | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A bounded request that would wait too long; `wait` is about how long it would have waited."""

    wait: float


@dataclass(frozen=True, slots=True)
class Poll:
    """What `RequestQueue.poll` decided: who goes now, who gives up (with its expected wait), when to ask again."""

    granted: tuple[Ticket, ...]
    expired: tuple[tuple[Ticket, float], ...]
    wake_in: float | None


class RequestQueue:
    """Requests waiting for the pacer's slots, served by priority and then in arrival order.

    A priority listed in `max_wait` is bounded: such a request is refused when it joins if its expected wait is
    longer, and given up while waiting as soon as others who came later but rank higher push it past the bound.
    """

    def __init__(self, pacer: RequestPacer, *, max_wait: Mapping[Priority, float] | None = None) -> None:
        self.pacer = pacer
        self.max_wait = dict({Priority.VIEW: DEFAULT_VIEW_WAIT} if max_wait is None else max_wait)
        self._waiting: list[Ticket] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def submit(self, now: float, priority: Priority) -> Ticket | Refusal:
        """Join the line, or be refused at once when bounded and the wait would be too long."""
        bound = self.max_wait.get(priority)
        if bound is not None:
            ahead = sum(1 for t in self._waiting if t.priority <= priority)
            wait = self.pacer.delay(now, ahead)
            if wait > bound:
                return Refusal(wait)
        self._seq += 1
        ticket = Ticket(priority, self._seq, None if bound is None else now + bound)
        bisect.insort(self._waiting, ticket, key=lambda t: (t.priority, t.seq))
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """The request went away while waiting."""
        if ticket in self._waiting:
            self._waiting.remove(ticket)

    def poll(self, now: float) -> Poll:
        """Grant what may go now (taking the pacer's slots), give up bounded ones that cannot make it."""
        granted: list[Ticket] = []
        while self._waiting and self.pacer.delay(now) <= 0:
            granted.append(self._waiting.pop(0))
            self.pacer.take(now)
        expired: list[tuple[Ticket, float]] = []
        keep: list[Ticket] = []
        for ticket in self._waiting:
            wait = self.pacer.delay(now, len(keep))
            if ticket.deadline is not None and now + wait > ticket.deadline:
                expired.append((ticket, wait))
            else:
                keep.append(ticket)
        self._waiting = keep
        wake_in = self.pacer.delay(now) if keep else None
        return Poll(tuple(granted), tuple(expired), wake_in)
