"""Audit retention: rows older than AUDIT_RETENTION_DAYS are deleted once at start-up and then once a day."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DAY = 86400.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditPruner:
    """Deletes old audit rows on a schedule; a failure is logged, kept in `last_error`, and tried again next time.

    `prune(older_than)` deletes the rows written before that moment and returns how many went (the store's
    `prune_audit`). `retention_days` 0 keeps everything: the pruner then never runs.
    """

    def __init__(
        self,
        prune: Callable[[datetime], Awaitable[int]],
        retention_days: int,
        *,
        every: float = DAY,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if retention_days < 0:
            raise ValueError("retention_days must not be negative")
        self._prune = prune
        self._retention = timedelta(days=retention_days)
        self._every = every
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self.enabled = retention_days > 0
        self.runs = 0
        self.pruned = 0  # rows deleted since start-up
        self.last_run: datetime | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        if self.enabled and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name="audit-prune")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def run_once(self) -> int:
        """Delete the rows older than the retention period now; returns how many went."""
        now = self._clock()
        count = await self._prune(now - self._retention)
        self.runs += 1
        self.pruned += count
        self.last_run = now
        self.last_error = None
        return count

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:
                log.exception("pruning the audit log failed; trying again in %.0f s", self._every)
                self.last_error = f"{type(exc).__name__}: {exc}"
            await self._sleep(self._every)
