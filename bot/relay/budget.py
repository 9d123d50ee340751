"""A shared pace for every Discord request the relay makes, under Discord's global 50 requests/s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bot.buckets import TokenBucket


class RequestBudget:
    """Hands out request slots at `rate` per second (bursts up to `burst`), first come first served.

    The defaults keep any one second at or under 45 requests (42/s plus a burst of 3), leaving Discord's
    global 50/s room for interaction replies and the odd other call.

    Each channel has at most one send in flight and waits its turn in one FIFO queue, so hundreds of busy
    channels share the budget fairly: none can take a second slot before the others had theirs.
    """

    def __init__(
        self,
        rate: float = 42.0,
        burst: int = 3,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._bucket = TokenBucket(burst, 1.0 / rate)
        self._lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep
        self.granted = 0

    async def acquire(self) -> None:
        """Wait for one request slot."""
        async with self._lock:  # asyncio.Lock wakes waiters in FIFO order
            wait = self._bucket.wait_time(self._clock())
            if wait > 0:
                await self._sleep(wait)
            self._bucket.take(self._clock())
            self.granted += 1
