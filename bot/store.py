"""SQLite persistence: console links, the audit log and small key/value metadata."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import aiosqlite

from bot.settings import SQLITE_MEMORY, Database, DatabaseKind

log = logging.getLogger(__name__)

MEMORY = SQLITE_MEMORY


class StoreError(Exception):
    """The store cannot be opened or used; the message says why."""


def database_path(url: str) -> str:
    """The file SQLite opens for a `sqlite:///…` URL; ValueError for anything else."""
    database = Database.parse(url)
    if database.kind is not DatabaseKind.SQLITE:
        raise ValueError("this store speaks SQLite only; use a sqlite:/// URL")
    return database.target


@dataclass(frozen=True, slots=True)
class Link:
    """A game server's console mirrored into a Discord channel."""

    guild_id: int
    channel_id: int
    server_identifier: str
    server_name: str
    created_by: int
    created_at: datetime

    def __post_init__(self) -> None:
        # Naive datetimes would be read back ambiguously; insist on an explicit zone.
        if self.created_at.tzinfo is None:
            raise ValueError("Link.created_at must be timezone-aware (UTC)")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action: who, when, on which server, what, and the outcome."""

    id: int
    at: datetime
    guild_id: int | None
    user_id: int
    server_identifier: str | None
    action: str
    arguments: str
    outcome: str


# Each step brings the schema from version i to i + 1 and runs in one transaction together with
# the `PRAGMA user_version` bump, so a crash mid-upgrade leaves the previous version intact.
# Append new steps; never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # v1: the initial schema
        """
        CREATE TABLE links (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            server_identifier TEXT NOT NULL,
            server_name TEXT NOT NULL,
            created_by INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (channel_id, server_identifier)
        )
        """,
        """
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            guild_id INTEGER,
            user_id INTEGER NOT NULL,
            server_identifier TEXT,
            action TEXT NOT NULL,
            arguments TEXT NOT NULL,
            outcome TEXT NOT NULL
        )
        """,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (  # v2: indexes for the lookups made per server (relay start-up) and per guild (/console list, audit)
        "CREATE INDEX links_by_server ON links (server_identifier)",
        "CREATE INDEX links_by_guild ON links (guild_id, channel_id)",
        "CREATE INDEX audit_log_by_guild ON audit_log (guild_id, id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _to_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Store:
    """The bot's SQLite store. Open with `await Store.open(url)`; close with `await store.close()`."""

    def __init__(self, conn: aiosqlite.Connection, path: str, clock: Callable[[], datetime]) -> None:
        self._conn = conn
        self._path = path
        self._clock = clock
        # aiosqlite already runs statements one at a time; the lock keeps a multi-statement
        # transaction from interleaving with another coroutine's write.
        self._write_lock = asyncio.Lock()
        self._version = 0
        self._closed = False

    @classmethod
    async def open(cls, url_or_path: str, *, clock: Callable[[], datetime] = _utc_now) -> Store:
        """Open (creating if needed) the database at a `sqlite:///` URL or a plain path, upgraded."""
        path = database_path(url_or_path) if "://" in url_or_path else url_or_path.strip()
        if not path:
            raise ValueError("no database path given")
        if path != MEMORY:
            folder = Path(path).parent
            try:
                await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the database folder {str(folder)!r}: {exc}") from exc
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {path!r}: {exc}") from exc
        store = cls(conn, path, clock)
        try:
            await store._prepare()
        except BaseException:
            await conn.close()
            raise
        log.info("Store opened: %s (schema version %d)", path, store.schema_version)
        return store

    async def _prepare(self) -> None:
        conn = self._conn
        conn.row_factory = aiosqlite.Row
        try:
            # WAL lets readers run alongside the writer; NORMAL sync is safe under WAL.
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=5000")
            await self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use the database {self._path!r}: {exc}") from exc

    async def _migrate(self) -> None:
        async with self._write_lock:
            current = await self._user_version()
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the database {self._path!r} has schema version {current}, newer than this "
                    f"Wingbeat knows ({SCHEMA_VERSION}); upgrade Wingbeat or use another DATABASE_URL"
                )
            for version in range(current, SCHEMA_VERSION):
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in MIGRATIONS[version]:
                        await self._conn.execute(statement)
                    # PRAGMA takes no parameters; the value is our own int.
                    await self._conn.execute(f"PRAGMA user_version = {version + 1}")
                except BaseException:
                    await self._conn.execute("ROLLBACK")
                    raise
                await self._conn.execute("COMMIT")
                log.info("Store schema upgraded to version %d", version + 1)
            self._version = await self._user_version()

    async def _user_version(self) -> int:
        async with self._conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0

    @property
    def schema_version(self) -> int:
        """The schema version the open database is at."""
        return self._version

    @property
    def path(self) -> str:
        """The file SQLite opened (or `:memory:`)."""
        return self._path

    async def close(self) -> None:
        """Close the database; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._closed:
            raise StoreError("the store is closed")
        async with self._write_lock:
            yield self._conn

    async def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        if self._closed:
            raise StoreError("the store is closed")
        async with self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    # Links

    async def add_link(self, link: Link) -> bool:
        """Save a link; False when that channel already mirrors that server."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "INSERT OR IGNORE INTO links (guild_id, channel_id, server_identifier, server_name,"
                " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    link.guild_id,
                    link.channel_id,
                    link.server_identifier,
                    link.server_name,
                    link.created_by,
                    _to_text(link.created_at),
                ),
            )
            added = cursor.rowcount == 1
            await cursor.close()
        if added:
            log.info("Saved link: server %s -> channel %d", link.server_identifier, link.channel_id)
        return added

    async def remove_link(self, channel_id: int, server_identifier: str) -> bool:
        """Delete one link; False when there was none."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "DELETE FROM links WHERE channel_id = ? AND server_identifier = ?",
                (channel_id, server_identifier),
            )
            removed = cursor.rowcount > 0
            await cursor.close()
        if removed:
            log.info("Removed link: server %s -> channel %d", server_identifier, channel_id)
        return removed

    async def remove_channel_links(self, channel_id: int) -> int:
        """Delete every link into a channel (e.g. the channel was deleted); returns how many."""
        async with self._writing() as conn:
            cursor = await conn.execute("DELETE FROM links WHERE channel_id = ?", (channel_id,))
            count = max(cursor.rowcount, 0)
            await cursor.close()
        if count:
            log.info("Removed %d link(s) into channel %d", count, channel_id)
        return count

    async def links(self, guild_id: int | None = None) -> list[Link]:
        """Every link, or only one guild's, ordered by guild, channel and server name."""
        where, params = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
        rows = await self._fetch(
            f"SELECT * FROM links {where} ORDER BY guild_id, channel_id, server_name COLLATE NOCASE",
            params,
        )
        return [_link(row) for row in rows]

    async def links_for_server(self, server_identifier: str) -> list[Link]:
        """Every channel a server's console is mirrored into, oldest link first."""
        rows = await self._fetch(
            "SELECT * FROM links WHERE server_identifier = ? ORDER BY created_at, channel_id",
            (server_identifier,),
        )
        return [_link(row) for row in rows]

    # Audit log

    async def audit(
        self,
        *,
        guild_id: int | None,
        user_id: int,
        server_identifier: str | None,
        action: str,
        arguments: str,
        outcome: str,
    ) -> int:
        """Record an admin action now; returns the entry's id."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "INSERT INTO audit_log (at, guild_id, user_id, server_identifier, action, arguments,"
                " outcome) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_to_text(self._clock()), guild_id, user_id, server_identifier, action, arguments, outcome),
            )
            entry_id = cursor.lastrowid
            await cursor.close()
        if entry_id is None:  # pragma: no cover - sqlite always sets it after an INSERT
            raise StoreError("the audit entry was not saved")
        log.debug("Audit #%d: user %d %s on %s -> %s", entry_id, user_id, action, server_identifier, outcome)
        return entry_id

    async def recent_audit(self, limit: int = 50, guild_id: int | None = None) -> list[AuditEntry]:
        """The newest audit entries first, optionally for one guild only."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        where, params = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
        rows = await self._fetch(
            f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [
            AuditEntry(
                id=row["id"],
                at=_from_text(row["at"]),
                guild_id=row["guild_id"],
                user_id=row["user_id"],
                server_identifier=row["server_identifier"],
                action=row["action"],
                arguments=row["arguments"],
                outcome=row["outcome"],
            )
            for row in rows
        ]

    # Metadata

    async def get_meta(self, key: str) -> str | None:
        """A stored value (e.g. the hash of the last synced commands), or None."""
        rows = await self._fetch("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        """Store or replace a value."""
        async with self._writing() as conn:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _link(row: sqlite3.Row) -> Link:
    return Link(
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        server_identifier=row["server_identifier"],
        server_name=row["server_name"],
        created_by=row["created_by"],
        created_at=_from_text(row["created_at"]),
    )
