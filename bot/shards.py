"""Which guilds this process serves when several processes share one bot token (plain logic, no I/O).

Discord delivers a guild's events on shard `(guild_id >> 22) % shard_count`; a process running some of the
shards (`SHARD_COUNT`, `SHARD_IDS`) serves exactly the guilds on them: their interactions, links, boards and
alerts. Work that belongs to the whole bot rather than to a guild (registering the slash commands, removing
stale global ones, pruning the audit log) is done by one process only: the one running shard 0.

The Discord request budget is shared too: Discord allows about 50 requests per second per
token, whatever the number of processes, so without a shared rate-limiting proxy each process takes its part
of 45 per second; behind one (`DISCORD_API_URL`, e.g. nirn-proxy) a process takes all of it and the proxy's
429s slow it down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.settings import Settings
from bot.store import Shards

TOTAL_PER_SECOND = 45  # Discord's global 50/s, less room for interaction replies and the odd other call
SINGLE_BURST = 3  # one process: 42/s plus a burst of 3, so no second exceeds 45
DISCORD_HOSTS = frozenset({"discord.com", "discordapp.com", "canary.discord.com", "ptb.discord.com"})


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord delivers a guild's events on."""
    return (guild_id >> 22) % shard_count


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """The shards this process runs: `count` in all (None: not sharded, one process) and `ids` of them."""

    count: int | None = None
    ids: tuple[int, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ShardPlan:
        if settings.shard_count is None:
            return cls()
        ids = settings.shard_ids or tuple(range(settings.shard_count))
        return cls(settings.shard_count, tuple(sorted(set(ids))))

    @property
    def sharded(self) -> bool:
        return self.count is not None

    @property
    def process_count(self) -> int:
        """How many processes share the token, assuming each runs as many shards as this one."""
        if self.count is None or not self.ids:
            return 1
        return math.ceil(self.count / len(self.ids))

    @property
    def runs_shared_duties(self) -> bool:
        """True for the one process that syncs commands and prunes the audit log: the one with shard 0."""
        return self.count is None or 0 in self.ids

    def serves(self, guild_id: int | None) -> bool:
        """True when this process handles the guild (DMs arrive on shard 0)."""
        if self.count is None:
            return True
        if guild_id is None:
            return 0 in self.ids
        return shard_of(guild_id, self.count) in self.ids

    def store_filter(self) -> Shards | None:
        """The store's filter for this process's rows (None: not sharded, every row is ours)."""
        return Shards(self.count, self.ids) if self.count is not None else None

    def guilds(self, guild_ids: Iterable[int]) -> tuple[int, ...]:
        """The guilds among `guild_ids` this process serves, in their order."""
        return tuple(g for g in guild_ids if self.serves(g))

    def describe(self) -> str:
        if self.count is None:
            return "not sharded"
        return f"shard{'s' if len(self.ids) != 1 else ''} {','.join(map(str, self.ids))} of {self.count}"


@dataclass(frozen=True, slots=True)
class Budget:
    """This process's share of Discord's request budget: `rate` per second with bursts of `burst`."""

    rate: float
    burst: int
    proxied: bool  # behind a shared rate-limiting proxy, which answers 429 when the token's budget is spent


def behind_proxy(api_url: str | None) -> bool:
    """True when `DISCORD_API_URL` points somewhere other than Discord itself (a proxy such as nirn-proxy)."""
    if api_url is None:
        return False
    host = (urlsplit(api_url).hostname or "").lower()
    return host not in DISCORD_HOSTS


def budget_share(plan: ShardPlan, api_url: str | None) -> Budget:
    """45 requests in any second for the whole token: all of it behind a proxy, else this process's share.

    The share is `45 / process count`, as a rate plus a burst: a token bucket grants at most `floor(burst +
    rate)` requests in any one second, which stays within the share (one process: 42 + 3). Past 45 processes a
    share falls below one request per second, which cannot be kept: each still makes one.
    """
    proxied = behind_proxy(api_url)
    share = TOTAL_PER_SECOND if proxied else TOTAL_PER_SECOND / plan.process_count
    burst = max(1, math.floor(SINGLE_BURST * share / TOTAL_PER_SECOND))
    return Budget(rate=max(share - burst, 0.1), burst=burst, proxied=proxied)
