"""The token bucket every pace in Wingbeat is built on: panel requests, Wings frames, Discord requests.

Plain logic with no clock of its own: callers pass the time in, so tests need no waiting.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """`capacity` tokens, refilled one every `period` seconds; starts full."""

    capacity: float
    period: float
    _tokens: float | None = None
    _updated: float = 0.0

    def _refill(self, now: float) -> float:
        if self._tokens is None:
            self._tokens = self.capacity
        else:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) / self.period)
        self._updated = now
        return self._tokens

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 if now)."""
        tokens = self._refill(now)
        return 0.0 if tokens >= 1 else (1 - tokens) * self.period

    def time_for(self, now: float, count: int) -> float:
        """Seconds until `count` tokens will have been available, spending each as it comes (0 if now)."""
        tokens = self._refill(now)
        return max(0.0, (count - tokens) * self.period)

    def take(self, now: float) -> None:
        """Spend one token (the balance may go below zero: a debt later takes wait off)."""
        self._tokens = self._refill(now) - 1

    def reserve(self, now: float) -> float:
        """Spend one token now and return how long to wait before using it (0 when it is there already)."""
        self.take(now)
        tokens = self._tokens if self._tokens is not None else 0.0
        return 0.0 if tokens >= 0 else -tokens * self.period
