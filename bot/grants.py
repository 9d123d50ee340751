"""The grant book: every allowed guild's grants held in memory, so the access check costs no store query.

Loaded once at start-up and changed only through `grant` and `revoke`, which write the store first and then
replace the guild's tuple in one step: the next interaction sees the change, one already being checked sees
the old or the new book, never half of it. A guild is served by one process (its shard), so no other process
changes its grants behind this one's back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from bot.store import Grant, Store, TargetKind

log = logging.getLogger(__name__)


class GrantBook:
    """Each guild's grants, read synchronously by the access check and written through to the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._grants: dict[int, tuple[Grant, ...]] = {}
        self._lock = asyncio.Lock()  # one change at a time, so the store and memory agree on the order

    async def load(self, guild_ids: Iterable[int]) -> None:
        """Read the grants of these guilds from the store (at start-up)."""
        for guild_id in guild_ids:
            self._grants[guild_id] = tuple(await self._store.grants(guild_id))
        count = sum(len(g) for g in self._grants.values())
        log.info("loaded %d grant%s for %d guild(s)", count, "" if count == 1 else "s", len(self._grants))

    def grants(self, guild_id: int) -> tuple[Grant, ...]:
        """The guild's grants as of now (none for a guild never loaded)."""
        return self._grants.get(guild_id, ())

    async def grant(self, grant: Grant) -> bool:
        """Save a grant (an existing one gets the new patterns); False when it already existed."""
        async with self._lock:
            added = await self._store.add_grant(grant)
            await self._reload(grant.guild_id)
        return added

    async def revoke(
        self, guild_id: int, target_kind: TargetKind, target_id: int, capability: str, server_identifier: str
    ) -> bool:
        """Delete one grant; False when there was none."""
        async with self._lock:
            removed = await self._store.remove_grant(
                guild_id, target_kind, target_id, capability, server_identifier
            )
            await self._reload(guild_id)
        return removed

    async def _reload(self, guild_id: int) -> None:
        # Read back rather than patched in place: the store's upsert decides what a duplicate becomes.
        self._grants[guild_id] = tuple(await self._store.grants(guild_id))
