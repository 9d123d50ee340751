"""The relay's shared Discord budget as it ships: never more than 45 requests in any second."""

from __future__ import annotations

import bisect

from bot.relay.budget import RequestBudget


class FakeTime:
    """A clock that only moves when the budget sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_the_default_budget_never_grants_more_than_45_in_any_second() -> None:
    time = FakeTime()
    budget = RequestBudget(clock=time.clock, sleep=time.sleep)  # the defaults the bot uses
    grants: list[float] = []
    for _ in range(1000):
        await budget.acquire()
        grants.append(time.now)
    busiest = max(bisect.bisect_left(grants, t + 1.0) - i for i, t in enumerate(grants))
    assert busiest <= 45, f"{busiest} requests within one second"
    assert busiest >= 40  # and it does use the budget: about 42 per second
    assert grants[-1] - grants[0] < 1000 / 40


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    return max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))


async def test_requests_held_up_between_turn_and_wire_still_leave_within_45_a_second() -> None:
    # The relay takes its turn, cuts its message, writes its journal, then posts: a slow store write (or a stall
    # of the loop) holds a second's posts back, and they must not then leave together with the next second's.
    time = FakeTime()
    budget = RequestBudget(clock=time.clock, sleep=time.sleep)
    held: list[float] = []  # turns taken whose request has not left yet
    sent: list[float] = []
    for i in range(600):
        await budget.turn()
        held.append(time.now)
        if i % 100 == 99:  # every few seconds the store is slow for a moment, then everything held goes
            time.now += 0.9
        if i % 100 == 99 or len(held) > 100:
            for _ in held:
                await budget.wire()
                sent.append(time.now)
            held.clear()
    assert len(sent) == 600 and busiest_second(sent) <= 45


async def test_acquire_is_a_turn_and_the_wire_at_once() -> None:
    time = FakeTime()
    budget = RequestBudget(clock=time.clock, sleep=time.sleep)
    sent = []
    for _ in range(300):
        await budget.acquire()
        sent.append(time.now)
    assert 40 <= busiest_second(sent) <= 45 and budget.granted == 300
