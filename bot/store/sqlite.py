"""The SQLite store (aiosqlite): one file, one process.

SQLite would let two processes write the same file, but two Wingbeat processes would then relay the same
consoles twice; while a store is open it holds an exclusive lock on `<database>.lock`, and a second process
is refused with a sentence that points at PostgreSQL.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from bot.settings import SQLITE_MEMORY, Database, DatabaseKind
from bot.store.interface import utc_now
from bot.store.models import StoreError
from bot.store.schema import SCHEMA_VERSION, Dialect, migrations
from bot.store.sql import Row, SqlStore

log = logging.getLogger(__name__)

MEMORY = SQLITE_MEMORY
MIGRATIONS = migrations(Dialect.SQLITE)


def database_path(url: str) -> str:
    """The file SQLite opens for a `sqlite:///…` URL; ValueError for anything else."""
    database = Database.parse(url)
    if database.kind is not DatabaseKind.SQLITE:
        raise ValueError("this store speaks SQLite only; use a sqlite:/// URL")
    return database.target


def _to_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class ProcessLock:
    """An exclusive, non-blocking `flock` on a file, held until `release`; the OS drops it if the process dies."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, path: str, database: str) -> ProcessLock:
        """Take the lock or raise StoreError naming `database` (blocking file calls: run in a thread)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {path!r}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"another Wingbeat process is using {database}; "
                "use PostgreSQL (DATABASE_URL=postgresql://…) to run several"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {path!r}: {exc.strerror}") from exc
        # For whoever finds the file: which process holds it.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock


class SQLiteStore(SqlStore):
    """The store in one SQLite file (or `:memory:`). Open with `await SQLiteStore.connect(path)`."""

    def __init__(
        self, conn: aiosqlite.Connection, path: str, clock: Callable[[], datetime], lock: ProcessLock | None
    ) -> None:
        super().__init__(clock)
        self._conn = conn
        self._path = path
        self._lock = lock
        self._version = 0

    @classmethod
    async def connect(cls, path: str, *, clock: Callable[[], datetime] = utc_now) -> SQLiteStore:
        """Open (creating if needed) the database file, or `:memory:`, upgraded to the current schema."""
        path = path.strip()
        if not path:
            raise ValueError("no database path given")
        lock = None
        if path != MEMORY:
            folder = Path(path).parent
            try:
                await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the database folder {str(folder)!r}: {exc}") from exc
            lock = await asyncio.to_thread(ProcessLock.acquire, f"{path}.lock", path)
        try:
            try:
                conn = await aiosqlite.connect(path, isolation_level=None)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the database {path!r}: {exc}") from exc
            store = cls(conn, path, clock, lock)
            try:
                await store._prepare()
            except BaseException:
                await conn.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()
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
        return int(row["user_version"]) if row is not None else 0

    @property
    def schema_version(self) -> int:
        return self._version

    @property
    def location(self) -> str:
        return self._path

    @property
    def path(self) -> str:
        """The file SQLite opened (or `:memory:`)."""
        return self._path

    def __repr__(self) -> str:
        return f"<SQLiteStore {self._path!r}>"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._conn.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    # Driver primitives

    async def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        self._check_open()
        try:
            async with self._conn.execute(sql, params) as cursor:
                return max(cursor.rowcount, 0)
        except sqlite3.Error as exc:
            raise StoreError(f"the database {self._path!r} failed: {exc}") from exc

    async def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        self._check_open()
        try:
            async with self._conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"the database {self._path!r} failed: {exc}") from exc

    async def _insert_id(self, sql: str, params: Sequence[object]) -> int:
        self._check_open()
        try:
            async with self._conn.execute(sql, params) as cursor:
                entry_id = cursor.lastrowid
        except sqlite3.Error as exc:
            raise StoreError(f"the database {self._path!r} failed: {exc}") from exc
        if entry_id is None:  # pragma: no cover - sqlite always sets it after an INSERT
            raise StoreError("the row was not saved")
        return entry_id

    def _moment(self, moment: datetime) -> object:
        return _to_text(moment)

    def _read_moment(self, value: Any) -> datetime:
        return _from_text(value)

    def _nocase(self, column: str) -> str:
        return f"{column} COLLATE NOCASE"
