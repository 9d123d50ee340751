"""Slash commands end to end: the real bot, a real discord.py client in the fake Discord, the emulator behind it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot import server_option
from bot.app import WingbeatBot
from bot.store import StoreError
from tests.e2e_helpers import (
    ADMIN,
    CONSOLE,
    GUILD,
    OTHER,
    OWNER,
    TIMING,
    USER,
    Rig,
    build_world,
    running_bot,
    settings_for,
)
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord

ADMIN_ONLY: list[tuple[str, dict[str, object] | None, str | None]] = [
    ("power", {"server": "Survival", "action": "start"}, None),
    ("command", {"server": "Survival", "command": "say hi"}, None),
    ("logs", {"server": "Survival"}, None),
    ("console", {"server": "Survival"}, "link"),
    ("console", {"server": "Survival"}, "unlink"),
    ("console", None, "list"),
    ("health", None, None),
]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with Emulator(stats_interval=0.5, start_delay=0.2, stop_delay=0.2) as emu, FakeDiscord() as fake:
        emu.add_server("Survival", identifier="a1b2c3d4", state="offline")
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as r:
            yield r


def server_requests(emu: Emulator, identifier: str) -> list[str]:
    return [f"{r.method} {r.path}" for r in emu.requests if identifier in r.path]


# -- what everyone may do -------------------------------------------------------------------------------


async def test_servers_lists_every_server_with_its_power_state(rig: Rig) -> None:
    inter = await rig.run("servers", user=USER)
    assert not inter.ephemeral
    assert [r["type"] for r in inter.responses] == [5]  # deferred: the panel is involved
    assert "Survival" in inter.text and "a1b2c3d4" in inter.text
    assert "Creative" in inter.text
    lines = {line.split("**")[1]: line for line in inter.text.splitlines() if "**" in line}
    assert lines["Survival"].endswith("offline")
    assert lines["Creative"].endswith("running")


async def test_a_server_name_never_renders_as_a_mention_a_command_or_a_timestamp(rig: Rig) -> None:
    # Whoever may rename a server on the panel (a subuser) chooses this text; members read it in /servers.
    rig.emu.add_server(f"<@&{ADMIN}> </power:1> <#{CONSOLE}> <t:0:R> <:e:1> <3", identifier="0badbeef")
    await rig.bot.catalog.refresh()
    listed = await rig.run("servers", user=USER)
    [line] = [line for line in listed.text.splitlines() if "0badbeef" in line]
    assert re.search(r"<[@#/:]|<t:", line) is None
    assert f" **<@&{ADMIN}> </power:1> <#{CONSOLE}> <t:0:R> <:e:1> <3** " in line.replace("\u200b", "")


async def test_servers_past_25_are_checked_when_asked_again(rig: Rig) -> None:
    for i in range(30):
        rig.emu.add_server(f"Bulk {i:02d}", identifier=f"b{i:07d}", state="running")
    await rig.bot.catalog.refresh()
    first = await rig.run("servers", user=USER)
    assert first.text.count("not checked") == 7  # 32 servers, 25 looked up
    assert first.text.splitlines()[-1] == (
        "-# Only 25 power states are looked up at a time; ask again in a moment for the others."
    )
    again = await rig.run("servers", user=USER)
    assert "not checked" not in again.text and "-#" not in again.text


async def test_status_shows_state_and_usage(rig: Rig) -> None:
    await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")  # a socket is open
    await rig.connected("e5f6a7b8")
    inter = await rig.run("status", {"server": "creative"}, user=USER)
    assert not inter.ephemeral
    text = inter.text
    assert "Creative" in text and "running" in text
    for word in ("CPU", "Memory", "Disk", "Network", "Uptime"):
        assert word in text
    # the figures come from Wings `stats` over the console socket (with the memory limit), not the panel
    assert " / " in text.split("Memory", 1)[1].split("·", 1)[0]
    assert not any(r.path.endswith("/resources") for r in rig.emu.requests)


async def test_status_falls_back_to_the_panel_without_a_console_socket(rig: Rig) -> None:
    rig.emu.add_server("Lobby", identifier="10b2c3d4", state="running", permissions=["control.console"])
    await rig.bot.catalog.refresh()
    inter = await rig.run("status", {"server": "lobby"}, user=USER)
    assert "Lobby" in inter.text and "running" in inter.text and "from the panel" in inter.text


async def test_status_never_opens_a_console_socket(rig: Rig) -> None:
    inter = await rig.run("status", {"server": "creative"}, user=USER)
    assert "running" in inter.text and "CPU" in inter.text and "from the panel" in inter.text
    assert rig.bot.manager.peek("e5f6a7b8") is None and rig.emu.sockets(rig.emu.server("e5f6a7b8")) == []
    assert not any("/websocket" in r.path for r in rig.emu.requests)


async def test_views_have_a_per_member_cooldown(rig: Rig) -> None:
    for _ in range(2):
        await rig.run("servers", user=USER)
        await rig.run("status", {"server": "Creative"}, user=USER)
    panel_requests = len(rig.emu.requests)
    refused = await rig.run("servers", user=USER)
    assert [r["type"] for r in refused.responses] == [4] and refused.ephemeral  # at once, privately
    assert refused.text.startswith("You are asking too often; try again in ") and refused.text.endswith(" s.")
    assert len(rig.emu.requests) == panel_requests
    other = await rig.run("servers", user=ADMIN)  # another member is not held back
    assert "Creative" in other.text


async def test_views_answer_within_seconds_when_the_panel_budget_is_spent(tmp_path: Path) -> None:
    async with Emulator(rate_limit=40, rate_window=60.0) as emu, FakeDiscord() as fake:
        emu.add_server("Survival", identifier="a1b2c3d4", state="offline")
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            await spend_the_panel_window(emu)
            loop = asyncio.get_running_loop()
            started = loop.time()
            listed = await rig.run("servers", user=USER)
            assert loop.time() - started < 5.0
            lines = {line.split("**")[1]: line for line in listed.text.splitlines() if "**" in line}
            assert lines["Creative"].endswith("not checked") and lines["Survival"].endswith("not checked")
            assert listed.text.splitlines()[-1].startswith("-# The panel's request budget is spent")
            started = loop.time()
            status = await rig.run("status", {"server": "Creative"}, user=USER)
            assert loop.time() - started < 5.0
            assert "Creative" in status.text and "request budget is spent" in status.text


async def test_a_hanging_panel_does_not_hold_up_status_or_actions_on_an_open_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_option, "CATALOG_MAX_AGE", 0.5)  # the server list is out of date at once
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        emu.add_server("Survival", identifier="a1b2c3d4", state="offline")
        build_world(fake)
        # The panel's own deadline, as installed: 15 s.
        bot = WingbeatBot(settings_for(emu, fake, tmp_path), timing=TIMING, guild_ready_timeout=0.05)
        async with fake.run_client(bot, ready_timeout=8.0):
            rig = Rig(emu, fake, bot)
            await rig.run("console", {"server": "Creative"}, subcommand="link")
            await rig.connected("e5f6a7b8")
            emu.fail_next("GET", "", 0, times=1000, delay=60.0)  # the panel takes every request, answers none
            await asyncio.sleep(0.6)
            loop = asyncio.get_running_loop()
            for user, command, options, limit, expected in (
                (USER, "status", {"server": "Creative"}, 5.0, "🟢 **Creative** (`e5f6a7b8`): running"),
                (USER, "status", {"server": "Survival"}, 5.0, "did not answer within a few seconds"),
                (
                    ADMIN,
                    "command",
                    {"server": "Creative", "command": "say still here"},
                    7.0,
                    "[Server] still here",
                ),
            ):
                started = loop.time()
                inter = await rig.run(command, options, user=user, timeout=20.0)
                assert loop.time() - started < limit, command
                assert expected in inter.text, inter.text
            assert ("send command", ["say still here"]) in emu.server("e5f6a7b8").received


async def spend_the_panel_window(emu: Emulator) -> None:
    """Use up the key's panel budget from outside the bot (the panel's web UI counts against it too)."""
    headers = {"Authorization": f"Bearer {emu.api_key}", "Accept": "application/json"}
    async with aiohttp.ClientSession(emu.panel_url, headers=headers) as http:
        while True:
            async with http.get("/api/client/account") as resp:
                if resp.status == 429:
                    return


async def test_autocomplete_offers_servers_by_name_with_identifier_values(rig: Rig) -> None:
    choices = await rig.fake.autocomplete(GUILD, CONSOLE, USER, "status", {"server": "sur"}, "server")
    assert choices == [{"name": "Survival (a1b2c3d4)", "value": "a1b2c3d4"}]
    everything = await rig.fake.autocomplete(GUILD, CONSOLE, ADMIN, "power", {"server": ""}, "server")
    assert [c["value"] for c in everything] == ["e5f6a7b8", "a1b2c3d4"]  # sorted by name


async def test_autocomplete_stays_within_discord_s_limits_with_many_long_names(rig: Rig) -> None:
    # The fake refuses what Discord refuses: more than 25 choices, a name or value over 100 characters.
    for i in range(40):
        rig.emu.add_server(
            f"Survival {i:02d} 🎮 " + "ж" * 180, identifier=f"5{i:07d}"
        )  # the panel allows 191
    await rig.bot.catalog.refresh()
    for typed in ("", "surv", "5000"):
        choices = await rig.fake.autocomplete(GUILD, CONSOLE, ADMIN, "power", {"server": typed}, "server")
        assert 0 < len(choices) <= 25
        assert all(len(c["name"]) <= 100 and c["name"].endswith(f"({c['value']})") for c in choices)


async def test_unknown_server_is_a_clear_private_error(rig: Rig) -> None:
    inter = await rig.run("status", {"server": "nope"}, user=USER)
    assert inter.ephemeral
    assert "No server matches" in inter.text
    assert "Traceback" not in inter.all_text
    # The public "thinking" message was removed so the error does not show to everyone.
    assert inter.original_deleted


# -- admin actions ----------------------------------------------------------------------------------------


async def test_power_start_sends_set_state_and_reports_running(rig: Rig) -> None:
    srv = rig.emu.server("a1b2c3d4")
    inter = await rig.run("power", {"server": "Survival", "action": "start"})
    assert inter.ephemeral
    assert ("set state", ["start"]) in srv.received
    assert "started" in inter.text and "running" in inter.text
    assert srv.state == "running"
    [entry] = await rig.bot.store.recent_audit(guild_id=GUILD)
    assert (entry.user_id, entry.server_identifier, entry.action, entry.arguments) == (
        ADMIN,
        "a1b2c3d4",
        "power",
        "start",
    )
    assert entry.outcome.startswith("done: started")


async def test_administrator_permission_is_enough(rig: Rig) -> None:
    inter = await rig.run("power", {"server": "Creative", "action": "stop"}, user=OWNER)
    assert "stopped" in inter.text and "offline" in inter.text
    assert ("set state", ["stop"]) in rig.emu.server("e5f6a7b8").received


async def test_command_shows_the_output_it_caused(rig: Rig) -> None:
    inter = await rig.run("command", {"server": "Creative", "command": "say hello there"})
    assert inter.ephemeral
    assert ("send command", ["say hello there"]) in rig.emu.server("e5f6a7b8").received
    assert "[Server] hello there" in inter.text
    assert "```" in inter.text
    [entry] = await rig.bot.store.recent_audit(guild_id=GUILD)
    assert (entry.action, entry.arguments, entry.outcome) == (
        "command",
        "say hello there",
        "sent; 2 lines of output",
    )


async def test_command_on_an_offline_server_is_refused_not_reported_as_sent(rig: Rig) -> None:
    inter = await rig.run("command", {"server": "Survival", "command": "say hi"})
    assert inter.ephemeral
    assert "offline" in inter.text
    assert not any(frame == "send command" for frame, _ in rig.emu.server("a1b2c3d4").received)
    [entry] = await rig.bot.store.recent_audit(guild_id=GUILD)
    assert entry.outcome.startswith("failed: ") and "offline" in entry.outcome


async def test_command_with_a_line_break_is_refused(rig: Rig) -> None:
    inter = await rig.run("command", {"server": "Creative", "command": "say a\nstop"})
    assert inter.ephemeral and "line break" in inter.text
    assert not any(frame == "send command" for frame, _ in rig.emu.server("e5f6a7b8").received)


async def test_logs_come_as_text_or_as_a_file_when_long(rig: Rig) -> None:
    srv = rig.emu.server("e5f6a7b8")
    for word in ("one", "two", "three"):
        srv.emit_console(f"[Server thread/INFO]: {word}")
    short = await rig.run("logs", {"server": "Creative", "lines": 2})
    assert short.ephemeral and "```" in short.text
    assert "two" in short.text and "three" in short.text and "one" not in short.text
    assert ("send logs", []) in srv.received
    for n in range(150):
        srv.emit_console(f"[Server thread/INFO]: line {n:03d} " + "x" * 60)
    long = await rig.run("logs", {"server": "Creative"})
    assert long.ephemeral
    [(name, data)] = long.files
    assert name == "e5f6a7b8-console.txt"
    lines = data.decode().splitlines()
    assert len(lines) == 50 and lines[-1].startswith("[Server thread/INFO]: line 149")


async def test_admin_only_commands_are_refused_to_others_before_anything_happens(rig: Rig) -> None:
    for command, options, sub in ADMIN_ONLY:
        inter = await rig.run(command, options, user=USER, subcommand=sub)
        label = f"/{command} {sub or ''}"
        assert inter.ephemeral, label
        assert [r["type"] for r in inter.responses] == [4], label  # answered at once, never deferred
        assert "Only admins" in inter.text, label
    for srv in rig.emu.servers():
        assert server_requests(rig.emu, srv.identifier) == []
        assert srv.received == []
    assert await rig.bot.store.links(GUILD) == []
    # the refusal is answered first (Discord's 3 s), its audit entry written just after: wait for the last one
    for _ in range(100):
        refused = await rig.bot.store.recent_audit(guild_id=GUILD)
        if len(refused) >= 4:
            break
        await asyncio.sleep(0.05)
    assert sorted(e.action for e in refused) == ["command", "link", "power", "unlink"]
    assert all(e.outcome.startswith("refused: ") and e.user_id == USER for e in refused)
    # ...with what was asked: a refusal's row says what the member tried, not only that it was refused
    assert {e.action: e.arguments for e in refused} == {
        "power": "server=Survival action=start",
        "command": "server=Survival command=say hi",
        "link": "server=Survival",
        "unlink": "server=Survival",
    }
    assert all(e.completed_at is not None for e in refused)  # one-shot rows


async def test_missing_wings_permission_is_a_clear_refusal(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        srv = emu.add_server(
            "Limited", identifier="c0ffee00", permissions=["websocket.connect", "control.console"]
        )
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            inter = await rig.run("power", {"server": "Limited", "action": "start"})
            assert inter.ephemeral
            assert "control.start" in inter.text
            assert not any(frame == "set state" for frame, _ in srv.received)
            assert srv.state == "offline"
            [entry] = await rig.bot.store.recent_audit(guild_id=GUILD)
            assert "control.start" in entry.outcome and entry.outcome.startswith("failed: ")


async def test_health_reports_each_connection(rig: Rig) -> None:
    await rig.run("command", {"server": "Creative", "command": "list"})
    inter = await rig.run("health")
    assert inter.ephemeral
    assert "Creative" in inter.text and "connected" in inter.text
    assert "token expires <t:" in inter.text and "reconnects" in inter.text


async def test_health_shows_the_relay_journal_s_trouble(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    async def disk_full(journals: object) -> None:
        raise StoreError("the database failed: database or disk is full")

    monkeypatch.setattr(rig.bot.store, "save_relay_journals", disk_full)
    await rig.run("console", {"server": "Creative"}, subcommand="link")
    await rig.connected("e5f6a7b8")
    rig.emu.server("e5f6a7b8").emit_console("a line the journal follows")
    await rig.wait_for_text(CONSOLE, "a line the journal follows")
    inter = await rig.run("health")
    assert "Relay journal: ⚠️ the database failed: database or disk is full" in inter.text


async def test_console_link_list_unlink(rig: Rig) -> None:
    link = await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")
    assert link.ephemeral and "Mirroring" in link.text
    await rig.connected("e5f6a7b8")
    rig.emu.server("e5f6a7b8").emit_console("hello from the game")
    await rig.wait_for_text(OTHER, "hello from the game")
    listed = await rig.run("console", None, subcommand="list")
    assert listed.ephemeral
    assert "Creative" in listed.text and f"<#{OTHER}>" in listed.text and "connected" in listed.text
    again = await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")
    assert "already" in again.text
    unlink = await rig.run("console", {"server": "e5f6a7b8", "channel": OTHER}, subcommand="unlink")
    assert "Stopped mirroring" in unlink.text
    assert await rig.bot.store.links(GUILD) == []
    actions = [(e.action, e.outcome) for e in reversed(await rig.bot.store.recent_audit(guild_id=GUILD))]
    assert actions == [("link", "linked"), ("link", "already linked"), ("unlink", "unlinked")]


async def test_link_defaults_to_this_channel(rig: Rig) -> None:
    inter = await rig.run("console", {"server": "Creative"}, subcommand="link")
    assert f"<#{CONSOLE}>" in inter.text
    [saved] = await rig.bot.store.links(GUILD)
    assert (saved.channel_id, saved.server_identifier, saved.server_name, saved.created_by) == (
        CONSOLE,
        "e5f6a7b8",
        "Creative",
        ADMIN,
    )
