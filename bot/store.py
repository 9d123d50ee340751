"""SQLite persistence: console links, status boards, guild settings (alerts, audit channel), grants, the audit
log and small key/value metadata."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
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
    # Set when Wingbeat stopped the link because Discord refused the channel (lost access, unknown channel):
    # the link is kept, shown with this reason, and retried at the next start or when an admin links again.
    stopped_reason: str | None = None

    def __post_init__(self) -> None:
        # Naive datetimes would be read back ambiguously; insist on an explicit zone.
        if self.created_at.tzinfo is None:
            raise ValueError("Link.created_at must be timezone-aware (UTC)")

    @property
    def stopped(self) -> bool:
        return self.stopped_reason is not None


class How(StrEnum):
    """How an audited action came to the bot."""

    COMMAND = "command"
    BUTTON = "button"
    CONSOLE_INPUT = "console input"
    WINGBEAT = "wingbeat"  # the bot itself (a link stopped because its channel was deleted, a dropped board)


STARTED = "started"  # the outcome of an action that began and has not finished (or was cut short by a crash)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action: who, when, on which server, what, how it came, and the outcome.

    A row is written when the action starts (outcome `started`, `completed_at` None) and completed with its
    outcome, so an action cut short by a crash still leaves a trace.
    """

    id: int
    at: datetime
    guild_id: int | None
    user_id: int
    server_identifier: str | None
    action: str
    arguments: str
    outcome: str
    how: How = How.COMMAND
    completed_at: datetime | None = None


class BoardKind(StrEnum):
    BOARD = "board"  # every server the key sees, with a select menu
    CARD = "card"  # one server, with power buttons


@dataclass(frozen=True, slots=True)
class Board:
    """A live status message Wingbeat keeps editing: a board (one per channel) or a server's card."""

    message_id: int
    guild_id: int
    channel_id: int
    kind: BoardKind
    server_identifier: str | None  # the card's server; None for a board
    created_by: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """Per-guild settings: where alerts go (and whom they mention), and the audit channel."""

    guild_id: int
    alert_channel_id: int | None = None
    alert_role_id: int | None = None
    audit_channel_id: int | None = None


class TargetKind(StrEnum):
    ROLE = "role"
    MEMBER = "member"


ALL_SERVERS = "*"


@dataclass(frozen=True, slots=True)
class Grant:
    """A capability given to a role or a member, on one server or on all (`server_identifier` = `*`).

    `commands` (control.console only) are the allowed command patterns; empty means any command.
    """

    guild_id: int
    target_kind: TargetKind
    target_id: int
    capability: str
    server_identifier: str = ALL_SERVERS
    commands: tuple[str, ...] = ()
    created_by: int = 0
    created_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)


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
    (  # v3: stopped links, audit rows written at the start of an action, boards, guild settings, grants
        "ALTER TABLE links ADD COLUMN stopped_reason TEXT",
        "ALTER TABLE audit_log ADD COLUMN how TEXT NOT NULL DEFAULT 'command'",
        "ALTER TABLE audit_log ADD COLUMN completed_at TEXT",
        "UPDATE audit_log SET completed_at = at",
        "CREATE INDEX audit_log_by_at ON audit_log (at)",
        """
        CREATE TABLE boards (
            message_id INTEGER PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            kind TEXT NOT NULL,
            server_identifier TEXT,
            created_by INTEGER NOT NULL,
            created_at TEXT NOT NULL
        )
        """,
        "CREATE UNIQUE INDEX boards_one_per_channel ON boards (channel_id) WHERE kind = 'board'",
        "CREATE INDEX boards_by_guild ON boards (guild_id, channel_id)",
        """
        CREATE TABLE guild_settings (
            guild_id INTEGER PRIMARY KEY,
            alert_channel_id INTEGER,
            alert_role_id INTEGER,
            audit_channel_id INTEGER
        )
        """,
        """
        CREATE TABLE grants (
            guild_id INTEGER NOT NULL,
            target_kind TEXT NOT NULL,
            target_id INTEGER NOT NULL,
            capability TEXT NOT NULL,
            server_identifier TEXT NOT NULL,
            commands TEXT NOT NULL DEFAULT '',
            created_by INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (guild_id, target_kind, target_id, capability, server_identifier)
        )
        """,
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
        """Save a link (a stopped one becomes active again); False when that channel already mirrors that server."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "INSERT INTO links (guild_id, channel_id, server_identifier, server_name,"
                " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (channel_id, server_identifier) DO UPDATE SET stopped_reason = NULL,"
                " server_name = excluded.server_name WHERE links.stopped_reason IS NOT NULL",
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

    async def set_link_stopped(self, channel_id: int, server_identifier: str, reason: str | None) -> bool:
        """Mark a link stopped with `reason` (None: active again); False when there is no such link."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "UPDATE links SET stopped_reason = ? WHERE channel_id = ? AND server_identifier = ?",
                (reason, channel_id, server_identifier),
            )
            changed = cursor.rowcount > 0
            await cursor.close()
        return changed

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
        how: How = How.COMMAND,
    ) -> int:
        """Record an action that is already over (its outcome known); returns the entry's id."""
        return await self._insert_audit(
            guild_id, user_id, server_identifier, action, arguments, outcome, how, True
        )

    async def audit_start(
        self,
        *,
        guild_id: int | None,
        user_id: int,
        server_identifier: str | None,
        action: str,
        arguments: str,
        how: How = How.COMMAND,
    ) -> int:
        """Record an action as it starts (outcome `started`); complete it with `audit_finish`."""
        return await self._insert_audit(
            guild_id, user_id, server_identifier, action, arguments, STARTED, how, False
        )

    async def audit_finish(self, entry_id: int, outcome: str) -> None:
        """Complete a started audit entry with its outcome."""
        async with self._writing() as conn:
            await conn.execute(
                "UPDATE audit_log SET outcome = ?, completed_at = ? WHERE id = ?",
                (outcome, _to_text(self._clock()), entry_id),
            )

    async def _insert_audit(
        self,
        guild_id: int | None,
        user_id: int,
        server_identifier: str | None,
        action: str,
        arguments: str,
        outcome: str,
        how: How,
        completed: bool,
    ) -> int:
        now = _to_text(self._clock())
        async with self._writing() as conn:
            cursor = await conn.execute(
                "INSERT INTO audit_log (at, guild_id, user_id, server_identifier, action, arguments,"
                " outcome, how, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now, guild_id, user_id, server_identifier, action, arguments, outcome, how.value,
                 now if completed else None),
            )  # fmt: skip
            entry_id = cursor.lastrowid
            await cursor.close()
        if entry_id is None:  # pragma: no cover - sqlite always sets it after an INSERT
            raise StoreError("the audit entry was not saved")
        log.debug("Audit #%d: user %d %s on %s -> %s", entry_id, user_id, action, server_identifier, outcome)
        return entry_id

    async def recent_audit(
        self,
        limit: int = 50,
        guild_id: int | None = None,
        *,
        server_identifier: str | None = None,
        user_id: int | None = None,
    ) -> list[AuditEntry]:
        """The newest audit entries first, optionally for one guild, one server and/or one member."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        conditions, params = [], []
        for column, value in (
            ("guild_id", guild_id),
            ("server_identifier", server_identifier),
            ("user_id", user_id),
        ):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._fetch(
            f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [_audit_entry(row) for row in rows]

    async def prune_audit(self, older_than: datetime) -> int:
        """Delete audit entries written before `older_than`; returns how many went."""
        async with self._writing() as conn:
            cursor = await conn.execute("DELETE FROM audit_log WHERE at < ?", (_to_text(older_than),))
            count = max(cursor.rowcount, 0)
            await cursor.close()
        if count:
            log.info(
                "Pruned %d audit entr%s older than %s", count, "y" if count == 1 else "ies", older_than.date()
            )
        return count

    # Boards

    async def add_board(self, board: Board) -> bool:
        """Save a board or card; False when the channel already has a board (one per channel)."""
        try:
            async with self._writing() as conn:
                await conn.execute(
                    "INSERT INTO boards (message_id, guild_id, channel_id, kind, server_identifier, created_by,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (board.message_id, board.guild_id, board.channel_id, board.kind.value,
                     board.server_identifier, board.created_by, _to_text(board.created_at)),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            return False
        return True

    async def remove_board(self, message_id: int) -> bool:
        """Forget a board or card by its message; False when there was none."""
        async with self._writing() as conn:
            cursor = await conn.execute("DELETE FROM boards WHERE message_id = ?", (message_id,))
            removed = cursor.rowcount > 0
            await cursor.close()
        return removed

    async def move_board(self, old_message_id: int, new_message_id: int) -> bool:
        """The board was posted anew (Discord would not edit the old message): remember the new message."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "UPDATE boards SET message_id = ? WHERE message_id = ?", (new_message_id, old_message_id)
            )
            moved = cursor.rowcount > 0
            await cursor.close()
        return moved

    async def boards(self, guild_id: int | None = None) -> list[Board]:
        """Every board and card, or one guild's, oldest first."""
        where, params = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
        rows = await self._fetch(f"SELECT * FROM boards {where} ORDER BY created_at, message_id", params)
        return [_board(row) for row in rows]

    async def board_in_channel(self, channel_id: int) -> Board | None:
        """The channel's board (not its cards), or None."""
        rows = await self._fetch(
            "SELECT * FROM boards WHERE channel_id = ? AND kind = 'board'", (channel_id,)
        )
        return _board(rows[0]) if rows else None

    # Guild settings

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """The guild's settings (defaults when none were saved)."""
        rows = await self._fetch("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return _guild_settings(rows[0]) if rows else GuildSettings(guild_id)

    async def all_guild_settings(self) -> list[GuildSettings]:
        rows = await self._fetch("SELECT * FROM guild_settings ORDER BY guild_id")
        return [_guild_settings(row) for row in rows]

    async def set_alerts(self, guild_id: int, channel_id: int | None, role_id: int | None) -> None:
        """Send the guild's alerts to `channel_id`, mentioning `role_id` (None, None: alerts off)."""
        await self._upsert_guild(guild_id, alert_channel_id=channel_id, alert_role_id=role_id)

    async def set_audit_channel(self, guild_id: int, channel_id: int | None) -> None:
        """Post every audited action of the guild to `channel_id` too (None: stop)."""
        await self._upsert_guild(guild_id, audit_channel_id=channel_id)

    async def _upsert_guild(self, guild_id: int, **values: int | None) -> None:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        updates = ", ".join(f"{c} = excluded.{c}" for c in values)  # column names are ours, not input
        async with self._writing() as conn:
            await conn.execute(
                f"INSERT INTO guild_settings (guild_id, {columns}) VALUES (?, {marks})"
                f" ON CONFLICT (guild_id) DO UPDATE SET {updates}",
                (guild_id, *values.values()),
            )

    # Grants

    async def add_grant(self, grant: Grant) -> bool:
        """Save a grant; an existing one (same guild, target, capability, server) gets the new patterns.

        Returns False when that grant already existed.
        """
        async with self._writing() as conn:
            cursor = await conn.execute(
                "SELECT 1 FROM grants WHERE guild_id = ? AND target_kind = ? AND target_id = ? AND capability = ?"
                " AND server_identifier = ?",
                (
                    grant.guild_id,
                    grant.target_kind.value,
                    grant.target_id,
                    grant.capability,
                    grant.server_identifier,
                ),
            )
            existed = await cursor.fetchone() is not None
            await cursor.close()
            await conn.execute(
                "INSERT INTO grants (guild_id, target_kind, target_id, capability, server_identifier, commands,"
                " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, target_kind, target_id, capability, server_identifier)"
                " DO UPDATE SET commands = excluded.commands",
                (grant.guild_id, grant.target_kind.value, grant.target_id, grant.capability,
                 grant.server_identifier, "\n".join(grant.commands), grant.created_by,
                 _to_text(grant.created_at)),
            )  # fmt: skip
        return not existed

    async def remove_grant(
        self, guild_id: int, target_kind: TargetKind, target_id: int, capability: str, server_identifier: str
    ) -> bool:
        """Delete one grant; False when there was none."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "DELETE FROM grants WHERE guild_id = ? AND target_kind = ? AND target_id = ? AND capability = ?"
                " AND server_identifier = ?",
                (guild_id, target_kind.value, target_id, capability, server_identifier),
            )
            removed = cursor.rowcount > 0
            await cursor.close()
        return removed

    async def grants(self, guild_id: int) -> list[Grant]:
        """Every grant of a guild, ordered by target, capability and server."""
        rows = await self._fetch(
            "SELECT * FROM grants WHERE guild_id = ?"
            " ORDER BY target_kind, target_id, capability, server_identifier",
            (guild_id,),
        )
        return [_grant(row) for row in rows]

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
        stopped_reason=row["stopped_reason"],
    )


def _audit_entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=_from_text(row["at"]),
        guild_id=row["guild_id"],
        user_id=row["user_id"],
        server_identifier=row["server_identifier"],
        action=row["action"],
        arguments=row["arguments"],
        outcome=row["outcome"],
        how=How(row["how"]),
        completed_at=_from_text(row["completed_at"]) if row["completed_at"] else None,
    )


def _board(row: sqlite3.Row) -> Board:
    return Board(
        message_id=row["message_id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        kind=BoardKind(row["kind"]),
        server_identifier=row["server_identifier"],
        created_by=row["created_by"],
        created_at=_from_text(row["created_at"]),
    )


def _guild_settings(row: sqlite3.Row) -> GuildSettings:
    return GuildSettings(
        guild_id=row["guild_id"],
        alert_channel_id=row["alert_channel_id"],
        alert_role_id=row["alert_role_id"],
        audit_channel_id=row["audit_channel_id"],
    )


def _grant(row: sqlite3.Row) -> Grant:
    return Grant(
        guild_id=row["guild_id"],
        target_kind=TargetKind(row["target_kind"]),
        target_id=row["target_id"],
        capability=row["capability"],
        server_identifier=row["server_identifier"],
        commands=tuple(p for p in row["commands"].split("\n") if p),
        created_by=row["created_by"],
        created_at=_from_text(row["created_at"]),
    )
