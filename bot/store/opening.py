"""Open the store a `DATABASE_URL` (or a plain SQLite path) names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.settings import Database, DatabaseKind
from bot.store.interface import Store, utc_now


async def open_store(target: str | Database, *, clock: Callable[[], datetime] = utc_now) -> Store:
    """The SQLite store for a path or `sqlite:///…` URL, the PostgreSQL store for a `postgresql://…` URL.

    ValueError when the URL is malformed (its message never quotes the URL); StoreError when the database
    cannot be opened or upgraded.
    """
    if isinstance(target, str):
        if "://" not in target:
            from bot.store.sqlite import SQLiteStore

            return await SQLiteStore.connect(target, clock=clock)
        target = Database.parse(target)
    if target.kind is DatabaseKind.POSTGRESQL:
        from bot.store.postgres import PostgresStore

        return await PostgresStore.connect(target.target, clock=clock)
    from bot.store.sqlite import SQLiteStore

    return await SQLiteStore.connect(target.target, clock=clock)
