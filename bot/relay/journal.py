"""Writing the channels' journals (bot.relay.resume) to the store, many channels per statement.

Before a message with console lines goes out, its channel's journal (with the message's nonce) must be in the
store: `write_now` waits for that. After it went out, the journal only needs to get there soon (`write_later`):
until it does, a restart sends the message again with its nonce, which Discord answers with the first one. Every
write waiting at a moment goes in one statement, so hundreds of busy channels cost a few round trips a second.

A store that fails is logged and retried with the next writes; posting goes on meanwhile (a crash in that time
may then show a message twice, never lose one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from bot.store import StoreError

log = logging.getLogger(__name__)

LATER = 0.5  # seconds a `write_later` may wait for company
RETRY = 2.0  # seconds before writing again after the store failed


class JournalStore(Protocol):
    """The store's side of it (bot.store.Store has these)."""

    async def relay_journals(self, channel_ids: Collection[int]) -> dict[int, str]: ...

    async def save_relay_journals(self, journals: Sequence[tuple[int, str]]) -> None: ...

    async def delete_relay_journal(self, channel_id: int) -> None: ...


class JournalWriter:
    """Coalesces journal writes; one background task does the writing."""

    def __init__(self, store: JournalStore, *, later: float = LATER) -> None:
        self._store = store
        self._later = later
        self._dirty: dict[int, str] = {}
        self._forgotten: set[int] = set()
        self._waiters: list[asyncio.Future[bool]] = []
        self._wake = asyncio.Event()  # something to write
        self._urgent = asyncio.Event()  # ...and someone waits for it
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.writes = 0  # statements that saved journals
        self.last_error: str | None = None

    async def load(self, channel_ids: Collection[int]) -> Mapping[int, str]:
        """The stored journals of these channels (at start-up)."""
        return await self._store.relay_journals(channel_ids)

    async def write_now(self, channel_id: int, text: str) -> bool:
        """Store the channel's journal; returns once it is written (False when the store failed)."""
        if self._closed:
            return False
        self._dirty[channel_id] = text
        self._forgotten.discard(channel_id)
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._urgent.set()
        self._kick()
        return await fut

    def write_later(self, channel_id: int, text: str) -> None:
        """Store the channel's journal soon."""
        if self._closed:
            return
        self._dirty[channel_id] = text
        self._forgotten.discard(channel_id)
        self._kick()

    def forget(self, channel_id: int) -> None:
        """The channel mirrors nothing any more: its journal goes."""
        self._dirty.pop(channel_id, None)
        self._forgotten.add(channel_id)
        self._kick()

    def _kick(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="relay-journal")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._urgent.is_set():
                # Nobody waits: give other channels' writes a moment to join this statement.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._later):
                        await self._urgent.wait()
            if not await self._flush():
                await asyncio.sleep(RETRY)
                self._wake.set()

    async def _flush(self) -> bool:
        """Write what is dirty; True when the store took it."""
        dirty, self._dirty = self._dirty, {}
        forgotten, self._forgotten = self._forgotten, set()
        waiters, self._waiters = self._waiters, []
        self._urgent.clear()
        ok = True
        try:
            if dirty:
                await self._store.save_relay_journals(sorted(dirty.items()))
                self.writes += 1
            for channel_id in forgotten:
                await self._store.delete_relay_journal(channel_id)
            self.last_error = None
        except Exception as exc:  # a StoreError is expected; anything else is logged in full
            ok = False
            if isinstance(exc, StoreError):
                self.last_error = str(exc)
                log.warning("could not save the relay's journal (%s); trying again shortly", exc)
            else:
                self.last_error = f"internal error ({type(exc).__name__}; see the bot's log)"
                log.exception("saving the relay's journal failed unexpectedly; trying again shortly")
            for channel_id, text in dirty.items():  # newer writes made meanwhile win
                self._dirty.setdefault(channel_id, text)
            self._forgotten |= forgotten - set(self._dirty)
        for fut in waiters:
            if not fut.done():
                fut.set_result(ok)
        return ok

    async def close(self) -> None:
        """Write what is left, then stop (at shutdown, before the store closes)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._dirty or self._forgotten or self._waiters:
            await self._flush()
