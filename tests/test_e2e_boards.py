"""Boards and cards end to end: the real bot in the fake Discord, fed by the emulator's Wings sockets."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot import server_option
from bot.app import WingbeatBot
from bot.settings import Settings
from bot.store import AuditEntry, BoardKind, How
from tests.e2e_helpers import ADMIN, CONSOLE, GUILD, OTHER, TIMING, USER, Rig, build_world, settings_for
from tests.fakes.emulator import Emulator, FakeServer
from tests.fakes.fake_discord import FakeDiscord, FakeInteraction, PostedMessage
from tests.waiting import wait_until

INTERVAL = 0.5  # STATUS_INTERVAL for these tests
SURVIVAL, CREATIVE = "a1b2c3d4", "e5f6a7b8"
STRANGER_GUILD = 900000000000000077


def make_board_bot(settings: Settings) -> WingbeatBot:
    return WingbeatBot(
        settings,
        timing=TIMING,
        relay_interval=0.2,
        catalog_refresh=30.0,
        idle_close=5.0,
        panel_timeout=3.0,
        guild_ready_timeout=0.05,
        board_tick=0.1,
    )


@contextlib.asynccontextmanager
async def board_bot(emu: Emulator, fake: FakeDiscord, settings: Settings) -> AsyncIterator[Rig]:
    bot = make_board_bot(settings)
    async with fake.run_client(bot, ready_timeout=8.0):
        yield Rig(emu, fake, bot)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Emulator, FakeDiscord, Settings]]:
    async with Emulator(stats_interval=0.2, start_delay=0.2, stop_delay=0.2) as emu, FakeDiscord() as fake:
        emu.add_server("Survival", identifier=SURVIVAL, state="offline")
        emu.add_server("Creative", identifier=CREATIVE, state="running")
        build_world(fake)
        yield emu, fake, replace(settings_for(emu, fake, tmp_path), status_interval=INTERVAL)


@pytest.fixture
async def rig(world: tuple[Emulator, FakeDiscord, Settings]) -> AsyncIterator[Rig]:
    emu, fake, settings = world
    async with board_bot(emu, fake, settings) as r:
        yield r


# -- helpers ------------------------------------------------------------------------------------------------


def description(message: PostedMessage) -> str:
    return str(message.message["embeds"][0].get("description") or "")


def card_text(message: PostedMessage) -> str:
    embed = message.message["embeds"][0]
    fields = " ".join(f"{f['name']}={f['value']}" for f in embed.get("fields") or [])
    return f"{embed.get('title')} {embed.get('description')} {fields}"


def components(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["custom_id"]: c for row in message.get("components") or [] for c in row["components"]}


def live(fake: FakeDiscord, channel: int = CONSOLE) -> list[PostedMessage]:
    return [m for m in fake.messages(channel) if not m.deleted]


async def post_board(rig: Rig, channel: int = CONSOLE) -> PostedMessage:
    inter = await rig.run("board", {}, subcommand="post", channel=channel)
    assert inter.ephemeral and "Posted a live status board" in inter.text, inter.text
    [message] = live(rig.fake, channel)
    return message


async def post_card(rig: Rig, server: str = "Survival", channel: int = CONSOLE) -> PostedMessage:
    before = {m.id for m in rig.fake.messages(channel)}
    inter = await rig.run("board", {"server": server}, subcommand="card", channel=channel)
    assert "Posted a live card" in inter.text, inter.text
    [message] = [m for m in live(rig.fake, channel) if m.id not in before]
    return message


async def answered(inter: FakeInteraction, needle: str, timeout: float = 8.0) -> None:
    await inter._owner.wait_for(lambda: needle in inter.all_text, timeout, f"{needle!r} in the answers")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 8.0) -> None:
    """Wait until an async check (e.g. a store read) holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def edit_times(fake: FakeDiscord, message_id: int) -> list[float]:
    return [r.at for r in fake.edits() if r.path.endswith(f"/{message_id}") and r.status == 200]


def assert_paced(fake: FakeDiscord, message_id: int) -> None:
    times = edit_times(fake, message_id)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= INTERVAL - 0.05 for gap in gaps), gaps


def steady_stats(srv: FakeServer) -> list[int]:
    """Make a running server idle: its figures wobble only within a rounding step. Returns a call counter."""
    calls = [0]
    original = srv.stats

    def idle() -> dict[str, Any]:
        calls[0] += 1
        stats = original()
        if srv.state == "running":
            stats["cpu_absolute"] = round(random.uniform(11.5, 13.4), 3)
            stats["memory_bytes"] = int(random.uniform(0.58, 0.62) * 1024**3)
        return stats

    srv.stats = idle  # type: ignore[method-assign]
    return calls


# -- boards -------------------------------------------------------------------------------------------------


async def test_a_board_lists_every_server_and_follows_start_and_stop(rig: Rig) -> None:
    board = await post_board(rig)
    text = description(board)
    assert "🔴 **Survival** — offline" in text
    assert "🟢 **Creative** — running · CPU" in text and "GiB" in text
    select = components(board.message)["wingbeat:board:select"]
    assert select["placeholder"] == "Manage a server…"
    assert [o["value"] for o in select["options"]] == [CREATIVE, SURVIVAL]  # by name
    [saved] = await rig.bot.store.boards(GUILD)
    assert (saved.message_id, saved.kind, saved.channel_id) == (board.id, BoardKind.BOARD, CONSOLE)

    srv = rig.emu.server(SURVIVAL)
    srv.handle_power("start")
    await rig.fake.wait_for(
        lambda: "🟡 **Survival** — starting" in description(board) or srv.state == "running"
    )
    await rig.fake.wait_for(lambda: "🟢 **Survival** — running" in description(board), 8.0)
    srv.handle_power("stop")
    await rig.fake.wait_for(lambda: "🔴 **Survival** — offline · since <t:" in description(board), 8.0)
    assert_paced(rig.fake, board.id)
    assert rig.fake.count_429 == 0


async def test_one_board_per_channel(rig: Rig) -> None:
    await post_board(rig)
    inter = await rig.run("board", {}, subcommand="post")
    assert inter.ephemeral and "already has a status board" in inter.text
    assert len(live(rig.fake)) == 1


async def test_an_idle_server_is_not_edited(rig: Rig) -> None:
    calls = steady_stats(rig.emu.server(CREATIVE))
    board = await post_board(rig)
    # Let the first edit (if the states settled after posting) go by, then watch several intervals of stats.
    await wait_until(lambda: calls[0] >= 5)
    settled = len(edit_times(rig.fake, board.id))
    seen = calls[0]
    await wait_until(lambda: calls[0] >= seen + 4 * int(INTERVAL / 0.2) + 2, timeout=10)
    assert len(edit_times(rig.fake, board.id)) == settled
    assert "CPU 10 %" in description(board) or "CPU 15 %" in description(board)


async def test_a_deleted_board_message_is_dropped_and_audited(rig: Rig) -> None:
    board = await post_board(rig)
    rig.fake.delete_by_user(CONSOLE, board.id)
    rig.emu.server(SURVIVAL).handle_power("start")  # a change, so the board tries to edit
    await wait_until(lambda: not rig.bot.boards.health(), timeout=8)

    async def audited() -> bool:
        return any(e.how is How.WINGBEAT for e in await rig.bot.store.recent_audit(guild_id=GUILD))

    await eventually(audited)
    assert await rig.bot.store.boards(GUILD) == []
    entries = await rig.bot.store.recent_audit(guild_id=GUILD)
    dropped = [e for e in entries if e.how is How.WINGBEAT]
    assert len(dropped) == 1
    assert dropped[0].action == "board" and "the message was deleted" in dropped[0].outcome


async def test_a_board_deleted_by_hand_does_not_block_a_new_one(rig: Rig) -> None:
    # Nothing changes on the servers, so the board never tries an edit: /board post itself must notice.
    board = await post_board(rig)
    card = await post_card(rig)
    rig.fake.delete_by_user(CONSOLE, board.id)
    rig.fake.delete_by_user(CONSOLE, card.id)
    fresh = await post_board(rig)
    assert fresh.id != board.id
    again = await post_card(rig)
    assert again.id != card.id
    saved = {b.message_id for b in await rig.bot.store.boards(GUILD)}
    assert saved == {fresh.id, again.id}
    dropped = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.how is How.WINGBEAT]
    assert len(dropped) == 2 and all("the message was deleted" in e.outcome for e in dropped)


async def test_a_board_discord_will_not_edit_is_posted_anew(rig: Rig) -> None:
    board = await post_board(rig)
    rig.fake.refuse_edits.add(board.id)
    rig.emu.server(SURVIVAL).handle_power("start")
    await rig.fake.wait_for(lambda: board.deleted and len(live(rig.fake)) == 1, 8.0, "the board posted anew")
    [fresh] = live(rig.fake)
    assert fresh.id != board.id and "Survival" in description(fresh)
    [saved] = await rig.bot.store.boards(GUILD)
    assert saved.message_id == fresh.id
    # the new message is the live one: it keeps following the servers
    await rig.fake.wait_for(lambda: "🟢 **Survival** — running" in description(fresh), 8.0)
    assert rig.fake.count_429 == 0


async def test_board_remove_deletes_board_and_cards(rig: Rig) -> None:
    board = await post_board(rig)
    card = await post_card(rig)
    inter = await rig.run("board", {}, subcommand="remove")
    assert "Removed 1 board and 1 card" in inter.text
    assert board.deleted and card.deleted
    assert await rig.bot.store.boards(GUILD) == []
    again = await rig.run("board", {}, subcommand="remove")
    assert "There is no status board or card" in again.text


async def test_board_commands_are_for_admins(rig: Rig) -> None:
    inter = await rig.run("board", {}, subcommand="post", user=USER)
    assert inter.ephemeral and "Only admins" in inter.text
    assert live(rig.fake) == []


async def test_picking_a_server_in_the_board_menu_answers_its_card_privately(rig: Rig) -> None:
    board = await post_board(rig)
    inter = await rig.fake.pick(GUILD, CONSOLE, USER, board.message, "wingbeat:board:select", [CREATIVE])
    await inter.wait_done()
    assert inter.ephemeral
    message = inter.message
    assert message is not None
    embed = message["embeds"][0]
    assert "Creative" in embed["title"] and "running" in embed["description"]
    assert f"wingbeat:power:{CREATIVE}:start" in components(message)


async def test_the_board_menu_is_paced_per_member(rig: Rig) -> None:
    board = await post_board(rig)
    for _ in range(4):
        inter = await rig.fake.pick(GUILD, CONSOLE, USER, board.message, "wingbeat:board:select", [SURVIVAL])
        await inter.wait_done()
        assert inter.message is not None and inter.message["embeds"]
    fifth = await rig.fake.pick(GUILD, CONSOLE, USER, board.message, "wingbeat:board:select", [SURVIVAL])
    await fifth.wait_done()
    assert fifth.ephemeral and "asking too often" in fifth.text
    other = await rig.fake.pick(GUILD, CONSOLE, ADMIN, board.message, "wingbeat:board:select", [SURVIVAL])
    await other.wait_done()
    assert "asking too often" not in other.text


# -- cards and their buttons ----------------------------------------------------------------------------------


async def test_a_card_has_buttons_and_kill_only_while_stopping(rig: Rig) -> None:
    card = await post_card(rig)
    buttons = components(card.message)
    assert [b["label"] for b in buttons.values()] == ["Start", "Stop", "Restart", "Kill", "Logs", "Command…"]
    assert buttons[f"wingbeat:power:{SURVIVAL}:kill"]["disabled"]
    assert "offline" in card_text(card)
    srv = rig.emu.server(SURVIVAL)
    await srv.set_power("stopping")
    await rig.fake.wait_for(
        lambda: not components(card.message)[f"wingbeat:power:{SURVIVAL}:kill"].get("disabled"), 8.0
    )


async def test_a_card_for_a_name_full_of_markdown_is_posted(rig: Rig) -> None:
    # Escaped, such a name doubles; Discord refuses an embed title over 256 characters (the fake does too).
    rig.emu.server(SURVIVAL).name = "_*" * 95
    await rig.bot.catalog.refresh()
    card = await post_card(rig, SURVIVAL)
    assert len(card.message["embeds"][0]["title"]) <= 256


async def test_an_admin_click_starts_the_server_and_reports_like_power(rig: Rig) -> None:
    card = await post_card(rig)
    srv = rig.emu.server(SURVIVAL)
    inter = await rig.fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:power:{SURVIVAL}:start")
    await inter.wait_done()
    assert inter.ephemeral
    assert inter.text.startswith("✅ **Survival** (`a1b2c3d4`) started: offline → starting → running")
    assert ("set state", ["start"]) in srv.received
    [entry] = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.action == "power"]
    assert (entry.how, entry.user_id, entry.server_identifier, entry.arguments) == (
        How.BUTTON,
        ADMIN,
        SURVIVAL,
        "start",
    )
    assert entry.outcome.startswith("done: started") and entry.completed_at is not None
    await rig.fake.wait_for(lambda: "running" in card_text(card), 8.0)


async def test_a_non_admin_click_is_refused_and_wings_sees_nothing(rig: Rig) -> None:
    card = await post_card(rig)
    srv = rig.emu.server(SURVIVAL)
    for action in ("start", "stop", "restart"):
        inter = await rig.fake.click(
            GUILD, CONSOLE, USER, card.message, f"wingbeat:power:{SURVIVAL}:{action}"
        )
        await inter.wait_done()
        assert [r["type"] for r in inter.responses] == [4]  # refused at once, no defer
        needed = "control.stop" if action == "stop" else f"control.{action}"
        assert inter.ephemeral and f"Only admins, or members granted `{needed}` on **Survival**" in inter.text
        assert f"the {action.capitalize()} button" in inter.text
    for custom_id in (f"wingbeat:logs:{SURVIVAL}", f"wingbeat:cmd:{SURVIVAL}"):
        inter = await rig.fake.click(GUILD, CONSOLE, USER, card.message, custom_id)
        await inter.wait_done()
        assert inter.ephemeral and "Only admins" in inter.text and inter.modal is None
    assert not [name for name, _ in srv.received if name in ("set state", "send command", "send logs")]
    refused: list[AuditEntry] = []

    async def all_refusals_audited() -> bool:
        # The refusal is answered first; its audit row is written right after.
        entries = await rig.bot.store.recent_audit(guild_id=GUILD)
        refused[:] = [e for e in entries if e.outcome.startswith("refused")]
        return len(refused) == 4

    await eventually(all_refusals_audited)
    assert len(refused) == 4 and all(e.how is How.BUTTON for e in refused)


async def test_stop_asks_for_confirmation_first(rig: Rig) -> None:
    card = await post_card(rig, "Creative")
    srv = rig.emu.server(CREATIVE)
    ask = await rig.fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:power:{CREATIVE}:stop")
    await ask.wait_done()
    assert ask.ephemeral and ask.text.startswith("Stop **Creative**")
    assert not [name for name, _ in srv.received if name == "set state"]
    assert ask.message is not None
    confirm = await rig.fake.click(GUILD, CONSOLE, ADMIN, ask.message, f"wingbeat:confirm:{CREATIVE}:stop")
    await answered(confirm, "stopped:")
    assert confirm.responses[0]["type"] == 7  # the question became the progress line, without its button
    assert confirm.responses[0]["data"]["components"] == []
    assert ("set state", ["stop"]) in srv.received
    assert srv.state == "offline"


async def test_logs_and_the_command_modal(rig: Rig) -> None:
    card = await post_card(rig, "Creative")
    srv = rig.emu.server(CREATIVE)
    srv.emit_console("[Server thread/INFO]: hello from Creative")
    logs = await rig.fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:logs:{CREATIVE}")
    await logs.wait_done()
    assert logs.ephemeral and "The last 1 console line of **Creative**" in logs.text
    assert "hello from Creative" in logs.text
    opened = await rig.fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:cmd:{CREATIVE}")
    await opened.wait_done()
    modal = opened.modal
    assert modal is not None and modal["title"] == "Command for Creative"
    [field] = [c for row in modal["components"] for c in row["components"]]
    submit = await rig.fake.submit_modal(
        GUILD, CONSOLE, ADMIN, modal["custom_id"], {field["custom_id"]: "say hi"}
    )
    await submit.wait_done()
    assert (
        submit.ephemeral and "Sent `say hi` to **Creative**" in submit.text and "[Server] hi" in submit.text
    )
    assert ("send command", ["say hi"]) in srv.received
    [entry] = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.action == "command"]
    assert entry.how is How.BUTTON and entry.arguments == "say hi"


async def test_a_button_works_over_the_open_socket_while_the_panel_hangs(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = await post_card(rig, "Creative")
    rig.emu.server(CREATIVE).emit_console("[Server thread/INFO]: still here")
    monkeypatch.setattr(server_option, "CATALOG_MAX_AGE", 0.5)  # the server list is out of date at once
    rig.emu.fail_next("GET", "", 0, times=1000, delay=60.0)  # the panel takes every request, answers none
    await asyncio.sleep(0.6)
    logs = await rig.fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:logs:{CREATIVE}")
    await logs.wait_done(15.0)
    assert "still here" in logs.text, logs.text


async def test_a_click_from_a_guild_outside_guild_ids_gets_one_sentence(rig: Rig) -> None:
    card = await post_card(rig)
    srv = rig.emu.server(SURVIVAL)
    inter = await rig.fake.click(
        STRANGER_GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:power:{SURVIVAL}:start"
    )
    await inter.wait_done()
    assert inter.ephemeral and "GUILD_IDS" in inter.text
    assert not [name for name, _ in srv.received if name == "set state"]


async def test_every_component_from_a_guild_outside_guild_ids_gets_the_sentence_at_once(rig: Rig) -> None:
    board = await post_board(rig, OTHER)
    card = await post_card(rig, "Creative")
    srv = rig.emu.server(CREATIVE)
    opened = await rig.fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:cmd:{CREATIVE}")
    await opened.wait_done()
    assert opened.modal is not None
    [field] = [c for row in opened.modal["components"] for c in row["components"]]
    received = len(srv.received)
    refused = [
        await rig.fake.click(STRANGER_GUILD, CONSOLE, ADMIN, card.message, custom_id)
        for custom_id in (
            f"wingbeat:logs:{CREATIVE}",
            f"wingbeat:cmd:{CREATIVE}",
            f"wingbeat:power:{CREATIVE}:restart",
            f"wingbeat:power:{CREATIVE}:stop",
        )
    ]
    [select] = components(board.message)
    refused.append(await rig.fake.pick(STRANGER_GUILD, OTHER, ADMIN, board.message, select, [CREATIVE]))
    refused.append(
        await rig.fake.submit_modal(
            STRANGER_GUILD, CONSOLE, ADMIN, opened.modal["custom_id"], {field["custom_id"]: "stop"}
        )
    )
    sentence = (
        "This Discord server is not allowed to use Wingbeat; its operator must add this server's ID "
        f"({STRANGER_GUILD}) to GUILD_IDS."
    )
    for inter in refused:
        await inter.wait_done()
        assert [r["type"] for r in inter.responses] == [4] and inter.ephemeral and inter.text == sentence
    assert srv.received[received:] == [] and srv.state == "running"
    assert await rig.bot.store.recent_audit(guild_id=STRANGER_GUILD) == []


async def test_a_click_for_a_deleted_server_says_so(rig: Rig) -> None:
    card = await post_card(rig)
    srv = rig.emu.server(SURVIVAL)
    await srv.delete()
    await rig.bot.catalog.refresh()
    inter = await rig.fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:power:{SURVIVAL}:start")
    await inter.wait_done()
    assert inter.ephemeral and "no longer on the panel" in inter.text
    assert "Traceback" not in inter.all_text


async def test_buttons_and_boards_keep_working_after_a_restart(
    world: tuple[Emulator, FakeDiscord, Settings],
) -> None:
    emu, fake, settings = world
    async with board_bot(emu, fake, settings) as first:
        card = await post_card(first)
        board = await post_board(first, channel=OTHER)
    async with board_bot(emu, fake, settings) as second:
        assert {h.message_id for h in second.bot.boards.health()} == {card.id, board.id}
        inter = await fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:power:{SURVIVAL}:start")
        await inter.wait_done()
        assert "started" in inter.text
        # the restored board and card follow the server again
        await fake.wait_for(lambda: "🟢 **Survival** — running" in description(board), 8.0)
        await fake.wait_for(lambda: "running" in card_text(card), 8.0)


async def test_a_command_form_opened_before_a_restart_is_carried_out_after_it(
    world: tuple[Emulator, FakeDiscord, Settings],
) -> None:
    emu, fake, settings = world
    async with board_bot(emu, fake, settings) as first:
        card = await post_card(first, "Creative")
        opened = await fake.click(GUILD, CONSOLE, ADMIN, card.message, f"wingbeat:cmd:{CREATIVE}")
        await opened.wait_done()
        modal = opened.modal
        assert modal is not None
        [field] = [c for row in modal["components"] for c in row["components"]]
    async with board_bot(emu, fake, settings) as second:
        submit = await fake.submit_modal(
            GUILD, CONSOLE, ADMIN, modal["custom_id"], {field["custom_id"]: "say hi"}
        )
        await submit.wait_done()
        assert submit.ephemeral and "Sent `say hi` to **Creative**" in submit.text
        assert ("send command", ["say hi"]) in emu.server(CREATIVE).received
        # and the form is checked like the button: a member without a grant is refused, Wings sees nothing more
        refused = await fake.submit_modal(
            GUILD, CONSOLE, USER, modal["custom_id"], {field["custom_id"]: "stop"}
        )
        await refused.wait_done()
        assert refused.ephemeral and "Only admins" in refused.text
        assert ("send command", ["stop"]) not in emu.server(CREATIVE).received
        [entry] = [e for e in await second.bot.store.recent_audit(guild_id=GUILD) if e.arguments == "say hi"]
        assert entry.how is How.BUTTON
