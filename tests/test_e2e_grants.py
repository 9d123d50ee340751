"""Grants end to end: /access, and every way in obeying them (commands, autocomplete, console input)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.store import ALL_SERVERS, TargetKind
from tests.e2e_helpers import (
    ADMIN,
    GUILD,
    USER,
    Rig,
    build_world,
    running_bot,
    settings_for,
)
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord

SURVIVAL, CREATIVE, EVENT = "a1b2c3d4", "e5f6a7b8", "c9d0e1f2"
MOD_ROLE = 900000000000000101
EVENT_ROLE = 900000000000000102
MOD = 900000000000000103  # holds MOD_ROLE
HELPER = 900000000000000104  # holds EVENT_ROLE
GRANTED_ADMIN = 900000000000000105  # holds a role with an `admin` grant, nothing else
GRANTED_ADMIN_ROLE = 900000000000000106
ROBOT = 900000000000000107


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - the store has no change notification to wait on
            await asyncio.sleep(0.02)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with Emulator(stats_interval=0.5, start_delay=0.1, stop_delay=0.1) as emu, FakeDiscord() as fake:
        emu.add_server("Survival", identifier=SURVIVAL, state="running")
        emu.add_server("Creative", identifier=CREATIVE, state="running")
        emu.add_server("Event", identifier=EVENT, state="running")
        build_world(fake)
        guild = fake.guilds[GUILD]
        guild.add_role(MOD_ROLE, "Moderators")
        guild.add_role(EVENT_ROLE, "Event team")
        guild.add_role(GRANTED_ADMIN_ROLE, "Helpers with admin")
        guild.add_member(MOD, "mona", roles=[MOD_ROLE])
        guild.add_member(HELPER, "hugo", roles=[EVENT_ROLE])
        guild.add_member(GRANTED_ADMIN, "gina", roles=[GRANTED_ADMIN_ROLE])
        guild.add_member(ROBOT, "robot", bot=True)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path, console_input=True)) as r:
            yield r


async def grant(rig: Rig, target: int, capability: str, *, user: int = ADMIN, **options: Any) -> str:
    inter = await rig.run(
        "access", {"target": target, "capability": capability, **options}, subcommand="grant", user=user
    )
    assert inter.ephemeral
    return inter.text


async def revoke(rig: Rig, target: int, capability: str, *, user: int = ADMIN, **options: Any) -> str:
    inter = await rig.run(
        "access", {"target": target, "capability": capability, **options}, subcommand="revoke", user=user
    )
    assert inter.ephemeral
    return inter.text


# -- /access grant, revoke, list --------------------------------------------------------------------------


async def test_grant_list_and_revoke(rig: Rig) -> None:
    text = await grant(rig, MOD_ROLE, "control.restart", server="Survival")
    assert text == f"Granted: <@&{MOD_ROLE}> · `control.restart` on **Survival** (`{SURVIVAL}`)."
    text = await grant(rig, HELPER, "control.console", server="Event", commands="say *, whitelist add *")
    assert text == (
        f"Granted: <@{HELPER}> · `control.console` on **Event** (`{EVENT}`) · commands: `say *`, `whitelist add *`."
    )
    text = await grant(rig, HELPER, "control.console", server="Event", commands="say *")
    assert text.startswith("Updated: ") and "commands: `say *`." in text
    assert (await grant(rig, GUILD, "logs")).startswith("Granted: @everyone · `logs` on all servers")
    book = rig.bot.grant_book.grants(GUILD)
    assert {(g.target_kind, g.target_id, g.capability, g.server_identifier, g.commands) for g in book} == {
        (TargetKind.ROLE, MOD_ROLE, "control.restart", SURVIVAL, ()),
        (TargetKind.MEMBER, HELPER, "control.console", EVENT, ("say *",)),
        (TargetKind.ROLE, GUILD, "logs", ALL_SERVERS, ()),
    }
    assert await rig.bot.store.grants(GUILD) == list(book)

    listed = await rig.run("access", subcommand="list")
    lines = listed.text.splitlines()
    assert lines[0] == "3 grants:"
    assert f"• <@&{MOD_ROLE}> · `control.restart` on **Survival** (`{SURVIVAL}`)" in lines
    assert f"• <@{HELPER}> · `control.console` on **Event** (`{EVENT}`) · commands: `say *`" in lines
    assert "• @everyone · `logs` on all servers" in lines
    assert lines[-1].startswith("`view` is open to everyone")
    assert rig.fake.interactions[-1].answers[-1].payload.get("allowed_mentions") == {"parse": []}

    for_mods = await rig.run("access", {"target": MOD_ROLE}, subcommand="list")
    assert for_mods.text.splitlines()[0] == f"1 grant for <@&{MOD_ROLE}>:"
    on_event = await rig.run("access", {"server": "Event"}, subcommand="list")
    assert on_event.text.splitlines()[0] == f"2 grants reaching **Event** (`{EVENT}`):"  # its own and `*`

    assert (await revoke(rig, MOD_ROLE, "control.restart", server="Survival")).startswith(
        f"Revoked: <@&{MOD_ROLE}> no longer holds `control.restart` on **Survival**"
    )
    assert "nothing changed" in await revoke(rig, MOD_ROLE, "control.restart", server="Survival")
    assert len(rig.bot.grant_book.grants(GUILD)) == 2

    rows = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.action in ("grant", "revoke")]
    assert [(e.action, e.outcome) for e in rows] == [
        ("revoke", "there was no such grant"),
        ("revoke", "revoked"),
        ("grant", "granted"),
        ("grant", "updated"),
        ("grant", "granted"),
        ("grant", "granted"),
    ]
    assert rows[-2].arguments == (
        f"member={HELPER} capability=control.console server={EVENT} commands=say *, whitelist add *"
    )
    assert rows[-2].server_identifier == EVENT and rows[2].server_identifier is None  # `*`: no one server


async def test_grant_refuses_what_makes_no_sense(rig: Rig) -> None:
    assert "go with `control.console` only" in await grant(rig, MOD_ROLE, "logs", commands="say *")
    assert "at most 100 characters" in await grant(rig, MOD_ROLE, "control.console", commands="x" * 101)
    assert "at most 20 command patterns" in await grant(
        rig, MOD_ROLE, "control.console", commands=",".join(f"c{i}" for i in range(21))
    )
    assert "Bots cannot use" in await grant(rig, ROBOT, "logs")
    assert "no capability" in await grant(rig, MOD_ROLE, "control.everything")
    assert "Survivl" in await grant(rig, MOD_ROLE, "logs", server="Survivl")  # an unknown server
    assert rig.bot.grant_book.grants(GUILD) == ()
    assert await rig.bot.store.grants(GUILD) == []


async def test_the_first_view_grant_says_view_is_no_longer_open(rig: Rig) -> None:
    assert "no longer open to everyone" in await grant(rig, MOD_ROLE, "view", server="Survival")
    assert "no longer open" not in await grant(rig, EVENT_ROLE, "view", server="Event")
    listed = await rig.run("access", subcommand="list")
    assert listed.text.splitlines()[-1].startswith("`view` is limited to admins and the `view` grants")


async def test_a_long_grant_list_comes_as_a_file(rig: Rig) -> None:
    patterns = ", ".join(f"pattern number {i} *" for i in range(20))
    for target in (HELPER, EVENT_ROLE):
        for server in ("Survival", "Creative", "Event"):
            await grant(rig, target, "control.console", server=server, commands=patterns)
    listed = await rig.run("access", subcommand="list")
    assert listed.text.startswith("6 grants: see the file.")
    [(name, data)] = listed.files
    assert name == "grants.txt"
    rows = data.decode().splitlines()
    assert len(rows) == 6
    assert rows[0] == (
        f"member {HELPER} · control.console on Survival ({SURVIVAL}) · commands: "
        + ", ".join(f"pattern number {i} *" for i in range(20))
    )
    assert rows[-1].startswith(f"role {EVENT_ROLE} · control.console on Creative ({CREATIVE})")


async def test_only_admins_manage_grants_and_an_admin_grant_cannot_hand_out_admin(rig: Rig) -> None:
    for sub, options in (("grant", {"target": MOD_ROLE, "capability": "logs"}), ("list", None)):
        refused = await rig.run("access", options, subcommand=sub, user=USER)
        assert refused.ephemeral and [r["type"] for r in refused.responses] == [4]
        assert f"Only admins can use /access {sub}" in refused.text

    await grant(rig, GRANTED_ADMIN_ROLE, "admin")
    # an admin by grant may manage other grants...
    assert (await grant(rig, MOD_ROLE, "control.restart", user=GRANTED_ADMIN)).startswith("Granted:")
    # ...but neither give `admin` (to anyone, themselves included) nor take it away
    for target in (MOD_ROLE, GRANTED_ADMIN):
        text = await grant(rig, target, "admin", user=GRANTED_ADMIN)
        assert "Only admins (the Administrator permission or an admin role) can give or take" in text
    text = await revoke(rig, GRANTED_ADMIN_ROLE, "admin", user=GRANTED_ADMIN)
    assert "can give or take the `admin` capability" in text
    assert {g.capability for g in rig.bot.grant_book.grants(GUILD)} == {"admin", "control.restart"}
    # and no one gives `admin` to @everyone
    assert "every member an admin" in await grant(rig, GUILD, "admin")
