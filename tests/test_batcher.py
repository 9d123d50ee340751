"""The console batcher: pacing, batching, overflow, bounds and retry, with a fake clock."""

from __future__ import annotations

import math
import random
import re
import tracemalloc

import pytest

from bot.relay.batcher import LINE_OVERHEAD, MAX_PENDING_NOTICES, Batcher, Outgoing
from bot.relay.format import RESET, block_overhead, clean_line, plain_copy
from bot.settings import ColorMode

ESC = "\x1b"
BLOCK = re.compile(r"```(?:ansi)?\n([\s\S]*)\n```(?=\n|\Z)")


def block_lines(out: Outgoing) -> list[str]:
    """The console lines shown in a message's code block (none if it has no block)."""
    m = BLOCK.search(out.content)
    return m.group(1).split("\n") if m else []


def head_lines(out: Outgoing) -> list[str]:
    """The plain-text lines before the code block (all of them when there is none)."""
    m = BLOCK.search(out.content)
    head = out.content[: m.start()] if m else out.content
    return [h for h in head.split("\n") if h]


def tail_lines(out: Outgoing) -> list[str]:
    """The plain-text lines after the code block."""
    m = BLOCK.search(out.content)
    return [t for t in out.content[m.end() :].split("\n") if t] if m else []


def attachment_lines(out: Outgoing) -> list[str]:
    assert out.attachment is not None
    text = out.attachment.decode()
    assert text.endswith("\n")
    return text[:-1].split("\n")


def check_message(out: Outgoing, limit: int = 2000) -> None:
    assert out.content.strip()
    assert len(out.content) <= limit
    assert "```\n\n```" not in out.content and "```ansi\n\n```" not in out.content
    assert out.content.count("```") in (0, 2)
    if out.attachment is not None:
        assert out.attachment_name and out.attachment_name.endswith(".txt")
        assert len(out.attachment) < 10 * 1024 * 1024


def send(b: Batcher, now: float, ok: bool = True) -> Outgoing:
    out = b.take(now)
    assert out is not None
    check_message(out)
    b.done(ok, now)
    return out


# -- pacing ------------------------------------------------------------------------------------


def test_nothing_pending_means_no_message() -> None:
    b = Batcher()
    assert b.due(0.0) is None
    assert b.take(0.0) is None
    assert not b.in_flight


def test_pacing_with_a_fake_clock() -> None:
    b = Batcher(min_interval=1.0)
    b.push_line("first", 0.0)
    assert b.due(0.0) == 0.0
    out = b.take(0.0)
    assert out is not None and block_lines(out) == ["first"]
    assert b.in_flight and b.due(0.1) is None  # nothing else pending yet
    b.push_line("second", 0.2)
    assert b.due(0.2) == math.inf  # one send in flight
    assert b.take(5.0) is None
    b.done(True, 0.3)
    b.push_line("third", 0.5)
    assert b.due(0.5) == 1.0  # min interval between send starts
    assert b.take(0.99) is None
    out = b.take(1.0)
    assert out is not None and block_lines(out) == ["second", "third"]
    assert (out.first_seq, out.last_seq, out.line_count) == (1, 2, 2)


def test_slow_send_allows_the_next_one_right_after() -> None:
    b = Batcher(min_interval=1.0)
    b.push_line("a", 0.0)
    b.take(0.0)
    b.push_line("b", 0.5)
    b.done(True, 3.0)  # the send took 3 s (rate limit)
    assert b.due(3.0) == 3.0


def test_linger_gathers_a_burst() -> None:
    b = Batcher(linger=0.1)
    b.push_line("a", 10.0)
    assert b.due(10.0) == pytest.approx(10.1)
    assert b.take(10.05) is None
    b.push_line("b", 10.05)
    out = b.take(10.1)
    assert out is not None and block_lines(out) == ["a", "b"]


def test_everything_that_arrived_meanwhile_goes_in_one_message() -> None:
    b = Batcher()
    b.push_line("x", 0.0)
    send(b, 0.0)
    for i in range(10):
        b.push_line(f"line {i}", 0.1 * i)
    out = send(b, 1.0)
    assert block_lines(out) == [f"line {i}" for i in range(10)]
    assert out.attachment is None and out.line_count == 10
    assert b.pending_lines == 0 and b.pending_bytes == 0 and b.due(1.0) is None


# -- notices -----------------------------------------------------------------------------------


def test_notices_come_in_order_with_the_lines() -> None:
    b = Batcher()
    b.push_notice("Server is **starting**", 0.0)
    b.push_notice("@everyone it is up", 0.0)
    b.push_line("console 1", 0.0)
    b.push_line("console 2", 0.0)
    out = send(b, 0.0)
    assert head_lines(out) == ["Server is \\*\\*starting\\*\\*", "@\u200beveryone it is up"]
    assert block_lines(out) == ["console 1", "console 2"]
    assert out.content.index("starting") < out.content.index("```")


def test_notice_only_message() -> None:
    b = Batcher()
    b.push_notice("Connection lost", 0.0)
    out = send(b, 0.0)
    assert out.content == "Connection lost"
    assert (out.first_seq, out.last_seq, out.line_count) == (-1, -1, 0)
    assert b.due(1.0) is None


def test_many_notices_spread_over_messages_in_order() -> None:
    b = Batcher()
    for i in range(40):
        b.push_notice(f"notice {i} " + "n" * 80, 0.0)
    seen: list[str] = []
    t = 0.0
    while b.due(t) is not None:
        seen += head_lines(send(b, t))
        t += 1.0
    assert [s.split()[1] for s in seen] == [str(i) for i in range(40)]
    assert t > 1.0  # it did need more than one message


def test_notices_past_the_bound_are_dropped_counted_and_said() -> None:
    b = Batcher()
    for i in range(MAX_PENDING_NOTICES + 5):
        b.push_notice(f"notice {i}", 0.0)
    out = send(b, 0.0)
    assert head_lines(out)[0] == "⚠ 5 lines dropped while Discord was slow or unreachable"
    assert head_lines(out)[1] == "notice 5" and b.dropped_total == 5


def test_blank_lines_alone_send_nothing() -> None:
    b = Batcher()
    b.push_line("", 0.0)
    b.push_line("   ", 0.0)
    b.push_line("\r", 0.0)
    assert b.take(0.0) is None
    assert b.due(0.0) is None and not b.in_flight


def test_blank_lines_inside_are_kept_and_ends_trimmed() -> None:
    b = Batcher()
    for line in ["", "a", "", "b", "  "]:
        b.push_line(line, 0.0)
    out = send(b, 0.0)
    assert block_lines(out) == ["a", "", "b"]
    assert (out.line_count, out.first_seq, out.last_seq) == (5, 0, 4)


# -- overflow ----------------------------------------------------------------------------------


def test_overflow_shows_recent_lines_and_attaches_everything() -> None:
    b = Batcher()
    lines = [f"{i:04d} " + "x" * 45 for i in range(300)]
    for line in lines:
        b.push_line(line, 0.0)
    out = send(b, 0.0)
    assert out.attachment is not None and out.attachment_name == "console-0-299.txt"
    assert attachment_lines(out) == lines
    shown = block_lines(out)
    assert shown and shown == lines[-len(shown) :]
    [header] = head_lines(out)
    assert header == f"… {300 - len(shown)} earlier lines in the attached file"
    assert len(out.content) > 2000 - 60  # it filled the message
    assert out.line_count == 300 and (out.first_seq, out.last_seq) == (0, 299)


@pytest.mark.parametrize("mode", [ColorMode.PLAIN, ColorMode.ANSI])
def test_exactly_2000_fits_and_one_more_overflows(mode: ColorMode) -> None:
    room = 2000 - block_overhead(mode)
    colour = f"{ESC}[31m" if mode is ColorMode.ANSI else ""
    tail = len(RESET) if colour else 0  # the block closes the open colour
    first = colour + "a" * 999
    second_len = room - 1 - (len(first) + tail)  # one newline between the two lines
    for extra, overflow in ((0, False), (1, True)):
        b = Batcher(mode=mode)
        b.push_line(first, 0.0)
        b.push_line("b" * (second_len + extra), 0.0)
        out = send(b, 0.0)
        if overflow:
            assert out.attachment is not None
        else:
            assert out.attachment is None and len(out.content) == 2000


def test_trimmed_blank_lines_do_not_count_against_the_limit() -> None:
    b = Batcher()
    b.push_line(" " * 500, 0.0)
    b.push_line("x" * (2000 - block_overhead(ColorMode.PLAIN)), 0.0)
    b.push_line(" " * 500, 0.0)
    out = send(b, 0.0)
    assert out.attachment is None and len(out.content) == 2000 and out.line_count == 3


def test_long_line_with_company_goes_to_the_attachment() -> None:
    b = Batcher()
    b.push_line("short", 0.0)
    b.push_line("L" * 5000, 0.0)
    out = send(b, 0.0)
    assert attachment_lines(out) == ["short", "L" * 5000]
    assert head_lines(out) == ["… 2 lines in the attached file"]
    assert block_lines(out) == []


def test_long_line_alone_is_split_across_messages() -> None:
    b = Batcher()
    line = " ".join(f"w{i}" for i in range(2500))  # about 12,000 characters
    seq = b.push_line(line, 0.0)
    pieces: list[str] = []
    t = 0.0
    outs = []
    while b.due(t) is not None:
        out = send(b, t)
        outs.append(out)
        assert out.attachment is None and out.first_seq == out.last_seq
        [piece] = block_lines(out)
        pieces.append(piece)
        if t == 1.0:
            b.push_line("after", t)  # arrives while the long line is being posted
        t += 1.0
    assert "".join(pieces[:-1]) == line and pieces[-1] == "after"
    assert [o.line_count for o in outs[:-1]] == [0] * (len(outs) - 2) + [1]
    assert {o.first_seq for o in outs[:-1]} == {seq} and outs[-1].first_seq == seq + 1
    assert len(outs) >= 7


def test_enormous_line_alone_goes_to_a_file() -> None:
    b = Batcher()
    b.push_line("z" * 100_000, 0.0)
    out = send(b, 0.0)
    assert attachment_lines(out) == ["z" * 100_000]
    assert b.due(1.0) is None


def test_ansi_attachment_is_plain_text_and_state_crosses_messages() -> None:
    b = Batcher(mode=ColorMode.ANSI)
    b.push_line(f"{ESC}[31mred begins ```", 0.0)
    out = send(b, 0.0)
    assert out.content == f"```ansi\n{ESC}[31mred begins `\u200b`\u200b`\u200b{RESET}\n```"
    b.push_line("still red", 0.5)
    out = send(b, 1.0)
    assert out.content == f"```ansi\n{ESC}[31mstill red{RESET}\n```"
    for i in range(200):
        b.push_line(f"{ESC}[1;32mgreen {i} ``` " + "y" * 30, 1.5)  # colour left open
    out = send(b, 2.0)
    assert out.attachment is not None
    assert attachment_lines(out) == [f"green {i} ``` " + "y" * 30 for i in range(200)]
    shown = block_lines(out)
    assert shown[0].startswith(f"{ESC}[1;32mgreen")  # the state re-opened at the message start
    assert "\x1b" not in shown[1] and shown[-1].endswith(RESET)


# -- bound and drops ---------------------------------------------------------------------------


def test_backlog_bound_drops_oldest_and_reports_once() -> None:
    bound = 20 * (50 + LINE_OVERHEAD)
    b = Batcher(max_pending_bytes=bound)
    b.push_line("in flight", 0.0)
    assert b.take(0.0) is not None
    for i in range(100):
        b.push_line(f"{i:03d}" + "d" * 46, 0.1)  # 50 bytes with the newline, plus what holding it costs
    assert b.pending_bytes <= bound and b.pending_lines == 20
    assert b.dropped_total == 80
    b.done(False, 0.5)  # the in-flight line comes back first and is dropped as the oldest
    assert b.dropped_total == 81
    out = send(b, 2.0, ok=False)  # the report itself fails once
    assert out.dropped == 81
    out = send(b, 10.0)
    assert (
        out.dropped == 81 and head_lines(out)[0] == "⚠ 81 lines dropped while Discord was slow or unreachable"
    )
    assert block_lines(out) == [f"{i:03d}" + "d" * 46 for i in range(80, 100)]
    b.push_line("later", 20.0)
    out = send(b, 20.0)
    assert out.dropped == 0 and "dropped" not in out.content


def test_a_flood_of_empty_lines_stays_within_the_bound() -> None:
    bound = 1024 * 1024
    b = Batcher(max_pending_bytes=bound, max_pending_lines=10**9)
    b.push_line("in flight", 0.0)
    assert b.take(0.0) is not None  # Discord is slow: nothing leaves while the flood arrives
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(60_000):
            b.push_line("", 0.1)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert b.pending_bytes <= bound
    assert held <= bound * 1.1, f"{held} bytes held for a bound of {bound}"
    assert b.dropped_total > 0 and b.pending_lines < bound // LINE_OVERHEAD + 1


def test_the_number_of_held_lines_is_capped_too() -> None:
    b = Batcher(max_pending_bytes=10 * 1024 * 1024, max_pending_lines=1000)
    for i in range(1500):
        b.push_line(str(i), 0.0)
    assert b.pending_lines == 1000 and b.dropped_total == 500
    assert attachment_lines(send(b, 0.0))[0] == "500"  # the oldest kept


def test_drop_report_alone_is_a_message() -> None:
    b = Batcher(max_pending_bytes=100)
    b.push_line("x" * 500, 0.0)
    assert b.pending_lines == 0 and b.dropped_total == 1
    out = send(b, 0.0)
    assert out.content == "⚠ 1 line dropped while Discord was slow or unreachable" and out.dropped == 1


# -- retry -------------------------------------------------------------------------------------


def test_retry_after_failure_keeps_order_and_backs_off() -> None:
    b = Batcher(min_interval=1.0, max_backoff=4.0)
    for i in range(5):
        b.push_line(f"a{i}", 0.0)
    b.push_notice("n1", 0.0)
    first = b.take(0.0)
    assert first is not None
    b.push_line("b0", 0.5)
    b.push_notice("n2", 0.5)
    b.done(False, 0.6)
    assert b.due(0.6) == pytest.approx(1.6)
    retry = b.take(1.6)
    assert retry is not None
    # the same message again: each notice after the lines that came before it, the later ones next time
    assert head_lines(retry) == [] and tail_lines(retry) == ["n1"]
    assert block_lines(retry) == ["a0", "a1", "a2", "a3", "a4"]
    assert (retry.first_seq, retry.last_seq) == (0, 4)
    b.done(False, 2.0)
    assert b.due(2.0) == pytest.approx(4.0)  # doubled
    for t in (4.0, 8.1):
        assert b.take(t) is not None
        b.done(False, t)
    assert b.due(8.1) == pytest.approx(12.1)  # capped at max_backoff
    ok = send(b, 12.1)
    assert block_lines(ok) == block_lines(retry)
    b.push_line("c", 12.5)
    assert b.due(12.5) == pytest.approx(13.1)  # back to normal pacing


def test_a_refused_file_sends_the_same_lines_in_messages_without_files() -> None:
    b = Batcher(min_interval=1.0)
    lines = [f"{i:04d} " + "x" * 45 for i in range(300)]
    for line in lines:
        b.push_line(line, 0.0)
    b.push_notice("a notice", 0.0)
    assert b.take(0.0) is not None  # carries a file...
    b.files_refused(0.1, pause=60.0)  # ...which the channel refuses
    assert b.due(0.1) == pytest.approx(0.1)  # at once, not after a back-off
    shown: list[str] = []
    t = 0.1
    messages = []
    while b.due(t) is not None:
        t = max(t, b.due(t) or t)
        out = send(b, t)
        assert out.attachment is None
        messages.append(out)
        shown.extend(block_lines(out))
    assert shown == lines  # every line once, in order, none only in a lost file
    assert tail_lines(messages[-1]) == ["a notice"]  # it came after them all
    assert not any("a notice" in out.content for out in messages[:-1])
    assert sum(out.line_count for out in messages) == 300 and len(messages) > 5
    # the pause ends: a flood goes out with its file again
    for line in lines:
        b.push_line(line, t)
    back = send(b, max(t + 1.0, 60.1))
    assert back.attachment is not None and attachment_lines(back) == lines


def test_without_files_a_line_too_long_for_any_split_still_goes_in_pieces() -> None:
    b = Batcher(min_interval=1.0, max_split=2)
    b.push_line("a" * 9000, 0.0)
    b.push_line("after", 0.0)
    assert b.take(0.0) is not None
    b.files_refused(0.0, pause=60.0)
    pieces: list[str] = []
    t = 0.0
    while b.due(t) is not None:
        t = max(t + 1.0, b.due(t) or t)
        out = send(b, t)
        assert out.attachment is None
        pieces.extend(block_lines(out))
    assert "".join(pieces[:-1]) == "a" * 9000 and pieces[-1] == "after"


def test_failed_piece_of_a_split_line_is_resent() -> None:
    b = Batcher()
    b.push_line("p" * 5000, 0.0)
    first = send(b, 0.0)
    second = send(b, 1.0, ok=False)
    again = send(b, 3.0)
    assert block_lines(second) == block_lines(again)
    last = send(b, 4.0)
    assert "".join(block_lines(first) + block_lines(again) + block_lines(last)) == "p" * 5000
    assert b.due(5.0) is None


def test_done_without_take_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        Batcher().done(True, 0.0)


# -- the whole stream --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", [ColorMode.PLAIN, ColorMode.ANSI])
def test_every_line_exactly_once_and_in_order(seed: int, mode: ColorMode) -> None:
    rng = random.Random(seed)
    b = Batcher(mode=mode, max_pending_bytes=10**7)
    expected: list[str] = []  # lines, and notices as "N:" + text, in the order they came
    posted: list[str] = []  # the same as they appear across successful messages
    partial = ""
    t = 0.0
    sizes = [5, 20, 60, 200, 1500, 2100, 6000]

    def read(out: Outgoing) -> None:
        nonlocal partial
        head, tail = head_lines(out), tail_lines(out)
        notes = [i for i, h in enumerate(head) if h.startswith("… ")]
        if notes and not block_lines(out):  # no line shown: what follows the file's note came after its lines
            head, tail = head[: notes[0]], head[notes[0] + 1 :]
        posted.extend("N:" + h for h in head if not h.startswith("… "))
        if out.attachment is not None:
            assert not partial
            posted.extend(attachment_lines(out))
        else:
            shown = [plain_copy(s) for s in block_lines(out)]
            if out.line_count == 0 and shown:  # a piece of a long line
                partial += shown[0]
            elif partial:
                posted.append(partial + shown[0])
                partial = ""
            else:
                posted.extend(shown)
        posted.extend("N:" + h for h in tail)

    lines = 0
    for step in range(400):
        for _ in range(rng.choice([0, 1, 1, 3, 10, 60])):
            n = lines
            lines += 1
            body = "".join(rng.choice("ab cdé世🎮`") for _ in range(rng.choice(sizes)))
            colour = rng.choice(["", f"{ESC}[3{n % 8}m", f"{ESC}[0m", f"{ESC}[1;38;5;{n % 256}m"])
            raw = f"{colour}L{n}:{body}"
            b.push_line(raw, t)
            expected.append(plain_copy(clean_line(raw, ColorMode.PLAIN)))
            if rng.random() < 0.03:
                b.push_notice(f"notice {step}.{n}", t)
                expected.append(f"N:notice {step}.{n}")
        if step % 17 == 0:
            b.push_notice(f"notice {step}", t)
            expected.append(f"N:notice {step}")
        out = b.take(t)
        if out is not None:
            check_message(out)
            ok = rng.random() > 0.15
            b.done(ok, t)
            if ok:
                read(out)
        t += rng.choice([0.1, 0.5, 1.0, 2.0])
    while (due := b.due(t)) is not None:
        t = max(t, due)
        out = b.take(t)
        assert out is not None
        check_message(out)
        b.done(True, t)
        read(out)
    assert b.dropped_total == 0
    assert posted == expected


def test_throughput_budget() -> None:
    """Generous guard on the relay's CPU cost (the benchmark measures it properly)."""
    import time

    b = Batcher(mode=ColorMode.ANSI)
    lines = [
        f"{ESC}[0;36m[12:00:{i % 60:02d} INFO]{ESC}[0m: Player{i} joined the game ``" for i in range(20_000)
    ]
    start = time.process_time()
    t = 0.0
    for i, line in enumerate(lines):
        b.push_line(line, t)
        if i % 2000 == 1999:
            t += 1.0
            if b.take(t) is not None:
                b.done(True, t)
    assert time.process_time() - start < 5.0


def test_a_notice_stays_after_the_lines_printed_before_it() -> None:
    # Wings sends `status offline` after the server's last lines: the channel must not read "offline" above them.
    b = Batcher()
    b.push_notice("stopping", 0.0)
    b.push_line("Stopping the server", 0.0)
    b.push_line("Saving chunks", 0.0)
    b.push_notice("offline", 0.0)
    out = send(b, 0.0)
    assert out.content.split("\n") == [
        "stopping",
        "```",
        "Stopping the server",
        "Saving chunks",
        "```",
        "offline",
    ]
    assert b.due(1.0) is None


def test_lines_after_a_notice_wait_for_the_next_message() -> None:
    b = Batcher()
    b.push_line("Done (3.2s)!", 0.0)
    b.push_notice("running", 0.0)
    b.push_line("<Steve> hi", 0.0)
    first = send(b, 0.0)
    assert block_lines(first) == ["Done (3.2s)!"] and first.content.endswith("\nrunning")
    assert (first.first_seq, first.last_seq, first.line_count) == (0, 0, 1)
    second = send(b, 1.0)
    assert head_lines(second) == [] and block_lines(second) == ["<Steve> hi"]


def test_a_notice_after_a_flood_follows_its_attachment() -> None:
    b = Batcher()
    lines = [f"line {i} " + "x" * 60 for i in range(100)]
    for line in lines:
        b.push_line(line, 0.0)
    b.push_notice("offline", 0.0)
    b.push_line("later", 0.0)
    out = send(b, 0.0)
    assert attachment_lines(out) == lines and out.content.endswith("```\noffline")
    assert block_lines(send(b, 1.0)) == ["later"]


def test_a_notice_waits_for_the_last_piece_of_a_split_line_and_a_failed_send_keeps_the_order() -> None:
    b = Batcher()
    b.push_line("y" * 5000, 0.0)
    b.push_notice("after the long line", 0.0)
    t, contents = 0.0, []
    first = b.take(t)
    assert first is not None and "after the long line" not in first.content
    b.done(False, t)  # put back: the order must survive a retry
    while (due := b.due(t)) is not None:
        t = max(t + 1.0, due)
        contents.append(send(b, t).content)
    # after the line's last piece (which has no room left for it), never among the pieces
    assert "after the long line" not in "".join(contents[:-1]) and len(contents) >= 3
    assert contents[-1] == "after the long line"
