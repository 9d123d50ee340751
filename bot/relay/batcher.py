"""Console lines in, Discord messages out: pacing, batching, overflow and retry as pure code.

The caller owns the clock and the sending. A loop looks like::

    while (t := batcher.due(clock())) is not None:
        await sleep_until(t)                  # and wake early when something is pushed
        out = batcher.take(clock())
        if out is not None:
            ok = await send(out)
            batcher.done(ok, clock())

Rules (docs/behaviour.md, "The console mirror"): one send in flight; ``min_interval`` between send starts; everything pending goes in
the next message. When it does not fit, the message shows the most recent lines that fit and the whole
pending text as a ``.txt`` attachment (or, while the channel refuses files, the oldest lines that fit, the
rest following in the next messages). A line is split across messages only when it is pending alone
and too long for one message (and needs at most ``max_split`` messages; longer goes in a file). The
backlog is bounded by ``max_pending_bytes`` (what is really held: text plus ``LINE_OVERHEAD`` per line) and
``max_pending_lines``: the oldest lines are dropped and the next message says
how many. A failed send is put back at the front, so retries neither duplicate nor reorder.

Notices (a status change, a report) keep their place among the lines: those that came before the pending
lines head the message, those that came after some of them follow its block, and the lines that came after
such a notice wait for the next message. So "Server is now offline" never reads above the lines printed
before it.

Blank lines (nothing visible) are kept in the stream but not shown at a block's ends, where Discord
would hide them anyway; a batch of only blank lines is consumed without a message.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from bot.relay.format import (
    DEFAULT_STATE,
    MESSAGE_LIMIT,
    RESET,
    SgrState,
    block_overhead,
    clean_ansi,
    clean_line,
    clean_notice,
    cut_line,
    is_blank,
    plain_copy,
    render_block,
    sgr_open,
)
from bot.settings import ColorMode

log = logging.getLogger(__name__)

ATTACHMENT_LIMIT = 10 * 1024 * 1024  # Discord's default per-file limit
MAX_PENDING_NOTICES = 50
# What a held line costs beyond its text: the record (a 5-tuple, 80 bytes), its sequence number (28), the str
# object's header (49) and the queue's slot (8), measured with sys.getsizeof and tracemalloc (about 190 bytes
# for a short line). Counted against the bound, so a console printing empty lines cannot hold more than it.
LINE_OVERHEAD = 192
MAX_PENDING_LINES = 20_000


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to post: notices first, then a code block, maybe a file with everything pending."""

    content: str
    attachment: bytes | None
    attachment_name: str | None
    line_count: int  # console lines this message completes (a split line counts with its last piece)
    dropped: int  # lines dropped from the backlog that this message reports
    first_seq: int  # -1 when the message covers no console line
    last_seq: int


class _Line(NamedTuple):
    seq: int
    text: str  # cleaned for the mode
    start: SgrState  # colour state before the line (ANSI mode)
    end: SgrState  # colour state after it
    nbytes: int  # what holding it costs: utf-8 bytes, the newline and LINE_OVERHEAD


@dataclass(frozen=True, slots=True)
class _Partial:
    """What is left of a long line being posted in pieces."""

    line: _Line
    rest: str
    start: SgrState
    nbytes: int


@dataclass(frozen=True, slots=True)
class _Batch:
    """What a message took from the queues, to put back if the send fails."""

    out: Outgoing
    lines: list[_Line]
    notices: list[tuple[int, str]]  # (the sequence number of the next line when it came, text)
    dropped: int
    partial: _Partial | None
    pending_since: float | None


def _nbytes(text: str) -> int:
    """What a held line costs: its UTF-8 text and newline, plus the fixed overhead of holding it."""
    return (len(text) if text.isascii() else len(text.encode())) + 1 + LINE_OVERHEAD


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Batcher:
    """Turns console lines and notices into paced Discord messages of at most ``limit`` characters."""

    def __init__(
        self,
        *,
        mode: ColorMode = ColorMode.PLAIN,
        min_interval: float = 1.0,
        max_pending_bytes: int = 4 * 1024 * 1024,
        max_pending_lines: int = MAX_PENDING_LINES,
        limit: int = MESSAGE_LIMIT,
        linger: float = 0.0,
        max_backoff: float = 30.0,
        max_split: int = 8,
    ) -> None:
        if not 200 <= limit <= MESSAGE_LIMIT:
            raise ValueError(f"limit must be within 200..{MESSAGE_LIMIT}")
        if not 0 < max_pending_bytes <= ATTACHMENT_LIMIT:
            raise ValueError("max_pending_bytes must be positive and fit one attachment")
        self._mode = mode
        self._min_interval = min_interval
        self._max_bytes = max_pending_bytes
        self._max_lines = max_pending_lines
        self._limit = limit
        self._linger = linger  # wait this long after the first pending item, to batch bursts
        self._max_backoff = max_backoff
        self._max_split = max_split
        self._overhead = block_overhead(mode)

        self._lines: deque[_Line] = deque()
        self._bytes = 0
        self._chars = 0
        # Each notice with the sequence number the next line had when it came: it is shown after the lines before it.
        self._notices: deque[tuple[int, str]] = deque()
        self._partial: _Partial | None = None
        self._seq = 0
        self._state = DEFAULT_STATE
        self._dropped_total = 0
        self._unreported = 0
        self._inflight: _Batch | None = None
        self._last_start: float | None = None
        self._failures = 0
        self._retry_at = -math.inf
        self._pending_since: float | None = None
        self._no_files_until = -math.inf  # the channel refused a file: messages go without one until then

    # -- input ---------------------------------------------------------------------------------

    def push_line(self, line: str, now: float, *, extra: int = 0) -> int:
        """Queue one raw console line; returns its sequence number.

        `extra` is what the caller holds for this line while it is pending (counted against the bound too).
        """
        seq = self._seq
        self._seq += 1
        if self._mode is ColorMode.ANSI:
            start = self._state
            text, self._state = clean_ansi(line, start)
            item = _Line(seq, text, start, self._state, _nbytes(text) + extra)
        else:
            text = clean_line(line, ColorMode.PLAIN)
            item = _Line(seq, text, DEFAULT_STATE, DEFAULT_STATE, _nbytes(text) + extra)
        self._lines.append(item)
        self._bytes += item.nbytes
        self._chars += len(text)
        self._mark_pending(now)
        if self._bytes > self._max_bytes or len(self._lines) > self._max_lines:
            self._enforce_bound()
        return seq

    def push_notice(self, text: str, now: float, *, first: bool = False) -> None:
        """Queue a short plain-text line, shown after the lines that came before it (`first`: before them all,
        for a notice about how the pending lines will be posted)."""
        notice = clean_notice(text, max_chars=self._limit // 5)
        if not notice:
            return
        if first:
            self._notices.appendleft((-1, notice))
        else:
            self._notices.append((self._seq, notice))
        if len(self._notices) > MAX_PENDING_NOTICES:
            log.debug("notice backlog full; dropping the oldest notice")
            self._notices.popleft()
            self._unreported += 1  # counted and said with the dropped console lines
            self._dropped_total += 1
        self._mark_pending(now)

    def _mark_pending(self, now: float) -> None:
        if self._pending_since is None:
            self._pending_since = now

    def _enforce_bound(self) -> None:
        dropped = 0
        while (self._bytes > self._max_bytes or len(self._lines) > self._max_lines) and self._lines:
            item = self._lines.popleft()
            self._bytes -= item.nbytes
            self._chars -= len(item.text)
            dropped += 1
        if dropped:
            if not self._unreported:
                log.info("console backlog over %d bytes: dropping the oldest lines", self._max_bytes)
            self._unreported += dropped
            self._dropped_total += dropped

    # -- state ---------------------------------------------------------------------------------

    @property
    def pending_lines(self) -> int:
        return len(self._lines) + (self._partial is not None)

    @property
    def pending_bytes(self) -> int:
        return self._bytes + (self._partial.nbytes if self._partial else 0)

    @property
    def dropped_total(self) -> int:
        return self._dropped_total

    @property
    def in_flight(self) -> bool:
        return self._inflight is not None

    @property
    def next_seq(self) -> int:
        """The sequence number the next line will get."""
        return self._seq

    def oldest_seq(self, *, inflight: bool = True) -> int | None:
        """The sequence number of the oldest line still held (pending, or in the message in flight unless
        `inflight` is False), or None. Every line before it has been posted, dropped (and counted), consumed as
        a blank line, or (with `inflight` False) is in the message in flight.
        """
        seqs: list[int] = []
        batch = self._inflight if inflight else None
        if batch is not None:
            if batch.lines:
                seqs.append(batch.lines[0].seq)
            if batch.partial is not None:
                seqs.append(batch.partial.line.seq)
        if self._partial is not None:
            seqs.append(self._partial.line.seq)
        if self._lines:
            seqs.append(self._lines[0].seq)
        return min(seqs) if seqs else None

    def _has_pending(self) -> bool:
        return bool(self._lines or self._notices or self._partial or self._unreported)

    def due(self, now: float) -> float | None:
        """None when nothing is pending; else when the next send may start (inf while one is in flight)."""
        if not self._has_pending():
            return None
        if self._inflight is not None:
            return math.inf
        t = self._retry_at
        if self._last_start is not None:
            t = max(t, self._last_start + self._min_interval)
        if self._linger > 0 and self._pending_since is not None:
            t = max(t, self._pending_since + self._linger)
        return max(t, now)

    # -- output --------------------------------------------------------------------------------

    def take(self, now: float) -> Outgoing | None:
        """The next message if one is due now (a send is then in flight), else None."""
        when = self.due(now)
        if when is None or when > now:
            return None
        batch = self._build(files=now >= self._no_files_until)
        if batch is None:
            return None
        self._inflight = batch
        self._last_start = now
        return batch.out

    def done(self, ok: bool, now: float) -> None:
        """The send of the last taken message finished; on failure its content is put back in front."""
        batch = self._inflight
        if batch is None:
            raise RuntimeError("done() without a message in flight")
        self._inflight = None
        if ok:
            self._failures = 0
            self._retry_at = -math.inf
            return
        self._failures += 1
        self._retry_at = now + min(self._min_interval * 2 ** (self._failures - 1), self._max_backoff)
        self._requeue(batch)

    def throttled(self, now: float, retry_after: float) -> None:
        """The message in flight met a rate limit (429): it goes back in front and is tried after `retry_after` s.

        Not a failure: the wait is what Discord (or a proxy) asked for, so it does not grow the backoff.
        """
        batch = self._inflight
        if batch is None:
            raise RuntimeError("throttled() without a message in flight")
        self._inflight = None
        self._retry_at = max(self._retry_at, now + retry_after)
        self._requeue(batch)

    def files_refused(self, now: float, pause: float) -> None:
        """The message in flight was refused for its attachment: it goes back to be sent again at once, and
        for `pause` seconds messages carry no file (what would have been attached follows in later messages)."""
        batch = self._inflight
        if batch is None:
            raise RuntimeError("files_refused() without a message in flight")
        self._inflight = None
        self._no_files_until = now + pause
        self._last_start = None
        self._requeue(batch)

    def _requeue(self, batch: _Batch) -> None:
        """Put a message that was not posted back in front of the queues, in order."""
        if batch.partial is not None:
            self._partial = batch.partial
        self._put_back(batch.lines)
        self._notices.extendleft(reversed(batch.notices))
        self._unreported += batch.dropped
        if batch.pending_since is not None:
            since = self._pending_since
            self._pending_since = batch.pending_since if since is None else min(since, batch.pending_since)
        if self._bytes > self._max_bytes or len(self._lines) > self._max_lines:
            self._enforce_bound()

    def _put_back(self, lines: list[_Line]) -> None:
        if lines:
            self._lines.extendleft(reversed(lines))
            self._bytes += sum(item.nbytes for item in lines)
            self._chars += sum(len(item.text) for item in lines)

    def _first_pending_seq(self) -> float:
        if self._partial is not None:
            return self._partial.line.seq
        return self._lines[0].seq if self._lines else math.inf

    def _take_notices(self, used: int, *, first: bool) -> list[tuple[int, str]]:
        """The notices that came before the next pending line, while the notices stay within half a message."""
        taken: list[tuple[int, str]] = []
        upto = self._first_pending_seq()
        while self._notices and self._notices[0][0] <= upto:
            size = len(self._notices[0][1]) + 1
            if (taken or not first) and used + size > self._limit // 2:
                break
            taken.append(self._notices.popleft())
            used += size
        return taken

    def _take_head(self) -> tuple[list[str], list[tuple[int, str]], int]:
        """Drop report and the notices that came before the pending lines, within half of the message."""
        head: list[str] = []
        dropped = self._unreported
        if dropped:
            head.append(f"⚠ {_plural(dropped, 'line')} dropped while Discord was slow or unreachable")
        self._unreported = 0
        notices = self._take_notices(sum(len(h) + 1 for h in head), first=True)
        head.extend(text for _, text in notices)
        return head, notices, dropped

    def _take_lines(self) -> tuple[list[_Line], int]:
        """The pending lines up to the first notice that came after some of them (all, when none did), with
        their characters: a status change never reads as if it came before lines printed ahead of it."""
        cut = self._notices[0][0] if self._notices else None
        if cut is None or cut > self._lines[-1].seq:
            lines = list(self._lines)
            self._lines.clear()
            chars, self._chars, self._bytes = self._chars, 0, 0
            return lines, chars
        lines = []
        while self._lines and self._lines[0].seq < cut:
            lines.append(self._lines.popleft())
        chars = sum(len(item.text) for item in lines)
        self._chars -= chars
        self._bytes -= sum(item.nbytes for item in lines)
        return lines, chars

    def _build(self, *, files: bool) -> _Batch | None:
        pending_since = self._pending_since
        head, notices, dropped = self._take_head()
        used = sum(len(h) + 1 for h in head)
        # room left for the code block (and the newline that separates it from the head)
        room = self._limit - used
        tail: list[tuple[int, str]] = []  # notices that came right after this message's lines
        lines: list[_Line] = []
        partial_before = self._partial
        block: str | None = None
        attachment: bytes | None = None
        name: str | None = None
        line_count = 0
        first_seq = last_seq = -1

        if partial_before is None and self._lines:
            lines, chars = self._take_lines()
        if lines:
            tail = self._take_notices(used, first=False)
            tail_room = sum(len(text) + 1 for _, text in tail)
            room -= tail_room
            line_count = len(lines)
            first_seq, last_seq = lines[0].seq, lines[-1].seq
            lo, hi = self._visible(lines, 0, len(lines))
            chars -= sum(len(item.text) for item in lines[:lo]) + sum(len(item.text) for item in lines[hi:])
            if lo == hi:
                pass  # only blank lines: covered by this message, nothing to show
            elif self._block_len(lines, lo, hi, chars) <= room:
                block = self._render(lines, lo, hi)
            elif len(lines) == 1 and self._splittable(lines[0]):
                item = lines[0]
                partial_before = _Partial(item, item.text, item.start, item.nbytes)
                lines, line_count = [], 0  # counted with the last piece
                tail, room = self._untake(tail), room + tail_room
            elif not files:
                tail, room = self._untake(tail), room + tail_room
                # No attachment possible: the oldest lines that fit now, the rest in the next messages.
                end = self._fitting(lines, lo, hi, room)
                if end > lo:
                    self._put_back(lines[end:])
                    lines = lines[:end]
                    line_count, last_seq = end, lines[-1].seq
                    block = self._render(lines, *self._visible(lines, lo, end))
                else:  # its first line alone is too long for a message: in pieces, however many
                    item = lines[lo]
                    self._put_back(lines[lo + 1 :])
                    partial_before = _Partial(item, item.text, item.start, item.nbytes)
                    lines, line_count = [], 0
            else:
                head, block = self._overflow(lines, lo, hi, head, room)
                attachment = (plain_copy("\n".join(item.text for item in lines)) + "\n").encode()
                name = f"console-{first_seq}-{last_seq}.txt"

        if partial_before is not None:
            block, done = self._next_piece(partial_before, room)
            first_seq = last_seq = partial_before.line.seq
            line_count = 1 if done else 0

        if not self._has_pending():
            self._pending_since = None
        parts = [*head, block] if block else head
        parts.extend(text for _, text in tail)
        if not parts:
            return None  # only blank lines: consumed, nothing to show
        out = Outgoing("\n".join(parts), attachment, name, line_count, dropped, first_seq, last_seq)
        return _Batch(out, lines, [*notices, *tail], dropped, partial_before, pending_since)

    def _untake(self, tail: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Put notices taken for after the lines back: not all of those lines are in this message."""
        self._notices.extendleft(reversed(tail))
        return []

    def _fitting(self, lines: list[_Line], lo: int, hi: int, room: int) -> int:
        """The end of the longest run lines[lo:end] whose block fits in `room` (lo when not even one line)."""
        end, chars = lo, 0
        while end < hi:
            size = chars + len(lines[end].text)
            if self._block_len(lines, lo, end + 1, size) > room:
                break
            end, chars = end + 1, size
        return end

    def _visible(self, lines: list[_Line], lo: int, hi: int) -> tuple[int, int]:
        """Trim blank lines at both ends of lines[lo:hi]."""
        while lo < hi and is_blank(lines[lo].text):
            lo += 1
        while hi > lo and is_blank(lines[hi - 1].text):
            hi -= 1
        return lo, hi

    def _block_len(self, lines: list[_Line], lo: int, hi: int, chars: int) -> int:
        """Length of the block for lines[lo:hi] whose texts total ``chars`` characters."""
        size = self._overhead + chars + (hi - lo - 1)
        if self._mode is ColorMode.ANSI:
            size += len(sgr_open(lines[lo].start)) + (0 if lines[hi - 1].end.is_default else len(RESET))
        return size

    def _render(self, lines: list[_Line], lo: int, hi: int) -> str:
        texts = [item.text for item in lines[lo:hi]]
        return render_block(texts, self._mode, start=lines[lo].start, end=lines[hi - 1].end)

    def _overflow(
        self, lines: list[_Line], lo: int, hi: int, head: list[str], room: int
    ) -> tuple[list[str], str | None]:
        """The most recent lines that fit beside a header pointing at the attachment."""
        total = len(lines)
        room -= len(f"… {total} earlier lines in the attached file") + 1
        first = hi
        chars = 0
        while first > lo:
            size = chars + len(lines[first - 1].text)
            if self._block_len(lines, first - 1, hi, size) > room:
                break
            first -= 1
            chars = size
        first, _ = self._visible(lines, first, hi)
        if first < hi:
            note = f"… {_plural(first, 'earlier line')} in the attached file"
            return [*head, note], self._render(lines, first, hi)
        return [*head, f"… {_plural(total, 'line')} in the attached file"], None

    def _splittable(self, item: _Line) -> bool:
        per_message = self._limit - self._overhead - 2 * len(RESET) - 16
        return len(item.text) <= self._max_split * per_message

    def _next_piece(self, partial: _Partial, room: int) -> tuple[str, bool]:
        """Render the next piece of a long line; keeps the rest as the new partial."""
        piece, rest, state = cut_line(partial.rest, room - self._overhead, self._mode, partial.start)
        if rest:
            self._partial = _Partial(partial.line, rest, state, _nbytes(rest))
        else:
            self._partial = None
        return render_block([piece], self._mode, end=DEFAULT_STATE), not rest
