"""Exponential backoff with jitter for retrying against the panel, as plain logic (the randomness injected)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    """Waits of about `first` seconds, doubling on each failure up to `cap`; `reset()` after a success.

    Half of each wait is fixed and half random ("equal jitter"), so a long outage costs a request a minute,
    retries from many loops do not line up, and the first retry after the panel is back comes quickly.
    """

    first: float = 1.0
    cap: float = 60.0
    rng: Callable[[], float] = random.random
    failures: int = 0

    def next(self) -> float:
        """The wait before the next try; counts one more failure."""
        ceiling = min(self.cap, self.first * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return ceiling / 2 * (1 + self.rng())

    def reset(self) -> None:
        """A success: the next failure starts again from `first`."""
        self.failures = 0
