"""One task per linked channel: drains its batcher into Discord, one send in flight, never losing a batch.

With a journal (bot.relay.journal, bot.relay.resume) the sender also keeps track of which console lines it has
settled, writes each message's nonce down before posting it, and after a restart first sends the message that
was in flight again with that nonce, so a crash at any moment neither loses nor repeats a line.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from bot.panel.backoff import Backoff
from bot.redact import hide_addresses
from bot.relay.batcher import Batcher, Outgoing
from bot.relay.budget import RequestBudget
from bot.relay.journal import JournalWriter
from bot.relay.resume import TAIL_SIZE, Journal, PendingPost, line_hash, new_nonce, resume
from bot.settings import ColorMode
from bot.tasks import cancel_and_wait

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
    """A send that may work later (5xx, network trouble); Discord may or may not have taken it."""


class PostThrottled(Exception):
    """Discord, or a rate-limiting proxy in front of it, answered 429: try again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.2f} s")
        self.retry_after = retry_after


class PostRejected(Exception):
    """Discord refused this message itself (a 4xx such as 400 or 413): sending it again cannot work."""


class Poster(Protocol):
    """Posts one message to a channel. Raises `ChannelGone`, `FileRefused`, `PostFailed`, `PostThrottled` or
    `PostRejected`. A message sent again with the same `nonce` within a few minutes is not posted twice."""

    async def post(
        self, channel_id: int, content: str, attachment: tuple[str, bytes] | None, nonce: str | None = None
    ) -> None: ...


Source = tuple[str, str]  # (server, raw console line): a line whose fate the journal follows
TRACK_OVERHEAD = 80  # what following one pending line holds (a 3-tuple and its deque slot), besides its text
RESUME_TIMEOUT = 30.0  # how long a restarted channel waits for its servers' replays before posting anyway
COMPACT_SLACK = 2000  # followed lines no longer held, beyond which the oldest of them are forgotten


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
        journal: JournalWriter | None = None,
        resume_from: Journal | None = None,
        resume_timeout: float = RESUME_TIMEOUT,
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
        self._mode = mode
        self._min_interval = min_interval
        self._max_pending_bytes = max_pending_bytes
        self.batcher = Batcher(mode=mode, min_interval=min_interval, max_pending_bytes=max_pending_bytes)
        self._wake = asyncio.Event()
        self._idle = False  # waiting with nothing pending: only then does a new line need to wake the task
        self._task: asyncio.Task[None] | None = None
        # the journal: settled tails per server, and the lines not settled yet (seq, server, raw), in order
        self._journal = journal
        self._tails: dict[str, deque[str]] = {}
        self._unsettled: deque[tuple[int, str, str]] = deque()
        self._inflight: PendingPost | None = None  # the message being posted, as the journal must show it
        self._inflight_upto = -1  # ...and the last followed line it settles
        # after a restart: the journal read from the store, until its pending message went out again
        self._resuming = resume_from
        self._resume_timeout = resume_timeout
        self._replayed: dict[str, list[str]] = {}  # server -> its pending lines, as the channel shows them
        self._replay_arrived = asyncio.Event()
        if resume_from is not None:
            self._tails = {s: deque(t, maxlen=TAIL_SIZE) for s, t in resume_from.tails.items()}
        self.messages = 0
        self.attachments = 0
        self.lines_posted = 0
        self.failures = 0
        self.throttled = 0  # 429s met (each one's message went again later, whole)
        self.resent = 0  # messages sent again with their nonce after a restart
        self.lines_rejected = 0
        self.last_post_at: float | None = None
        self.last_error: str | None = None
        self.stopped: str | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"relay:{self.channel_id}")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    @property
    def busy(self) -> bool:
        """Something is pending or being posted (and the channel has not stopped)."""
        if self.stopped is not None or self._task is None:
            return False
        resending = self._resuming is not None and self._resuming.pending is not None
        return resending or self.batcher.due(self._clock()) is not None

    def push_line(self, line: str, source: Source | None = None) -> None:
        """Queue a line; `source` (server, raw line) for a console line the journal follows."""
        if self.stopped is not None:
            return
        if source is None or self._journal is None:
            self.batcher.push_line(line, self._clock())
        else:
            raw = source[1]
            extra = TRACK_OVERHEAD + (0 if raw is line else 49 + len(raw))
            seq = self.batcher.push_line(line, self._clock(), extra=extra)
            self._unsettled.append((seq, source[0], raw))
            if len(self._unsettled) > self.batcher.pending_lines + self._inflight_lines() + COMPACT_SLACK:
                self._compact()
        if self._idle:
            self._wake.set()

    def push_notice(self, text: str, *, first: bool = False) -> None:
        """Queue a short line for the channel (a report, a status change); internal addresses are hidden.

        `first`: ahead of the lines already pending, not after them.
        """
        if self.stopped is None:
            self.batcher.push_notice(hide_addresses(text), self._clock(), first=first)
            if self._idle:
                self._wake.set()

    # -- after a restart ---------------------------------------------------------------------------------------

    def knows(self, server: str) -> bool:
        """True while this channel waits for `server`'s first replay to pick up where it left off."""
        return self._resuming is not None and self._resuming.knows(server) and server not in self._replayed

    def replayed(self, server: str, lines: list[str], prefix: str) -> None:
        """`server`'s console as Wings replayed it after a restart: keep what the channel had not posted.

        The lines of the message that was in flight are held back for its second sending (with its nonce);
        the lines after them are queued as new.
        """
        journal = self._resuming
        if journal is None or server in self._replayed:
            return
        picked = resume(journal, server, lines)
        self._replayed[server] = [prefix + line for line in picked.resend]
        for line in picked.new:
            self.push_line(prefix + line, (server, line))
        log.info(
            "channel %d resumes %s: %d line(s) to send again, %d new of %d replayed",
            self.channel_id,
            server,
            len(picked.resend),
            len(picked.new),
            len(lines),
        )
        self._replay_arrived.set()
        self._done_resuming()

    async def _resume(self) -> None:
        """Send the message that was in flight at the crash again (same nonce), then go on as usual."""
        journal = self._resuming
        if journal is None:
            return
        pending = journal.pending
        if pending is not None:
            waiting = set(pending.counts)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._resume_timeout):
                    while not waiting <= set(self._replayed):
                        self._replay_arrived.clear()
                        await self._replay_arrived.wait()
            missing = sorted(waiting - set(self._replayed))
            if missing:
                log.warning(
                    "channel %d: no replay from %s in time; the message in flight at the crash goes without "
                    "their lines",
                    self.channel_id,
                    ", ".join(missing),
                )
            lines = [line for server in pending.counts for line in self._replayed.get(server, [])]
            if lines and not await self._send_again(lines, pending.nonce):
                return
            # Settled now, whether it went out before the crash or just now.
            for server, tail in pending.tails.items():
                self._tails.setdefault(server, deque(maxlen=TAIL_SIZE)).extend(tail)
        # A server whose replay has not come yet is still aligned when it does, with what is settled now.
        self._resuming = Journal({s: tuple(t) for s, t in self._tails.items()}, None)
        self._done_resuming()
        self._write_journal()

    def _done_resuming(self) -> None:
        journal = self._resuming
        waiting = journal is not None and any(
            journal.knows(s) and s not in self._replayed for s in journal.tails
        )
        if journal is not None and journal.pending is None and not waiting:
            self._resuming = None

    async def _send_again(self, lines: list[str], nonce: str) -> bool:
        """The lines of the message in flight at the crash, as one message (or more, if they must) with its
        nonce first: Discord returns the message if it exists and creates it if not. False: the channel stopped."""
        again = Batcher(
            mode=self._mode, min_interval=self._min_interval, max_pending_bytes=self._max_pending_bytes
        )
        for line in lines:
            again.push_line(line, self._clock())
        first = True
        while (due := again.due(self._clock())) is not None:
            if due > self._clock():
                await asyncio.sleep(due - self._clock())
                continue
            await self._budget.turn()
            out = again.take(self._clock())
            if out is None:
                continue
            if not await self._deliver(again, out, nonce if first else new_nonce(), ()):
                return False
            first = False
        self.resent += 1
        return True

    # -- the loop ----------------------------------------------------------------------------------------------

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
            await self._resume()
        except Exception:
            log.exception(
                "channel %d could not pick up where it left off; going on from here", self.channel_id
            )
            self._resuming = None
        # What nobody planned for (a bug, a library's surprise) is logged, shown, and retried after a pause: the
        # link never ends for it. A message that fails so three times in a row is skipped, and that is said.
        backoff = Backoff(max(self._min_interval, 0.1), MAX_RETRY_WAIT)
        taken: Outgoing | None = None
        while self.stopped is None:
            try:
                now = self._clock()
                due = self.batcher.due(now)
                if due is None or due > now:
                    await self._sleep_or_wake(None if due is None else due - now)
                    continue
                # Wait for this channel's turn first and only then cut the batch, so whatever arrived while waiting
                # (seconds, when hundreds of channels are busy) still goes in this message.
                await self._budget.turn()
                taken = self.batcher.take(self._clock())
                if taken is None:
                    continue
                await self._deliver(self.batcher, taken, new_nonce(), self._settling(taken))
                taken = None
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("relay sender for channel %d failed; retrying", self.channel_id)
                self.failures += 1
                self.last_error = f"internal error ({type(exc).__name__}; see the bot's log)"
                self._inflight = None
                if self.batcher.in_flight:
                    give_up = taken is not None and backoff.failures >= 2
                    self.batcher.done(give_up, self._clock())
                    if give_up and taken is not None:
                        self._skipped(taken)
                        backoff.reset()
                taken = None
                await asyncio.sleep(backoff.next())

    def _skipped(self, out: Outgoing) -> None:
        """A message that could not be posted for an internal error, given up on: its lines count as settled."""
        self._settle(list(self._settling(out)))
        self.lines_rejected += out.line_count
        lines = "console line was" if out.line_count == 1 else "console lines were"
        self.push_notice(f"⚠️ {out.line_count} {lines} skipped after an internal error (see the bot's log).")

    async def _deliver(
        self, batcher: Batcher, out: Outgoing, nonce: str, settles: Iterable[tuple[int, str, str]]
    ) -> bool:
        """Post one message taken from `batcher`; False once the channel stopped.

        With console lines to settle, the journal holds the nonce before the post. A post that failed without
        an answer may have reached Discord: the very same message goes again with the same nonce.
        """
        settled = list(settles)
        if settled and self._journal is not None:
            self._inflight = self._pending(settled, nonce)
            self._inflight_upto = settled[-1][0]
            await self._journal.write_now(self.channel_id, self._journal_text())
        attachment = (out.attachment_name or "console.txt", out.attachment) if out.attachment else None
        attempt = 0
        while True:
            try:
                # The journal write above may have taken a while: the post itself still keeps to the budget.
                await self._budget.wire()
                await self._poster.post(self.channel_id, out.content, attachment, nonce)
                break
            except ChannelGone as gone:
                self._inflight = None
                batcher.done(False, self._clock())
                await self._stop(str(gone))
                return False
            except FileRefused:
                # The same lines go again at once without the file; none is lost.
                self._inflight = None  # nothing was posted: they go in a message of their own
                batcher.files_refused(self._clock(), self._files_pause)
                self.last_error = "Discord refused a file: the Attach Files permission is missing"
                log.warning(
                    "channel %d refuses files (Attach Files missing); posting without", self.channel_id
                )
                self.push_notice(ATTACH_FILES_NOTICE, first=True)  # it explains the messages that follow
                return True
            except PostThrottled as exc:
                # Nothing was posted: the same lines go again (with whatever arrived meanwhile) once the wait is
                # over, and the shared budget slows down for every channel.
                self._inflight = None
                batcher.throttled(self._clock(), exc.retry_after)
                self._budget.throttled(exc.retry_after)
                self.throttled += 1
                log.debug("channel %d: 429, retrying in %.2f s", self.channel_id, exc.retry_after)
                return True
            except PostFailed as exc:
                self.failures += 1
                self.last_error = str(exc)
                delay = min(self._min_interval * 2**attempt, MAX_RETRY_WAIT)
                attempt += 1
                log.warning(
                    "posting to channel %d failed (%s); will retry in %.1f s", self.channel_id, exc, delay
                )
                await asyncio.sleep(delay)
                await self._budget.turn()
                continue
            except PostRejected as exc:
                # Retrying the same message would block the channel for good: skip it, and say so.
                batcher.done(True, self._clock())
                self._settle(settled)
                self.lines_rejected += out.line_count
                self.last_error = str(exc)
                log.error("Discord refused a message for channel %d (%s); skipped it", self.channel_id, exc)
                self.push_notice(
                    f"Discord refused a message ({exc}); its {out.line_count} console lines were skipped."
                )
                return True
        batcher.done(True, self._clock())
        self._settle(settled)
        self.messages += 1
        self.attachments += attachment is not None
        self.lines_posted += out.line_count
        self.last_post_at = self._wall()
        self.last_error = None
        return True

    # -- the journal -------------------------------------------------------------------------------------------

    def _settling(self, out: Outgoing) -> list[tuple[int, str, str]]:
        """The followed lines this message settles: every one up to its last complete line."""
        if not self._unsettled or out.first_seq < 0:
            return []
        upto = out.last_seq if out.line_count else out.first_seq - 1
        return list(itertools.takewhile(lambda entry: entry[0] <= upto, self._unsettled))

    def _pending(self, settled: list[tuple[int, str, str]], nonce: str) -> PendingPost:
        counts: dict[str, int] = {}
        for _, server, _ in settled:
            counts[server] = counts.get(server, 0) + 1
        return PendingPost(nonce, counts, _last_hashes(settled))

    def _settle(self, settled: list[tuple[int, str, str]]) -> None:
        """The message went out (or was refused for good): its lines, and any before them, join the tails."""
        self._inflight = None
        if not settled:
            return
        upto = settled[-1][0]
        done: list[tuple[int, str, str]] = []
        while self._unsettled and self._unsettled[0][0] <= upto:
            done.append(self._unsettled.popleft())
        for server, hashes in _last_hashes(done).items():
            self._tails.setdefault(server, deque(maxlen=TAIL_SIZE)).extend(hashes)
        self._write_journal()

    def _compact(self) -> None:
        """Forget what cannot matter of lines no longer held (dropped, or blank and consumed without a message).

        They stay in order until a post settles past them, but of each run of them only the last TAIL_SIZE of
        each server can end up in a tail: memory stays bounded however long Discord is away while a console
        floods, even with a message stuck in flight.
        """
        oldest = self.batcher.oldest_seq(inflight=False)
        held_from = self.batcher.next_seq if oldest is None else oldest
        upto = self._inflight_upto if self._inflight is not None else -1
        kept: deque[tuple[int, str, str]] = deque()
        run: list[tuple[int, str, str]] = []
        for entry in self._unsettled:
            if entry[0] <= upto or entry[0] >= held_from:
                kept.extend(_last_per_server(run))
                run = []
                kept.append(entry)
            else:
                run.append(entry)
        kept.extend(_last_per_server(run))
        self._unsettled = kept

    def _inflight_lines(self) -> int:
        return sum(self._inflight.counts.values()) if self._inflight is not None else 0

    def _journal_text(self) -> str:
        return Journal({s: tuple(t) for s, t in self._tails.items()}, self._inflight).to_text()

    def _write_journal(self) -> None:
        if self._journal is not None:
            self._journal.write_later(self.channel_id, self._journal_text())

    def forget_server(self, server: str) -> None:
        """`server` is no longer linked here: its part of the journal goes."""
        self._tails.pop(server, None)

    # -- stopping ----------------------------------------------------------------------------------------------

    async def _stop(self, reason: str) -> None:
        self.stopped = reason
        log.warning("console relay to channel %d stopped: %s", self.channel_id, reason)
        try:
            await self._on_gone(self.channel_id, reason)
        except Exception:
            log.exception("handling the end of the relay to channel %d failed", self.channel_id)


MAX_RETRY_WAIT = 30.0  # the longest wait between two tries of a message that failed without an answer


def _last_hashes(entries: list[tuple[int, str, str]]) -> dict[str, tuple[str, ...]]:
    """Per server, the hashes of its last TAIL_SIZE lines among `entries`, oldest first (only those are hashed)."""
    picked: dict[str, list[str]] = {}
    for _, server, raw in reversed(entries):
        got = picked.setdefault(server, [])
        if len(got) < TAIL_SIZE:
            got.append(line_hash(raw))
    return {server: tuple(reversed(hashes)) for server, hashes in picked.items()}


def _last_per_server(entries: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """The last TAIL_SIZE entries of each server among `entries`, in their order."""
    if len(entries) <= TAIL_SIZE:
        return entries
    counts: dict[str, int] = {}
    picked: list[tuple[int, str, str]] = []
    for entry in reversed(entries):
        if counts.get(entry[1], 0) < TAIL_SIZE:
            counts[entry[1]] = counts.get(entry[1], 0) + 1
            picked.append(entry)
    picked.reverse()
    return picked
