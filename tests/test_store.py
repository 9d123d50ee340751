"""Tests for bot.store: URL parsing, links, audit log, metadata, persistence and migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import aiosqlite
import pytest

from bot.store import (
    ALL_SERVERS,
    MIGRATIONS,
    SCHEMA_VERSION,
    STARTED,
    Board,
    BoardKind,
    Grant,
    GuildSettings,
    How,
    Link,
    Store,
    StoreError,
    TargetKind,
    database_path,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
BIG = 2**63 - 1  # the largest value a Discord snowflake can take in SQLite's INTEGER


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


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await Store.open("sqlite:///:memory:")
    yield s
    await s.close()


async def object_names(path: str | Path, kind: str) -> set[str]:
    async with (
        aiosqlite.connect(path) as conn,
        conn.execute("SELECT name FROM sqlite_master WHERE type = ?", (kind,)) as cur,
    ):
        return {row[0] for row in await cur.fetchall()}


async def user_version(path: str | Path) -> int:
    async with aiosqlite.connect(path) as conn, conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


# database_path


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


# opening


async def test_open_memory_runs_all_migrations(store: Store) -> None:
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS) >= 2
    assert await store.links() == []
    assert await store.recent_audit() == []


async def test_open_plain_memory_path() -> None:
    async with await Store.open(":memory:") as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.path == ":memory:"


async def test_open_creates_parent_folder_and_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "w.sqlite3"
    s = await Store.open(f"sqlite:///{db}")  # an absolute path makes four slashes
    try:
        assert db.exists()
        async with s._conn.execute("PRAGMA journal_mode") as cur:
            row = await cur.fetchone()
        assert row is not None and row[0] == "wal"
    finally:
        await s.close()
    assert {"links", "audit_log", "meta"} <= await object_names(db, "table")
    assert await user_version(db) == SCHEMA_VERSION


async def test_relative_url_is_relative_to_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with await Store.open("sqlite:///data/wingbeat.sqlite3") as s:
        await s.set_meta("k", "v")
    assert (tmp_path / "data" / "wingbeat.sqlite3").is_file()


async def test_open_rejects_bad_url_and_empty_path() -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        await Store.open("mysql://x/y")
    with pytest.raises(ValueError, match="no database path"):
        await Store.open("  ")


async def test_open_fails_clearly_when_folder_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="folder"):
        await Store.open(str(blocker / "sub" / "x.db"))


async def test_open_fails_clearly_on_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        await Store.open(str(junk))


async def test_close_is_idempotent_and_closed_store_refuses_work() -> None:
    s = await Store.open(":memory:")
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
    await store.add_link(make_link(guild=1, channel=5, server="s4", name="Omega"))
    assert [(x.guild_id, x.channel_id, x.server_name) for x in await store.links()] == [
        (1, 5, "Omega"),
        (1, 20, "alpha"),
        (1, 20, "Beta"),
        (2, 30, "zeta"),
    ]
    assert [x.server_identifier for x in await store.links(guild_id=2)] == ["s3"]
    assert await store.links(guild_id=3) == []


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
        server_name="Überwelt 🌍 «βeta» '; DROP TABLE links; --",
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


# audit log


async def test_audit_records_and_returns_newest_first() -> None:
    times = iter([T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)])
    async with await Store.open(":memory:", clock=lambda: next(times)) as s:
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
            arguments="say hi",
            outcome="refused: offline",
        )
        assert first < second < third
        entries = await s.recent_audit()
        assert [e.id for e in entries] == [third, second, first]
        newest = entries[0]
        assert (newest.guild_id, newest.user_id, newest.server_identifier) == (None, 9, "ffffffff")
        assert (newest.action, newest.arguments, newest.outcome) == ("command", "say hi", "refused: offline")
        assert newest.at == T0 + timedelta(seconds=2) and newest.at.tzinfo is not None
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


# meta


async def test_meta_get_set_replace(store: Store) -> None:
    assert await store.get_meta("commands_hash") is None
    await store.set_meta("commands_hash", "abc")
    assert await store.get_meta("commands_hash") == "abc"
    await store.set_meta("commands_hash", "def")
    assert await store.get_meta("commands_hash") == "def"
    assert await store.get_meta("other") is None


# persistence


async def test_everything_survives_reopen(tmp_path: Path) -> None:
    db = tmp_path / "wingbeat.sqlite3"
    async with await Store.open(str(db)) as s:
        await s.add_link(make_link(channel=1, server="aaaaaaaa", name="Créatif"))
        await s.add_link(make_link(channel=2, server="bbbbbbbb"))
        await s.remove_link(2, "bbbbbbbb")
        entry = await s.audit(
            guild_id=1, user_id=2, server_identifier="aaaaaaaa", action="link", arguments="", outcome="ok"
        )
        await s.set_meta("commands_hash", "h1")
    async with await Store.open(f"sqlite:///{db}") as s:
        assert s.schema_version == SCHEMA_VERSION
        assert await s.links() == [make_link(channel=1, server="aaaaaaaa", name="Créatif")]
        assert [e.id for e in await s.recent_audit()] == [entry]
        assert await s.get_meta("commands_hash") == "h1"
        # ids keep growing after a restart (AUTOINCREMENT), so audit ids are never reused
        later = await s.audit(
            guild_id=1, user_id=2, server_identifier=None, action="unlink", arguments="", outcome="ok"
        )
        assert later > entry


async def test_memory_store_does_not_persist() -> None:
    async with await Store.open(":memory:") as s:
        await s.add_link(make_link())
    async with await Store.open(":memory:") as s:
        assert await s.links() == []


# migrations


async def make_v1_database(path: Path) -> None:
    """A database exactly as the v1 code left it, with one link in it."""
    async with aiosqlite.connect(path) as conn:
        for statement in MIGRATIONS[0]:
            await conn.execute(statement)
        await conn.execute("PRAGMA user_version = 1")
        await conn.execute(
            "INSERT INTO links VALUES (?, ?, ?, ?, ?, ?)",
            (1, 10, "1a2b3c4d", "Survival", 99, T0.isoformat()),
        )
        await conn.commit()


async def test_v1_database_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    await make_v1_database(db)
    assert await user_version(db) == 1
    assert "links_by_server" not in await object_names(db, "index")

    async with await Store.open(str(db)) as s:
        assert s.schema_version == SCHEMA_VERSION == 3
        assert await s.links() == [make_link()]

    assert await user_version(db) == SCHEMA_VERSION
    assert {"links_by_server", "links_by_guild", "audit_log_by_guild"} <= await object_names(db, "index")
    # opening an up-to-date database again changes nothing
    async with await Store.open(str(db)) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert len(await s.links()) == 1


async def test_failed_upgrade_step_rolls_back_whole_step(tmp_path: Path) -> None:
    db = tmp_path / "clash.sqlite3"
    await make_v1_database(db)
    # The third v2 statement will clash with this index, after the first two have run.
    async with aiosqlite.connect(db) as conn:
        await conn.execute("CREATE INDEX audit_log_by_guild ON audit_log (user_id)")
        await conn.commit()

    with pytest.raises(StoreError, match="already exists"):
        await Store.open(str(db))

    assert await user_version(db) == 1
    indexes = await object_names(db, "index")
    assert "links_by_server" not in indexes and "links_by_guild" not in indexes


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "future.sqlite3"
    async with aiosqlite.connect(db) as conn:
        await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        await conn.commit()
    with pytest.raises(StoreError, match="newer"):
        await Store.open(str(db))


# v3: stopped links, audit rows with how and completion, boards, guild settings, grants


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


async def test_v1_links_upgrade_as_active(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    await make_v1_database(db)
    async with await Store.open(str(db)) as s:
        (link,) = await s.links()
        assert link.stopped_reason is None


async def test_audit_start_then_finish_and_filters() -> None:
    clock = iter(T0 + timedelta(seconds=i) for i in range(100))
    async with await Store.open("sqlite:///:memory:", clock=lambda: next(clock)) as s:
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
        assert (
            done.outcome == "done: started" and done.completed_at is not None and done.completed_at > done.at
        )
        assert [e.user_id for e in await s.recent_audit(guild_id=1)] == [6, 5]
        assert [e.guild_id for e in await s.recent_audit(user_id=5)] == [2, 1]
        assert (await s.recent_audit(guild_id=1, user_id=6))[0].how is How.CONSOLE_INPUT


async def test_prune_audit_deletes_only_older_rows() -> None:
    moments = [T0 - timedelta(days=400), T0 - timedelta(days=10), T0]
    clock = iter(moments)
    async with await Store.open("sqlite:///:memory:", clock=lambda: next(clock)) as s:
        for i in range(3):
            await s.audit(
                guild_id=1, user_id=i, server_identifier=None, action="a", arguments="", outcome="o"
            )
        assert await s.prune_audit(T0 - timedelta(days=365)) == 1
        assert [e.user_id for e in await s.recent_audit()] == [2, 1]
        assert await s.prune_audit(T0 - timedelta(days=365)) == 0


def make_board(
    message: int = 500, channel: int = 10, kind: BoardKind = BoardKind.BOARD, server: str | None = None
) -> Board:
    return Board(message, 1, channel, kind, server, 99, T0)


async def test_one_board_per_channel_but_many_cards(store: Store) -> None:
    assert await store.add_board(make_board())
    assert not await store.add_board(make_board(message=501))  # a second board in the same channel
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


async def test_guild_settings_alerts_and_audit_channel(store: Store) -> None:
    assert await store.guild_settings(1) == GuildSettings(1)
    await store.set_alerts(1, 20, 30)
    await store.set_audit_channel(1, 40)
    assert await store.guild_settings(1) == GuildSettings(1, 20, 30, 40)
    await store.set_alerts(1, None, None)
    assert await store.guild_settings(1) == GuildSettings(1, None, None, 40)
    await store.set_audit_channel(2, BIG)
    assert [g.guild_id for g in await store.all_guild_settings()] == [1, 2]


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
