"""The panel's server list, cached for autocomplete and name lookups and refreshed in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bot.panel.client import PanelClient
from bot.panel.errors import PanelError
from bot.panel.models import Server

log = logging.getLogger(__name__)


class ServerCatalog:
    """The panel's server list, cached for autocomplete and name lookups and refreshed in the background."""

    def __init__(
        self, panel: PanelClient, *, refresh_every: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._panel = panel
        self._refresh_every = refresh_every
        self._clock = clock
        self._servers: tuple[Server, ...] = ()
        self._fetched_at: float | None = None
        self._inflight: asyncio.Task[tuple[Server, ...]] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def servers(self) -> tuple[Server, ...]:
        """What the last successful refresh saw (possibly nothing yet)."""
        return self._servers

    def age(self) -> float | None:
        return None if self._fetched_at is None else self._clock() - self._fetched_at

    async def refresh(self) -> tuple[Server, ...]:
        """Fetch the list now; concurrent callers share one request. Raises PanelError."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._fetch(), name="catalog-refresh")
            # Retrieved here too, so a refresh whose callers all went away never warns "never retrieved".
            self._inflight.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(self._inflight)

    async def _fetch(self) -> tuple[Server, ...]:
        servers = tuple(await self._panel.list_servers())
        self._servers = servers
        self._fetched_at = self._clock()
        self.last_error = None
        return servers

    async def get(self, max_age: float) -> tuple[Server, ...]:
        """The list, refreshed first when it is older than `max_age` seconds (or was never fetched)."""
        age = self.age()
        if age is None or age > max_age:
            return await self.refresh()
        return self._servers

    async def cached(self, wait: float) -> tuple[Server, ...]:
        """The cached list at once; when there is none yet, wait up to `wait` s for a refresh."""
        if self._fetched_at is None:
            with contextlib.suppress(PanelError, TimeoutError):
                async with asyncio.timeout(wait):
                    return await self.refresh()
        return self._servers

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="catalog-loop")

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except PanelError as exc:
                if self.last_error != str(exc):  # say it once, not every minute
                    log.warning("cannot list the panel's servers: %s", exc)
                self.last_error = str(exc)
            await asyncio.sleep(self._refresh_every)

    async def close(self) -> None:
        tasks = [t for t in (self._loop_task, self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = self._inflight = None
