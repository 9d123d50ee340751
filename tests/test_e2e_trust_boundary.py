"""The trust boundary end to end: only the guilds in GUILD_IDS may use Wingbeat, and each sees only its own links."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.store import Link, open_store
from tests.e2e_helpers import (
    ADMIN,
    CONSOLE,
    GUILD,
    GUILD2,
    GUILD2_ADMIN,
    GUILD2_CONSOLE,
    build_second_guild,
    build_world,
    running_bot,
    settings_for,
)
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord, FakeInteraction

GUILD2_MEMBER = 900000000000000014  # frank, no roles in GUILD2
GUILD2_OTHER = 900000000000000015  # a channel of GUILD2 no console was ever linked to
REFUSAL = (
    "This Discord server is not allowed to use Wingbeat; its operator must add this server's ID "
    f"({GUILD2}) to GUILD_IDS."
)
EVERY_COMMAND: list[tuple[str, dict[str, Any] | None, str | None]] = [
    ("servers", None, None),
    ("status", {"server": "Creative"}, None),
    ("power", {"server": "Creative", "action": "stop"}, None),
    ("command", {"server": "Creative", "command": "say hi"}, None),
    ("logs", {"server": "Creative"}, None),
    ("console", {"server": "Creative", "channel": GUILD2_CONSOLE}, "link"),
    ("console", {"server": "Creative", "channel": GUILD2_CONSOLE}, "unlink"),
    ("console", None, "list"),
    ("health", None, None),
]
AUTOCOMPLETED = [("status", None), ("power", None), ("command", None), ("logs", None), ("console", "link")]


async def save_link(tmp_path: Path, link: Link) -> None:
    async with await open_store(f"sqlite:///{tmp_path / 'wingbeat.sqlite3'}") as store:
        await store.add_link(link)


async def test_a_guild_outside_guild_ids_is_refused_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        build_second_guild(fake)
        # GUILD2 was allowed once and linked a console; then the operator took it out of GUILD_IDS.
        await save_link(
            tmp_path, Link(GUILD2, GUILD2_CONSOLE, "e5f6a7b8", "Creative", GUILD2_ADMIN, datetime.now(UTC))
        )
        caplog.set_level(logging.WARNING, logger="bot")
        settings = settings_for(emu, fake, tmp_path, console_input=True)
        async with running_bot(emu, fake, settings) as rig:
            await fake.wait_for(lambda: str(GUILD2) in caplog.text, 5, "the foreign guild logged")
            # Commands an earlier run registered globally (or in that guild) still reach the bot from there.
            fake.register_commands(None, fake.synced_commands[GUILD])
            await rig.run("servers", user=ADMIN)  # the catalog is warm: autocomplete would have choices
            panel_before = len(emu.requests)

            for command, options, sub in EVERY_COMMAND:
                inter = await fake.invoke(
                    GUILD2, GUILD2_CONSOLE, GUILD2_ADMIN, command, options, subcommand=sub
                )
                await inter.wait_done(5)
                assert_refused(inter, f"/{command} {sub or ''}")
            for command, sub in AUTOCOMPLETED:
                choices = await fake.autocomplete(
                    GUILD2, GUILD2_CONSOLE, GUILD2_ADMIN, command, {"server": ""}, "server", subcommand=sub
                )
                assert choices == [], command
            assert emu.requests[panel_before:] == [] and srv.received == []
            # Console input in the foreign guild's once-linked channel: never a command; its admin is told why.
            typed = await fake.send_user_message(GUILD2, GUILD2_CONSOLE, GUILD2_ADMIN, "stop")
            await rig.run("console", {"server": "Creative"}, subcommand="link")  # a marker after it, here
            await rig.connected("e5f6a7b8")
            marker = await fake.send_user_message(GUILD, CONSOLE, ADMIN, "say marker")
            await fake.wait_for(
                lambda: any(m == marker for _, m, _ in fake.reactions), 5, "the marker's reaction"
            )

            assert not any(m == typed for _, m, _ in fake.reactions)
            # The stale link was not restored either: the only message there is the refusal.
            assert [m.content for m in fake.messages(GUILD2_CONSOLE)] == [REFUSAL]
            assert srv.state == "running"
            assert [args for frame, args in srv.received if frame == "send command"] == [["say marker"]]
            assert await rig.bot.store.recent_audit(guild_id=GUILD2) == []
            # The foreign guild's link is kept (it comes back if the guild is allowed again), not running.
            assert [link.channel_id for link in await rig.bot.store.links(GUILD2)] == [GUILD2_CONSOLE]
            assert GUILD2_CONSOLE not in {h.channel_id for h in rig.bot.relay.link_health()}
        warnings = [
            r for r in caplog.records if r.levelno == logging.WARNING and str(GUILD2) in r.getMessage()
        ]
        assert len([r for r in warnings if "not in GUILD_IDS: Wingbeat refuses" in r.getMessage()]) == 1


def assert_refused(inter: FakeInteraction, label: str) -> None:
    assert [r["type"] for r in inter.responses] == [4], label  # at once, never deferred
    assert inter.ephemeral, label
    assert inter.text == REFUSAL, label


async def test_each_guild_lists_and_checks_only_its_own_links(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        build_second_guild(fake)
        settings = settings_for(emu, fake, tmp_path, guild_ids=(GUILD, GUILD2))
        async with running_bot(emu, fake, settings) as rig:
            mine = await rig.run("console", {"server": "Creative"}, subcommand="link")
            assert "Mirroring" in mine.text
            theirs = await fake.invoke(
                GUILD2, GUILD2_CONSOLE, GUILD2_ADMIN, "console", {"server": "Creative"}, subcommand="link"
            )
            await theirs.wait_done(5)
            assert "Mirroring" in theirs.text

            listed = await rig.run("console", None, subcommand="list")
            assert f"<#{CONSOLE}>" in listed.text and str(GUILD2_CONSOLE) not in listed.text
            health = await rig.run("health")
            assert "1 link here" in health.text and str(GUILD2_CONSOLE) not in health.text

            other = await fake.invoke(
                GUILD2, GUILD2_CONSOLE, GUILD2_ADMIN, "console", None, subcommand="list"
            )
            await other.wait_done(5)
            assert f"<#{GUILD2_CONSOLE}>" in other.text and str(CONSOLE) not in other.text


async def test_an_admin_typing_where_a_foreign_guild_linked_a_console_is_told_the_fix(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        build_second_guild(fake)
        fake.guilds[GUILD2].add_member(GUILD2_MEMBER, "frank")
        fake.guilds[GUILD2].add_channel(GUILD2_OTHER, "chat")
        both = settings_for(emu, fake, tmp_path, guild_ids=(GUILD, GUILD2), console_input=True)
        async with running_bot(emu, fake, both):
            linked = await fake.invoke(
                GUILD2, GUILD2_CONSOLE, GUILD2_ADMIN, "console", {"server": "Creative"}, subcommand="link"
            )
            await linked.wait_done(5)
            assert "Mirroring" in linked.text
        before = len(fake.messages(GUILD2_CONSOLE))
        # The operator takes GUILD2 out of GUILD_IDS and restarts the bot.
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path, console_input=True)) as rig:
            audit_before = await rig.bot.store.recent_audit(guild_id=GUILD2)
            typed = await fake.send_user_message(GUILD2, GUILD2_CONSOLE, GUILD2_ADMIN, "stop")
            await fake.wait_for(lambda: len(fake.messages(GUILD2_CONSOLE)) > before, 5, "the refusal")
            # Within the minute: a second admin message, a member, and an admin in an unlinked channel.
            await fake.send_user_message(GUILD2, GUILD2_CONSOLE, GUILD2_ADMIN, "stop")
            await fake.send_user_message(GUILD2, GUILD2_CONSOLE, GUILD2_MEMBER, "stop")
            await fake.send_user_message(GUILD2, GUILD2_OTHER, GUILD2_ADMIN, "stop")
            await rig.run("console", {"server": "Creative"}, subcommand="link")
            await rig.connected("e5f6a7b8")
            marker = await fake.send_user_message(GUILD, CONSOLE, ADMIN, "say marker")
            await fake.wait_for(
                lambda: any(m == marker for _, m, _ in fake.reactions), 5, "the marker's reaction"
            )

            [told] = fake.messages(GUILD2_CONSOLE)[before:]
            assert told.content == REFUSAL
            assert int(told.payload["message_reference"]["message_id"]) == typed
            assert told.allowed_mentions is not None
            assert told.allowed_mentions["parse"] == [] and told.allowed_mentions.get("replied_user") is False
            assert fake.messages(GUILD2_OTHER) == []
            assert [r for r in fake.reactions if r[1] != marker] == []
            assert [args for frame, args in srv.received if frame == "send command"] == [["say marker"]]
            assert srv.state == "running"
            assert await rig.bot.store.recent_audit(guild_id=GUILD2) == audit_before
