"""The PostgreSQL store (asyncpg): one database shared by several Wingbeat processes.

Statements go through a small connection pool. A connection the server dropped (restart, failover, an
operator ending sessions) is replaced: a read that meets one is tried once more on a fresh connection; a
write is not, since it may have been applied, and fails as StoreError (the next write goes through).
Upgrades run one step per transaction under a transaction-scoped advisory lock, so processes starting at
once upgrade the schema exactly once between them; a transaction lock also survives the pool's reset of
connections, which drops session locks.

The URL may hold a password: it never reaches a message, a log line or a repr (`location` is the URL
without it, and driver messages are scrubbed of it).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import asyncpg

from bot.store.interface import utc_now
from bot.store.models import StoreError
from bot.store.schema import (
    POSTGRES_MIGRATION_LOCK,
    POSTGRES_VERSION_TABLE,
    SCHEMA_VERSION,
    Dialect,
    migrations,
)
from bot.store.sql import Row, SqlStore

log = logging.getLogger(__name__)

MIGRATIONS = migrations(Dialect.POSTGRESQL)

CONNECT_TIMEOUT = 10.0  # seconds to reach the server and log in
COMMAND_TIMEOUT = 30.0  # seconds one statement may take
POOL_SIZE = 4  # the bot's writes are short; a few connections keep a slow query from stalling the rest
CLOSE_TIMEOUT = 10.0

IDLE_LIFETIME = 60.0  # seconds an unused connection is kept: a firewall may drop idle ones without a word
# What a broken connection or an unreachable server raises, as opposed to an error in a statement.
# InternalClientError is what asyncpg raises for a connection whose loss it has not processed yet.
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


def describe(dsn: str) -> str:
    """The URL without its password or options, fit for logs and admins: `postgresql://user@host:port/db`."""
    try:
        parts = urlsplit(dsn)
        user = f"{unquote(parts.username)}@" if parts.username else ""
        host = parts.netloc.rpartition("@")[2] or "localhost"
        return f"{parts.scheme}://{user}{host}{parts.path}"
    except ValueError:
        return "postgresql (a URL that cannot be read back)"


def _secrets(dsn: str) -> list[str]:
    """The password as written in the URL and decoded, from the user part or a `password=` option."""
    found: list[str] = []
    try:
        parts = urlsplit(dsn)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        found += [value for key, value in parse_qsl(parts.query) if key == "password" and value]
    except ValueError:
        pass
    return [secret for secret in found if secret]


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """The store's `?` placeholders as PostgreSQL's `$1, $2, …` (the store's SQL holds no `?` in literals)."""
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def rowcount(status: str) -> int:
    """The row count in a command tag such as `INSERT 0 1`, `UPDATE 3` or `DELETE 0`."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class PostgresStore(SqlStore):
    """The store in a PostgreSQL database. Open with `await PostgresStore.connect(dsn)`."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], dsn: str, clock: Callable[[], datetime]) -> None:
        super().__init__(clock)
        self._pool = pool
        self._location = describe(dsn)
        self._secrets = _secrets(dsn)
        self._version = 0

    @classmethod
    async def connect(
        cls, dsn: str, *, clock: Callable[[], datetime] = utc_now, pool_size: int = POOL_SIZE
    ) -> PostgresStore:
        """Connect to the database a `postgresql://` URL names and bring its schema up to date."""
        location, secrets = describe(dsn), _secrets(dsn)
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=pool_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                max_inactive_connection_lifetime=IDLE_LIFETIME,
                server_settings={"application_name": "wingbeat"},
            )
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError, ValueError) as exc:
            error = _scrubbed(f"cannot connect to PostgreSQL at {location}: {_reason(exc)}", exc, secrets)
            raise error from error.__cause__
        store = cls(pool, dsn, clock)
        try:
            await store._migrate()
        except BaseException:
            pool.terminate()
            raise
        log.info("Store opened: %s (schema version %d)", location, store.schema_version)
        return store

    async def _migrate(self) -> None:
        try:
            async with self._pool.acquire() as conn:
                while (version := await self._upgrade_once(conn)) is not None:
                    log.info("Store schema upgraded to version %d", version)
                self._version = int(await conn.fetchval("SELECT max(version) FROM wingbeat_schema"))
        except StoreError:
            raise
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            error = self._error(f"cannot upgrade the schema of PostgreSQL at {self._location}", exc)
            raise error from error.__cause__

    async def _upgrade_once(self, conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> int | None:
        """Apply the next step in one transaction under the lock; the version reached, or None when current."""
        async with conn.transaction():
            # Taken before anything else, including creating the version table, which two processes
            # cannot do at the same time either.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", POSTGRES_MIGRATION_LOCK)
            await conn.execute(POSTGRES_VERSION_TABLE)
            current = int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM wingbeat_schema"))
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the database at {self._location} has schema version {current}, newer than this "
                    f"Wingbeat knows ({SCHEMA_VERSION}); upgrade Wingbeat or use another DATABASE_URL"
                )
            if current == SCHEMA_VERSION:
                return None
            for statement in MIGRATIONS[current]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO wingbeat_schema (version) VALUES ($1)", current + 1)
        return current + 1

    @property
    def schema_version(self) -> int:
        return self._version

    @property
    def location(self) -> str:
        return self._location

    def __repr__(self) -> str:
        return f"<PostgresStore {self._location}>"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("PostgreSQL connections did not close within %.0f s; dropping them", CLOSE_TIMEOUT)
            self._pool.terminate()

    # Driver primitives

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]:
        self._check_open()
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            if isinstance(exc, _CONNECTION_ERRORS):
                # The server ended this connection, and most likely the others too (restart, failover): have
                # the pool open new ones, or it could hand out one whose loss asyncpg has not processed yet.
                await self._pool.expire_connections()
            error = self._error(f"PostgreSQL at {self._location} failed", exc)
            raise error from error.__cause__

    async def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        async with self._connection() as conn:
            return rowcount(await conn.execute(numbered(sql), *params))

    async def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        try:
            async with self._connection() as conn:
                return list(await conn.fetch(numbered(sql), *params))
        except StoreError as exc:
            # A read is safe to repeat: once, on a fresh connection, when the old one had been dropped.
            if not isinstance(exc.__cause__, _CONNECTION_ERRORS) or self._closed:
                raise
            log.info("Retrying a read after a lost PostgreSQL connection: %s", exc)
        async with self._connection() as conn:
            return list(await conn.fetch(numbered(sql), *params))

    async def _insert_id(self, sql: str, params: Sequence[object]) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval(numbered(sql) + " RETURNING id", *params))

    def _moment(self, moment: datetime) -> object:
        return moment

    def _read_moment(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise StoreError(f"a timestamp column held {type(value).__name__}, not a timestamp")
        return value.astimezone(UTC)

    def _nocase(self, column: str) -> str:
        # The "C" collation makes lower() fold ASCII only and compare code points, as SQLite's NOCASE does.
        return f'lower({column} COLLATE "C")'

    def _binary(self, column: str) -> str:
        return f'{column} COLLATE "C"'

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return _scrubbed(f"{what}: {_reason(exc)}", exc, self._secrets)


def _scrubbed(message: str, cause: BaseException, secrets: Sequence[str]) -> StoreError:
    """A StoreError for `message` with every secret blanked; chained to `cause` unless the cause shows one."""
    for secret in secrets:
        message = message.replace(secret, "***")
    error = StoreError(message)
    leaks = any(secret in f"{cause!s} {cause!r}" for secret in secrets)
    error.__cause__ = None if leaks else cause  # the caller raises it `from error.__cause__`
    return error


async def read_links_read_only(dsn: str) -> list[tuple[int, int, str]] | None:
    """(guild, channel, server) of every saved link, in a read-only session that creates and upgrades nothing
    (for `wingbeat check`); None when the tables do not exist yet. StoreError, scrubbed, when it cannot."""
    location, secrets = describe(dsn), _secrets(dsn)
    try:
        conn = await asyncpg.connect(
            dsn,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            server_settings={"application_name": "wingbeat check"},
        )
    except (*_CONNECTION_ERRORS, asyncpg.PostgresError, ValueError) as exc:
        error = _scrubbed(f"cannot connect to PostgreSQL at {location}: {_reason(exc)}", exc, secrets)
        raise error from error.__cause__
    try:
        # A read-only transaction rather than a session setting: poolers such as PgBouncer refuse unknown
        # start-up parameters.
        async with conn.transaction(readonly=True):
            if await conn.fetchval("SELECT to_regclass('links')") is None:
                return None
            rows = await conn.fetch(
                "SELECT guild_id, channel_id, server_identifier FROM links ORDER BY guild_id, channel_id"
            )
    except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
        error = _scrubbed(f"cannot read PostgreSQL at {location}: {_reason(exc)}", exc, secrets)
        raise error from error.__cause__
    finally:
        await conn.close(timeout=CLOSE_TIMEOUT)
    return [(int(r["guild_id"]), int(r["channel_id"]), str(r["server_identifier"])) for r in rows]
