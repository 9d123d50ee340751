"""A channel's sender survives what it does not expect: it logs it, backs off and goes on, never stopping the link."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

import pytest

from bot.relay.budget import RequestBudget
from bot.relay.journal import JournalWriter
from bot.relay.sender import ChannelSender
from bot.settings import ColorMode
from tests.waiting import wait_until


class BrokenPoster:
    """Raises an error no caller plans for on every message holding `poison`, and on the first `flaky` others."""

    def __init__(self, *, flaky: int = 0, poison: str = "poison") -> None:
        self.flaky = flaky
        self.poison = poison
        self.posted: list[str] = []
        self.attempts = 0

    async def post(
        self, channel_id: int, content: str, attachment: tuple[str, bytes] | None, nonce: str | None = None
    ) -> None:
        self.attempts += 1
        if self.poison in content:
            raise RuntimeError("a bug somewhere below the relay")
        if self.flaky:
            self.flaky -= 1
            raise RuntimeError("a bug somewhere below the relay")
        self.posted.append(content)


def sender_for(poster: BrokenPoster, stopped: list[str]) -> ChannelSender:
    async def gone(channel_id: int, reason: str) -> None:
        stopped.append(reason)

    return ChannelSender(
        7,
        poster,
        RequestBudget(1000, 100),
        mode=ColorMode.PLAIN,
        min_interval=0.01,
        max_pending_bytes=64 * 1024,
        on_gone=gone,
    )


async def test_an_unexpected_failure_is_logged_and_the_same_lines_go_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    poster, stopped = BrokenPoster(flaky=2), list[str]()
    sender = sender_for(poster, stopped)
    sender.start()
    try:
        sender.push_line("first line", None)
        await wait_until(lambda: poster.posted, timeout=5.0)
        assert "first line" in poster.posted[0] and poster.attempts == 3
        assert sender.stopped is None and stopped == []
        assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)  # with its traceback
        assert sender.last_error is None  # cleared by the post that went through
    finally:
        await sender.close()


async def test_a_message_that_fails_unexpectedly_every_time_is_skipped_and_said() -> None:
    poster, stopped = BrokenPoster(), list[str]()
    sender = sender_for(poster, stopped)
    sender.start()
    try:
        sender.push_line("poison", None)
        await wait_until(lambda: poster.attempts >= 3 and not sender.batcher.in_flight, timeout=10.0)
        assert sender.last_error is not None and "RuntimeError" in sender.last_error
        sender.push_line("after it", None)
        await wait_until(lambda: any("after it" in text for text in poster.posted), timeout=10.0)
        assert "1 console line was skipped" in "".join(poster.posted)
        assert sender.stopped is None and stopped == []
    finally:
        await sender.close()


class BrokenJournalStore:
    """A store whose journal write fails once with an error it should have wrapped (a driver's surprise)."""

    def __init__(self) -> None:
        self.saved: dict[int, str] = {}
        self.fail = 1

    async def relay_journals(self, channel_ids: Collection[int]) -> dict[int, str]:
        return {}

    async def save_relay_journals(self, journals: Sequence[tuple[int, str]]) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("a driver error nobody wrapped")
        self.saved.update(journals)

    async def delete_relay_journal(self, channel_id: int) -> None:
        self.saved.pop(channel_id, None)


async def test_an_unexpected_journal_failure_does_not_hang_the_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, poster, stopped = BrokenJournalStore(), BrokenPoster(), list[str]()

    async def gone(channel_id: int, reason: str) -> None:
        stopped.append(reason)

    writer = JournalWriter(store, later=0.01)
    sender = ChannelSender(
        7, poster, RequestBudget(1000, 100), mode=ColorMode.PLAIN, min_interval=0.01,
        max_pending_bytes=64 * 1024, on_gone=gone, journal=writer,
    )  # fmt: skip
    sender.start()
    try:
        sender.push_line("followed line", ("a1b2c3d4", "followed line"))
        await wait_until(lambda: any("followed line" in text for text in poster.posted), timeout=5.0)
        assert any(r.exc_info for r in caplog.records if r.name == "bot.relay.journal")
        await wait_until(lambda: 7 in store.saved, timeout=5.0)  # and the journal is written after all
    finally:
        await sender.close()
        await writer.close()
