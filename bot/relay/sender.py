"""One task per linked channel: drains its batcher into Discord, one send in flight, never losing a batch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.redact import hide_addresses
from bot.relay.batcher import Batcher
from bot.relay.budget import RequestBudget
from bot.settings import ColorMode

log = logging.getLogger(__name__)


FILES_PAUSE = (
    300.0  # after a refused file, messages go without files this long (and the notice repeats no sooner)
)
ATTACH_FILES_NOTICE = (
    "⚠️ Wingbeat lacks the Attach Files permission here: long console output comes as several messages "
    "instead of one file."
)


class ChannelGone(Exception):
    """Discord refused the channel (unknown channel, lost access): the link must stop. The message says why."""


class FileRefused(Exception):
    """Discord refused a message's attachment (missing Attach Files): the message can go without it."""


class PostFailed(Exception):
    """A send that may work later (5xx, network trouble, rate limit beyond discord.py's retries)."""


class PostRejected(Exception):
    """Discord refused this message itself (a 4xx such as 400 or 413): sending it again cannot work."""


class Poster(Protocol):
    """Posts one message to a channel. Raises `ChannelGone`, `FileRefused`, `PostFailed` or `PostRejected`."""

    async def post(self, channel_id: int, content: str, attachment: tuple[str, bytes] | None) -> None: ...


class ChannelSender:
    """Feeds one channel from a `Batcher`; the only place its messages are sent from."""

    def __init__(
        self,
        channel_id: int,
        poster: Poster,
        budget: RequestBudget,
        *,
        mode: ColorMode,
        min_interval: float,
        max_pending_bytes: int,
        on_gone: Callable[[int, str], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        files_pause: float = FILES_PAUSE,
    ) -> None:
        self.channel_id = channel_id
        self._poster = poster
        self._budget = budget
        self._on_gone = on_gone
        self._clock = clock
        self._wall = wall
        self._files_pause = files_pause
        self.batcher = Batcher(mode=mode, min_interval=min_interval, max_pending_bytes=max_pending_bytes)
        self._wake = asyncio.Event()
        self._idle = False  # waiting with nothing pending: only then does a new line need to wake the task
        self._task: asyncio.Task[None] | None = None
        self.messages = 0
        self.attachments = 0
        self.lines_posted = 0
        self.failures = 0
        self.lines_rejected = 0
        self.last_post_at: float | None = None
        self.last_error: str | None = None
        self.stopped: str | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"relay:{self.channel_id}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def busy(self) -> bool:
        """Something is pending or being posted (and the channel has not stopped)."""
        return self.stopped is None and self._task is not None and self.batcher.due(self._clock()) is not None

    def push_line(self, line: str) -> None:
        if self.stopped is None:
            self.batcher.push_line(line, self._clock())
            if self._idle:
                self._wake.set()

    def push_notice(self, text: str) -> None:
        """Queue a short line for the channel (a report, a status change); internal addresses are hidden."""
        if self.stopped is None:
            self.batcher.push_notice(hide_addresses(text), self._clock())
            if self._idle:
                self._wake.set()

    async def _sleep_or_wake(self, delay: float | None) -> None:
        # With a send already scheduled, new lines just join it: waking per line would cost a task switch each.
        self._idle = delay is None
        self._wake.clear()
        if self._idle and self.batcher.due(self._clock()) is not None:
            self._idle = False
            return
        try:
            if delay is None:
                await self._wake.wait()
            else:
                await asyncio.sleep(delay)
        finally:
            self._idle = False

    async def _run(self) -> None:
        try:
            while True:
                now = self._clock()
                due = self.batcher.due(now)
                if due is None or due > now:
                    await self._sleep_or_wake(None if due is None else due - now)
                    continue
                # Wait for a request slot first and only then cut the batch, so whatever arrived while waiting
                # for the slot (seconds, when hundreds of channels are busy) still goes in this message.
                await self._budget.acquire()
                out = self.batcher.take(self._clock())
                if out is None:
                    continue
                attachment = (
                    (out.attachment_name or "console.txt", out.attachment) if out.attachment else None
                )
                try:
                    await self._poster.post(self.channel_id, out.content, attachment)
                except ChannelGone as gone:
                    self.batcher.done(False, self._clock())
                    await self._stop(str(gone))
                    return
                except FileRefused:
                    # The same lines go again at once without the file; none is lost.
                    self.batcher.files_refused(self._clock(), self._files_pause)
                    self.last_error = "Discord refused a file: the Attach Files permission is missing"
                    log.warning(
                        "channel %d refuses files (Attach Files missing); posting without", self.channel_id
                    )
                    self.push_notice(ATTACH_FILES_NOTICE)
                    continue
                except PostFailed as exc:
                    self._failed(str(exc))
                    continue
                except PostRejected as exc:
                    # Retrying the same message would block the channel for good: skip it, and say so.
                    self.batcher.done(True, self._clock())
                    self.lines_rejected += out.line_count
                    self.last_error = str(exc)
                    log.error(
                        "Discord refused a message for channel %d (%s); skipped it", self.channel_id, exc
                    )
                    self.push_notice(
                        f"Discord refused a message ({exc}); its {out.line_count} console lines were skipped."
                    )
                    continue
                self.batcher.done(True, self._clock())
                self.messages += 1
                self.attachments += attachment is not None
                self.lines_posted += out.line_count
                self.last_post_at = self._wall()
                self.last_error = None
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("relay sender for channel %d failed", self.channel_id)
            await self._stop("internal error (see the bot's log)")

    def _failed(self, reason: str) -> None:
        # The batch goes back in front of the queue; the batcher spaces retries out (exponential backoff).
        self.batcher.done(False, self._clock())
        self.failures += 1
        self.last_error = reason
        log.warning("posting to channel %d failed (%s); will retry", self.channel_id, reason)

    async def _stop(self, reason: str) -> None:
        self.stopped = reason
        log.warning("console relay to channel %d stopped: %s", self.channel_id, reason)
        try:
            await self._on_gone(self.channel_id, reason)
        except Exception:
            log.exception("handling the end of the relay to channel %d failed", self.channel_id)
