"""Tests for bot.store: one suite run against SQLite and PostgreSQL (links, audit log, boards, guild settings,
grants, metadata, persistence, migrations), then what only one of them does: SQLite's URL reading, its file and
its single-process lock; PostgreSQL's migration lock, reconnecting and keeping its password out of sight."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest

from bot.settings import Database
from bot.store import (
    ALL_SERVERS,
    INTERRUPTED,
    MIGRATIONS,
    SCHEMA_VERSION,
    STARTED,
    Board,
    BoardKind,
    Dialect,
    Grant,
    GuildSettings,
    How,
    Link,
    Shards,
    SQLiteStore,
    Store,
    StoreError,
    TargetKind,
    database_path,
    migrations,
    open_store,
)
from bot.store.postgres import PostgresStore, describe, numbered, rowcount
from tests.pg import PostgresCluster

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
BIG = 2**63 - 1  # the largest value a Discord snowflake can take (SQLite INTEGER, PostgreSQL BIGINT)


def make_link(
    channel: int = 10, server: str = "1a2b3c4d", guild: int = 1, name: str = "Survival", at: datetime = T0
) -> Link:
    return Link(
        guild_id=guild,
        channel_id=channel,
        server_identifier=server,
        server_name=name,
        created_by=99,
        created_at=at,
    )


@dataclass(frozen=True)
class Backend:
    """An empty database of one kind, and raw access to it for the tests that look under the store."""

    dialect: Dialect
    url: str

    async def open(self, clock: Callable[[], datetime] | None = None) -> Store:
        return await (open_store(self.url) if clock is None else open_store(self.url, clock=clock))

    async def execute(self, *statements: str) -> None:
        if self.dialect is Dialect.SQLITE:
            async with aiosqlite.connect(database_path(self.url)) as db:
                for statement in statements:
                    await db.execute(statement)
                await db.commit()
            return
        pg = await asyncpg.connect(self.url)
        try:
            for statement in statements:
                await pg.execute(statement)
        finally:
            await pg.close()

    async def column(self, query: str) -> list[Any]:
        """The first column of a query's rows."""
        if self.dialect is Dialect.SQLITE:
            async with aiosqlite.connect(database_path(self.url)) as db, db.execute(query) as cursor:
                return [row[0] for row in await cursor.fetchall()]
        pg = await asyncpg.connect(self.url)
        try:
            return [row[0] for row in await pg.fetch(query)]
        finally:
            await pg.close()

    async def names(self, kind: str) -> set[str]:
        """The tables or indexes in the database."""
        if self.dialect is Dialect.SQLITE:
            return set(await self.column(f"SELECT name FROM sqlite_master WHERE type = '{kind}'"))
        catalog = {"table": "tablename FROM pg_tables", "index": "indexname FROM pg_indexes"}[kind]
        return set(await self.column(f"SELECT {catalog} WHERE schemaname = 'public'"))

    async def version(self) -> int:
        """The schema version as the database itself records it."""
        if self.dialect is Dialect.SQLITE:
            (version,) = await self.column("PRAGMA user_version")
        else:
            (version,) = await self.column("SELECT coalesce(max(version), 0) FROM wingbeat_schema")
        return int(version)

    async def set_version(self, version: int) -> None:
        if self.dialect is Dialect.SQLITE:
            await self.execute(f"PRAGMA user_version = {version}")
        else:
            await self.execute(
                "CREATE TABLE IF NOT EXISTS wingbeat_schema (version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                f"INSERT INTO wingbeat_schema (version) VALUES ({version})",
            )


@pytest.fixture(params=[Dialect.SQLITE, Dialect.POSTGRESQL], ids=str)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param is Dialect.SQLITE:
        return Backend(Dialect.SQLITE, f"sqlite:///{tmp_path / 'wingbeat.sqlite3'}")
    return Backend(Dialect.POSTGRESQL, request.getfixturevalue("postgres_dsn"))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = await backend.open()
    yield s
    await s.close()


def ticking(start: datetime = T0) -> Callable[[], datetime]:
    """A clock that moves one second per reading."""
    moments = (start + timedelta(seconds=i) for i in range(10_000))
    return lambda: next(moments)


# opening (both)


async def test_open_runs_all_migrations(backend: Backend) -> None:
    async with await backend.open() as s:
        assert s.schema_version == SCHEMA_VERSION == len(MIGRATIONS) >= 3
        assert await s.links() == []
        assert await s.recent_audit() == []
    assert await backend.version() == SCHEMA_VERSION
    assert {
        "links", "audit_log", "meta", "boards", "guild_settings", "grants", "relay_journal"
    } <= await backend.names("table")  # fmt: skip


async def test_open_picks_the_implementation_from_the_url(backend: Backend) -> None:
    expected = SQLiteStore if backend.dialect is Dialect.SQLITE else PostgresStore
    async with await open_store(backend.url) as s:
        assert type(s) is expected
    async with await open_store(Database.parse(backend.url)) as s:
        assert type(s) is expected


async def test_close_is_idempotent_and_closed_store_refuses_work(backend: Backend) -> None:
    s = await backend.open()
    await s.close()
    await s.close()
    with pytest.raises(StoreError, match="closed"):
        await s.add_link(make_link())
    with pytest.raises(StoreError, match="closed"):
        await s.links()


# links


async def test_add_link_once_then_false(store: Store) -> None:
    assert await store.add_link(make_link()) is True
    assert await store.add_link(make_link(name="Renamed")) is False
    assert await store.links() == [make_link()]


async def test_same_channel_many_servers_and_same_server_many_channels(store: Store) -> None:
    assert await store.add_link(make_link(channel=10, server="aaaaaaaa"))
    assert await store.add_link(make_link(channel=10, server="bbbbbbbb"))
    assert await store.add_link(make_link(channel=11, server="aaaaaaaa", at=T0 + timedelta(seconds=1)))
    assert len(await store.links()) == 3
    assert [link.channel_id for link in await store.links_for_server("aaaaaaaa")] == [10, 11]
    assert [link.channel_id for link in await store.links_for_server("bbbbbbbb")] == [10]
    assert await store.links_for_server("cccccccc") == []


async def test_links_filtered_by_guild_and_ordered(store: Store) -> None:
    await store.add_link(make_link(guild=2, channel=30, server="s3", name="zeta"))
    await store.add_link(make_link(guild=1, channel=20, server="s2", name="Beta"))
    await store.add_link(make_link(guild=1, channel=20, server="s1", name="alpha"))
    await store.add_link(make_link(guild=1, channel=20, server="s5", name="Ärger"))
    await store.add_link(make_link(guild=1, channel=20, server="s6", name="_under"))
    await store.add_link(make_link(guild=1, channel=5, server="s4", name="Omega"))
    # ASCII case ignored, otherwise code points, whatever the database's locale ("Ärger" last, "_" first).
    assert [(x.guild_id, x.channel_id, x.server_name) for x in await store.links()] == [
        (1, 5, "Omega"),
        (1, 20, "_under"),
        (1, 20, "alpha"),
        (1, 20, "Beta"),
        (1, 20, "Ärger"),
        (2, 30, "zeta"),
    ]
    assert [x.server_identifier for x in await store.links(guild_id=2)] == ["s3"]
    assert await store.links(guild_id=3) == []


def guild_on_shard(shard: int, count: int, serial: int = 0) -> int:
    """A guild ID (a real-looking snowflake) that Discord puts on `shard` of `count`."""
    guild = (1_200_000_000_000 + serial * count + shard) << 22 | 4321
    assert (guild >> 22) % count == shard
    return guild


async def test_links_filtered_by_shard(store: Store) -> None:
    g0, g1, g2 = guild_on_shard(0, 3), guild_on_shard(1, 3), guild_on_shard(2, 3)
    big = guild_on_shard(2, 3, serial=2**38)  # near the top of the 64-bit range: no sign trouble
    assert big > 2**62
    for n, guild in enumerate((g0, g1, g2, big)):
        await store.add_link(make_link(guild=guild, channel=100 + n, server=f"s{n}"))
    on = {s: {x.server_identifier for x in await store.links(shards=Shards(3, (s,)))} for s in range(3)}
    assert on == {0: {"s0"}, 1: {"s1"}, 2: {"s2", "s3"}}
    both = await store.links(shards=Shards(3, (0, 2)))
    assert [x.server_identifier for x in both] == ["s0", "s2", "s3"]  # ordered as ever
    assert [x.server_identifier for x in await store.links(g1, shards=Shards(3, (1,)))] == ["s1"]
    assert await store.links(g1, shards=Shards(3, (0,))) == []
    assert len(await store.links(shards=Shards(1, (0,)))) == 4


async def test_boards_and_guild_settings_filtered_by_shard(store: Store) -> None:
    g0, g1 = guild_on_shard(0, 2), guild_on_shard(1, 2)
    for n, guild in enumerate((g0, g1)):
        board = Board(500 + n, guild, 600 + n, BoardKind.BOARD, None, 99, T0)
        assert await store.add_board(board)
        await store.set_alerts(guild, 700 + n, None)
    assert [b.guild_id for b in await store.boards(shards=Shards(2, (1,)))] == [g1]
    assert [b.guild_id for b in await store.boards(g0, shards=Shards(2, (0,)))] == [g0]
    assert [s.guild_id for s in await store.all_guild_settings(shards=Shards(2, (0,)))] == [g0]
    assert len(await store.all_guild_settings()) == 2


async def test_relay_journals_saved_many_at_once_replaced_and_forgotten(store: Store) -> None:
    assert await store.relay_journals([1, 2]) == {}
    await store.save_relay_journals([(1, "one"), (BIG, '{"v":1}'), (3, "three")])
    assert await store.relay_journals([1, BIG, 4]) == {1: "one", BIG: '{"v":1}'}
    await store.save_relay_journals([(1, "uno"), (1, "eins")])  # the last of a channel's wins
    assert await store.relay_journals([1]) == {1: "eins"}
    many = [(1000 + i, f"state {i}") for i in range(700)]  # more rows than one statement takes
    await store.save_relay_journals(many)
    assert await store.relay_journals([c for c, _ in many]) == dict(many)
    await store.delete_relay_journal(1)
    await store.delete_relay_journal(1)
    assert await store.relay_journals([1, 3]) == {3: "three"}
    await store.save_relay_journals([])


def test_shards_are_checked() -> None:
    for count, ids in ((0, (0,)), (2, ()), (2, (2,)), (2, (-1,))):
        with pytest.raises(ValueError):
            Shards(count, ids)
    assert Shards(2, (1,)).holds(guild_on_shard(1, 2)) and not Shards(2, (1,)).holds(None)
    assert Shards(2, (0,)).holds(None)


async def test_started_audit_rows_of_a_crashed_process_are_marked_interrupted(backend: Backend) -> None:
    g0, g1 = guild_on_shard(0, 2), guild_on_shard(1, 2)
    async with await backend.open(clock=ticking()) as s:
        mine = await s.audit_start(
            guild_id=g1, user_id=5, server_identifier="a", action="power", arguments=""
        )
        theirs = await s.audit_start(
            guild_id=g0, user_id=5, server_identifier="a", action="power", arguments=""
        )
        dm = await s.audit_start(guild_id=None, user_id=5, server_identifier=None, action="x", arguments="")
        done = await s.audit_start(
            guild_id=g1, user_id=6, server_identifier="a", action="power", arguments=""
        )
        await s.audit_finish(done, "done: started")
        assert await s.interrupt_started_audit(INTERRUPTED, shards=Shards(2, (1,))) == 1
        outcomes = {e.id: (e.outcome, e.completed_at is not None) for e in await s.recent_audit()}
        assert outcomes[mine] == (INTERRUPTED, True)
        assert outcomes[theirs] == (STARTED, False) and outcomes[dm] == (STARTED, False)
        assert outcomes[done] == ("done: started", True)
        assert await s.interrupt_started_audit(INTERRUPTED, shards=Shards(2, (0,))) == 2  # with the DM's row
        assert await s.interrupt_started_audit(INTERRUPTED) == 0


async def test_remove_link(store: Store) -> None:
    await store.add_link(make_link(channel=10, server="aaaaaaaa"))
    await store.add_link(make_link(channel=10, server="bbbbbbbb"))
    assert await store.remove_link(10, "aaaaaaaa") is True
    assert await store.remove_link(10, "aaaaaaaa") is False
    assert await store.remove_link(11, "bbbbbbbb") is False
    assert [x.server_identifier for x in await store.links()] == ["bbbbbbbb"]


async def test_remove_channel_links_counts(store: Store) -> None:
    for server in ("a", "b", "c"):
        await store.add_link(make_link(channel=10, server=server))
    await store.add_link(make_link(channel=11, server="a"))
    assert await store.remove_channel_links(10) == 3
    assert await store.remove_channel_links(10) == 0
    assert [(x.channel_id, x.server_identifier) for x in await store.links()] == [(11, "a")]


async def test_link_values_round_trip(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    original = Link(
        guild_id=BIG,
        channel_id=BIG - 1,
        server_identifier="1a2b3c4d",
        server_name="Überwelt 🌍 «βeta» '; DROP TABLE links; -- ?",
        created_by=BIG - 2,
        created_at=datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=paris),
    )
    await store.add_link(original)
    (saved,) = await store.links()
    assert saved == original  # aware datetimes compare by instant
    assert saved.created_at.utcoffset() == timedelta(0)
    assert saved.created_at == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_link_requires_aware_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_link(at=datetime(2024, 1, 1))


async def test_concurrent_duplicate_adds_save_exactly_one(store: Store) -> None:
    results = await asyncio.gather(*(store.add_link(make_link()) for _ in range(20)))
    assert results.count(True) == 1
    assert len(await store.links()) == 1


async def test_stopped_link_is_kept_and_relinking_makes_it_active(store: Store) -> None:
    assert await store.add_link(make_link())
    assert await store.set_link_stopped(10, "1a2b3c4d", "Discord says the channel is gone (10003)")
    (saved,) = await store.links()
    assert saved.stopped and saved.stopped_reason == "Discord says the channel is gone (10003)"
    assert await store.add_link(make_link(name="Survival 2"))  # relink: active again, with the new name
    (saved,) = await store.links()
    assert not saved.stopped and saved.server_name == "Survival 2"
    assert not await store.add_link(make_link())  # an active link is not added twice
    assert not await store.set_link_stopped(11, "1a2b3c4d", "x")


# audit log


async def test_audit_records_and_returns_newest_first(backend: Backend) -> None:
    async with await backend.open(clock=ticking()) as s:
        first = await s.audit(
            guild_id=1,
            user_id=7,
            server_identifier="1a2b3c4d",
            action="power",
            arguments="start",
            outcome="ok",
        )
        second = await s.audit(
            guild_id=2, user_id=8, server_identifier=None, action="link", arguments="#x", outcome="ok"
        )
        third = await s.audit(
            guild_id=None,
            user_id=9,
            server_identifier="ffffffff",
            action="command",
            arguments="say hi?",
            outcome="refused: offline",
        )
        assert first < second < third
        entries = await s.recent_audit()
        assert [e.id for e in entries] == [third, second, first]
        newest = entries[0]
        assert (newest.guild_id, newest.user_id, newest.server_identifier) == (None, 9, "ffffffff")
        assert (newest.action, newest.arguments, newest.outcome) == ("command", "say hi?", "refused: offline")
        assert newest.at == T0 + timedelta(seconds=2) and newest.at.tzinfo is not None
        assert newest.completed_at == newest.at and newest.how is How.COMMAND
        assert entries[1].server_identifier is None
        assert [e.id for e in await s.recent_audit(limit=2)] == [third, second]
        assert [e.id for e in await s.recent_audit(guild_id=1)] == [first]
        assert await s.recent_audit(limit=0) == []


async def test_recent_audit_rejects_negative_limit(store: Store) -> None:
    with pytest.raises(ValueError, match="negative"):
        await store.recent_audit(limit=-1)


async def test_concurrent_audits_all_saved_with_distinct_ids(store: Store) -> None:
    ids = await asyncio.gather(
        *(
            store.audit(
                guild_id=1, user_id=i, server_identifier="s", action="power", arguments="kill", outcome="ok"
            )
            for i in range(100)
        )
    )
    assert len(set(ids)) == 100
    entries = await store.recent_audit(limit=1000)
    assert sorted(e.user_id for e in entries) == list(range(100))


async def test_audit_start_then_finish_and_filters(backend: Backend) -> None:
    async with await backend.open(clock=ticking()) as s:
        first = await s.audit_start(
            guild_id=1, user_id=5, server_identifier="aaaa1111", action="power", arguments="start",
            how=How.BUTTON,
        )  # fmt: skip
        (entry,) = await s.recent_audit()
        assert entry.outcome == STARTED and entry.completed_at is None and entry.how is How.BUTTON
        await s.audit_finish(first, "done: started")
        await s.audit(
            guild_id=1, user_id=6, server_identifier="bbbb2222", action="command", arguments="say hi",
            outcome="sent", how=How.CONSOLE_INPUT,
        )  # fmt: skip
        await s.audit(
            guild_id=2, user_id=5, server_identifier="aaaa1111", action="link", arguments="", outcome="ok"
        )
        done = (await s.recent_audit(guild_id=1, server_identifier="aaaa1111"))[0]
        assert done.id == first and done.outcome == "done: started"
        assert done.completed_at is not None and done.completed_at > done.at
        assert [e.user_id for e in await s.recent_audit(guild_id=1)] == [6, 5]
        assert [e.guild_id for e in await s.recent_audit(user_id=5)] == [2, 1]
        assert (await s.recent_audit(guild_id=1, user_id=6))[0].how is How.CONSOLE_INPUT


async def test_prune_audit_deletes_only_older_rows(backend: Backend) -> None:
    clock = iter([T0 - timedelta(days=400), T0 - timedelta(days=10), T0])
    async with await backend.open(clock=lambda: next(clock)) as s:
        for i in range(3):
            await s.audit(
                guild_id=1, user_id=i, server_identifier=None, action="a", arguments="", outcome="o"
            )
        assert await s.prune_audit(T0 - timedelta(days=365)) == 1
        assert [e.user_id for e in await s.recent_audit()] == [2, 1]
        assert await s.prune_audit(T0 - timedelta(days=365)) == 0


# boards, guild settings, grants, metadata


def make_board(
    message: int = 500, channel: int = 10, kind: BoardKind = BoardKind.BOARD, server: str | None = None
) -> Board:
    return Board(message, 1, channel, kind, server, 99, T0)


async def test_one_board_per_channel_but_many_cards(store: Store) -> None:
    assert await store.add_board(make_board())
    assert not await store.add_board(make_board(message=501))  # a second board in the same channel
    assert not await store.add_board(make_board(message=500, channel=12))  # a message is one board
    assert await store.add_board(make_board(message=502, kind=BoardKind.CARD, server="aaaa1111"))
    assert await store.add_board(make_board(message=503, kind=BoardKind.CARD, server="bbbb2222"))
    assert await store.add_board(make_board(message=504, channel=11))
    assert [b.message_id for b in await store.boards()] == [500, 502, 503, 504]
    board = await store.board_in_channel(10)
    assert board is not None and board.message_id == 500 and board.kind is BoardKind.BOARD
    assert await store.move_board(500, 600)
    assert (await store.board_in_channel(10)) == make_board(message=600)
    assert await store.remove_board(600) and not await store.remove_board(600)
    assert await store.board_in_channel(10) is None
    assert [b.server_identifier for b in await store.boards(guild_id=1)] == ["aaaa1111", "bbbb2222", None]
    assert await store.boards(guild_id=2) == []


async def test_guild_settings_alerts_and_audit_channel(store: Store) -> None:
    assert await store.guild_settings(1) == GuildSettings(1)
    await store.set_alerts(1, 20, 30)
    await store.set_audit_channel(1, 40)
    assert await store.guild_settings(1) == GuildSettings(1, 20, 30, 40)
    await store.set_alerts(1, None, None)
    assert await store.guild_settings(1) == GuildSettings(1, None, None, 40)
    await store.set_audit_channel(2, BIG)
    assert [g.guild_id for g in await store.all_guild_settings()] == [1, 2]
    assert (await store.guild_settings(2)).audit_channel_id == BIG


async def test_grants_upsert_patterns_and_revoke(store: Store) -> None:
    mods = Grant(1, TargetKind.ROLE, 77, "control.restart", "aaaa1111", (), 99, T0)
    events = Grant(
        1, TargetKind.ROLE, 78, "control.console", ALL_SERVERS, ("say *", "whitelist add *"), 99, T0
    )
    assert await store.add_grant(mods) and await store.add_grant(events)
    assert not await store.add_grant(
        Grant(1, TargetKind.ROLE, 78, "control.console", ALL_SERVERS, ("say *",), 99, T0)
    )
    assert await store.add_grant(Grant(2, TargetKind.MEMBER, 77, "view", ALL_SERVERS, (), 99, T0))
    grants = await store.grants(1)
    assert [g.target_id for g in grants] == [77, 78]
    assert grants[1].commands == ("say *",)
    assert not await store.remove_grant(1, TargetKind.MEMBER, 77, "control.restart", "aaaa1111")
    assert await store.remove_grant(1, TargetKind.ROLE, 77, "control.restart", "aaaa1111")
    assert [g.target_id for g in await store.grants(1)] == [78]
    assert [g.target_kind for g in await store.grants(2)] == [TargetKind.MEMBER]


async def test_grants_ordered_by_target_capability_then_server(store: Store) -> None:
    for kind, target, capability, server in [
        (TargetKind.ROLE, 5, "view", "bbbb2222"),
        (TargetKind.ROLE, 5, "view", ALL_SERVERS),
        (TargetKind.ROLE, 5, "logs", "aaaa1111"),
        (TargetKind.MEMBER, 9, "view", ALL_SERVERS),
        (TargetKind.ROLE, 4, "view", ALL_SERVERS),
    ]:
        assert await store.add_grant(Grant(1, kind, target, capability, server, (), 99, T0))
    assert [
        (g.target_kind.value, g.target_id, g.capability, g.server_identifier) for g in await store.grants(1)
    ] == [
        ("member", 9, "view", "*"),
        ("role", 4, "view", "*"),
        ("role", 5, "logs", "aaaa1111"),
        ("role", 5, "view", "*"),  # "*" before letters, as code points go
        ("role", 5, "view", "bbbb2222"),
    ]


async def test_concurrent_grants_tell_exactly_one_caller_it_is_new(store: Store) -> None:
    grant = Grant(1, TargetKind.ROLE, 77, "control.console", ALL_SERVERS, ("say *",), 99, T0)
    results = await asyncio.gather(*(store.add_grant(grant) for _ in range(10)))
    assert results.count(True) == 1
    assert len(await store.grants(1)) == 1


async def test_meta_get_set_replace(store: Store) -> None:
    assert await store.get_meta("commands_hash") is None
    await store.set_meta("commands_hash", "abc")
    assert await store.get_meta("commands_hash") == "abc"
    await store.set_meta("commands_hash", "def")
    assert await store.get_meta("commands_hash") == "def"
    assert await store.get_meta("other") is None


# persistence


async def test_everything_survives_reopen(backend: Backend) -> None:
    async with await backend.open() as s:
        await s.add_link(make_link(channel=1, server="aaaaaaaa", name="Créatif"))
        await s.add_link(make_link(channel=2, server="bbbbbbbb"))
        await s.remove_link(2, "bbbbbbbb")
        await s.set_link_stopped(1, "aaaaaaaa", "lost access (50001)")
        entry = await s.audit(
            guild_id=1, user_id=2, server_identifier="aaaaaaaa", action="link", arguments="", outcome="ok"
        )
        started = await s.audit_start(
            guild_id=1, user_id=2, server_identifier=None, action="power", arguments="kill"
        )
        await s.set_meta("commands_hash", "h1")
        await s.add_board(make_board())
        await s.set_alerts(1, 20, 30)
        await s.add_grant(Grant(1, TargetKind.ROLE, 5, "view", ALL_SERVERS, (), 99, T0))
    async with await backend.open() as s:
        assert s.schema_version == SCHEMA_VERSION
        (link,) = await s.links()
        assert link.server_name == "Créatif" and link.stopped_reason == "lost access (50001)"
        assert [(e.id, e.outcome) for e in await s.recent_audit()] == [(started, STARTED), (entry, "ok")]
        assert await s.get_meta("commands_hash") == "h1"
        assert await s.boards() == [make_board()]
        assert await s.guild_settings(1) == GuildSettings(1, 20, 30)
        assert len(await s.grants(1)) == 1
        # ids keep growing after a restart (AUTOINCREMENT, identity), so audit ids are never reused
        await s.prune_audit(datetime.now(UTC) + timedelta(days=1))
        later = await s.audit(
            guild_id=1, user_id=2, server_identifier=None, action="unlink", arguments="", outcome="ok"
        )
        assert later > started


# migrations


def test_the_dialects_differ_only_in_the_placeholders() -> None:
    sqlite, postgres = migrations(Dialect.SQLITE), migrations(Dialect.POSTGRESQL)
    assert len(sqlite) == len(postgres) == SCHEMA_VERSION and sqlite == MIGRATIONS
    assert "AUTOINCREMENT" in sqlite[0][1] and "GENERATED ALWAYS AS IDENTITY" in postgres[0][1]
    assert (
        "TIMESTAMPTZ" in postgres[0][0] and "BIGINT" in postgres[0][0] and "TIMESTAMPTZ" not in sqlite[0][0]
    )
    assert sqlite[1] == postgres[1]  # v2 is indexes only


async def make_v1_database(backend: Backend) -> None:
    """A database exactly as the v1 code left it, with one link in it."""
    await backend.execute(
        *migrations(backend.dialect)[0],
        "INSERT INTO links VALUES (1, 10, '1a2b3c4d', 'Survival', 99, '2024-05-01T12:00:00+00:00')",
    )
    await backend.set_version(1)


async def test_v1_database_is_upgraded_and_keeps_its_data(backend: Backend) -> None:
    await make_v1_database(backend)
    assert await backend.version() == 1
    assert "links_by_server" not in await backend.names("index")

    async with await backend.open() as s:
        assert s.schema_version == SCHEMA_VERSION == 4
        assert await s.links() == [make_link()]  # upgraded as an active link
        assert await s.boards() == [] and await s.grants(1) == []
        assert await s.relay_journals([10]) == {}

    assert await backend.version() == SCHEMA_VERSION
    assert {"links_by_server", "links_by_guild", "audit_log_by_guild", "boards_one_per_channel"} <= (
        await backend.names("index")
    )
    # opening an up-to-date database again changes nothing
    async with await backend.open() as s:
        assert s.schema_version == SCHEMA_VERSION
        assert len(await s.links()) == 1


async def test_failed_upgrade_step_rolls_back_whole_step(backend: Backend) -> None:
    await make_v1_database(backend)
    # The third v2 statement will clash with this index, after the first two have run.
    await backend.execute("CREATE INDEX audit_log_by_guild ON audit_log (user_id)")

    with pytest.raises(StoreError, match="already exists"):
        await backend.open()

    assert await backend.version() == 1
    indexes = await backend.names("index")
    assert "links_by_server" not in indexes and "links_by_guild" not in indexes


async def test_newer_schema_is_refused(backend: Backend) -> None:
    async with await backend.open():
        pass
    await backend.set_version(SCHEMA_VERSION + 1)  # as a newer Wingbeat would leave it
    with pytest.raises(StoreError, match="newer"):
        await backend.open()


# SQLite only: URLs, files, one process


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/wingbeat.sqlite3", "data/wingbeat.sqlite3"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("  sqlite:///x.db \n", "x.db"),
        ("SQLite:///x.db", "x.db"),
    ],
)
def test_database_path_accepts(url: str, expected: str) -> None:
    assert database_path(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgres://localhost/wingbeat", "sqlite:///"),
        ("sqlite://data/x.db", "sqlite:///"),
        ("data/x.db", "sqlite:///"),
        ("", "sqlite:///"),
        ("sqlite:///", "no database file"),
        ("sqlite:///data/", "folder"),
        ("sqlite:///x.db?mode=ro", "query options"),
    ],
)
def test_database_path_rejects_with_clear_message(url: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        database_path(url)
    assert fragment in str(info.value)


async def test_open_plain_memory_path() -> None:
    async with await open_store(":memory:") as s:
        assert s.schema_version == SCHEMA_VERSION
        assert isinstance(s, SQLiteStore) and s.path == s.location == ":memory:"


async def test_memory_store_does_not_persist_and_takes_no_lock() -> None:
    async with await open_store(":memory:") as s, await open_store("sqlite:///:memory:") as other:
        await s.add_link(make_link())
        assert await other.links() == []
    async with await open_store(":memory:") as s:
        assert await s.links() == []


async def test_open_creates_parent_folder_and_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "w.sqlite3"
    s = await open_store(f"sqlite:///{db}")  # an absolute path makes four slashes
    try:
        assert db.exists()
        assert isinstance(s, SQLiteStore)
        async with s._conn.execute("PRAGMA journal_mode") as cur:
            row = await cur.fetchone()
        assert row is not None and row[0] == "wal"
    finally:
        await s.close()


async def test_relative_url_is_relative_to_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with await open_store("sqlite:///data/wingbeat.sqlite3") as s:
        await s.set_meta("k", "v")
    assert (tmp_path / "data" / "wingbeat.sqlite3").is_file()


async def test_open_rejects_bad_url_and_empty_path() -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        await open_store("mysql://x/y")
    with pytest.raises(ValueError, match="no database path"):
        await open_store("  ")


async def test_open_fails_clearly_when_folder_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="folder"):
        await open_store(str(blocker / "sub" / "x.db"))


async def test_open_fails_clearly_on_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        await open_store(str(junk))
    # the refusal let go of the lock: a real database there opens
    junk.unlink()
    async with await open_store(str(junk)):
        pass


# A second process that opens the store, says so, and keeps it open until its stdin closes.
HOLDER = """
import asyncio, sys
from bot.store import StoreError, open_store

async def main():
    try:
        store = await open_store(sys.argv[1])
    except StoreError as exc:
        print(exc, flush=True)
        sys.exit(3)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await store.close()

asyncio.run(main())
"""


def refusal(path: Path) -> str:
    return f"another Wingbeat process is using {path}; use PostgreSQL (DATABASE_URL=postgresql://…) to run several"


async def start_holder(path: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_a_second_process_is_refused_while_the_store_is_open(tmp_path: Path) -> None:
    db = tmp_path / "wingbeat.sqlite3"
    async with await open_store(str(db)):
        holder = await start_holder(db)
        out, _ = await asyncio.wait_for(holder.communicate(b""), 30)
        assert holder.returncode == 3
        assert out.decode().strip() == refusal(db)
    # closed here: now the other process may have it
    holder = await start_holder(db)
    assert holder.stdout is not None
    assert (await asyncio.wait_for(holder.stdout.readline(), 30)).decode().strip() == "ready"
    await asyncio.wait_for(holder.communicate(b"\n"), 30)
    assert holder.returncode == 0


async def test_the_lock_goes_with_a_process_that_dies(tmp_path: Path) -> None:
    db = tmp_path / "wingbeat.sqlite3"
    holder = await start_holder(db)
    assert holder.stdout is not None
    assert (await asyncio.wait_for(holder.stdout.readline(), 30)).decode().strip() == "ready"
    with pytest.raises(StoreError) as refused:
        await open_store(f"sqlite:///{db}")
    assert str(refused.value) == refusal(db)
    holder.send_signal(signal.SIGKILL)  # no chance to clean up: the OS drops the lock with the process
    await asyncio.wait_for(holder.wait(), 30)
    async with await open_store(f"sqlite:///{db}") as s:
        assert s.schema_version == SCHEMA_VERSION


async def test_the_same_file_twice_in_one_process_is_refused_too(tmp_path: Path) -> None:
    db = tmp_path / "wingbeat.sqlite3"
    async with await open_store(str(db)):
        with pytest.raises(StoreError, match="another Wingbeat process"):
            await open_store(str(db))
    async with await open_store(str(db)):
        pass


# PostgreSQL only


def test_placeholders_and_command_tags() -> None:
    assert numbered("SELECT * FROM t WHERE a = ? AND b IN (?, ?) LIMIT ?") == (
        "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3) LIMIT $4"
    )
    assert numbered("SELECT 1") == "SELECT 1"
    assert [rowcount(tag) for tag in ("INSERT 0 1", "INSERT 0 0", "UPDATE 3", "DELETE 12", "SELECT")] == [
        1, 0, 3, 12, 0,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://bot:s3cret@db.internal:5433/wingbeat", "postgresql://bot@db.internal:5433/wingbeat"),
        ("postgres://bot:p%40ss%2Fw@db/wingbeat?sslmode=require", "postgres://bot@db/wingbeat"),
        ("postgresql://db/wingbeat?user=bot&password=s3cret", "postgresql://db/wingbeat"),
        ("postgresql:///wingbeat?host=/run/postgresql", "postgresql://localhost/wingbeat"),
    ],
)
def test_describe_drops_password_and_options(dsn: str, shown: str) -> None:
    assert describe(dsn) == shown


async def test_postgres_migration_waits_for_the_lock_and_runs_once(postgres_dsn: str) -> None:
    # Another process holds the migration lock: every opener must wait for it, then find the work done once.
    holder = await asyncpg.connect(postgres_dsn)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", int.from_bytes(b"Wingbeat", "big"))
        openers = [asyncio.create_task(open_store(postgres_dsn)) for _ in range(3)]

        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        for _ in range(1000):  # up to 20 s
            if await holder.fetchval(waiting) == 3:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the openers never waited for the migration lock")
        assert not any(task.done() for task in openers)
        await transaction.commit()
        stores = await asyncio.wait_for(asyncio.gather(*openers), 30)
        try:
            assert [s.schema_version for s in stores] == [SCHEMA_VERSION] * 3
            rows = await holder.fetch("SELECT version FROM wingbeat_schema ORDER BY version")
            assert [row["version"] for row in rows] == list(range(1, SCHEMA_VERSION + 1))
        finally:
            await asyncio.gather(*(s.close() for s in stores))
    finally:
        await holder.close()


async def test_postgres_concurrent_openers_on_a_fresh_database_all_succeed(postgres_dsn: str) -> None:
    stores = await asyncio.wait_for(asyncio.gather(*(open_store(postgres_dsn) for _ in range(4))), 30)
    try:
        assert {s.schema_version for s in stores} == {SCHEMA_VERSION}
        assert await stores[0].add_link(make_link())
        assert await stores[3].links() == [make_link()]  # one database, seen by every opener
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_postgres_store_survives_a_server_restart(
    postgres_cluster: PostgresCluster, postgres_dsn: str
) -> None:
    async with await open_store(postgres_dsn) as s:
        assert await s.add_link(make_link(channel=1))
        postgres_cluster.restart()
        assert [link.channel_id for link in await s.links()] == [1]  # read on a fresh connection
        assert await s.add_link(make_link(channel=2))
        postgres_cluster.stop()
        try:
            with pytest.raises(StoreError, match=r"PostgreSQL at postgresql://postgres@127\.0\.0\.1"):
                await s.links()
            with pytest.raises(StoreError):
                await s.set_meta("k", "v")
        finally:
            postgres_cluster.start_again()
        assert await s.add_link(make_link(channel=3))
        assert [link.channel_id for link in await s.links()] == [1, 2, 3]


async def test_postgres_reads_survive_connections_the_server_ended(
    postgres_cluster: PostgresCluster, postgres_dsn: str
) -> None:
    # The client learns its connection is gone only when it next uses it; a read is tried again on a fresh one.
    # A write is not (it may have been applied): it fails as a StoreError, and the next one goes through.
    async with await open_store(postgres_dsn) as s:
        for n in range(5):
            assert postgres_cluster.terminate_sessions("wingbeat") >= 1
            assert len(await s.links()) == n
            assert postgres_cluster.terminate_sessions("wingbeat") >= 1
            try:
                await s.set_meta("round", str(n))
            except StoreError:
                await s.set_meta("round", str(n))
            assert await s.add_link(make_link(channel=n))
            assert await s.get_meta("round") == str(n)


def shows(exc: BaseException, secret: str) -> bool:
    return secret in "".join(traceback.format_exception(exc)) or secret in repr(exc)


async def test_postgres_password_never_reaches_errors_logs_or_repr(
    postgres_cluster: PostgresCluster, postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = postgres_cluster.password
    wrong = "Wr0ng:p@ss/word"
    wrong_dsn = postgres_cluster.dsn(postgres_dsn.rpartition("/")[2], password="Wr0ng%3Ap%40ss%2Fword")

    with pytest.raises(StoreError) as refused:
        await open_store(wrong_dsn)
    assert "password authentication failed" in str(refused.value)
    assert str(refused.value).startswith(
        f"cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:{postgres_cluster.port}/"
    )
    assert not shows(refused.value, wrong) and not shows(refused.value, "Wr0ng%3Ap%40ss%2Fword")

    unreachable = f"postgresql://postgres:{secret}@127.0.0.1:1/wingbeat"
    with pytest.raises(StoreError) as down:
        await open_store(unreachable)
    assert "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/wingbeat" in str(down.value)
    assert not shows(down.value, secret)

    async with await open_store(postgres_dsn) as s:
        assert secret not in repr(s) and secret not in s.location
        await s.add_link(make_link())
        postgres_cluster.stop()
        try:
            with pytest.raises(StoreError) as failed:
                await s.links()
            assert not shows(failed.value, secret)
        finally:
            postgres_cluster.start_again()
    assert caplog.records, "the store logs what it does"
    for record in caplog.records:
        text = record.getMessage() + (
            logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        )
        assert secret not in text and wrong not in text
