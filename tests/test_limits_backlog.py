"""Outbound pacing (hardened Wings' buckets) and gap-fill alignment: plain logic, fake clocks."""

from __future__ import annotations

import itertools

from bot.buckets import TokenBucket
from bot.wings.backlog import RecentLines, new_lines
from bot.wings.limits import OutboundLimits


def test_bucket_bursts_then_refills() -> None:
    bucket = TokenBucket(capacity=2, period=5.0)
    for _ in range(2):
        assert bucket.wait_time(0.0) == 0
        bucket.take(0.0)
    assert bucket.wait_time(0.0) == 5.0
    assert bucket.wait_time(2.5) == 2.5
    assert bucket.wait_time(5.0) == 0


def test_bucket_reserve_queues_into_debt() -> None:
    bucket = TokenBucket(capacity=2, period=1.0)
    assert [bucket.reserve(0.0) for _ in range(4)] == [0.0, 0.0, 1.0, 2.0]  # each reservation waits its turn
    assert bucket.reserve(3.0) == 0.0  # the debt is paid off by then


def _sent_per_window(event: str, count: int) -> list[float]:
    """Send `count` frames as fast as the limits allow; return the send times."""
    limits, now, times = OutboundLimits(), 0.0, []
    for _ in range(count):
        now += limits.wait_time(event, now)
        limits.take(event, now)
        times.append(now)
    return times


def test_commands_burst_ten_then_about_one_per_second() -> None:
    times = _sent_per_window("send command", 20)
    assert times[9] == 0.0  # a burst of 10
    gaps = [b - a for a, b in itertools.pairwise(times[10:])]
    assert all(1.0 <= g <= 1.2 for g in gaps)  # sustained just under Wings' 1/s refill


def test_send_logs_two_per_five_seconds() -> None:
    times = _sent_per_window("send logs", 4)
    assert times[:2] == [0.0, 0.0] and times[2] >= 5.0 and times[3] - times[2] >= 5.0


def test_set_state_uses_the_shared_default_bucket() -> None:
    limits = OutboundLimits()
    for _ in range(4):
        limits.take("set state", 0.0)
    assert limits.wait_time("send stats", 0.0) > 0  # same `_default` bucket
    assert limits.wait_time("send command", 0.0) == 0


def test_global_bucket_caps_everything() -> None:
    limits = OutboundLimits()
    for i in range(10):
        limits.take("send command" if i % 2 else "auth", 0.0)
    assert limits.wait_time("send stats", 0.0) >= 0.2


def test_new_lines_after_overlap() -> None:
    delivered = ["a", "b", "c", "d"]
    assert new_lines(delivered, ["b", "c", "d", "e", "f"]) == ["e", "f"]


def test_new_lines_when_nothing_new() -> None:
    assert new_lines(["x", "y", "z"], ["w", "x", "y", "z"]) == []


def test_new_lines_gap_longer_than_replay() -> None:
    assert new_lines(["a", "b"], ["q", "r", "s"]) == ["q", "r", "s"]


def test_new_lines_repeated_text_is_aligned_on_the_latest_full_match() -> None:
    delivered = ["Saving...", "Saved", "tick", "Saving...", "Saved"]
    replay = ["tick", "Saving...", "Saved", "join", "Saving...", "Saved", "tick"]
    # "Saving...","Saved" at the end of the replay is preceded by "join", not "tick": the match is earlier
    assert new_lines(delivered, replay) == ["join", "Saving...", "Saved", "tick"]


def test_new_lines_without_history_keeps_everything() -> None:
    assert new_lines([], ["a"]) == ["a"]


def test_recent_lines_is_bounded() -> None:
    recent = RecentLines(size=3)
    for line in "abcde":
        recent.add(line)
    assert recent.snapshot() == ["c", "d", "e"] and len(recent.snapshot()) == 3
