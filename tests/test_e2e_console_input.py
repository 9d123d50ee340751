"""Console input end to end: an admin's message in a linked channel becomes a console command (CONSOLE_INPUT)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e_helpers import (
    ADMIN,
    CONSOLE,
    GUILD,
    OTHER,
    OWNER,
    USER,
    Rig,
    build_world,
    running_bot,
    settings_for,
)
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord

INTENT_GUILD_MESSAGES = 1 << 9
INTENT_MESSAGE_CONTENT = 1 << 15


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        emu.add_server("Survival", identifier="a1b2c3d4", state="offline")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path, console_input=True)) as r:
            for server, channel in (("Creative", CONSOLE), ("Survival", OTHER)):
                inter = await r.run("console", {"server": server, "channel": channel}, subcommand="link")
                assert "Mirroring" in inter.text
            await r.connected("e5f6a7b8")
            await r.connected("a1b2c3d4")
            yield r


def commands_sent(rig: Rig, identifier: str) -> list[str]:
    return [args[0] for frame, args in rig.emu.server(identifier).received if frame == "send command"]


async def reaction(rig: Rig, message_id: int, timeout: float = 5.0) -> str:
    await rig.fake.wait_for(
        lambda: any(m == message_id for _, m, _ in rig.fake.reactions), timeout, f"a reaction on {message_id}"
    )
    [emoji] = [e for _, m, e in rig.fake.reactions if m == message_id]
    return emoji


async def test_the_bot_asks_for_message_content_only_with_console_input(rig: Rig) -> None:
    intents = rig.bot.intents
    assert intents.guilds and intents.guild_messages and intents.message_content
    assert not intents.members and not intents.presences and not intents.dm_messages


async def test_admin_message_becomes_a_console_command(rig: Rig) -> None:
    message = await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, "say typed in discord")
    assert await reaction(rig, message) == "✅"
    assert commands_sent(rig, "e5f6a7b8") == ["say typed in discord"]
    await rig.wait_for_text(CONSOLE, "[Server] typed in discord")  # the relay shows what it caused
    [entry] = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.action == "console input"]
    assert (entry.user_id, entry.server_identifier, entry.arguments, entry.outcome) == (
        ADMIN,
        "e5f6a7b8",
        "say typed in discord",
        "sent",
    )


async def test_administrator_permission_also_counts(rig: Rig) -> None:
    message = await rig.fake.send_user_message(GUILD, CONSOLE, OWNER, "list")
    assert await reaction(rig, message) == "✅"
    assert commands_sent(rig, "e5f6a7b8") == ["list"]


async def test_others_bots_and_webhooks_are_ignored(rig: Rig) -> None:
    ignored = [
        await rig.fake.send_user_message(GUILD, CONSOLE, USER, "say from a member"),
        await rig.fake.send_user_message(GUILD, CONSOLE, 777, "say from a bot", bot=True),
        await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, "say via webhook", webhook_id=555),
    ]
    marker = await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, "say marker")
    assert await reaction(rig, marker) == "✅"  # processed after the three before it
    assert commands_sent(rig, "e5f6a7b8") == ["say marker"]
    assert not any(m in ignored for _, m, _ in rig.fake.reactions)
    audited = [
        e.arguments for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.action == "console input"
    ]
    assert audited == ["say marker"]


async def test_messages_in_unlinked_channels_are_ignored(rig: Rig) -> None:
    await rig.run("console", {"server": "Survival", "channel": OTHER}, subcommand="unlink")
    ignored = await rig.fake.send_user_message(GUILD, OTHER, ADMIN, "say nobody listens")
    marker = await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, "say marker")
    assert await reaction(rig, marker) == "✅"
    assert not any(m == ignored for _, m, _ in rig.fake.reactions)
    assert commands_sent(rig, "a1b2c3d4") == []


async def test_an_offline_server_refuses_with_a_reaction(rig: Rig) -> None:
    message = await rig.fake.send_user_message(GUILD, OTHER, ADMIN, "say hello")
    assert await reaction(rig, message) == "⛔"
    assert commands_sent(rig, "a1b2c3d4") == []
    [entry] = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.action == "console input"]
    assert entry.outcome.startswith("refused: ") and "offline" in entry.outcome


async def test_a_multi_line_message_is_refused(rig: Rig) -> None:
    message = await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, "say one\nstop")
    assert await reaction(rig, message) == "⛔"
    assert commands_sent(rig, "e5f6a7b8") == []
    assert rig.emu.server("e5f6a7b8").state == "running"


async def test_without_console_input_the_bot_reads_no_messages(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            assert not rig.bot.intents.message_content and not rig.bot.intents.guild_messages
            await rig.run("console", {"server": "Creative"}, subcommand="link")
            await rig.connected("e5f6a7b8")
            await fake.send_user_message(GUILD, CONSOLE, ADMIN, "say hello")
            await rig.run("servers", user=USER)  # a round trip after the message
            assert commands_sent(rig, "e5f6a7b8") == [] and fake.reactions == []


SYSTEM_MESSAGES = [
    (18, "stop"),  # THREAD_CREATED: a thread named "stop" started from the linked channel
    (6, ""),  # CHANNEL_PINNED_MESSAGE
    (7, ""),  # USER_JOIN
    (4, "stop"),  # CHANNEL_NAME_CHANGE: the content is the new name
    (8, ""),  # GUILD_BOOST
    (46, "stop"),  # a poll result
]


@pytest.mark.parametrize(("message_type", "content"), SYSTEM_MESSAGES)
async def test_system_messages_never_become_commands(rig: Rig, message_type: int, content: str) -> None:
    system = await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, content, message_type=message_type)
    marker = await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, "say marker")
    assert await reaction(rig, marker) == "✅"
    assert commands_sent(rig, "e5f6a7b8") == ["say marker"]
    assert not any(m == system for _, m, _ in rig.fake.reactions)
    assert rig.emu.server("e5f6a7b8").state == "running"


async def test_a_reply_is_an_ordinary_message(rig: Rig) -> None:
    first = await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, "say first")
    assert await reaction(rig, first) == "✅"
    answer = await rig.fake.send_user_message(
        GUILD, CONSOLE, ADMIN, "say again", message_type=19, reference=first
    )
    assert await reaction(rig, answer) == "✅"
    assert commands_sent(rig, "e5f6a7b8") == ["say first", "say again"]


async def test_an_edit_is_not_a_second_command(rig: Rig) -> None:
    typed = await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, "say hello")
    assert await reaction(rig, typed) == "✅"
    await rig.fake.edit_user_message(typed, "stop")
    marker = await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, "say marker")
    assert await reaction(rig, marker) == "✅"
    assert commands_sent(rig, "e5f6a7b8") == ["say hello", "say marker"]
    assert rig.emu.server("e5f6a7b8").state == "running"
