"""What Discord sees never holds an internal address, and server names cannot forge lines or reverse text."""

from __future__ import annotations

from pathlib import Path

from bot.names import safe_name
from bot.panel.models import Server
from bot.redact import hide_addresses
from bot.wings.events import PowerOutcome, PowerResult
from bot.wings.frames import PowerAction, PowerState
from cogs.control import power_report
from tests.e2e_helpers import (
    ADMIN,
    CONSOLE,
    GUILD,
    OTHER,
    USER,
    build_world,
    running_bot,
    settings_for,
    unused_port,
)
from tests.fakes.emulator import Emulator, FakeServer
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_discord_models import answer_text

BIDI = "\u202e\u2066\u2067\u2068\u2069\u202a\u202b\u202c\u202d\u200e\u200f\u061c"


def everything_discord_received(fake: FakeDiscord, *, but: str = "health") -> str:
    """Every message the bot posted and every interaction answer, except those of /`but` (admins' view)."""
    parts = [m.content + "".join(data.decode("utf-8", "replace") for _, data in m.attachments)
             for channel in (CONSOLE, OTHER) for m in fake.messages(channel)]  # fmt: skip
    for inter in fake.interactions:
        if inter.payload["data"]["name"] != but:
            parts.extend(answer_text(a.payload, a.files) for a in inter.answers)
            parts.extend(data.decode("utf-8", "replace") for _, data in inter.files)
            parts.extend(str(c) for c in inter.choices or [])
    return "\n".join(parts)


async def test_no_internal_address_reaches_discord_when_things_fail(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        dead_node = unused_port()

        def node_down(server: FakeServer) -> str:  # the node's Wings is down: nothing listens there
            return f"ws://127.0.0.1:{dead_node}/api/servers/{server.uuid}/ws"

        emu.socket_url = node_down  # type: ignore[method-assign]
        settings = settings_for(emu, fake, tmp_path)
        async with running_bot(emu, fake, settings) as rig:
            await rig.run("audit", {"channel": OTHER}, subcommand="channel")  # members may read it
            await rig.run("console", {"server": "Creative"}, subcommand="link")
            await rig.wait_for_text(CONSOLE, "Lost the console connection")
            for command, options in (
                ("command", {"server": "Creative", "command": "list"}),
                ("power", {"server": "Creative", "action": "restart"}),
                ("logs", {"server": "Creative"}),
                ("status", {"server": "Creative"}),
            ):
                failed = await rig.run(command, options)
                assert failed.ephemeral == (command != "status") and failed.text, command
            await rig.run("console", None, subcommand="list")
            await rig.wait_for_text(OTHER, "command `list` · by command · ⚠️ failed")
            health = await rig.run("health")  # admins' /health may show where things failed
            assert str(dead_node) in health.text
        down = settings_for(emu, fake, tmp_path, panel_url=f"http://127.0.0.1:{unused_port()}")
        async with running_bot(emu, fake, down) as rig:
            for user in (USER, ADMIN):
                await rig.run("servers", user=user)
                await rig.run("status", {"server": "Creative"}, user=user)
        seen = everything_discord_received(fake)
        assert "Lost the console connection" in seen and "could not be reached" in seen
        for address in ("127.0.0.1", str(dead_node), emu.panel_url.rsplit(":", 1)[1], down.panel_url):
            assert address not in seen, address


async def test_server_names_are_shown_on_one_line_without_bidirectional_controls(tmp_path: Path) -> None:
    evil = "Evil\nfake line\r\u202eTEG\u2066x\u200f"
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        emu.add_server(evil, identifier="e5f6a7b8", state="running")
        emu.add_server("Quiet", identifier="a1b2c3d4", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            choices = await fake.autocomplete(GUILD, CONSOLE, USER, "status", {"server": "evil"}, "server")
            assert choices == [{"name": "Evil fake line TEGx (e5f6a7b8)", "value": "e5f6a7b8"}]
            listed = await rig.run("servers", user=USER)
            status = await rig.run("status", {"server": "e5f6a7b8"}, user=USER)
            for server in ("e5f6a7b8", "a1b2c3d4"):  # two servers in one channel: lines get [name] prefixes
                await rig.run("console", {"server": server}, subcommand="link")
                await rig.connected(server)
            emu.server("e5f6a7b8").emit_console("hello")
            await rig.wait_for_text(CONSOLE, "hello")
            links = await rig.run("console", None, subcommand="list")
            for text in (listed.text, status.text, links.text, *(m.content for m in fake.messages(CONSOLE))):
                assert not any(c in text for c in BIDI), text
                assert "fake line" not in text or "Evil fake line TEGx" in text.replace("\\", "")
                for line in text.splitlines():
                    assert not line.startswith("fake line"), text


def test_safe_name_and_hide_addresses() -> None:
    assert safe_name("a\nb\u2028c\u202ed\u061ce\u200d\U0001f468\u200d\U0001f469") == "a b cde\u200d👨\u200d👩"
    assert safe_name("  \n ") == ""
    assert hide_addresses("Cannot connect to host node.example.com:8080 ssl:default") == (
        "Cannot connect to host (address hidden) ssl:default"
    )
    assert hide_addresses("Connect call failed ('10.1.2.3', 8080)") == "Connect call failed"
    assert hide_addresses("see https://panel.example.com/server/x") == "see (address hidden)"
    assert hide_addresses("uptime 12:30, version 1.20.4") == "uptime 12:30, version 1.20.4"


def test_a_power_report_never_shows_an_address_from_wings() -> None:
    result = PowerResult(
        PowerAction.START,
        PowerState.OFFLINE,
        (),
        PowerOutcome.DAEMON_ERROR,
        0.2,
        "Cannot connect to the Docker daemon at tcp://10.0.0.5:2375. Is the docker daemon running?",
    )
    text = power_report(Server("a1b2c3d4", "a1b2c3d4-0000-0000-0000-000000000000", "Survival"), result)
    assert (
        "10.0.0.5" not in text and "2375" not in text and "Docker daemon at tcp://(address hidden)." in text
    )
