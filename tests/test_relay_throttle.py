"""A shared rate-limiting proxy in front of Discord (nirn-proxy): its 429s slow the relay, and lose nothing.

discord.py retries only a 429 that carries Discord's `Via` header; a proxy's 429 is raised to the caller, so
the relay itself waits what the proxy asks (`retry_after` in the body, or `Retry-After`) and the shared
budget slows down for every channel.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import discord
import pytest

from bot.relay.batcher import Batcher
from bot.relay.budget import RequestBudget
from bot.relay.discord_poster import DiscordPoster
from bot.relay.sender import PostThrottled
from tests.e2e_helpers import GUILD, build_world, running_bot, settings_for
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord
from tests.shard_helpers import console_lines, tally
from tests.waiting import wait_until

# -- the budget and the batcher, with a fake clock ----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay


async def test_a_429_slows_the_budget_once_per_wait_and_it_comes_back_slowly() -> None:
    clock = Clock()
    budget = RequestBudget(40, 1, clock=clock, sleep=clock.sleep)
    budget.throttled(0.5)
    assert budget.rate == pytest.approx(30)
    budget.throttled(0.5)  # the same burst of refusals: one signal
    assert budget.rate == pytest.approx(30) and budget.throttles == 2
    clock.now = 0.6
    budget.throttled(0.5)
    assert budget.rate == pytest.approx(22.5)
    for _ in range(20):  # never below a tenth of the configured rate
        clock.now += 1
        budget.throttled(0.5)
    assert budget.rate == pytest.approx(4)
    # Paced at the slower rate now: 40 slots take about 10 s at 4/s.
    start = clock.now = clock.now + 0.6
    for _ in range(3):
        await budget.acquire()
    assert clock.now - start >= 0.25
    # ...and each second without a 429 gives back 5 % of the configured rate, up to all of it.
    clock.now += 30
    await budget.acquire()
    assert budget.rate == pytest.approx(40)


def test_a_throttled_message_goes_back_whole_and_waits_what_it_was_told() -> None:
    b = Batcher(min_interval=0.2)
    for i in range(3):
        b.push_line(f"line {i}", 0.0)
    first = b.take(0.0)
    assert first is not None and first.line_count == 3
    b.throttled(0.1, 2.5)
    b.push_line("line 3", 0.5)
    assert b.due(0.5) == pytest.approx(2.6)
    again = b.take(2.6)
    assert again is not None and again.line_count == 4 and again.first_seq == 0
    b.done(False, 2.7)  # a real failure afterwards starts the backoff from the bottom
    assert b.due(2.7) == pytest.approx(2.7 + 0.2)


# -- the fake Discord as a proxy ----------------------------------------------------------------------------


async def test_the_proxys_429_is_raised_by_discord_py_not_retried() -> None:
    async with FakeDiscord() as fake:
        fake.add_guild(GUILD).add_channel(10, "console")
        client = discord.Client(intents=discord.Intents.none())
        async with fake.run_client(client):
            fake.proxy_limit = 1
            fake.proxy_window = 3.0
            channel = client.get_partial_messageable(10)
            await channel.send("passes")
            with pytest.raises(discord.HTTPException) as caught:
                await channel.send("refused")
            assert caught.value.status == 429
            assert "Via" not in caught.value.response.headers
            assert int(caught.value.response.headers["Retry-After"]) >= 2
            with pytest.raises(PostThrottled) as throttled:
                await DiscordPoster(client).post(10, "refused too", None)
            assert 2.0 < throttled.value.retry_after <= 3.0  # the body's exact figure, not the header's
            assert [m.content for m in fake.messages(10)] == ["passes"]
            assert fake.proxy_429s == 2


# -- end to end: a flood behind the proxy -------------------------------------------------------------------

SERVERS = ("1a2b3c4d", "5e6f7a8b", "9c0d1e2f")


async def test_a_flood_behind_the_proxy_loses_no_line_and_posts_none_twice(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord(bucket_limit=50, bucket_window=1.0) as fake:
        servers = [
            emu.add_server(f"Server {i}", identifier=ident, state="running")
            for i, ident in enumerate(SERVERS)
        ]
        build_world(fake)
        channels = [GUILD + 100 + i for i in range(len(SERVERS))]
        for channel in channels:
            fake.guilds[GUILD].add_channel(channel, f"console-{channel}")
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            for srv, channel in zip(servers, channels, strict=True):
                await rig.run("console", {"server": srv.identifier, "channel": channel}, subcommand="link")
            for srv in servers:
                await rig.connected(srv.identifier)
            fake.proxy_limit = 4  # requests per second through the proxy, for everything the bot does
            expected: dict[int, list[str]] = {c: [] for c in channels}
            for n in range(40):
                for srv, channel in zip(servers, channels, strict=True):
                    for k in range(5):
                        line = f"{srv.identifier} line {n:03d}.{k}"
                        srv.emit_console(line)
                        expected[channel].append(line)
                await asyncio.sleep(0.05)

            def all_posted() -> bool:
                return all(set(expected[c]) <= set(console_lines(fake.messages(c))) for c in channels)

            await wait_until(all_posted, timeout=30)
            assert fake.proxy_429s > 0
            for channel in channels:
                lost, duplicated = tally(console_lines(fake.messages(channel)), expected[channel])
                assert (lost, duplicated) == ([], [])
                assert console_lines(fake.messages(channel)) == expected[channel]  # in order, too
            senders = rig.bot.relay.senders()
            assert sum(s.throttled for s in senders) > 0 and all(s.failures == 0 for s in senders)
            assert rig.bot.discord_budget.throttles > 0
            # After each refusal the channel waited what the proxy asked before trying again.
            for at, path, retry_after in fake.proxy_refusals:
                later = [r.at for r in fake.requests if r.path == path and r.at > at]
                if later:
                    assert later[0] - at >= retry_after - 0.01, (path, at, retry_after, later[0])
