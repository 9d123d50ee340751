"""The asyncio side of pacing: requests wait for their slot by priority (see `bot.panel.pacing`).

No task of its own: waiting requests hold futures, and one timer wakes the queue when the next slot is due.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.panel.errors import PanelBusy
from bot.panel.pacing import DEFAULT_VIEW_WAIT, Priority, Refusal, RequestPacer, RequestQueue, Ticket

log = logging.getLogger(__name__)


class RequestScheduler:
    """Hands out the pacer's request slots, highest priority first; a view that would wait too long gets
    `PanelBusy` at once instead of a place in line."""

    def __init__(
        self,
        pacer: RequestPacer,
        *,
        view_wait: float = DEFAULT_VIEW_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pacer = pacer
        self._queue = RequestQueue(pacer, max_wait={Priority.VIEW: view_wait})
        self._clock = clock
        self._futures: dict[Ticket, asyncio.Future[None]] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """How many requests wait for a slot now."""
        return len(self._queue)

    async def slot(self, priority: Priority) -> None:
        """Return when a request of this priority may be sent; raises `PanelBusy` for one that may not wait."""
        ticket = self._queue.submit(self._clock(), priority)
        if isinstance(ticket, Refusal):
            log.debug("panel budget spent: a %s request refused (%.1f s to wait)", priority.name, ticket.wait)
            raise PanelBusy(ticket.wait)
        future = asyncio.get_running_loop().create_future()
        self._futures[ticket] = future
        self._poll()
        try:
            await future
        except asyncio.CancelledError:
            if self._futures.pop(ticket, None) is not None:  # still in line: let the next one have the slot
                self._queue.cancel(ticket)
                self._poll()
            raise

    def observe(self, *, limit: str | None, remaining: str | None) -> None:
        """The panel's `X-RateLimit-*` headers from a response: the pace may change for those waiting."""
        self.pacer.observe(limit=limit, remaining=remaining)
        if self._futures:
            self._poll()

    def block(self, retry_after: float) -> None:
        """A 429: nothing goes out for `retry_after` seconds, and views that cannot wait that long give up."""
        self.pacer.block(self._clock(), retry_after)
        if self._futures:
            self._poll()

    def close(self) -> None:
        """Stop the timer (whoever still waits is cancelled with its own task)."""
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _poll(self) -> None:
        self._cancel_timer()
        result = self._queue.poll(self._clock())
        for ticket in result.granted:
            future = self._futures.pop(ticket, None)
            if future is not None and not future.done():
                future.set_result(None)
        for ticket, wait in result.expired:
            future = self._futures.pop(ticket, None)
            if future is not None and not future.done():
                future.set_exception(PanelBusy(wait))
        if result.wake_in is not None:
            self._timer = asyncio.get_running_loop().call_later(result.wake_in, self._poll)
