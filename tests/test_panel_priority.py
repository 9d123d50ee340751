"""The panel budget by priority, as plain logic: the pacer's pace, the queue's order, the views' bound."""

from __future__ import annotations

import pytest

from bot.panel.pacing import Priority, Refusal, RequestPacer, RequestQueue, Ticket


def test_pacer_bursts_then_spreads() -> None:
    pacer = RequestPacer(per_minute=60, burst=3)
    assert [pacer.delay(100.0, ahead) for ahead in range(5)] == pytest.approx([0, 0, 0, 1, 2])
    for _ in range(3):
        pacer.take(100.0)
    assert pacer.delay(100.0) == pytest.approx(1.0)
    assert pacer.delay(100.5) == pytest.approx(0.5)
    assert pacer.delay(101.0) == 0


def test_pacer_slows_down_when_panel_budget_runs_low() -> None:
    pacer = RequestPacer(per_minute=6000, burst=100, low_water=30)
    assert pacer.delay(0.0) == 0
    pacer.take(0.0)
    pacer.observe(limit="720", remaining="10")
    assert pacer.delay(0.0) >= 3.0  # 10 left in the window: about one every 3 s
    assert pacer.delay(0.0, ahead=2) >= 9.0
    pacer.observe(limit="720", remaining="700")  # a new window
    assert pacer.delay(0.0) == 0


def test_pacer_blocks_after_429() -> None:
    pacer = RequestPacer()
    pacer.block(10.0, 5.0)
    assert pacer.delay(11.0) == pytest.approx(4.0)
    assert pacer.delay(16.0) == 0


def _drain(queue: RequestQueue, until: float, step: float = 0.25) -> list[tuple[float, Ticket]]:
    """Poll like the scheduler's timer would, every `step` s; the grants in order with their times."""
    grants: list[tuple[float, Ticket]] = []
    now = 0.0
    while now <= until:
        grants += [(now, t) for t in queue.poll(now).granted]
        now += step
    return grants


def test_waiting_requests_go_by_priority_then_arrival() -> None:
    pacer = RequestPacer(per_minute=60, burst=1)  # one request a second
    queue = RequestQueue(pacer, max_wait={})  # no bound here: only the order is tested
    pacer.take(0.0)  # the budget is spent for the next second
    arrivals = [Priority.VIEW, Priority.ACTION, Priority.VIEW, Priority.CREDENTIALS, Priority.ACTION]
    tickets = [queue.submit(0.0, p) for p in arrivals]
    assert all(isinstance(t, Ticket) for t in tickets)
    assert queue.poll(0.0).granted == ()
    grants = _drain(queue, until=6.0)
    order = [t.seq for _, t in grants]
    assert order == [4, 2, 5, 1, 3]  # CREDENTIALS, ACTION x2 in arrival order, VIEW x2 in arrival order
    assert [when for when, _ in grants] == pytest.approx([1, 2, 3, 4, 5])


def test_a_late_credentials_request_overtakes_waiting_actions() -> None:
    pacer = RequestPacer(per_minute=60, burst=1)
    queue = RequestQueue(pacer, max_wait={})
    pacer.take(0.0)
    first, second = queue.submit(0.0, Priority.ACTION), queue.submit(0.0, Priority.ACTION)
    late = queue.submit(0.5, Priority.CREDENTIALS)
    grants = [t for _, t in _drain(queue, until=4.0)]
    assert grants == [late, first, second]


def test_a_view_that_would_wait_too_long_is_refused_at_once() -> None:
    pacer = RequestPacer(per_minute=60, burst=1)
    queue = RequestQueue(pacer, max_wait={Priority.VIEW: 3.0})
    pacer.take(0.0)
    for _ in range(2):
        assert isinstance(queue.submit(0.0, Priority.ACTION), Ticket)  # actions queue however long
    assert isinstance(queue.submit(0.0, Priority.VIEW), Ticket)  # third in line: 3 s, within the bound
    refused = queue.submit(0.0, Priority.VIEW)
    assert isinstance(refused, Refusal) and refused.wait == pytest.approx(4.0)
    assert isinstance(queue.submit(0.0, Priority.ACTION), Ticket)
    assert len(queue) == 4


def test_a_waiting_view_gives_up_when_higher_priorities_push_it_past_its_bound() -> None:
    pacer = RequestPacer(per_minute=60, burst=1)
    queue = RequestQueue(pacer, max_wait={Priority.VIEW: 3.0})
    pacer.take(0.0)
    view = queue.submit(0.0, Priority.VIEW)
    assert isinstance(view, Ticket)
    assert queue.poll(0.0).expired == ()
    for _ in range(3):
        queue.submit(0.1, Priority.CREDENTIALS)
    result = queue.poll(0.1)
    assert [t for t, _ in result.expired] == [view]  # now 4th in line: ~4 s, past its 3 s bound
    assert result.expired[0][1] == pytest.approx(3.9)
    assert len(queue) == 3 and result.wake_in == pytest.approx(0.9)


def test_views_are_refused_while_the_panel_blocks_after_a_429_but_credentials_wait() -> None:
    pacer = RequestPacer()
    queue = RequestQueue(pacer)  # the default bound on views
    pacer.block(0.0, 10.0)
    assert isinstance(queue.submit(0.0, Priority.VIEW), Refusal)
    creds = queue.submit(0.0, Priority.CREDENTIALS)
    result = queue.poll(0.0)
    assert result.granted == () and result.wake_in == pytest.approx(10.0)
    assert queue.poll(10.0).granted == (creds,)


def test_a_cancelled_request_leaves_the_line() -> None:
    pacer = RequestPacer(per_minute=60, burst=1)
    queue = RequestQueue(pacer, max_wait={})
    pacer.take(0.0)
    gone, stays = queue.submit(0.0, Priority.ACTION), queue.submit(0.0, Priority.ACTION)
    assert isinstance(gone, Ticket)
    queue.cancel(gone)
    assert queue.poll(1.0).granted == (stays,)
    assert queue.poll(5.0).wake_in is None
