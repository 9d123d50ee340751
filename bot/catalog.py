"""The panel's server list, cached for autocomplete and name lookups and refreshed in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from bot.panel.backoff import Backoff
from bot.panel.client import PanelClient
from bot.panel.errors import PanelBusy, PanelError, PanelRateLimited
from bot.panel.models import Server
from bot.panel.pacing import Priority

log = logging.getLogger(__name__)

CACHED_RETRY = 5.0  # `cached` starts a fetch at most this often while there is no list at all


class ServerCatalog:
    """The panel's server list, cached for autocomplete and name lookups and refreshed in the background.

    The background refresh never stops: a failure is noted in `last_error` (shown by /health), logged (a panel
    error once per change, anything else with its traceback) and retried with backoff, about `retry_first`
    seconds doubling to `retry_cap`; after a success it waits `refresh_every` again.
    """

    def __init__(
        self,
        panel: PanelClient,
        *,
        refresh_every: float = 60.0,
        retry_first: float = 1.0,
        retry_cap: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._panel = panel
        self._refresh_every = refresh_every
        self._backoff = Backoff(retry_first, retry_cap, rng)
        self._clock = clock
        self._sleep = sleep
        self._servers: tuple[Server, ...] = ()
        self._fetched_at: float | None = None
        # One shared fetch per priority: an admin's lookup must not ride on a view that may be refused.
        self._inflight: dict[Priority, asyncio.Task[tuple[Server, ...]]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self._logged_error: str | None = None
        self._attempted_at: float | None = None  # when the last fetch started

    @property
    def servers(self) -> tuple[Server, ...]:
        """What the last successful refresh saw (possibly nothing yet)."""
        return self._servers

    def age(self) -> float | None:
        """Seconds since the last successful refresh (None before the first)."""
        return None if self._fetched_at is None else self._clock() - self._fetched_at

    async def refresh(self, *, priority: Priority = Priority.VIEW) -> tuple[Server, ...]:
        """Fetch the list now; concurrent callers of one priority share one fetch. Raises PanelError."""
        task = self._inflight.get(priority)
        if task is None or task.done():
            self._attempted_at = self._clock()
            task = asyncio.create_task(self._fetch(priority), name="catalog-refresh")
            # Retrieved here too, so a refresh whose callers all went away never warns "never retrieved".
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._inflight[priority] = task
        return await asyncio.shield(task)

    async def _fetch(self, priority: Priority) -> tuple[Server, ...]:
        try:
            servers = tuple(await self._panel.list_servers(priority=priority))
        except PanelError as exc:
            self.last_error = str(exc)  # whoever asked: /health tells the panel is in trouble at once
            raise
        self._servers = servers
        self._fetched_at = self._clock()
        self.last_error = None
        return servers

    async def get(self, max_age: float, *, priority: Priority = Priority.VIEW) -> tuple[Server, ...]:
        """The list, refreshed first when it is older than `max_age` seconds (or was never fetched)."""
        age = self.age()
        if age is None or age > max_age:
            return await self.refresh(priority=priority)
        return self._servers

    async def cached(self, wait: float) -> tuple[Server, ...]:
        """The cached list at once; when there is none yet, wait up to `wait` s for a refresh (one started less
        than `CACHED_RETRY` s ago and failed is not tried again: keystrokes must not spend the panel's budget)."""
        task = self._inflight.get(Priority.VIEW)
        running = task is not None and not task.done()
        tried = self._attempted_at is not None and self._clock() - self._attempted_at < CACHED_RETRY
        if self._fetched_at is None and (running or not tried):
            with contextlib.suppress(PanelError, TimeoutError):
                async with asyncio.timeout(wait):
                    return await self.refresh()
        return self._servers

    def start(self) -> None:
        """Start the background refresh (once)."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="catalog-loop")

    async def _loop(self) -> None:
        while True:
            await self._sleep(await self._refresh_once())

    async def _refresh_once(self) -> float:
        """One background refresh; returns how long to wait before the next."""
        try:
            await self.refresh()
        except PanelError as exc:
            if self._logged_error != str(exc):  # say it once, not at every retry
                log.warning("cannot list the panel's servers: %s", exc)
                self._logged_error = str(exc)
            self.last_error = str(exc)
            wait = self._backoff.next()
            if isinstance(exc, PanelRateLimited | PanelBusy):
                wait = max(wait, exc.retry_after)
            return wait
        except Exception as exc:
            log.exception("the server list refresh failed unexpectedly; retrying")
            self.last_error = (
                f"the server list refresh failed unexpectedly ({type(exc).__name__}; see the log)"
            )
            return self._backoff.next()
        self._backoff.reset()
        self._logged_error = None
        return self._refresh_every

    async def close(self) -> None:
        """Stop the background refresh and any fetch in flight."""
        tasks = [t for t in (self._loop_task, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        self._inflight.clear()
