"""The saved console links, read without changing anything: SQLite opened read-only, no schema upgrade."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bot.settings import SQLITE_MEMORY, Database, DatabaseKind


@dataclass(frozen=True, slots=True)
class SavedLink:
    guild_id: int
    channel_id: int
    server: str


@dataclass(frozen=True, slots=True)
class SavedLinks:
    """The links (None: they could not be read) and a note on where they came from or why not."""

    links: tuple[SavedLink, ...] | None
    note: str = ""


async def read_links(database: Database) -> SavedLinks:
    """Every saved link; never creates, migrates or writes the store."""
    if database.kind is not DatabaseKind.SQLITE:
        return SavedLinks(None, "the links of a PostgreSQL store are not read by `wingbeat check`")
    if database.target == SQLITE_MEMORY:
        return SavedLinks((), "the store is in memory")
    return await asyncio.to_thread(_read_sqlite, Path(database.target))


def _read_sqlite(path: Path) -> SavedLinks:
    if not path.is_file():
        return SavedLinks((), f"no store yet at {path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        return SavedLinks(None, f"the store at {path} could not be opened: {exc}")
    try:
        rows = conn.execute(
            "SELECT guild_id, channel_id, server_identifier FROM links ORDER BY guild_id, channel_id"
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return SavedLinks((), f"the store at {path} holds no links yet")
        return SavedLinks(None, f"the store at {path} could not be read: {exc}")
    except sqlite3.Error as exc:
        return SavedLinks(None, f"the store at {path} could not be read: {exc}")
    finally:
        conn.close()
    return SavedLinks(tuple(SavedLink(int(g), int(c), str(s)) for g, c, s in rows), f"from {path}")
