"""The saved console links, read without changing anything: SQLite opened read-only, PostgreSQL in a read-only
session, no schema upgrade."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bot.settings import SQLITE_MEMORY, Database, DatabaseKind
from bot.store.models import StoreError
from bot.store.postgres import describe, read_links_read_only

_CREATED = "the bot creates it at its first start"


@dataclass(frozen=True, slots=True)
class SavedLink:
    guild_id: int
    channel_id: int
    server: str


@dataclass(frozen=True, slots=True)
class SavedLinks:
    """The links (None: they could not be read) and a note on where they came from or why not.

    `error` is set when the store exists, or must, and cannot be used: the bot would not start either.
    """

    links: tuple[SavedLink, ...] | None
    note: str = ""
    error: str = ""
    store: str = ""  # what the store is, for its own ✓ line


async def read_links(database: Database) -> SavedLinks:
    """Every saved link; never creates, migrates or writes the store."""
    if database.kind is DatabaseKind.POSTGRESQL:
        return await _read_postgres(database.target)
    if database.target == SQLITE_MEMORY:
        return SavedLinks((), "the store is in memory", store="in memory: nothing is kept across restarts")
    return await asyncio.to_thread(_read_sqlite, Path(database.target))


async def _read_postgres(dsn: str) -> SavedLinks:
    where = describe(dsn)
    try:
        rows = await read_links_read_only(dsn)
    except StoreError as exc:
        return SavedLinks(None, error=str(exc))
    if rows is None:
        return SavedLinks(
            (),
            f"no tables yet in {where}",
            store=f"PostgreSQL at {where} answers; the bot creates its tables at its first start",
        )
    links = tuple(SavedLink(g, c, s) for g, c, s in rows)
    return SavedLinks(links, f"from {where}", store=f"PostgreSQL at {where} answers")


def _read_sqlite(path: Path) -> SavedLinks:
    if not path.is_file():
        return SavedLinks((), f"no store yet at {path}", store=f"none yet at {path}; {_CREATED}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        return SavedLinks(None, error=f"the store at {path} could not be opened: {exc}")
    try:
        rows = conn.execute(
            "SELECT guild_id, channel_id, server_identifier FROM links ORDER BY guild_id, channel_id"
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return SavedLinks(
                (), f"the store at {path} holds no links yet", store=f"SQLite at {path}, readable"
            )
        return SavedLinks(None, error=f"the store at {path} could not be read: {exc}")
    except sqlite3.Error as exc:
        return SavedLinks(None, error=f"the store at {path} could not be read: {exc}")
    finally:
        conn.close()
    links = tuple(SavedLink(int(g), int(c), str(s)) for g, c, s in rows)
    return SavedLinks(links, f"from {path}", store=f"SQLite at {path}, readable")
