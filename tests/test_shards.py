"""bot.shards: which guilds a process serves, which process does the shared duties, its Discord budget."""

from __future__ import annotations

import math

import pytest

from bot.settings import Settings
from bot.shards import ShardPlan, behind_proxy, budget_share, shard_of
from bot.store import Shards


def settings(count: int | None = None, ids: tuple[int, ...] | None = None) -> Settings:
    return Settings(
        discord_token="t", panel_url="http://panel", panel_api_key="k", shard_count=count, shard_ids=ids
    )


def guild(shard: int, count: int) -> int:
    g = (1_100_000_000_000 + shard) << 22
    assert shard_of(g, count) == shard % count
    return g


def test_unsharded_serves_everything_and_does_the_shared_duties() -> None:
    plan = ShardPlan.from_settings(settings())
    assert not plan.sharded and plan.process_count == 1 and plan.runs_shared_duties
    assert plan.serves(guild(1, 2)) and plan.serves(None)
    assert plan.store_filter() is None
    assert plan.describe() == "not sharded"


def test_a_process_serves_the_guilds_on_its_shards() -> None:
    plan = ShardPlan.from_settings(settings(4, (1, 3)))
    assert plan.process_count == 2 and not plan.runs_shared_duties
    assert [plan.serves(guild(s, 4)) for s in range(4)] == [False, True, False, True]
    assert not plan.serves(None)  # direct messages arrive on shard 0
    assert plan.guilds([guild(0, 4), guild(3, 4)]) == (guild(3, 4),)
    assert plan.store_filter() == Shards(4, (1, 3))
    assert plan.describe() == "shards 1,3 of 4"
    zero = ShardPlan.from_settings(settings(2, (0,)))
    assert zero.runs_shared_duties and zero.serves(None) and zero.describe() == "shard 0 of 2"


@pytest.mark.parametrize(
    ("count", "ids", "processes"), [(2, (0,), 2), (2, (0, 1), 1), (3, (0,), 3), (5, (0, 1), 3), (1, (0,), 1)]
)
def test_process_count(count: int, ids: tuple[int, ...], processes: int) -> None:
    assert ShardPlan.from_settings(settings(count, ids)).process_count == processes


def test_one_process_keeps_42_per_second_and_a_burst_of_3() -> None:
    budget = budget_share(ShardPlan(), None)
    assert (budget.rate, budget.burst, budget.proxied) == (42, 3, False)


@pytest.mark.parametrize("processes", [2, 3, 4, 7, 9, 30, 45])
def test_processes_share_45_per_second_so_no_second_exceeds_it_together(processes: int) -> None:
    plan = ShardPlan(processes, (0,))
    budget = budget_share(plan, "https://discord.com/api/v10")
    # A token bucket grants at most floor(burst + rate) requests in any one second.
    assert budget.burst >= 1 and budget.rate > 0
    assert processes * math.floor(budget.rate + budget.burst) <= 45
    assert not budget.proxied


def test_behind_a_shared_proxy_a_process_takes_the_whole_budget() -> None:
    budget = budget_share(ShardPlan(2, (1,)), "http://nirn-proxy:8080/api/v10")
    assert (budget.rate, budget.burst, budget.proxied) == (42, 3, True)
    assert behind_proxy("http://127.0.0.1:9999/api/v10")
    assert not behind_proxy(None) and not behind_proxy("https://discord.com/api/v10")
