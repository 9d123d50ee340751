"""Unit tests for the audit pieces with no Discord in them: packing lines, entry text, the pruner, the grant book."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.audit_feed import pack
from bot.audit_prune import AuditPruner
from bot.audit_text import audit_line, audit_plain, outcome_text
from bot.grants import GrantBook
from bot.store import MEMORY, STARTED, AuditEntry, Grant, How, Store, TargetKind, open_store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def entry(**changes: object) -> AuditEntry:
    values: dict[str, object] = dict(
        id=1,
        at=T0,
        guild_id=10,
        user_id=42,
        server_identifier="a1b2c3d4",
        action="command",
        arguments="say hi",
        outcome="sent",
        how=How.COMMAND,
        completed_at=T0,
    )
    values.update(changes)
    return AuditEntry(**values)  # type: ignore[arg-type]


# -- packing -------------------------------------------------------------------------------------------------


def test_pack_keeps_lines_whole_and_in_order() -> None:
    lines = [f"line {i:03d} " + "x" * 90 for i in range(50)]
    messages = pack(lines, limit=1000)
    assert all(len(m) <= 1000 for m in messages)
    assert "\n".join(messages).splitlines() == lines
    assert len(messages) == 5  # 10 lines of 99 characters and 9 line breaks: 999
    assert pack([]) == []
    assert pack(["y" * 3000], limit=2000) == ["y" * 1999 + "…"]


# -- entry text ----------------------------------------------------------------------------------------------


def test_audit_line_names_time_who_server_action_how_and_outcome() -> None:
    line = audit_line(entry(), server_names={"a1b2c3d4": "Sur_vival"})
    assert line == (
        "<t:1740830400:f> · <@42> · **Sur\\_vival** (`a1b2c3d4`) · command `say hi` · by command · ✅ sent"
    )


def test_audit_line_cannot_break_out_of_its_code_span_or_its_line() -> None:
    line = audit_line(entry(arguments="say `@everyone`\nop me", outcome="refused: no"), server_names={})
    assert "\n" not in line
    assert "command `say ˋ@everyoneˋ op me`" in line and "⛔ refused: no" in line
    long = audit_line(entry(arguments="x" * 5000, outcome="failed: " + "y" * 5000), server_names={})
    assert len(long) < 700 and "⚠️ failed" in long


def test_wingbeat_and_serverless_entries() -> None:
    line = audit_line(
        entry(user_id=0, server_identifier=None, how=How.WINGBEAT, arguments=""), server_names={}
    )
    assert " · Wingbeat · — · command · by Wingbeat · " in line


def test_started_rows_are_in_progress_or_interrupted() -> None:
    started = entry(outcome=STARTED, completed_at=None)
    assert outcome_text(started) == "in progress"
    assert outcome_text(started, since=T0 - timedelta(seconds=1)) == "in progress"
    assert outcome_text(started, since=T0 + timedelta(seconds=1)).startswith("interrupted")
    assert "⏳ in progress" in audit_line(started, server_names={})


def test_audit_plain_is_for_a_file() -> None:
    text = audit_plain(entry(how=How.CONSOLE_INPUT, arguments="say  a\tb"), server_names={"a1b2c3d4": "S"})
    assert text == "2025-03-01 12:00:00 UTC | user 42 | S (a1b2c3d4) | command say a b | console input | sent"


# -- the pruner ----------------------------------------------------------------------------------------------


class Days:
    """A clock and a sleep: sleeping moves the clock on, and lets the test see each pass."""

    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []
        self.woken = asyncio.Event()

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        self.woken.set()
        await asyncio.sleep(0)


async def test_the_pruner_runs_at_start_then_daily_and_survives_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    days = Days()
    asked: list[datetime] = []

    async def prune(older_than: datetime) -> int:
        asked.append(older_than)
        if len(asked) == 2:
            raise OSError("disk I/O error")
        return 3

    pruner = AuditPruner(prune, 30, clock=days.clock, sleep=days.sleep)
    with caplog.at_level(logging.ERROR, logger="bot.audit_prune"):
        pruner.start()
        async with asyncio.timeout(5):
            while len(days.slept) < 3:
                await days.woken.wait()
                days.woken.clear()
    await pruner.close()
    assert asked[:3] == [
        T0 - timedelta(days=30),
        T0 + timedelta(days=1) - timedelta(days=30),
        T0 + timedelta(days=2) - timedelta(days=30),
    ]
    assert days.slept[:3] == [86400.0] * 3
    assert pruner.pruned >= 6 and pruner.runs >= 2
    failures = [r for r in caplog.records if "pruning the audit log failed" in r.getMessage()]
    assert failures and failures[0].exc_info is not None  # logged with its traceback


async def test_the_pruner_keeps_its_last_error_until_a_pass_succeeds() -> None:
    outcomes: list[BaseException | int] = [OSError("database is locked"), 0]

    async def prune(older_than: datetime) -> int:
        result = outcomes.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result

    sleeping, gate = asyncio.Event(), asyncio.Event()

    async def sleep(seconds: float) -> None:  # each pass ends here: the test looks, then lets the next run
        sleeping.set()
        await gate.wait()
        gate.clear()

    pruner = AuditPruner(prune, 1, sleep=sleep)
    pruner.start()
    async with asyncio.timeout(5):
        await sleeping.wait()
    assert pruner.last_error == "OSError: database is locked" and pruner.runs == 0
    sleeping.clear()
    gate.set()
    async with asyncio.timeout(5):
        await sleeping.wait()
    assert pruner.last_error is None and pruner.runs == 1
    await pruner.close()


async def test_retention_zero_never_prunes() -> None:
    async def prune(older_than: datetime) -> int:
        raise AssertionError("must not run")

    pruner = AuditPruner(prune, 0)
    pruner.start()
    await asyncio.sleep(0)
    assert not pruner.enabled and pruner.runs == 0
    await pruner.close()
    with pytest.raises(ValueError):
        AuditPruner(prune, -1)


async def test_the_pruner_deletes_rows_from_a_real_store() -> None:
    now = T0
    async with await open_store(MEMORY, clock=lambda: now) as store:
        for age in (40, 31, 29, 0):
            now = T0 - timedelta(days=age)
            await store.audit(
                guild_id=1, user_id=2, server_identifier=None, action="x", arguments=str(age), outcome="done"
            )
        now = T0
        pruner = AuditPruner(store.prune_audit, 30, clock=lambda: T0)
        assert await pruner.run_once() == 2
        assert [e.arguments for e in await store.recent_audit()] == ["0", "29"]


# -- the grant book ------------------------------------------------------------------------------------------


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    async with await open_store(MEMORY) as opened:
        yield opened


async def test_the_grant_book_reads_once_and_writes_through(store: Store) -> None:
    await store.add_grant(Grant(1, TargetKind.ROLE, 5, "control.restart", "a1b2c3d4"))
    await store.add_grant(Grant(2, TargetKind.ROLE, 6, "logs"))
    book = GrantBook(store)
    await book.load([1])
    assert [g.target_id for g in book.grants(1)] == [5]
    assert book.grants(2) == ()  # not an allowed guild: not loaded

    assert await book.grant(Grant(1, TargetKind.MEMBER, 7, "control.console", "*", ("say *",)))
    assert not await book.grant(Grant(1, TargetKind.MEMBER, 7, "control.console", "*", ("list",)))
    [member_grant] = [g for g in book.grants(1) if g.target_kind is TargetKind.MEMBER]
    assert member_grant.commands == ("list",)  # the upsert replaced the patterns
    assert await book.revoke(1, TargetKind.ROLE, 5, "control.restart", "a1b2c3d4")
    assert not await book.revoke(1, TargetKind.ROLE, 5, "control.restart", "a1b2c3d4")
    assert [g.target_id for g in book.grants(1)] == [7]
    assert await store.grants(1) == list(book.grants(1))
