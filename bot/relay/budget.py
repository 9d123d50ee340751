"""A shared pace for every Discord request background work makes, under Discord's global 50 requests/s."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.buckets import TokenBucket

log = logging.getLogger(__name__)

SLOWDOWN = 0.75  # a 429 cuts the rate to this fraction...
FLOOR = 0.1  # ...never below this fraction of the configured rate...
RECOVERY = 0.05  # ...and each second without one gives back this fraction of it
WIRE_PACE = 1.05  # the wire's rate, as a multiple of the turns'


class RequestBudget:
    """Hands out request slots at `rate` per second (bursts up to `burst`), first come first served.

    The defaults keep any one second at or under 45 requests (42/s plus a burst of 3), leaving Discord's
    global 50/s room for interaction replies and the odd other call. Several processes on one token each take
    their share (bot.shards).

    Each channel has at most one send in flight and waits its turn in one FIFO queue, so hundreds of busy
    channels share the budget fairly: none can take a second slot before the others had theirs.

    A slot has two halves. `turn` is the caller's place in the FIFO queue: the relay cuts its next message
    only then, so whatever arrived while it waited still goes in. `wire` comes right before the request itself
    and keeps the requests that really leave within the budget in every second, however long a caller took
    between the two (a store write before a post, a stall of the event loop): without it, posts delayed by a
    slow moment would leave together with the next second's and pass Discord's limit. `acquire` takes both,
    for a request sent at once.

    Behind a shared rate-limiting proxy the budget learns from the proxy's 429s (`throttled`): the rate drops
    by a quarter at once (at most once per `retry_after`), and comes back slowly while no 429 arrives, so
    processes sharing the proxy settle on what it lets through instead of spending requests on refusals.
    """

    def __init__(
        self,
        rate: float = 42.0,
        burst: int = 3,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_rate = rate
        self.rate = rate
        self._bucket = TokenBucket(burst, 1.0 / rate)
        self._lock = asyncio.Lock()
        # No burst on the wire, but a little more pace than the turns: requests leave evenly, yet reach Discord
        # with network jitter and the odd stall of the event loop, which bunched them into 46-47 in one second of
        # the boards benchmark with a burst of 2; a wire no faster than the turns instead lost throughput to every
        # late request. Any one second holds at most 1 + 1.05 x rate (45 at the default 42).
        self._wire = TokenBucket(1, 1.0 / (rate * WIRE_PACE))
        self._wire_lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep
        self._cut_until = -1.0  # no further cut before this time: one burst of 429s is one signal
        self._recovered_at = 0.0
        self.granted = 0
        self.throttles = 0

    async def acquire(self) -> None:
        """Wait for one request slot, for a request sent at once."""
        await self.turn()
        await self.wire()

    async def turn(self) -> None:
        """Wait for this caller's turn in the shared queue; `wire` must follow before the request goes out."""
        async with self._lock:  # asyncio.Lock wakes waiters in FIFO order
            self._recover(self._clock())
            await self._take(self._bucket)
            self.granted += 1

    async def wire(self) -> None:
        """Wait until a request that had its turn may leave now, within the budget of the current second."""
        async with self._wire_lock:
            await self._take(self._wire)

    async def _take(self, bucket: TokenBucket) -> None:
        wait = bucket.wait_time(self._clock())
        if wait > 0:
            await self._sleep(wait)
        bucket.take(self._clock())

    def throttled(self, retry_after: float) -> None:
        """A request was answered 429 (a shared proxy's budget is spent): slow everyone down."""
        self.throttles += 1
        now = self._clock()
        if now < self._cut_until:
            return
        self._cut_until = now + max(retry_after, 0.2)
        slower = max(self.base_rate * FLOOR, self.rate * SLOWDOWN)
        if slower < self.rate:
            log.info("Discord answered 429: relaying at %.1f requests/s for now", slower)
            self._set_rate(slower, now)
        self._recovered_at = now

    def _recover(self, now: float) -> None:
        if self.rate >= self.base_rate or now < self._cut_until:
            return
        elapsed = now - self._recovered_at
        if elapsed >= 1.0:
            self._set_rate(min(self.base_rate, self.rate + self.base_rate * RECOVERY * elapsed), now)
            self._recovered_at = now

    def _set_rate(self, rate: float, now: float) -> None:
        self.rate = rate
        for bucket, pace in ((self._bucket, 1.0), (self._wire, WIRE_PACE)):
            bucket.wait_time(now)  # brings the bucket up to `now` at the old rate first
            bucket.period = 1.0 / (rate * pace)
