"""/audit show, /audit channel and audit pruning end to end: the real bot in the fake Discord, the emulator behind it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.audit import AuditAction
from bot.store import AuditEntry, How, open_store
from tests.e2e_helpers import (
    ADMIN,
    CONSOLE,
    GUILD,
    OTHER,
    USER,
    Rig,
    build_world,
    message_text,
    running_bot,
    settings_for,
)
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord

SURVIVAL, CREATIVE = "a1b2c3d4", "e5f6a7b8"
ELSEWHERE = 900000000000000777  # a guild that is not this one
VIEW_CHANNEL = 1 << 10


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - the store has no change notification to wait on
            await asyncio.sleep(0.02)


async def audit_rows(rig: Rig, count: int, **filters: object) -> list[AuditEntry]:
    """The guild's audit rows once there are at least `count` (refusals are audited just after their answer)."""

    async def enough() -> bool:
        return len(await rig.bot.store.recent_audit(200, GUILD)) >= count

    await eventually(enough)
    return await rig.bot.store.recent_audit(200, GUILD, **filters)  # type: ignore[arg-type]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with Emulator(stats_interval=0.5, start_delay=0.1, stop_delay=0.1) as emu, FakeDiscord() as fake:
        emu.add_server("Survival", identifier=SURVIVAL, state="offline")
        emu.add_server("Creative", identifier=CREATIVE, state="running")
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path, console_input=True)) as r:
            yield r


# -- /audit show ---------------------------------------------------------------------------------------------


async def test_audit_show_lists_what_happened_and_how_it_came(rig: Rig) -> None:
    power = await rig.run("power", {"server": "Survival", "action": "start"})
    assert "✅" in power.text
    link = await rig.run("console", {"server": "Creative", "channel": CONSOLE}, subcommand="link")
    assert "Mirroring" in link.text
    await rig.connected(CREATIVE)
    typed = await rig.fake.send_user_message(GUILD, CONSOLE, ADMIN, "say hello from discord")
    await rig.fake.wait_for(lambda: any(m == typed for _, m, _ in rig.fake.reactions), 5, "the reaction")
    refused = await rig.run("power", {"server": "Creative", "action": "kill"}, user=USER)
    assert "Only admins" in refused.text
    await audit_rows(rig, 4)

    shown = await rig.run("audit", subcommand="show")
    assert shown.ephemeral
    lines = shown.text.splitlines()
    assert lines[0] == "The latest 4 audited actions, newest first:"
    refusal, console, linked, started = lines[1:]
    assert f"<@{USER}>" in refusal and "kill" in refusal and "⛔ refused" in refusal
    assert "<@900000000000000005>" in console and "console input `say hello from discord`" in console
    assert "by console input" in console and "✅ sent" in console
    assert "**Creative** (`e5f6a7b8`)" in linked and "link `channel=" in linked and "by command" in linked
    assert "**Survival** (`a1b2c3d4`)" in started and "power `start`" in started and "✅ done" in started
    for line in lines[1:]:
        assert line.startswith("<t:") and line.split(" · ")[0].endswith(":f>")  # a Discord timestamp
    # ephemeral, and mentions disabled all the same
    assert rig.fake.interactions[-1].answers[-1].payload.get("allowed_mentions") == {"parse": []}


async def test_audit_show_filters_by_server_and_member_and_stays_in_its_guild(rig: Rig) -> None:
    await rig.run("power", {"server": "Survival", "action": "start"})
    await rig.run("command", {"server": "Creative", "command": "say hi"}, user=USER)  # refused, audited
    await rig.bot.store.audit(
        guild_id=ELSEWHERE,
        user_id=ADMIN,
        server_identifier=SURVIVAL,
        action="power",
        arguments="kill",
        outcome="done",
    )
    await audit_rows(rig, 2)

    everything = await rig.run("audit", subcommand="show")
    assert everything.text.startswith("The latest 2 audited actions")
    assert "kill" not in everything.text  # another guild's row

    by_server = await rig.run("audit", {"server": "Survival"}, subcommand="show")
    assert by_server.text.splitlines()[0] == (
        "The latest 1 audited action on **Survival** (`a1b2c3d4`), newest first:"
    )
    assert "power `start`" in by_server.text

    by_member = await rig.run("audit", {"member": USER}, subcommand="show")
    assert f"by <@{USER}>" in by_member.text.splitlines()[0]
    assert "⛔ refused" in by_member.text and "say hi" in by_member.text and "start" not in by_member.text

    nothing = await rig.run("audit", {"server": "Survival", "member": USER}, subcommand="show")
    assert nothing.text.startswith("No audited actions on **Survival**")


async def test_audit_show_is_for_admins_only(rig: Rig) -> None:
    refused = await rig.run("audit", subcommand="show", user=USER)
    assert refused.ephemeral and [r["type"] for r in refused.responses] == [4]
    assert "Only admins can use /audit show" in refused.text


async def test_a_long_audit_log_comes_as_a_file(rig: Rig) -> None:
    for i in range(60):
        await rig.bot.store.audit(
            guild_id=GUILD,
            user_id=USER,
            server_identifier=SURVIVAL,
            action="command",
            arguments=f"say message number {i} " + "x" * 40,
            outcome="sent; 0 lines of output",
        )
    shown = await rig.run("audit", {"limit": 50}, subcommand="show")
    assert shown.text.startswith("The latest 50 audited actions, newest first: see the file.")
    [(name, data)] = shown.files
    assert name == "audit.txt"
    rows = data.decode().splitlines()
    assert len(rows) == 50
    assert rows[0].endswith(
        f"| user {USER} | Survival ({SURVIVAL}) | command say message number 59 {'x' * 40} | command"
        " | sent; 0 lines of output"
    )
    assert "message number 9 " not in data.decode()  # only the latest 50


async def test_rows_without_an_outcome_show_as_interrupted_or_in_progress(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Survival", identifier=SURVIVAL, state="offline")
        build_world(fake)
        settings = settings_for(emu, fake, tmp_path)
        async with await open_store(settings.database_url) as store:  # a run that crashed mid-action
            await store.audit_start(
                guild_id=GUILD, user_id=ADMIN, server_identifier=SURVIVAL, action="power", arguments="stop"
            )
        async with running_bot(emu, fake, settings) as rig:
            await rig.bot.store.audit_start(
                guild_id=GUILD,
                user_id=ADMIN,
                server_identifier=SURVIVAL,
                action="power",
                arguments="restart",
                how=How.BUTTON,
            )
            shown = await rig.run("audit", subcommand="show")
            now, before = shown.text.splitlines()[1:]
            assert "power `restart`" in now and "by button" in now and "⏳ in progress" in now
            assert "power `stop`" in before and "⚠️ interrupted" in before


# -- /audit channel ------------------------------------------------------------------------------------------


def lines_in(fake: FakeDiscord, channel: int) -> list[str]:
    return [line for m in fake.messages(channel) for line in message_text(m).splitlines()]


async def test_audit_channel_gets_one_line_per_action_without_pings(rig: Rig) -> None:
    inter = await rig.run("audit", {"channel": OTHER}, subcommand="channel")
    assert f"<#{OTHER}>" in inter.text
    assert (await rig.bot.store.guild_settings(GUILD)).audit_channel_id == OTHER
    await rig.wait_for_text(OTHER, "audit channel `channel=")  # the change itself is the first line

    await rig.run("power", {"server": "Survival", "action": "start"})
    await rig.run("command", {"server": "Creative", "command": "say @everyone hi"}, user=USER)  # refused
    await rig.wait_for_text(OTHER, "say @everyone hi")
    posted = lines_in(rig.fake, OTHER)
    assert len(posted) == 3
    assert "<@900000000000000005>" in posted[0] and "by command" in posted[0]
    assert "power `start`" in posted[1] and "✅ done" in posted[1] and "**Survival**" in posted[1]
    assert f"<@{USER}>" in posted[2] and "⛔ refused" in posted[2]
    for message in rig.fake.messages(OTHER):
        assert message.allowed_mentions == {"parse": []}

    # stopping: the change is audited (not posted), and nothing more arrives
    off = await rig.run("audit", subcommand="channel")
    assert f"no longer posted to <#{OTHER}>" in off.text
    assert (await rig.bot.store.guild_settings(GUILD)).audit_channel_id is None
    await rig.run("power", {"server": "Survival", "action": "stop"})
    rows = await audit_rows(rig, 5)
    assert rows[0].action == "power" and rows[1].action == "audit channel" and rows[1].arguments == "off"
    await asyncio.sleep(0.3)  # a post would have been queued at once; give a stray one time to show up
    assert len(lines_in(rig.fake, OTHER)) == 3


async def test_audit_channel_survives_a_restart(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Survival", identifier=SURVIVAL, state="offline")
        build_world(fake)
        settings = settings_for(emu, fake, tmp_path)
        async with running_bot(emu, fake, settings) as rig:
            await rig.run("audit", {"channel": OTHER}, subcommand="channel")
        async with running_bot(emu, fake, settings) as rig:
            await rig.run("console", {"server": "Survival", "channel": CONSOLE}, subcommand="link")
            await rig.wait_for_text(OTHER, "link `channel=")


async def test_audit_channel_needs_a_channel_the_bot_can_post_in(rig: Rig) -> None:
    rig.fake.guilds[GUILD].add_role(GUILD, "@everyone", permissions=VIEW_CHANNEL)  # no Send Messages
    guild = rig.bot.get_guild(GUILD)
    assert guild is not None
    await rig.fake.wait_for(lambda: not guild.default_role.permissions.send_messages, 2, "the role update")
    inter = await rig.run("audit", {"channel": OTHER}, subcommand="channel")
    assert inter.ephemeral and "Send Messages" in inter.text
    assert (await rig.bot.store.guild_settings(GUILD)).audit_channel_id is None


async def test_a_flood_of_actions_is_posted_in_few_messages_and_overflow_is_said(rig: Rig) -> None:
    await rig.run("audit", {"channel": OTHER}, subcommand="channel")
    feed = rig.bot.audit_feed
    # the sender is back waiting for entries (not still finishing that post) before the flood starts
    await rig.fake.wait_for(lambda: feed.posted == 1, 5, "the first audit post")
    now = datetime.now(UTC)
    for i in range(600):  # synchronously: more than the queue holds before the sender runs once
        feed.publish(
            AuditEntry(i, now, GUILD, USER, SURVIVAL, "command", f"say {i}", "sent", How.COMMAND, now)
        )
    assert feed.dropped == 100
    await rig.bot.auditor.record(AuditAction(GUILD, ADMIN, SURVIVAL, "power", "start"), "done")
    await rig.wait_for_text(OTHER, "power `start`")
    first, burst, last = rig.fake.messages(OTHER)  # one message per burst, whatever its size
    assert "audit channel" in first.content
    assert burst.content == "500 audited actions at once; they are attached."
    [(name, data)] = burst.attachments
    rows = data.decode().splitlines()
    # the overflow happened before the sender ran, so the burst itself says so first
    assert name == "audit.txt" and len(rows) == 501
    assert rows[0].startswith("⚠️ 100 audited actions were not posted here (too many at once)")
    assert rows[1].endswith(f"| user {USER} | Survival ({SURVIVAL}) | command say 0 | command | sent")
    assert rows[-1].endswith("| command say 499 | command | sent")
    assert "power `start`" in last.content and "\n" not in last.content


# -- pruning ------------------------------------------------------------------------------------------------


async def write_rows_dated(url: str, days_ago: list[int]) -> None:
    for days in days_ago:
        moment = datetime.now(UTC) - timedelta(days=days)
        async with await open_store(url, clock=lambda moment=moment: moment) as store:  # type: ignore[misc]
            await store.audit(
                guild_id=GUILD,
                user_id=ADMIN,
                server_identifier=SURVIVAL,
                action="power",
                arguments=f"{days} days ago",
                outcome="done",
            )


async def test_rows_past_the_retention_are_pruned_at_start_up(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        settings = settings_for(emu, fake, tmp_path)
        assert settings.audit_retention_days == 365
        await write_rows_dated(settings.database_url, [400, 366, 364, 1])
        async with running_bot(emu, fake, settings) as rig:

            async def pruned() -> bool:
                return rig.bot.audit_pruner.runs >= 1

            await eventually(pruned)
            kept = [e.arguments for e in await rig.bot.store.recent_audit(guild_id=GUILD)]
            assert kept == ["1 days ago", "364 days ago"]
            assert rig.bot.audit_pruner.pruned == 2 and rig.bot.audit_pruner.last_error is None


async def test_retention_zero_keeps_everything(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        settings = dataclasses.replace(settings_for(emu, fake, tmp_path), audit_retention_days=0)
        await write_rows_dated(settings.database_url, [4000, 1])
        async with running_bot(emu, fake, settings) as rig:
            await rig.run("health")  # the bot is up and answering
            assert not rig.bot.audit_pruner.enabled and rig.bot.audit_pruner.runs == 0
            assert len(await rig.bot.store.recent_audit(guild_id=GUILD)) == 2


async def test_health_says_when_the_audit_channel_refuses_posts(rig: Rig) -> None:
    await rig.run("audit", {"channel": OTHER}, subcommand="channel")
    await rig.wait_for_text(OTHER, "audit channel")
    rig.fake.fail_next("POST", f"/channels/{OTHER}/messages", 403)
    await rig.run("power", {"server": "Survival", "action": "start"})
    await rig.fake.wait_for(lambda: rig.bot.audit_feed.error(GUILD) is not None, 5, "the refused post")
    health = await rig.run("health")
    assert f"Audit channel: ⚠️ Discord refused a post to <#{OTHER}>: 403" in health.text
    await rig.run("power", {"server": "Survival", "action": "stop"})  # the channel takes posts again
    await rig.wait_for_text(OTHER, "power `stop`")
    assert "Audit channel" not in (await rig.run("health")).text


async def test_the_audit_channel_never_shows_internal_addresses(rig: Rig) -> None:
    # The node behind Survival stops answering: the power action fails with the network error, which names
    # the node's address. The audit channel may be read by anyone in it, so the address stays out of it.
    await rig.run("audit", {"channel": OTHER}, subcommand="channel")
    await rig.wait_for_text(OTHER, "audit channel `channel=")
    assert rig.bot.manager.peek(SURVIVAL) is None  # no connection yet: the next one goes to the dead node
    rig.emu.socket_url = lambda server: f"ws://127.0.0.1:9/api/servers/{server.uuid}/ws"  # type: ignore[method-assign]
    await rig.run("power", {"server": "Survival", "action": "start"})
    await rig.wait_for_text(OTHER, "power `start`")
    [row] = [e for e in await rig.bot.store.recent_audit(10, GUILD) if e.action == "power"]
    assert "127.0.0.1" in row.outcome  # the store (for admins' /audit show files and the logs) keeps it whole
    posted = "\n".join(lines_in(rig.fake, OTHER))
    assert "power `start`" in posted and "127.0.0.1" not in posted and ":9" not in posted
