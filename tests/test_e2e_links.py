"""Console links end to end: channels the bot cannot use, channels that go away, long command output."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.e2e_helpers import ADMIN, CONSOLE, GUILD, OTHER, build_world, running_bot, settings_for
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord

VIEW_CHANNEL = 1 << 10


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - the store has no change notification to wait on
            await asyncio.sleep(0.02)


async def test_a_channel_the_bot_cannot_post_in_is_refused(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            fake.guilds[GUILD].add_role(GUILD, "@everyone", permissions=VIEW_CHANNEL)  # no Send Messages
            await fake.wait_for(
                lambda: not rig.bot.get_guild(GUILD).default_role.permissions.send_messages,  # type: ignore[union-attr]
                2,
                "the role update",
            )
            inter = await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")
            assert inter.ephemeral and [r["type"] for r in inter.responses] == [4]
            assert "Send Messages" in inter.text
            assert await rig.bot.store.links(GUILD) == []
            assert emu.server("e5f6a7b8").received == []


async def test_a_channel_discord_refuses_is_unlinked_and_audited(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            for channel in (CONSOLE, OTHER):
                await rig.run("console", {"server": "Creative", "channel": channel}, subcommand="link")
            await rig.connected("e5f6a7b8")
            fake.fail_next("POST", f"/channels/{OTHER}/messages", 403)
            srv.emit_console("first line")

            async def unlinked() -> bool:
                return [link.channel_id for link in await rig.bot.store.links(GUILD)] == [CONSOLE]

            async def audited() -> bool:
                return any(e.user_id == 0 for e in await rig.bot.store.recent_audit(guild_id=GUILD))

            await eventually(unlinked)
            await eventually(audited)  # written just after the link is forgotten
            [entry] = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.user_id == 0]
            assert (entry.action, entry.server_identifier, entry.arguments) == (
                "unlink",
                "e5f6a7b8",
                f"channel={OTHER}",
            )
            assert entry.outcome.startswith("removed by Wingbeat")
            # The other channel keeps mirroring.
            await rig.wait_for_text(CONSOLE, "first line")
            srv.emit_console("second line")
            await rig.wait_for_text(CONSOLE, "second line")
            listed = await rig.run("console", None, subcommand="list")
            assert f"<#{CONSOLE}>" in listed.text and f"<#{OTHER}>" not in listed.text


async def test_a_deleted_channel_loses_its_links(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")
            fake._dispatch_soon("CHANNEL_DELETE", fake.guilds[GUILD].channels.pop(OTHER).payload())

            async def gone() -> bool:  # forgotten by the store, then stopped in the relay
                return await rig.bot.store.links(GUILD) == [] and rig.bot.relay.link_health() == []

            await eventually(gone)


async def test_long_command_output_comes_as_a_file(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            long_text = "say " + "y" * 1500  # echoed and answered: two lines, too long for one message
            inter = await rig.run("command", {"server": "Creative", "command": long_text})
            assert inter.ephemeral
            [(name, data)] = inter.files
            assert name == "output.txt"
            assert data.decode().splitlines() == [f"> {long_text}", "[Server] " + "y" * 1500]
            assert "2 lines of output" in inter.text
            assert len(inter.text) < 2000
            assert ADMIN in [e.user_id for e in await rig.bot.store.recent_audit(guild_id=GUILD)]
