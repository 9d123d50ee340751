"""Request pacing for the panel's per-user budget (720/min on Pterodactyl), as plain logic with no I/O.

The panel counts every Client API request of the key's user in a fixed 60 s window, including the ones its
web UI makes, so Wingbeat keeps its own rate below the budget, slows down further when the panel says little
is left (`X-RateLimit-Remaining`), and stops entirely until `Retry-After` has passed after a 429.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.buckets import TokenBucket


@dataclass(slots=True)
class RequestPacer:
    """Token bucket plus the panel's own signals. `reserve(now)` says how long to wait before a request."""

    per_minute: float = 600.0
    burst: float = 20.0
    low_water: int = 30
    window: float = 60.0
    _bucket: TokenBucket = field(init=False)
    _blocked_until: float = 0.0
    _remaining: int | None = None
    _limit: int | None = None

    def __post_init__(self) -> None:
        self._bucket = TokenBucket(self.burst, 60.0 / self.per_minute)

    def reserve(self, now: float) -> float:
        """Take one request slot; return the seconds to wait before sending it (0 when it may go now)."""
        wait = self._bucket.reserve(now)
        low_water = max(1, min(self.low_water, self._limit // 10)) if self._limit else 0
        if self._remaining is not None and self._remaining <= low_water:
            # Little left in the panel's window (it does not say when the window ends): spread what remains.
            wait = max(wait, self.window / max(self._remaining, 1) / 2)
            self._remaining -= 1
        return max(wait, self._blocked_until - now)

    def observe(self, *, limit: str | None, remaining: str | None) -> None:
        """Record the panel's `X-RateLimit-*` headers from a response."""
        if limit and limit.isdigit():
            self._limit = int(limit)
        if remaining is not None and remaining.lstrip("-").isdigit():
            self._remaining = int(remaining)

    def block(self, now: float, retry_after: float) -> None:
        """A 429 arrived: nothing goes out until `retry_after` seconds from `now`."""
        self._blocked_until = max(self._blocked_until, now + retry_after)
        self._remaining = None
