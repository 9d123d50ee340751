"""Start-up end to end: command sync (and skipping it), link restore, a panel that is down, DMs, shutdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.wings.events import ConnectionState
from tests.e2e_helpers import (
    ADMIN,
    CONSOLE,
    GUILD,
    GUILD2,
    USER,
    build_world,
    running_bot,
    settings_for,
    unused_port,
)
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord

COMMANDS = {
    "servers",
    "status",
    "power",
    "command",
    "logs",
    "console",
    "health",
    "board",
    "alerts",
    "access",
    "audit",
}


def options(command: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in command.get("options") or []}


async def test_synced_commands_names_options_and_choices(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            assert rig.bot.command_sync.synced == (GUILD,)
        assert list(fake.synced_commands) == [GUILD]  # the allowed guilds only, never global
        synced = {c["name"]: c for c in fake.synced_commands[GUILD]}
        assert set(synced) == COMMANDS
        for name, command in synced.items():
            assert command.get("contexts") == [0] or command.get("dm_permission") is False, name
        assert options(synced["servers"]) == {}
        assert set(options(synced["status"])) == {"server"}
        power = options(synced["power"])
        assert power["server"]["autocomplete"] is True and power["server"]["required"] is True
        assert [c["value"] for c in power["action"]["choices"]] == ["start", "stop", "restart", "kill"]
        assert set(options(synced["command"])) == {"server", "command"}
        lines = options(synced["logs"])["lines"]
        assert (lines["type"], lines["min_value"], lines["max_value"], lines.get("required", False)) == (
            4,
            1,
            150,
            False,
        )
        console = options(synced["console"])
        assert set(console) == {"link", "unlink", "list"}
        link = options(console["link"])
        assert set(link) == {"server", "channel"} and link["channel"]["type"] == 7
        assert link["server"]["autocomplete"] is True and not link["channel"].get("required", False)
        assert options(console["list"]) == {}
        access = options(synced["access"])
        assert set(access) == {"grant", "revoke", "list"}
        grant = options(access["grant"])
        assert list(grant) == ["target", "capability", "server", "commands"]
        assert grant["target"]["type"] == 9 and grant["server"]["autocomplete"] is True  # 9: role or member
        assert [c["value"] for c in grant["capability"]["choices"]] == [
            "view",
            "logs",
            "control.console",
            "control.start",
            "control.stop",
            "control.restart",
            "admin",
        ]
        audit = options(synced["audit"])
        assert set(options(audit["show"])) == {"server", "member", "limit"}
        assert options(audit["channel"])["channel"]["type"] == 7


async def test_restart_restores_links_and_skips_an_unchanged_sync(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Survival", identifier="a1b2c3d4", state="running")
        build_world(fake)
        settings = settings_for(emu, fake, tmp_path)
        async with running_bot(emu, fake, settings) as rig:
            inter = await rig.run("console", {"server": "Survival"}, subcommand="link")
            assert "Mirroring" in inter.text
        assert fake.command_put_count == 1
        assert emu.sockets(srv) == []  # the first bot closed its connection

        async with running_bot(emu, fake, settings) as rig:
            assert fake.command_put_count == 1  # same commands: no second PUT
            assert rig.bot.command_sync.synced == ()
            await rig.connected("a1b2c3d4")
            srv.emit_console("after the restart")
            await rig.wait_for_text(CONSOLE, "after the restart")
            # Commands still dispatch although this start did not sync them.
            status = await rig.run("status", {"server": "Survival"}, user=USER)
            assert "running" in status.text


async def test_changed_commands_are_synced_again(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        settings = settings_for(emu, fake, tmp_path)
        async with running_bot(emu, fake, settings) as rig:
            await rig.bot.store.set_meta("commands.synced", "an older hash")
        async with running_bot(emu, fake, settings):
            pass
        assert fake.command_put_count == 2


async def test_stale_global_commands_are_removed_at_start_up(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        stale = [{"name": "servers", "description": "an earlier run's", "type": 1}]
        fake.register_commands(None, stale)
        settings = settings_for(emu, fake, tmp_path)
        async with running_bot(emu, fake, settings) as rig:
            assert fake.registered_commands(None) == []
            assert rig.bot.command_sync.globals_removed == 1
            assert fake.synced_commands[None] == []  # one PUT [] for the global scope...
        assert [r.method for r in fake.requests if r.path.endswith(f"/{fake.application_id}/commands")] == [
            "GET",
            "PUT",
        ]
        async with running_bot(emu, fake, settings) as rig:  # ...and none once nothing is left
            assert rig.bot.command_sync.globals_removed == 0
        global_calls = [
            r.method for r in fake.requests if r.path.endswith(f"/{fake.application_id}/commands")
        ]
        assert global_calls == ["GET", "PUT", "GET"]


async def test_stale_global_commands_are_removed_even_when_the_guild_commands_are_unchanged(
    tmp_path: Path,
) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        settings = settings_for(emu, fake, tmp_path)
        async with running_bot(emu, fake, settings):
            pass
        # Between two starts an older version (or a script) registers commands globally again.
        fake.register_commands(None, fake.synced_commands[GUILD])
        async with running_bot(emu, fake, settings) as rig:
            assert rig.bot.command_sync.synced == ()  # the hash matched: no guild sync...
            assert rig.bot.command_sync.globals_removed == len(COMMANDS)  # ...and still no global commands
            assert fake.registered_commands(None) == []


async def test_a_guild_dropped_from_guild_ids_loses_its_commands(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        fake.add_guild(GUILD2, "Second")
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path, guild_ids=(GUILD, GUILD2))):
            assert {c["name"] for c in fake.registered_commands(GUILD2)} == COMMANDS
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            assert rig.bot.command_sync.synced == (GUILD,) and rig.bot.command_sync.cleared == (GUILD2,)
            assert fake.registered_commands(GUILD2) == []
            assert {c["name"] for c in fake.registered_commands(GUILD)} == COMMANDS


async def test_a_guild_added_to_guild_ids_gets_the_commands_at_the_next_start(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        fake.add_guild(GUILD2, "Second")
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)):
            assert fake.registered_commands(GUILD2) == []
        async with running_bot(
            emu, fake, settings_for(emu, fake, tmp_path, guild_ids=(GUILD, GUILD2))
        ) as rig:
            assert set(rig.bot.command_sync.synced) == {GUILD, GUILD2}
            assert {c["name"] for c in fake.registered_commands(GUILD2)} == COMMANDS


async def test_dms_are_refused(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Survival", identifier="a1b2c3d4")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            # A global registration Discord still dispatches (from DMs too) reaches the bot's guard.
            fake.register_commands(None, fake.synced_commands[GUILD])
            for command, opts in (("servers", None), ("power", {"server": "Survival", "action": "start"})):
                inter = await fake.invoke(None, 4242, ADMIN, command, opts)
                await inter.wait_done(5)
                assert inter.ephemeral and "servers only" in inter.text
                assert [r["type"] for r in inter.responses] == [4]
            assert emu.server("a1b2c3d4").received == []
            assert not any("a1b2c3d4" in r.path for r in emu.requests)
            listed = await rig.run("servers", user=USER)
            assert "Survival" in listed.text


async def test_a_panel_that_is_down_does_not_stop_start_up(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        settings = settings_for(emu, fake, tmp_path)
        async with running_bot(emu, fake, settings) as rig:
            await rig.bot.links.add(
                guild_id=GUILD, channel_id=CONSOLE, server=_server("a1b2c3d4", "Survival"), created_by=ADMIN
            )
        down = settings_for(emu, fake, tmp_path, panel_url=f"http://127.0.0.1:{unused_port()}")
        async with running_bot(emu, fake, down) as rig:
            assert rig.bot.is_ready()
            [health] = rig.bot.relay.link_health()
            assert (health.server, health.channel_id) == ("a1b2c3d4", CONSOLE)
            await fake.wait_for(
                lambda: _conn_state(rig.bot, "a1b2c3d4") is ConnectionState.RECONNECTING,
                5,
                "the link's connection retrying",
            )
            inter = await rig.run("servers", user=USER)
            assert inter.ephemeral and "could not be reached" in inter.text
            assert "Traceback" not in inter.all_text
            health_reply = await rig.run("health", user=ADMIN)
            assert "a1b2c3d4" in health_reply.text and "last error" in health_reply.text
            # ...and the linked channel is told, once the outage outlasts the grace period
            await fake.wait_for(
                lambda: any("Lost the console connection" in m.content for m in fake.messages(CONSOLE)),
                5,
                "a lost-connection notice in the linked channel",
            )


async def test_close_releases_every_resource(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Survival", identifier="a1b2c3d4", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            await rig.run("console", {"server": "Survival"}, subcommand="link")
            await rig.connected("a1b2c3d4")
            bot = rig.bot
        assert bot.is_closed()
        await emu.wait_sockets_closed(srv)
        assert bot.manager.health() == [] and bot.relay.link_health() == []
        await bot.close()  # a second close is harmless


def _server(identifier: str, name: str) -> Any:
    from bot.panel.models import Server

    return Server(identifier=identifier, uuid="", name=name)


def _conn_state(bot: Any, identifier: str) -> ConnectionState | None:
    conn = bot.manager.peek(identifier)
    return None if conn is None else conn.state
