"""Console links end to end: channels the bot cannot use, Discord's refusals read by code, channels that go away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.store import How
from tests.e2e_helpers import (
    ADMIN,
    CONSOLE,
    GUILD,
    OTHER,
    block_lines,
    build_world,
    posted_lines,
    running_bot,
    settings_for,
)
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_discord_models import (
    ATTACH_FILES,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    VIEW_CHANNEL,
)


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


async def test_lost_access_stops_the_link_keeps_it_and_a_relink_resumes_it(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        settings = settings_for(emu, fake, tmp_path)
        async with running_bot(emu, fake, settings) as rig:
            for channel in (CONSOLE, OTHER):
                await rig.run("console", {"server": "Creative", "channel": channel}, subcommand="link")
            await rig.connected("e5f6a7b8")
            fake.guilds[GUILD].set_overwrite(OTHER, fake.bot_user_id, deny=VIEW_CHANNEL, member=True)
            srv.emit_console("first line")

            async def stopped() -> bool:
                return [(link.channel_id, link.stopped) for link in await rig.bot.store.links(GUILD)] == [
                    (CONSOLE, False),
                    (OTHER, True),
                ]

            await eventually(stopped)
            assert any(
                r.status == 403 and r.path == f"/channels/{OTHER}/messages" for r in fake.requests
            )  # Discord's 50001
            [entry] = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.user_id == 0]
            assert (entry.action, entry.server_identifier, entry.arguments, entry.how) == (
                "link stopped",
                "e5f6a7b8",
                f"channel={OTHER}",
                How.WINGBEAT,
            )
            assert entry.outcome == "stopped by Wingbeat: Wingbeat lost access to the channel (View Channel)"
            # The other channel keeps mirroring; the stopped one is said so, with its reason.
            await rig.wait_for_text(CONSOLE, "first line")
            listed = await rig.run("console", None, subcommand="list")
            [other_line] = [line for line in listed.text.splitlines() if f"<#{OTHER}>" in line]
            assert "stopped: Wingbeat lost access to the channel" in other_line
            health = await rig.run("health")
            assert f"<#{OTHER}> stopped: Wingbeat lost access" in health.text
            # Access given back and relinked by an admin: active again.
            fake.guilds[GUILD].set_overwrite(OTHER, fake.bot_user_id, member=True)
            relinked = await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")
            assert "Mirroring" in relinked.text
            assert not any(link.stopped for link in await rig.bot.store.links(GUILD))
            srv.emit_console("second line")
            await rig.wait_for_text(OTHER, "second line")


async def test_a_stopped_link_is_tried_again_at_the_next_start(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        settings = settings_for(emu, fake, tmp_path)
        async with running_bot(emu, fake, settings) as rig:
            await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")
            await rig.bot.store.set_link_stopped(OTHER, "e5f6a7b8", "Wingbeat lost access to the channel")
        async with running_bot(emu, fake, settings) as rig:
            [link] = await rig.bot.store.links(GUILD)
            assert not link.stopped
            await rig.connected("e5f6a7b8")
            srv.emit_console("back again")
            await rig.wait_for_text(OTHER, "back again")


async def test_without_send_messages_the_link_stops(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")
            await rig.connected("e5f6a7b8")
            fake.guilds[GUILD].set_overwrite(OTHER, GUILD, deny=SEND_MESSAGES)  # @everyone
            srv.emit_console("nobody sees this")

            async def stopped() -> bool:
                return [link.stopped_reason for link in await rig.bot.store.links(GUILD)] == [
                    "Wingbeat lacks the Send Messages permission in the channel"
                ]

            await eventually(stopped)
            assert fake.messages(OTHER) == []


async def test_a_channel_deleted_unseen_stops_the_link_as_unknown(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")
            await rig.connected("e5f6a7b8")
            fake.guilds[GUILD].channels.pop(OTHER)  # gone while the bot was not looking: no event
            srv.emit_console("into the void")

            async def stopped() -> bool:
                return [link.stopped_reason for link in await rig.bot.store.links(GUILD)] == [
                    "the channel no longer exists"
                ]

            await eventually(stopped)
            assert any(r.status == 404 and r.path == f"/channels/{OTHER}/messages" for r in fake.requests)


async def test_without_attach_files_a_flood_comes_as_messages_and_no_line_is_lost(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            fake.guilds[GUILD].set_overwrite(OTHER, fake.bot_user_id, deny=ATTACH_FILES, member=True)
            await fake.wait_for(lambda: not _bot_can_attach(rig.bot, OTHER), 2, "the overwrite")
            linked = await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")
            assert "Mirroring" in linked.text and "without Attach Files" in linked.text  # a warning only
            await rig.connected("e5f6a7b8")
            sent = [f"flood line {i:03d} " + "x" * 50 for i in range(120)]  # ~8000 characters
            for line in sent:
                srv.emit_console(line)
            await fake.wait_for(lambda: posted_lines(fake.messages(OTHER)) == sent, 15, "every flood line")
            messages = fake.messages(OTHER)
            assert all(not m.attachments for m in messages)
            notices = [m for m in messages if "Attach Files" in m.content]
            assert len(notices) == 1
            # it heads the messages it explains (the refused batch, now without its file), not after them
            assert notices[0].content.startswith("⚠️ Wingbeat lacks the Attach Files permission")
            assert block_lines(notices[0].content) and notices[0] is not messages[-1]
            assert any(r.status == 403 and r.path == f"/channels/{OTHER}/messages" for r in fake.requests)
            [link] = await rig.bot.store.links(GUILD)
            assert not link.stopped


def _bot_can_attach(bot: Any, channel_id: int) -> bool:
    guild = bot.get_guild(GUILD)
    return bool(guild.get_channel(channel_id).permissions_for(guild.me).attach_files)


async def test_a_deleted_channel_loses_its_links(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            await rig.run("console", {"server": "Creative", "channel": OTHER}, subcommand="link")
            fake.guilds[GUILD].delete_channel(OTHER)

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


THREAD = 900000000000000020  # a thread in #other


async def test_a_thread_is_checked_for_send_messages_in_threads_and_mirrored(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        fake.guilds[GUILD].add_thread(THREAD, "console-thread", OTHER)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            guild = fake.guilds[GUILD]
            guild.set_overwrite(OTHER, fake.bot_user_id, deny=SEND_MESSAGES_IN_THREADS, member=True)
            await fake.wait_for(
                lambda: not _bot_perms(rig.bot, THREAD).send_messages_in_threads, 2, "the overwrite"
            )
            refused = await rig.run("console", {"server": "Creative", "channel": THREAD}, subcommand="link")
            assert refused.ephemeral and [r["type"] for r in refused.responses] == [4]
            assert refused.text == (
                f"Wingbeat lacks Send Messages in Threads in <#{THREAD}>; grant it there and try again."
            )
            assert await rig.bot.store.links(GUILD) == []
            # Send Messages denied in the channel does not matter to its threads.
            guild.set_overwrite(OTHER, fake.bot_user_id, deny=SEND_MESSAGES, member=True)
            await fake.wait_for(
                lambda: _bot_perms(rig.bot, THREAD).send_messages_in_threads, 2, "the overwrite"
            )
            linked = await rig.run("console", {"server": "Creative", "channel": THREAD}, subcommand="link")
            assert "Mirroring" in linked.text
            await rig.connected("e5f6a7b8")
            srv.emit_console("into the thread")
            await rig.wait_for_text(THREAD, "into the thread")


async def test_a_channel_wingbeat_cannot_see_is_named_in_one_sentence(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            unseen = 900000000000000021  # a channel (or private thread) the bot's view of the guild lacks
            inter = await rig.run("console", {"server": "Creative", "channel": unseen}, subcommand="link")
            assert inter.ephemeral and [r["type"] for r in inter.responses] == [4]
            assert f"<#{unseen}>" in inter.text and "View Channel" in inter.text
            assert "<" + "App" not in inter.text and "id=" not in inter.text
            assert await rig.bot.store.links(GUILD) == []


def _bot_perms(bot: Any, channel_id: int) -> Any:
    guild = bot.get_guild(GUILD)
    return guild.get_channel_or_thread(channel_id).permissions_for(guild.me)


async def test_a_deleted_thread_loses_its_links(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        fake.guilds[GUILD].add_thread(THREAD, "console-thread", OTHER)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            await rig.run("console", {"server": "Creative", "channel": THREAD}, subcommand="link")
            fake.guilds[GUILD].delete_channel(THREAD)

            async def gone() -> bool:
                return await rig.bot.store.links(GUILD) == [] and rig.bot.relay.link_health() == []

            await eventually(gone)
            [entry] = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.user_id == 0]
            assert (entry.action, entry.outcome) == ("unlink", "removed by Wingbeat: the channel was deleted")


async def test_a_thread_that_refuses_posts_stops_its_link_naming_send_messages_in_threads(
    tmp_path: Path,
) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        fake.guilds[GUILD].add_thread(THREAD, "console-thread", OTHER)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            await rig.run("console", {"server": "Creative", "channel": THREAD}, subcommand="link")
            await rig.connected("e5f6a7b8")
            fake.guilds[GUILD].set_overwrite(OTHER, GUILD, deny=SEND_MESSAGES_IN_THREADS)  # @everyone
            await fake.wait_for(
                lambda: not _bot_perms(rig.bot, THREAD).send_messages_in_threads, 2, "the overwrite"
            )
            srv.emit_console("nobody sees this")

            async def stopped() -> bool:
                return [link.stopped_reason for link in await rig.bot.store.links(GUILD)] == [
                    "Wingbeat lacks the Send Messages in Threads permission in the thread"
                ]

            await eventually(stopped)
