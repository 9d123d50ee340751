"""Crash and outage alerts end to end: the emulator crashes, stops and loses servers; the fake Discord watches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.alerts.service import AlertTiming
from bot.app import WingbeatBot
from bot.settings import Settings
from bot.store import How
from bot.wings.events import ConnectionState
from bot.wings.frames import PowerState
from tests.e2e_helpers import ADMIN, CONSOLE, GUILD, TIMING, USER, Rig, build_world, settings_for
from tests.fakes.emulator import CRASH_HEADER, Emulator
from tests.fakes.fake_discord import FakeDiscord, PostedMessage
from tests.waiting import wait_until

ALERTS = 900000000000000020
ONCALL = 900000000000000021
SURVIVAL, CREATIVE, LOBBY = "a1b2c3d4", "e5f6a7b8", "10b2c3d4"
ALERT_TIMING = AlertTiming(
    tick=0.1, crash_window=0.6, report_window=0.4, unreachable_after=1.5, stop_request_window=10.0, retry=0.2
)


@contextlib.asynccontextmanager
async def alert_bot(emu: Emulator, fake: FakeDiscord, settings: Settings) -> AsyncIterator[Rig]:
    bot = WingbeatBot(
        settings,
        timing=TIMING,
        relay_interval=0.2,
        catalog_refresh=30.0,
        idle_close=5.0,
        panel_timeout=3.0,
        guild_ready_timeout=0.05,
        board_tick=0.1,
        alert_timing=ALERT_TIMING,
    )
    async with fake.run_client(bot, ready_timeout=8.0):
        yield Rig(emu, fake, bot)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Emulator, FakeDiscord, Settings]]:
    async with Emulator(stats_interval=0.5, start_delay=0.2, stop_delay=0.2) as emu, FakeDiscord() as fake:
        emu.add_server("Survival", identifier=SURVIVAL, state="running")
        emu.add_server("Creative", identifier=CREATIVE, state="running")
        emu.add_server("Lobby", identifier=LOBBY, state="running")
        build_world(fake)
        guild = fake.guilds[GUILD]
        guild.add_channel(ALERTS, "alerts")
        guild.add_role(ONCALL, "On call")
        yield emu, fake, replace(settings_for(emu, fake, tmp_path), status_interval=0.5)


@pytest.fixture
async def rig(world: tuple[Emulator, FakeDiscord, Settings]) -> AsyncIterator[Rig]:
    async with alert_bot(*world) as r:
        yield r


# -- helpers ------------------------------------------------------------------------------------------------


async def alerts_on(rig: Rig, *, role: int | None = ONCALL) -> None:
    options: dict[str, object] = {"channel": ALERTS}
    if role is not None:
        options["role"] = role
    inter = await rig.run("alerts", options, subcommand="set")
    assert "now go to" in inter.text, inter.text
    await rig.bot.catalog.refresh()
    await wait_until(lambda: rig.bot.alerts.watched == 3)
    await wait_until(lambda: all(h.state is ConnectionState.CONNECTED for h in rig.bot.manager.health()))


def alerts(rig: Rig) -> list[PostedMessage]:
    return rig.fake.messages(ALERTS)


async def alert_saying(rig: Rig, needle: str, timeout: float = 8.0) -> PostedMessage:
    await rig.fake.wait_for(lambda: any(needle in m.content for m in alerts(rig)), timeout, repr(needle))
    return next(m for m in alerts(rig) if needle in m.content)


async def sentinel(rig: Rig) -> None:
    """Crash Lobby and wait for its alert: anything another server's earlier events caused is posted by then."""
    rig.emu.crash(rig.emu.server(LOBBY), restart=False)
    await alert_saying(rig, "**Lobby**")


# -- crashes ----------------------------------------------------------------------------------------------


async def test_a_crash_is_one_alert_with_its_exit_code_then_one_back_online(rig: Rig) -> None:
    await alerts_on(rig)
    rig.emu.crash(rig.emu.server(CREATIVE), exit_code=137, oom=True)
    first = await alert_saying(rig, "crashed")
    assert first.content == (
        f"<@&{ONCALL}> 💥 **Creative** (`{CREATIVE}`) crashed (exit code 137, out of memory). Wings is restarting it."
    )
    back = await alert_saying(rig, "back online after")
    assert back.content.startswith(f"<@&{ONCALL}> ✅ **Creative** (`{CREATIVE}`) is back online after ")
    await sentinel(rig)
    creative = [m for m in alerts(rig) if "Creative" in m.content]
    assert len(creative) == 2
    assert rig.fake.count_429 == 0


async def test_a_crash_report_sent_as_daemon_messages_is_read_too(rig: Rig) -> None:
    # Wings prints its crash report as prefixed console lines; a build that sends `daemon message`s instead
    # still gets a crash alert, not an unexplained stop.
    await alerts_on(rig)
    srv = rig.emu.server(CREATIVE)
    await srv.set_power("offline")
    srv.emit("daemon message", CRASH_HEADER)
    srv.emit("daemon message", "Exit code: 139")
    srv.emit("daemon message", "Out of memory: false")
    srv.emit("daemon message", "Aborting automatic restart, last crash occurred less than 60 seconds ago.")
    first = await alert_saying(rig, "crashed")
    assert "(exit code 139)" in first.content and "did not restart it" in first.content
    await sentinel(rig)
    assert [m for m in alerts(rig) if "Creative" in m.content] == [first]


async def test_only_the_configured_role_can_be_pinged(rig: Rig) -> None:
    rig.emu.server(CREATIVE).name = "@everyone <@&1234567890123456789> Creative"
    await alerts_on(rig)
    rig.emu.crash(rig.emu.server(CREATIVE), restart=False)
    message = await alert_saying(rig, "crashed")
    mentions = message.allowed_mentions
    assert mentions is not None
    assert mentions.get("parse") == []
    assert [int(r) for r in mentions.get("roles", [])] == [ONCALL]
    assert "users" not in mentions and not mentions.get("replied_user")
    assert "@everyone" not in message.content and "<@&1234567890123456789>" not in message.content


async def test_without_a_role_nobody_is_pinged(rig: Rig) -> None:
    await alerts_on(rig, role=None)
    rig.emu.crash(rig.emu.server(CREATIVE), restart=False)
    message = await alert_saying(rig, "crashed")
    assert message.allowed_mentions == {"parse": []}
    assert not message.content.startswith("<@&")


async def test_an_unexpected_stop_without_crash_lines(rig: Rig) -> None:
    await alerts_on(rig)
    srv = rig.emu.server(CREATIVE)
    await srv.set_power("offline")  # straight from running, and Wings says nothing about a crash
    stop = await alert_saying(rig, "stopped unexpectedly")
    assert "**Creative**" in stop.content
    srv.handle_power("start")
    await alert_saying(rig, "back online after")
    assert len(alerts(rig)) == 2


# -- stops someone asked for -----------------------------------------------------------------------------


async def test_requested_stops_raise_no_alert(rig: Rig) -> None:
    await alerts_on(rig)
    stop = await rig.run("power", {"server": "Creative", "action": "stop"})
    assert "stopped" in stop.text
    # The emulator kills like an old Wings, straight to offline: only Wingbeat's own mark explains it.
    kill = await rig.run("power", {"server": "Survival", "action": "kill"})
    assert "killed" in kill.text
    rig.emu.server(SURVIVAL).handle_power("start")
    await wait_until(lambda: rig.emu.server(SURVIVAL).state == "running")
    rig.emu.server(SURVIVAL).handle_power("stop")  # like the panel's own Stop button: through `stopping`
    await wait_until(lambda: rig.emu.server(SURVIVAL).state == "offline")
    # The egg's stop command typed as a console command: Wings marks the server `stopping` itself.
    rig.emu.server(SURVIVAL).handle_power("start")
    await wait_until(lambda: rig.emu.server(SURVIVAL).state == "running")
    typed = await rig.run("command", {"server": "Survival", "command": "stop"})
    assert "Sent `stop`" in typed.text, typed.text
    await wait_until(lambda: rig.emu.server(SURVIVAL).state == "offline")
    await sentinel(rig)
    assert [m.content for m in alerts(rig) if "Lobby" not in m.content] == []


async def test_restart_and_stop_through_card_buttons_raise_no_alert(rig: Rig) -> None:
    await alerts_on(rig)
    inter = await rig.run("board", {"server": "Creative"}, subcommand="card")
    assert "Posted" in inter.text
    [card] = [m for m in rig.fake.messages(CONSOLE) if m.embeds]
    restart = await rig.fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:power:{CREATIVE}:restart")
    await restart.wait_done()
    assert "restarted" in restart.text
    ask = await rig.fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:power:{CREATIVE}:stop")
    await ask.wait_done()
    assert ask.message is not None
    confirm = await rig.fake.click(GUILD, CONSOLE, ADMIN, ask.message, f"wingbeat:confirm:{CREATIVE}:stop")
    await rig.fake.wait_for(lambda: "stopped" in confirm.all_text, 8.0)
    await sentinel(rig)
    assert [m.content for m in alerts(rig) if "Lobby" not in m.content] == []


async def test_a_stop_missed_during_a_quick_reconnect_is_no_alert(
    world: tuple[Emulator, FakeDiscord, Settings],
) -> None:
    # The socket comes back long before the next look at the connections' health (a slow tick here): the
    # first `status` on the new socket only says where things stand, not that the server went down unasked.
    emu, fake, settings = world
    slow = replace(ALERT_TIMING, tick=60.0)
    bot = WingbeatBot(
        settings, timing=TIMING, catalog_refresh=30.0, guild_ready_timeout=0.05, alert_timing=slow
    )
    async with fake.run_client(bot, ready_timeout=8.0):
        rig = Rig(emu, fake, bot)
        await alerts_on(rig)
        srv = emu.server(CREATIVE)
        await wait_until(lambda: (conn := bot.manager.peek(CREATIVE)) is not None and conn.power is not None)
        emu.fail_next("GET", f"/servers/{CREATIVE}/websocket", 502, times=10_000)
        await emu.drop_sockets(srv)
        srv.handle_power("stop")  # someone stops it on the panel while Wingbeat is reconnecting
        await wait_until(lambda: srv.state == "offline")
        emu.failures.clear()
        await wait_until(lambda: (conn := bot.manager.peek(CREATIVE)) is not None and conn.reconnects >= 1)
        await wait_until(lambda: bot.manager.peek(CREATIVE).power is PowerState.OFFLINE)  # type: ignore[union-attr]
        srv.handle_power("start")  # starting would settle an unexplained `offline` as an unexpected stop
        await wait_until(lambda: srv.state == "running")
        await sentinel(rig)
        assert [m.content for m in alerts(rig) if "Lobby" not in m.content] == []


# -- outages ----------------------------------------------------------------------------------------------


async def test_an_unreachable_server_then_reachable_again(rig: Rig) -> None:
    await alerts_on(rig)
    srv = rig.emu.server(CREATIVE)
    rig.emu.fail_next("GET", f"/servers/{CREATIVE}/websocket", 502, times=10_000)
    await rig.emu.drop_sockets(srv)
    down = await alert_saying(rig, "unreachable")
    assert "**Creative**" in down.content and "127.0.0.1" not in down.content
    rig.emu.failures.clear()
    up = await alert_saying(rig, "reachable again: back online after")
    assert "**Creative**" in up.content
    assert len(alerts(rig)) == 2


async def test_a_server_wingbeat_may_not_connect_to_is_no_outage(
    world: tuple[Emulator, FakeDiscord, Settings],
) -> None:
    # The key lacks websocket.connect there: the connection stops for good at once, which is no outage, even
    # when a look at the connections caught it while it was still trying.
    emu, fake, settings = world
    emu.add_server("Locked", identifier="c0ffee00", state="running", permissions=["control.console"])
    emu.fail_next("GET", "/servers/c0ffee00/websocket", 502, times=4)  # retried a while, then refused
    async with alert_bot(emu, fake, settings) as rig:
        inter = await rig.run("alerts", {"channel": ALERTS}, subcommand="set")
        assert "now go to" in inter.text
        await rig.bot.catalog.refresh()
        await wait_until(lambda: rig.bot.alerts.watched == 4)
        await wait_until(
            lambda: (
                (conn := rig.bot.manager.peek("c0ffee00")) is not None
                and conn.state is ConnectionState.STOPPED
            )
        )
        await asyncio.sleep(ALERT_TIMING.unreachable_after + 0.5)
        await sentinel(rig)
        assert [m.content for m in alerts(rig) if "Lobby" not in m.content] == []


# -- the commands ---------------------------------------------------------------------------------------------


async def test_alerts_show_and_off(rig: Rig) -> None:
    shown = await rig.run("alerts", {}, subcommand="show")
    assert "Alerts are off" in shown.text
    await alerts_on(rig)
    rig.emu.crash(rig.emu.server(CREATIVE), restart=False)
    await alert_saying(rig, "crashed")
    shown = await rig.run("alerts", {}, subcommand="show")
    assert f"<#{ALERTS}>" in shown.text and f"<@&{ONCALL}>" in shown.text and "3 game servers" in shown.text
    assert f"**Creative** (`{CREATIVE}`): crashed" in shown.text
    health = await rig.run("health")
    assert f"Alerts: to <#{ALERTS}>, 3 servers watched, 1 posted" in health.all_text
    off = await rig.run("alerts", {}, subcommand="off")
    assert "Alerts are off." in off.text
    assert rig.bot.alerts.watched == 0
    assert (await rig.bot.store.guild_settings(GUILD)).alert_channel_id is None
    entries = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.action == "alert"]
    assert [e.arguments for e in entries] == ["off", f"set channel={ALERTS} role={ONCALL}"]
    assert all(e.how is How.COMMAND for e in entries)


async def test_alert_commands_are_for_admins(rig: Rig) -> None:
    inter = await rig.run("alerts", {"channel": ALERTS}, subcommand="set", user=USER)
    assert inter.ephemeral and "Only admins" in inter.text
    assert (await rig.bot.store.guild_settings(GUILD)).alert_channel_id is None


async def test_alerts_survive_a_restart(world: tuple[Emulator, FakeDiscord, Settings]) -> None:
    async with alert_bot(*world) as first:
        await alerts_on(first)
    async with alert_bot(*world) as again:
        await wait_until(lambda: again.bot.alerts.watched == 3)
        await wait_until(
            lambda: all(h.state is ConnectionState.CONNECTED for h in again.bot.manager.health())
        )
        again.emu.crash(again.emu.server(CREATIVE), restart=False)
        message = await alert_saying(again, "crashed")
        assert message.content.startswith(f"<@&{ONCALL}>")
