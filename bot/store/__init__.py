"""Persistence behind one interface: SQLite by default, PostgreSQL for several processes.

::

    interface.Store      what the bot may ask (abstract); `await open_store(url)` picks the implementation
    └── sql.SqlStore     the queries, written once for both databases
        ├── sqlite.SQLiteStore      aiosqlite; one process, guarded by a lock file
        └── postgres.PostgresStore  asyncpg; shared by several processes
    models               the dataclasses and enums stored, and StoreError
    schema               the versioned schema and its two dialects
"""

from bot.store.interface import Store
from bot.store.models import (
    ALL_SERVERS,
    INTERRUPTED,
    STARTED,
    AuditEntry,
    Board,
    BoardKind,
    Grant,
    GuildSettings,
    How,
    Link,
    Shards,
    StoreError,
    TargetKind,
)
from bot.store.opening import open_store
from bot.store.schema import SCHEMA_VERSION, Dialect, migrations
from bot.store.sqlite import MEMORY, MIGRATIONS, SQLiteStore, database_path

__all__ = [
    "ALL_SERVERS",
    "INTERRUPTED",
    "MEMORY",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STARTED",
    "AuditEntry",
    "Board",
    "BoardKind",
    "Dialect",
    "Grant",
    "GuildSettings",
    "How",
    "Link",
    "SQLiteStore",
    "Shards",
    "Store",
    "StoreError",
    "TargetKind",
    "database_path",
    "migrations",
    "open_store",
]
