"""Outbound pacing that keeps a socket inside hardened Wings' inbound token buckets (docs/wings-and-panel.md, Limits).

Hardened Wings drops, per connection, any frame over its buckets and answers `throttled`; classic Wings has
no limits, so pacing to the hardened numbers is safe for both. Plain logic: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.buckets import TokenBucket

# Slightly under Wings' own refill rates, so clock drift between the two never trips a bucket.
_MARGIN = 1.1


def _buckets(scale: float = 1.0) -> dict[str, TokenBucket]:
    k = _MARGIN * scale
    return {
        "global": TokenBucket(10, 0.2 * k),
        "auth": TokenBucket(2, 5.0 * k),
        "send logs": TokenBucket(2, 5.0 * k),
        "send command": TokenBucket(10, 1.0 * k),
        "_default": TokenBucket(4, 1.0 * k),
    }


@dataclass(slots=True)
class OutboundLimits:
    """The per-connection buckets of hardened Wings, mirrored on our side."""

    buckets: dict[str, TokenBucket] = field(default_factory=_buckets)

    @classmethod
    def scaled(cls, scale: float) -> OutboundLimits:
        """Buckets whose refill periods are multiplied by `scale` (tests shrink time this way)."""
        return cls(_buckets(scale))

    def _bucket(self, event: str) -> TokenBucket:
        return self.buckets.get(event) or self.buckets["_default"]

    def wait_time(self, event: str, now: float) -> float:
        """Seconds to wait before `event` may be sent without being throttled."""
        return max(self.buckets["global"].wait_time(now), self._bucket(event).wait_time(now))

    def take(self, event: str, now: float) -> None:
        self.buckets["global"].take(now)
        self._bucket(event).take(now)
