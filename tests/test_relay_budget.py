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
