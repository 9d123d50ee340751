"""The store's versioned schema, written once for SQLite and PostgreSQL.

Each step brings the schema from version i to i + 1 and runs in one transaction together with the version
bump, so a crash mid-upgrade leaves the previous version intact. Append new steps; never edit a released one.

The two dialects differ only where the placeholders below say so, nowhere else:

| placeholder   | SQLite                              | PostgreSQL                                        |
|---------------|-------------------------------------|---------------------------------------------------|
| `{serial}`    | `INTEGER PRIMARY KEY AUTOINCREMENT` | `BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY` |
| `{snowflake}` | `INTEGER` (64-bit already)          | `BIGINT` (Discord IDs overflow `INTEGER`)         |
| `{moment}`    | `TEXT`: ISO 8601 in UTC, e.g.       | `TIMESTAMPTZ`                                     |
|               | `2024-05-01T12:00:00.000000+00:00`, |                                                   |
|               | which sorts like the instant it is  |                                                   |

Both keep ids growing after deletes (AUTOINCREMENT, identity), so audit ids are never reused. The version
lives in `PRAGMA user_version` on SQLite and in the table `wingbeat_schema` (one row per applied version)
on PostgreSQL, which has no such pragma.
"""

from __future__ import annotations

from enum import StrEnum


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


_TYPES: dict[Dialect, dict[str, str]] = {
    Dialect.SQLITE: {
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "snowflake": "INTEGER",
        "moment": "TEXT",
    },
    Dialect.POSTGRESQL: {
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "snowflake": "BIGINT",
        "moment": "TIMESTAMPTZ",
    },
}

STEPS: tuple[tuple[str, ...], ...] = (
    (  # v1: the initial schema
        """
        CREATE TABLE links (
            guild_id {snowflake} NOT NULL,
            channel_id {snowflake} NOT NULL,
            server_identifier TEXT NOT NULL,
            server_name TEXT NOT NULL,
            created_by {snowflake} NOT NULL,
            created_at {moment} NOT NULL,
            PRIMARY KEY (channel_id, server_identifier)
        )
        """,
        """
        CREATE TABLE audit_log (
            id {serial},
            at {moment} NOT NULL,
            guild_id {snowflake},
            user_id {snowflake} NOT NULL,
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
        "ALTER TABLE audit_log ADD COLUMN completed_at {moment}",
        "UPDATE audit_log SET completed_at = at",
        "CREATE INDEX audit_log_by_at ON audit_log (at)",
        """
        CREATE TABLE boards (
            message_id {snowflake} PRIMARY KEY,
            guild_id {snowflake} NOT NULL,
            channel_id {snowflake} NOT NULL,
            kind TEXT NOT NULL,
            server_identifier TEXT,
            created_by {snowflake} NOT NULL,
            created_at {moment} NOT NULL
        )
        """,
        "CREATE UNIQUE INDEX boards_one_per_channel ON boards (channel_id) WHERE kind = 'board'",
        "CREATE INDEX boards_by_guild ON boards (guild_id, channel_id)",
        """
        CREATE TABLE guild_settings (
            guild_id {snowflake} PRIMARY KEY,
            alert_channel_id {snowflake},
            alert_role_id {snowflake},
            audit_channel_id {snowflake}
        )
        """,
        """
        CREATE TABLE grants (
            guild_id {snowflake} NOT NULL,
            target_kind TEXT NOT NULL,
            target_id {snowflake} NOT NULL,
            capability TEXT NOT NULL,
            server_identifier TEXT NOT NULL,
            commands TEXT NOT NULL DEFAULT '',
            created_by {snowflake} NOT NULL,
            created_at {moment} NOT NULL,
            PRIMARY KEY (guild_id, target_kind, target_id, capability, server_identifier)
        )
        """,
    ),
)
SCHEMA_VERSION = len(STEPS)


def migrations(dialect: Dialect) -> tuple[tuple[str, ...], ...]:
    """Every step's statements, written out for one dialect."""
    types = _TYPES[dialect]
    return tuple(tuple(statement.format(**types) for statement in step) for step in STEPS)


# PostgreSQL: where the version is kept, and the advisory lock that serialises upgrades between processes
# starting at once (the key is "Wingbeat" in ASCII, read as a 64-bit integer).
POSTGRES_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS wingbeat_schema (
        version INTEGER PRIMARY KEY,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
"""
POSTGRES_MIGRATION_LOCK = int.from_bytes(b"Wingbeat", "big")
