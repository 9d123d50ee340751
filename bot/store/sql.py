"""The store's queries, written once for both databases.

A driver (SQLite, PostgreSQL) supplies four primitives: run a statement and count the rows it touched, fetch
rows, insert and return the new id, and convert timestamps to and from its column type. The SQL here keeps
to what both databases read alike (`?` placeholders, `INSERT … ON CONFLICT`); the one thing they order
differently, text, goes through `_nocase` and `_binary`. Every change is one statement, or two that are each
right on their own (a grant: insert, else update), so no method needs a transaction and several processes
sharing one PostgreSQL database stay consistent.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from bot.store.interface import Store
from bot.store.models import (
    STARTED,
    AuditEntry,
    Board,
    BoardKind,
    Grant,
    GuildSettings,
    How,
    Link,
    StoreError,
    TargetKind,
)

log = logging.getLogger(__name__)


class Row(Protocol):
    """A fetched row, read by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str, /) -> Any: ...


class SqlStore(Store):
    """Every store method, on top of a driver's primitives."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._closed = False

    # What a driver supplies

    @abstractmethod
    async def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; how many rows it inserted, changed or deleted."""

    @abstractmethod
    async def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Run one query and return its rows."""

    @abstractmethod
    async def _insert_id(self, sql: str, params: Sequence[object]) -> int:
        """Run one INSERT into a table with an `id` column and return the new row's id."""

    @abstractmethod
    def _moment(self, moment: datetime) -> object:
        """A timezone-aware datetime as the driver's timestamp parameter."""

    @abstractmethod
    def _read_moment(self, value: Any) -> datetime:
        """A timestamp column's value as a UTC datetime."""

    @abstractmethod
    def _nocase(self, column: str) -> str:
        """An ORDER BY term for `column` that ignores ASCII case and otherwise compares code points."""

    def _binary(self, column: str) -> str:
        """An ORDER BY term for `column` that compares code points, whatever the database's locale."""
        return column

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    # Links

    async def add_link(self, link: Link) -> bool:
        values = (link.guild_id, link.channel_id, link.server_identifier, link.server_name, link.created_by)
        added = (
            await self._execute(
                "INSERT INTO links (guild_id, channel_id, server_identifier, server_name,"
                " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (channel_id, server_identifier) DO UPDATE SET stopped_reason = NULL,"
                " server_name = excluded.server_name WHERE links.stopped_reason IS NOT NULL",
                (*values, self._moment(link.created_at)),
            )
            == 1
        )
        if added:
            log.info("Saved link: server %s -> channel %d", link.server_identifier, link.channel_id)
        return added

    async def remove_link(self, channel_id: int, server_identifier: str) -> bool:
        removed = (
            await self._execute(
                "DELETE FROM links WHERE channel_id = ? AND server_identifier = ?",
                (channel_id, server_identifier),
            )
            > 0
        )
        if removed:
            log.info("Removed link: server %s -> channel %d", server_identifier, channel_id)
        return removed

    async def set_link_stopped(self, channel_id: int, server_identifier: str, reason: str | None) -> bool:
        return (
            await self._execute(
                "UPDATE links SET stopped_reason = ? WHERE channel_id = ? AND server_identifier = ?",
                (reason, channel_id, server_identifier),
            )
            > 0
        )

    async def remove_channel_links(self, channel_id: int) -> int:
        count = await self._execute("DELETE FROM links WHERE channel_id = ?", (channel_id,))
        if count:
            log.info("Removed %d link(s) into channel %d", count, channel_id)
        return count

    async def links(self, guild_id: int | None = None) -> list[Link]:
        where, params = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
        rows = await self._fetch(
            f"SELECT * FROM links {where} ORDER BY guild_id, channel_id, {self._nocase('server_name')},"
            f" {self._binary('server_identifier')}",
            params,
        )
        return [self._link(row) for row in rows]

    async def links_for_server(self, server_identifier: str) -> list[Link]:
        rows = await self._fetch(
            "SELECT * FROM links WHERE server_identifier = ? ORDER BY created_at, channel_id",
            (server_identifier,),
        )
        return [self._link(row) for row in rows]

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
        return await self._insert_audit(
            guild_id, user_id, server_identifier, action, arguments, outcome, how, completed=True
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
        return await self._insert_audit(
            guild_id, user_id, server_identifier, action, arguments, STARTED, how, completed=False
        )

    async def audit_finish(self, entry_id: int, outcome: str) -> None:
        await self._execute(
            "UPDATE audit_log SET outcome = ?, completed_at = ? WHERE id = ?",
            (outcome, self._moment(self._clock()), entry_id),
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
        *,
        completed: bool,
    ) -> int:
        now = self._moment(self._clock())
        entry_id = await self._insert_id(
            "INSERT INTO audit_log (at, guild_id, user_id, server_identifier, action, arguments,"
            " outcome, how, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, guild_id, user_id, server_identifier, action, arguments, outcome, how.value,
             now if completed else None),
        )  # fmt: skip
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
        if limit < 0:
            raise ValueError("limit must not be negative")
        conditions: list[str] = []
        params: list[object] = []
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
        return [self._audit_entry(row) for row in rows]

    async def prune_audit(self, older_than: datetime) -> int:
        count = await self._execute("DELETE FROM audit_log WHERE at < ?", (self._moment(older_than),))
        if count:
            log.info(
                "Pruned %d audit entr%s older than %s", count, "y" if count == 1 else "ies", older_than.date()
            )
        return count

    # Boards

    async def add_board(self, board: Board) -> bool:
        # No conflict target: a clash on the message or on the one-board-per-channel index both mean "not added".
        values = (
            board.message_id,
            board.guild_id,
            board.channel_id,
            board.kind.value,
            board.server_identifier,
        )
        return (
            await self._execute(
                "INSERT INTO boards (message_id, guild_id, channel_id, kind, server_identifier, created_by,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (*values, board.created_by, self._moment(board.created_at)),
            )
            == 1
        )

    async def remove_board(self, message_id: int) -> bool:
        return await self._execute("DELETE FROM boards WHERE message_id = ?", (message_id,)) > 0

    async def move_board(self, old_message_id: int, new_message_id: int) -> bool:
        return (
            await self._execute(
                "UPDATE boards SET message_id = ? WHERE message_id = ?", (new_message_id, old_message_id)
            )
            > 0
        )

    async def boards(self, guild_id: int | None = None) -> list[Board]:
        where, params = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
        rows = await self._fetch(f"SELECT * FROM boards {where} ORDER BY created_at, message_id", params)
        return [self._board(row) for row in rows]

    async def board_in_channel(self, channel_id: int) -> Board | None:
        rows = await self._fetch(
            "SELECT * FROM boards WHERE channel_id = ? AND kind = 'board'", (channel_id,)
        )
        return self._board(rows[0]) if rows else None

    # Guild settings

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        rows = await self._fetch("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return _guild_settings(rows[0]) if rows else GuildSettings(guild_id)

    async def all_guild_settings(self) -> list[GuildSettings]:
        rows = await self._fetch("SELECT * FROM guild_settings ORDER BY guild_id")
        return [_guild_settings(row) for row in rows]

    async def set_alerts(self, guild_id: int, channel_id: int | None, role_id: int | None) -> None:
        await self._upsert_guild(guild_id, alert_channel_id=channel_id, alert_role_id=role_id)

    async def set_audit_channel(self, guild_id: int, channel_id: int | None) -> None:
        await self._upsert_guild(guild_id, audit_channel_id=channel_id)

    async def _upsert_guild(self, guild_id: int, **values: int | None) -> None:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        updates = ", ".join(f"{c} = excluded.{c}" for c in values)  # column names are ours, not input
        await self._execute(
            f"INSERT INTO guild_settings (guild_id, {columns}) VALUES (?, {marks})"
            f" ON CONFLICT (guild_id) DO UPDATE SET {updates}",
            (guild_id, *values.values()),
        )

    # Grants

    async def add_grant(self, grant: Grant) -> bool:
        key = (
            grant.guild_id,
            grant.target_kind.value,
            grant.target_id,
            grant.capability,
            grant.server_identifier,
        )
        commands = "\n".join(grant.commands)
        # Insert, else update: two single statements, so exactly one of several concurrent callers (even in
        # other processes) is told the grant is new.
        inserted = await self._execute(
            "INSERT INTO grants (guild_id, target_kind, target_id, capability, server_identifier, commands,"
            " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (*key, commands, grant.created_by, self._moment(grant.created_at)),
        )
        if inserted:
            return True
        await self._execute(
            "UPDATE grants SET commands = ? WHERE guild_id = ? AND target_kind = ? AND target_id = ?"
            " AND capability = ? AND server_identifier = ?",
            (commands, *key),
        )
        return False

    async def remove_grant(
        self, guild_id: int, target_kind: TargetKind, target_id: int, capability: str, server_identifier: str
    ) -> bool:
        return (
            await self._execute(
                "DELETE FROM grants WHERE guild_id = ? AND target_kind = ? AND target_id = ? AND capability = ?"
                " AND server_identifier = ?",
                (guild_id, target_kind.value, target_id, capability, server_identifier),
            )
            > 0
        )

    async def grants(self, guild_id: int) -> list[Grant]:
        order = ", ".join(
            (self._binary("target_kind"), "target_id", self._binary("capability"),
             self._binary("server_identifier"))
        )  # fmt: skip
        rows = await self._fetch(f"SELECT * FROM grants WHERE guild_id = ? ORDER BY {order}", (guild_id,))
        return [self._grant(row) for row in rows]

    # Metadata

    async def get_meta(self, key: str) -> str | None:
        rows = await self._fetch("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # Rows to models

    def _link(self, row: Row) -> Link:
        return Link(
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            server_identifier=row["server_identifier"],
            server_name=row["server_name"],
            created_by=row["created_by"],
            created_at=self._read_moment(row["created_at"]),
            stopped_reason=row["stopped_reason"],
        )

    def _audit_entry(self, row: Row) -> AuditEntry:
        completed_at = row["completed_at"]
        return AuditEntry(
            id=row["id"],
            at=self._read_moment(row["at"]),
            guild_id=row["guild_id"],
            user_id=row["user_id"],
            server_identifier=row["server_identifier"],
            action=row["action"],
            arguments=row["arguments"],
            outcome=row["outcome"],
            how=How(row["how"]),
            completed_at=self._read_moment(completed_at) if completed_at is not None else None,
        )

    def _board(self, row: Row) -> Board:
        return Board(
            message_id=row["message_id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            kind=BoardKind(row["kind"]),
            server_identifier=row["server_identifier"],
            created_by=row["created_by"],
            created_at=self._read_moment(row["created_at"]),
        )

    def _grant(self, row: Row) -> Grant:
        return Grant(
            guild_id=row["guild_id"],
            target_kind=TargetKind(row["target_kind"]),
            target_id=row["target_id"],
            capability=row["capability"],
            server_identifier=row["server_identifier"],
            commands=tuple(p for p in row["commands"].split("\n") if p),
            created_by=row["created_by"],
            created_at=self._read_moment(row["created_at"]),
        )


def _guild_settings(row: Row) -> GuildSettings:
    return GuildSettings(
        guild_id=row["guild_id"],
        alert_channel_id=row["alert_channel_id"],
        alert_role_id=row["alert_role_id"],
        audit_channel_id=row["audit_channel_id"],
    )
