"""Console relay end to end: emulator → Wings connection → relay → real discord.py client → fake Discord."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import discord
import pytest

from bot.panel.client import PanelClient
from bot.relay.budget import RequestBudget
from bot.relay.discord_poster import DiscordPoster
from bot.relay.service import ConsoleRelay
from bot.settings import ColorMode
from bot.wings.connection import Timing
from bot.wings.manager import ConnectionManager
from tests.e2e_helpers import block_lines, posted_lines
from tests.fakes.emulator import Emulator, FakeServer
from tests.fakes.fake_discord import FakeDiscord
from tests.waiting import wait_until

GUILD, CHANNEL, OTHER = 100, 200, 201
TIMING = Timing(backoff_min=0.05, backoff_max=0.3, lost_grace=0.5, gap_first_line=0.3, gap_quiet=0.15)


@dataclass
class Rig:
    emu: Emulator
    srv: FakeServer
    fake: FakeDiscord
    client: discord.Client
    manager: ConnectionManager
    relay: ConsoleRelay
    stopped: list[tuple[int, str, str]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def rig(
    *, bucket_window: float = 5.0, min_interval: float = 1.0, mode: ColorMode = ColorMode.PLAIN
) -> AsyncIterator[Rig]:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord(bucket_window=bucket_window) as fake:
        srv = emu.add_server("Survival", state="running")
        guild = fake.add_guild(GUILD)
        guild.add_channel(CHANNEL, "console")
        guild.add_channel(OTHER, "other")
        client = discord.Client(intents=discord.Intents(guilds=True))
        async with fake.run_client(client), PanelClient(emu.panel_url, emu.api_key) as panel:
            manager = ConnectionManager(panel, origin=emu.panel_url, timing=TIMING)
            stopped: list[tuple[int, str, str]] = []

            async def on_stopped(channel_id: int, server: str, reason: str) -> None:
                stopped.append((channel_id, server, reason))

            relay = ConsoleRelay(
                manager,
                DiscordPoster(client),
                mode=mode,
                min_interval=min_interval,
                on_link_stopped=on_stopped,
            )
            try:
                yield Rig(emu, srv, fake, client, manager, relay, stopped)
            finally:
                await relay.close()
                await manager.close()


async def linked(r: Rig, channel: int = CHANNEL) -> None:
    await r.relay.link(r.srv.identifier, channel, server_name=r.srv.name)
    await r.manager.connection(r.srv.identifier).wait_ready(3)


async def test_every_line_once_in_order_without_429_or_mentions() -> None:
    async with rig() as r:
        await linked(r)
        sent = []
        for burst in range(10):
            for i in range(40):
                line = f"[{burst:02d}:{i:02d}] <Steve> @everyone look at this"
                sent.append(line)
                r.srv.emit_console(line)
            await asyncio.sleep(0.3)
        await wait_until(lambda: len(posted_lines(r.fake.messages(CHANNEL))) >= len(sent), 10)
        messages = r.fake.messages(CHANNEL)
        assert posted_lines(messages) == sent
        assert r.fake.count_429 == 0
        assert all(m.allowed_mentions == {"parse": []} for m in messages)
        assert all(0 < len(m.content) <= 2000 for m in messages)
        # batched: far fewer messages than lines, about one per second
        assert len(messages) <= 8


async def test_flood_overflows_into_an_attachment_with_nothing_lost() -> None:
    async with rig() as r:
        await linked(r)
        sent = [f"mod loading step {i:05d} " + "x" * 60 for i in range(3000)]
        for start in range(0, len(sent), 1000):  # under Wings' own throttle of 2000 lines per 100 ms
            for line in sent[start : start + 1000]:
                r.srv.emit_console(line)
            await asyncio.sleep(0.15)
        await wait_until(lambda: len(posted_lines(r.fake.messages(CHANNEL))) >= len(sent), 10)
        messages = r.fake.messages(CHANNEL)
        assert posted_lines(messages) == sent
        with_file = [m for m in messages if m.attachments]
        assert with_file, "the flood should have gone out as a file"
        # the message body shows the most recent lines of what the file holds
        body = block_lines(with_file[0].content)
        assert body and with_file[0].attachments[0][1].decode().splitlines()[-len(body) :] == body
        assert "in the attached file" in with_file[0].content
        assert r.fake.count_429 == 0


async def test_fence_breakout_and_escape_codes_are_neutralised() -> None:
    async with rig() as r:
        await linked(r)
        r.srv.emit_console("before ``` @here <@&123456789012345678>")
        r.srv.emit_console("\x1b[31mred\x1b[0m \x1b]0;title\x07done``")
        await wait_until(lambda: len(r.fake.messages(CHANNEL)) >= 1)
        await asyncio.sleep(0.3)
        content = "".join(m.content for m in r.fake.messages(CHANNEL))
        assert content.count("```") == 2  # only the message's own fences
        assert "\x1b" not in content and "title" not in content
        assert "@here" in content and "red done" in content.replace("\u200b", "")


async def test_status_changes_and_reports_are_posted_as_short_lines() -> None:
    async with rig() as r:
        await linked(r)
        await r.srv.set_power("stopping")
        await r.srv.set_power("offline")
        await wait_until(
            lambda: "Server is now offline" in "".join(m.content for m in r.fake.messages(CHANNEL))
        )
        await r.srv.delete()
        await wait_until(lambda: "deleted" in "".join(m.content for m in r.fake.messages(CHANNEL)))
        assert r.fake.count_429 == 0


async def test_forbidden_channel_stops_the_link_and_reports_it() -> None:
    async with rig() as r:
        await linked(r)
        r.fake.fail_next("POST", f"/channels/{CHANNEL}/messages", 403)
        r.srv.emit_console("nobody will see this")
        await wait_until(lambda: bool(r.stopped))
        assert r.stopped[0][0] == CHANNEL and r.stopped[0][1] == r.srv.identifier
        assert "Send Messages" in r.stopped[0][2]  # the fake answers 50013 Missing Permissions
        assert not r.relay.is_linked(r.srv.identifier, CHANNEL)
        r.srv.emit_console("still nobody")
        await asyncio.sleep(0.5)
        assert r.fake.messages(CHANNEL) == []


async def test_server_errors_are_retried_without_losing_the_batch() -> None:
    async with rig(min_interval=0.2) as r:
        await linked(r)
        r.fake.fail_next("POST", f"/channels/{CHANNEL}/messages", 503, times=2)
        sent = [f"line {i}" for i in range(20)]
        for line in sent:
            r.srv.emit_console(line)
        await wait_until(lambda: len(posted_lines(r.fake.messages(CHANNEL))) >= len(sent), 10)
        assert posted_lines(r.fake.messages(CHANNEL)) == sent
        sender = r.relay.senders()[0]
        assert sender.failures == 2 and sender.last_error is None


async def test_gap_after_wings_restart_is_filled_without_duplicates() -> None:
    async with rig(min_interval=0.3) as r:
        await linked(r)
        for i in range(5):
            r.srv.emit_console(f"before {i}")
        await wait_until(lambda: len(posted_lines(r.fake.messages(CHANNEL))) >= 5)
        await r.emu.restart_wings()
        r.srv.emit_console("while the bot was away")
        await wait_until(lambda: "while the bot was away" in posted_lines(r.fake.messages(CHANNEL)))
        r.srv.emit_console("after")
        await wait_until(lambda: "after" in posted_lines(r.fake.messages(CHANNEL)))
        assert posted_lines(r.fake.messages(CHANNEL)) == [f"before {i}" for i in range(5)] + [
            "while the bot was away",
            "after",
        ]


async def test_two_servers_in_one_channel_are_prefixed_and_other_channels_get_their_own() -> None:
    async with rig(min_interval=0.2) as r:
        second = r.emu.add_server("Creative", state="running")
        await linked(r)
        await linked(r, OTHER)
        await r.relay.link(second.identifier, CHANNEL, server_name="Creative")
        await r.manager.connection(second.identifier).wait_ready(3)
        r.srv.emit_console("from survival")
        second.emit_console("from creative")
        await wait_until(lambda: len(posted_lines(r.fake.messages(CHANNEL))) >= 2)
        await wait_until(lambda: len(posted_lines(r.fake.messages(OTHER))) >= 1)
        assert sorted(posted_lines(r.fake.messages(CHANNEL))) == [
            "[Creative] from creative",
            "[Survival] from survival",
        ]
        assert posted_lines(r.fake.messages(OTHER)) == ["from survival"]
        assert await r.relay.unlink(second.identifier, CHANNEL)
        assert not await r.relay.unlink(second.identifier, CHANNEL)


async def test_a_shared_channel_does_not_show_a_server_s_blank_lines_as_its_name() -> None:
    async with rig(min_interval=0.2) as r:
        second = r.emu.add_server("Creative", state="running")
        await linked(r)
        await r.relay.link(second.identifier, CHANNEL, server_name="Creative")
        await r.manager.connection(second.identifier).wait_ready(3)
        for blank in ("", "   ", "\x1b[0m", "\x1b[2J\x1b[H"):
            r.srv.emit_console(blank)
        await asyncio.sleep(0.5)  # a batch of nothing but blank lines: no message at all
        assert r.fake.messages(CHANNEL) == []
        r.srv.emit_console("shown")
        r.srv.emit_console("   ")
        r.srv.emit_console("after a blank line")
        await wait_until(lambda: len(posted_lines(r.fake.messages(CHANNEL))) >= 3)
        assert posted_lines(r.fake.messages(CHANNEL)) == [
            "[Survival] shown",
            "   ",
            "[Survival] after a blank line",
        ]


async def test_budget_shares_requests_fairly() -> None:
    now = [0.0]

    async def fake_sleep(delay: float) -> None:
        now[0] += delay

    budget = RequestBudget(rate=45, burst=10, clock=lambda: now[0], sleep=fake_sleep)
    order: list[int] = []

    async def channel(i: int) -> None:
        for _ in range(3):
            await budget.acquire()
            order.append(i)
            await asyncio.sleep(0)

    await asyncio.gather(*(channel(i) for i in range(200)))
    assert len(order) == 600
    assert now[0] == pytest.approx((600 - 10) / 45, rel=0.01)  # never above 45/s after the burst
    # fairness: every channel had its first slot before any channel had its third
    first_third = min(i for i, c in enumerate(order) if order[:i].count(c) == 2)
    assert len(set(order[:first_third])) == 200


async def test_discord_429_is_waited_out_without_losing_lines() -> None:
    async with rig(min_interval=0.2) as r:
        await linked(r)
        r.fake.fail_next("POST", f"/channels/{CHANNEL}/messages", 429, retry_after=0.5)
        sent = [f"line {i}" for i in range(10)]
        for line in sent:
            r.srv.emit_console(line)
        await wait_until(lambda: len(posted_lines(r.fake.messages(CHANNEL))) >= len(sent))
        assert posted_lines(r.fake.messages(CHANNEL)) == sent
        assert r.relay.senders()[0].failures == 0  # discord.py retried after retry_after itself


async def test_ansi_mode_keeps_discord_colours_and_closes_them() -> None:
    async with rig(mode=ColorMode.ANSI) as r:
        await linked(r)
        r.srv.emit_console("\x1b[38;5;196mred alert\x1b[0m and \x1b[92mbright green")
        r.srv.emit_console("\x1b[2Jstill green\x1b]0;title\x07")
        await wait_until(lambda: len(r.fake.messages(CHANNEL)) >= 1)
        await asyncio.sleep(0.3)
        content = "".join(m.content for m in r.fake.messages(CHANNEL))
        assert content.startswith("```ansi\n")
        assert "\x1b[31mred alert" in content and "\x1b[32mbright green" in content
        assert "\x1b[2J" not in content and "title" not in content and "38;5" not in content
        assert content.rstrip("`\n").endswith("\x1b[0m")  # the colour left open is closed before the fence


async def test_a_message_discord_refuses_is_skipped_and_said_not_retried_forever() -> None:
    async with rig(min_interval=0.2) as r:
        await linked(r)
        r.fake.fail_next("POST", f"/channels/{CHANNEL}/messages", 400)
        r.srv.emit_console("refused line")
        await wait_until(
            lambda: any("Discord refused a message" in m.content for m in r.fake.messages(CHANNEL))
        )
        r.srv.emit_console("next line")
        await wait_until(lambda: "next line" in posted_lines(r.fake.messages(CHANNEL)))
        sender = r.relay.senders()[0]
        assert sender.lines_rejected == 1 and sender.stopped is None
        assert "refused line" not in posted_lines(r.fake.messages(CHANNEL))


async def test_a_line_break_inside_one_frame_becomes_two_lines() -> None:
    async with rig(min_interval=0.2) as r:
        await linked(r)
        r.srv.emit("console output", "Loading\r\nDone (3.2s)!")  # Wings' " \r" -> "\r\n" rewrite
        await wait_until(lambda: len(posted_lines(r.fake.messages(CHANNEL))) >= 2)
        assert posted_lines(r.fake.messages(CHANNEL)) == ["Loading", "Done (3.2s)!"]


async def test_a_channel_linked_during_a_reported_outage_says_so_at_once() -> None:
    async with rig(min_interval=0.2) as r:
        r.emu.auth_latency = 1000.0  # Wings takes the socket and never answers `auth`
        r.manager.timing = dataclasses.replace(TIMING, auth_timeout=1.0)
        await r.relay.link(r.srv.identifier, CHANNEL, server_name=r.srv.name)
        lost = "Lost the console connection (no auth success within 1 s); retrying."
        await wait_until(lambda: any(lost in m.content for m in r.fake.messages(CHANNEL)), 10)
        await r.relay.link(r.srv.identifier, OTHER, server_name=r.srv.name)  # a second channel, later
        await wait_until(lambda: any(lost in m.content for m in r.fake.messages(OTHER)), 3)
