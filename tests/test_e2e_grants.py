"""Grants end to end: /access, and every way in obeying them (commands, autocomplete, console input)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.discord_access import AccessHost
from bot.store import ALL_SERVERS, How, TargetKind
from tests.e2e_helpers import (
    ADMIN,
    CONSOLE,
    GUILD,
    OTHER,
    USER,
    Rig,
    build_world,
    running_bot,
    settings_for,
)
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord, FakeInteraction, PostedMessage

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


async def reaction(rig: Rig, message_id: int, timeout: float = 5.0) -> str:
    await rig.fake.wait_for(
        lambda: any(m == message_id for _, m, _ in rig.fake.reactions), timeout, f"a reaction on {message_id}"
    )
    [emoji] = [e for _, m, e in rig.fake.reactions if m == message_id]
    return emoji


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
    # A member's list shows what they may do: the grants of their roles and @everyone's too.
    for_mona = (await rig.run("access", {"target": MOD}, subcommand="list")).text.splitlines()
    assert for_mona[0] == f"2 grants reaching <@{MOD}> (theirs and their roles'):"
    assert f"• <@&{MOD_ROLE}> · `control.restart` on **Survival** (`{SURVIVAL}`)" in for_mona
    assert "• @everyone · `logs` on all servers" in for_mona
    for_helper = (await rig.run("access", {"target": HELPER}, subcommand="list")).text.splitlines()
    assert for_helper[0] == f"2 grants reaching <@{HELPER}> (theirs and their roles'):"
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


# -- every way in obeys the grants ----------------------------------------------------------------------------


def power_frames(rig: Rig, identifier: str) -> list[str]:
    return [args[0] for frame, args in rig.emu.server(identifier).received if frame == "set state"]


def commands_sent(rig: Rig, identifier: str) -> list[str]:
    return [args[0] for frame, args in rig.emu.server(identifier).received if frame == "send command"]


def refused_at_once(inter: FakeInteraction) -> bool:
    """Answered with one private message, never deferred: a refusal never shows publicly."""
    return inter.ephemeral and [r["type"] for r in inter.responses] == [4]


async def offered(rig: Rig, user: int, command: str, options: dict[str, Any] | None = None) -> list[str]:
    choices = await rig.fake.autocomplete(GUILD, CONSOLE, user, command, options or {}, "server")
    return [str(c["value"]) for c in choices]


async def test_a_moderator_restarts_only_the_survival_server(rig: Rig) -> None:
    host: AccessHost = rig.bot  # the bot is what the access check reads grants and settings from
    assert host.grant_book is rig.bot.grant_book
    await grant(rig, MOD_ROLE, "control.restart", server="Survival")

    done = await rig.run("power", {"server": SURVIVAL, "action": "restart"}, user=MOD)
    assert done.ephemeral and "✅" in done.text
    by_name = await rig.run("power", {"server": "surv", "action": "restart"}, user=MOD)  # typed, not picked
    assert "✅" in by_name.text
    assert power_frames(rig, SURVIVAL) == ["restart", "restart"]

    for server, action in (
        ("Survival", "stop"),
        ("Survival", "kill"),
        ("Creative", "restart"),
        ("Event", "start"),
    ):
        inter = await rig.run("power", {"server": server, "action": action}, user=MOD)
        assert refused_at_once(inter), (server, action)
        needed = {"stop": "control.stop", "kill": "control.stop"}.get(action, f"control.{action}")
        assert f"members granted `{needed}` on **{server}**" in inter.text, inter.text
        assert f"/power {action}" in inter.text
    for other in ("logs", "command"):
        options = {"server": "Survival"} | ({"command": "list"} if other == "command" else {})
        assert refused_at_once(await rig.run(other, options, user=MOD))
    assert refused_at_once(await rig.run("console", {"server": "Survival"}, subcommand="link", user=MOD))
    # Wings saw nothing of the refusals
    assert power_frames(rig, SURVIVAL) == ["restart", "restart"]
    assert power_frames(rig, CREATIVE) == power_frames(rig, EVENT) == []
    assert commands_sent(rig, SURVIVAL) == []

    # the refusals are audited with their server and arguments
    async def refusals() -> list[Any]:
        rows = await rig.bot.store.recent_audit(guild_id=GUILD, user_id=MOD)
        return [e for e in rows if e.outcome.startswith("refused")]

    async def all_written() -> bool:
        return len(await refusals()) == 6  # four /power, /command, /console link (/logs is not audited)

    await eventually(all_written)
    rows = {(e.action, e.server_identifier, e.arguments) for e in await refusals()}
    # the server column holds the server judged; the arguments are what was typed
    assert ("power", SURVIVAL, "server=Survival action=kill") in rows
    assert ("power", CREATIVE, "server=Creative action=restart") in rows
    assert ("command", SURVIVAL, "server=Survival command=list") in rows


async def test_autocomplete_offers_only_the_servers_a_member_may_use(rig: Rig) -> None:
    await grant(rig, MOD_ROLE, "control.restart", server="Survival")
    await grant(rig, MOD, "control.stop", server="Creative")
    assert await offered(rig, MOD, "power") == [CREATIVE, SURVIVAL]  # any power capability counts
    assert await offered(rig, MOD, "power", {"action": "restart"}) == [SURVIVAL]
    assert await offered(rig, MOD, "power", {"action": "kill"}) == [CREATIVE]
    assert await offered(rig, MOD, "logs") == []
    assert await offered(rig, MOD, "status") == [CREATIVE, EVENT, SURVIVAL]  # view is still open to all
    assert await offered(rig, USER, "power") == []
    assert await offered(rig, ADMIN, "power") == [CREATIVE, EVENT, SURVIVAL]
    choices = await rig.fake.autocomplete(GUILD, CONSOLE, MOD, "console", {}, "server", subcommand="link")
    assert choices == []  # admin-only


async def test_console_input_obeys_grants_and_patterns(rig: Rig) -> None:
    await grant(rig, EVENT_ROLE, "control.console", server="Event", commands="say *, whitelist add *")
    linked = await rig.run("console", {"server": "Event", "channel": CONSOLE}, subcommand="link")
    assert "Mirroring" in linked.text
    await rig.connected(EVENT)

    allowed = await rig.fake.send_user_message(GUILD, CONSOLE, HELPER, "SAY hello; stop")
    assert await reaction(rig, allowed) == "✅"
    refused = await rig.fake.send_user_message(GUILD, CONSOLE, HELPER, "stop")
    assert await reaction(rig, refused) == "⛔"
    spaced = await rig.fake.send_user_message(GUILD, CONSOLE, HELPER, " op me")
    assert await reaction(rig, spaced) == "⛔"
    chatter = await rig.fake.send_user_message(GUILD, CONSOLE, MOD, "say I hold no grant here")
    marker = await rig.fake.send_user_message(GUILD, CONSOLE, HELPER, "whitelist add bob")
    assert await reaction(rig, marker) == "✅"
    assert not any(m == chatter for _, m, _ in rig.fake.reactions)  # conversation, not a command
    assert commands_sent(rig, EVENT) == ["SAY hello; stop", "whitelist add bob"]
    assert rig.emu.server(EVENT).state == "running"

    rows = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.action == "console input"]
    assert [(e.user_id, e.arguments, e.how) for e in rows] == [
        (HELPER, "whitelist add bob", How.CONSOLE_INPUT),
        (HELPER, " op me", How.CONSOLE_INPUT),
        (HELPER, "stop", How.CONSOLE_INPUT),
        (HELPER, "SAY hello; stop", How.CONSOLE_INPUT),
    ]
    assert rows[2].outcome == (
        f"refused: On `{EVENT}` you may send only commands matching `say *`, `whitelist add *`; "
        "`stop` matches none of them."
    )

    shown = await rig.run("audit", subcommand="show")
    assert "by console input · ⛔ refused: On" in shown.text


async def test_command_patterns_apply_to_slash_commands_too(rig: Rig) -> None:
    await grant(rig, HELPER, "control.console", server="Event", commands="say *")
    sent = await rig.run("command", {"server": "Event", "command": "say from slash"}, user=HELPER)
    assert sent.text.startswith("Sent `say from slash`")
    refused = await rig.run("command", {"server": "Event", "command": "op hugo"}, user=HELPER)
    assert refused_at_once(refused)
    assert refused.text == (
        f"On **Event** (`{EVENT}`) you may send only commands matching `say *`; `op hugo` matches none of them."
    )
    elsewhere = await rig.run("command", {"server": "Creative", "command": "say hi"}, user=HELPER)
    assert refused_at_once(elsewhere) and "`control.console` on **Creative**" in elsewhere.text
    assert commands_sent(rig, EVENT) == ["say from slash"]
    assert commands_sent(rig, CREATIVE) == []


async def test_revoking_takes_effect_on_the_next_use(rig: Rig) -> None:
    await grant(rig, MOD_ROLE, "control.restart", server="Survival")
    assert "✅" in (await rig.run("power", {"server": "Survival", "action": "restart"}, user=MOD)).text
    await revoke(rig, MOD_ROLE, "control.restart", server="Survival")
    again = await rig.run("power", {"server": "Survival", "action": "restart"}, user=MOD)
    assert refused_at_once(again)
    assert await offered(rig, MOD, "power") == []
    assert power_frames(rig, SURVIVAL) == ["restart"]


async def test_a_grant_to_one_member(rig: Rig) -> None:
    await grant(rig, USER, "logs", server="Creative")
    logs = await rig.run("logs", {"server": "Creative"}, user=USER)
    assert logs.ephemeral and logs.text.startswith(f"**Creative** (`{CREATIVE}`)")  # its (empty) backlog
    assert [r["type"] for r in logs.responses] == [5]  # deferred: it went on to Wings
    refused = await rig.run("logs", {"server": "Survival"}, user=USER)
    assert refused_at_once(refused) and "`logs` on **Survival**" in refused.text
    other = await rig.run("logs", {"server": "Creative"}, user=MOD)  # another member: nothing
    assert refused_at_once(other)


async def test_the_view_rule(rig: Rig) -> None:
    assert not (await rig.run("status", {"server": "Creative"}, user=USER)).ephemeral  # open to everyone
    await grant(rig, MOD_ROLE, "view", server="Survival")
    closed = await rig.run("status", {"server": "Creative"}, user=USER)
    assert refused_at_once(closed) and "`view` on **Creative**" in closed.text
    assert refused_at_once(await rig.run("servers", user=USER))
    assert await offered(rig, USER, "status") == []
    # the view grant's holders see their server, and /servers lists just that one; admins see everything
    assert not (await rig.run("status", {"server": "Survival"}, user=MOD)).ephemeral
    listing = await rig.run("servers", user=MOD)
    assert not listing.ephemeral and "1 server:" in listing.text and "Survival" in listing.text
    assert "Creative" not in listing.text
    assert refused_at_once(await rig.run("status", {"server": "Creative"}, user=MOD))
    assert await offered(rig, MOD, "status") == [SURVIVAL]
    assert not (await rig.run("servers", user=ADMIN)).ephemeral
    # any other capability on a server includes seeing it
    await grant(rig, HELPER, "control.console", server="Event")
    assert await offered(rig, HELPER, "status") == [EVENT]
    await revoke(rig, MOD_ROLE, "view", server="Survival")
    assert not (await rig.run("status", {"server": "Creative"}, user=USER)).ephemeral  # open again


async def test_an_unknown_server_is_refused_to_members_without_grants_on_all_servers(rig: Rig) -> None:
    await grant(rig, MOD_ROLE, "control.restart", server="Survival")
    inter = await rig.run("power", {"server": "Nether `x`", "action": "restart"}, user=MOD)
    assert refused_at_once(inter) and "on `Nether ˋxˋ`" in inter.text
    await grant(rig, MOD_ROLE, "control.restart")  # on all servers: the command itself says what is wrong
    unknown = await rig.run("power", {"server": "Nether", "action": "restart"}, user=MOD)
    assert "No server matches" in unknown.text


# -- boards' buttons, form and menu --------------------------------------------------------------------------


async def post(rig: Rig, subcommand: str, options: dict[str, Any], needle: str) -> PostedMessage:
    before = {m.id for m in rig.fake.messages(OTHER)}
    inter = await rig.run("board", {**options, "channel": OTHER}, subcommand=subcommand)
    assert needle in inter.text, inter.text
    [message] = [m for m in rig.fake.messages(OTHER) if m.id not in before and not m.deleted]
    return message


async def clicked(rig: Rig, user: int, message: PostedMessage, custom_id: str) -> FakeInteraction:
    inter = await rig.fake.click(GUILD, OTHER, user, message.message, custom_id)
    await inter.wait_done()
    return inter


async def test_a_moderator_restarts_survival_by_button_and_nothing_else(rig: Rig) -> None:
    await grant(rig, MOD_ROLE, "control.restart", server="Survival")
    card = await post(rig, "card", {"server": "Survival"}, "Posted a live card")
    restart = await clicked(rig, MOD, card, f"wingbeat:power:{SURVIVAL}:restart")
    await rig.fake.wait_for(lambda: "✅" in restart.all_text, 8, "the restart's outcome")
    for action in ("stop", "start"):  # (Kill is enabled only while a server is stopping)
        inter = await clicked(rig, MOD, card, f"wingbeat:power:{SURVIVAL}:{action}")
        assert refused_at_once(inter), action
        assert f"members granted `control.{action}` on **Survival**" in inter.text
    for custom_id in (f"wingbeat:logs:{SURVIVAL}", f"wingbeat:cmd:{SURVIVAL}"):
        inter = await clicked(rig, MOD, card, custom_id)
        assert refused_at_once(inter) and inter.modal is None
    assert power_frames(rig, SURVIVAL) == ["restart"]
    assert not [n for n, _ in rig.emu.server(SURVIVAL).received if n in ("send command", "send logs")]
    rows = await rig.bot.store.recent_audit(guild_id=GUILD, user_id=MOD)
    assert {(e.action, e.how) for e in rows} == {("power", How.BUTTON), ("command", How.BUTTON)}
    assert [e.outcome.split(":")[0] for e in rows if "restart" in e.arguments] == ["done"]


async def test_the_command_form_obeys_patterns(rig: Rig) -> None:
    await grant(rig, HELPER, "control.console", server="Survival", commands="say *")
    card = await post(rig, "card", {"server": "Survival"}, "Posted a live card")

    async def submit(text: str) -> FakeInteraction:
        opened = await clicked(rig, HELPER, card, f"wingbeat:cmd:{SURVIVAL}")
        modal = opened.modal
        assert modal is not None, opened.text
        [field] = [c for row in modal["components"] for c in row["components"]]
        sent = await rig.fake.submit_modal(
            GUILD, OTHER, HELPER, modal["custom_id"], {field["custom_id"]: text}
        )
        await sent.wait_done()
        return sent

    assert "Sent `say from the card`" in (await submit("say from the card")).text
    refused = await submit("stop")
    assert refused_at_once(refused)
    assert "you may send only commands matching `say *`; `stop` matches none of them" in refused.text
    assert commands_sent(rig, SURVIVAL) == ["say from the card"]
    rows = [
        e for e in await rig.bot.store.recent_audit(guild_id=GUILD, user_id=HELPER) if e.action == "command"
    ]
    assert [(e.arguments, e.how) for e in rows] == [("stop", How.BUTTON), ("say from the card", How.BUTTON)]
    assert rows[0].outcome.startswith("refused: ") and rows[1].outcome.startswith("sent")


async def test_a_boards_menu_follows_the_view_rule(rig: Rig) -> None:
    board = await post(rig, "post", {}, "Posted a live status board")
    await grant(rig, EVENT_ROLE, "view", server="Event")

    async def pick(user: int, server: str) -> FakeInteraction:
        inter = await rig.fake.pick(GUILD, OTHER, user, board.message, "wingbeat:board:select", [server])
        await inter.wait_done()
        return inter

    refused = await pick(USER, SURVIVAL)
    assert refused_at_once(refused) and "`view` on **Survival**" in refused.text
    assert refused_at_once(await pick(HELPER, SURVIVAL))
    card = await pick(HELPER, EVENT)
    assert card.ephemeral and not refused_at_once(card)
