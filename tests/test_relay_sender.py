"""A channel's sender survives what it does not expect: it logs it, backs off and goes on, never stopping the link."""

from __future__ import annotations

import logging

import pytest

from bot.relay.budget import RequestBudget
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
