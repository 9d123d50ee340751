"""Shutdown end to end: new interactions refused at once, actions in flight finished and audited, the relay
flushed, the store closed last."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.store import open_store
from tests.e2e_helpers import ADMIN, CONSOLE, GUILD, USER, build_world, running_bot, settings_for
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord


async def test_shutdown_refuses_new_work_and_lets_running_actions_finish(tmp_path: Path) -> None:
    async with Emulator(stats_interval=0.5, start_delay=1.0) as emu, FakeDiscord() as fake:
        srv = emu.add_server("Survival", identifier="a1b2c3d4", state="offline")
        emu.add_server("Creative", identifier="e5f6a7b8", state="running")
        build_world(fake)
        settings = settings_for(emu, fake, tmp_path)
        async with running_bot(emu, fake, settings) as rig:
            await rig.run("console", {"server": "Creative"}, subcommand="link")
            await rig.connected("e5f6a7b8")
            power = await fake.invoke(
                GUILD, CONSOLE, ADMIN, "power", {"server": "Survival", "action": "start"}
            )
            await fake.wait_for(lambda: ("set state", ["start"]) in srv.received, 5, "the power action sent")
            # The row is there while the action runs: a crash now would still leave a trace.
            [started] = [e for e in await rig.bot.store.recent_audit(guild_id=GUILD) if e.action == "power"]
            assert (started.outcome, started.completed_at, started.arguments) == ("started", None, "start")
            emu.server("e5f6a7b8").emit_console("last words before the shutdown")
            closing = asyncio.create_task(rig.bot.close())
            await fake.wait_for(lambda: rig.bot.guard.closing, 2, "the shutdown to begin")

            late = await rig.run("servers", user=USER)
            assert late.ephemeral and [r["type"] for r in late.responses] == [4]
            assert late.text == "Wingbeat is shutting down; try again in a minute."
            assert not closing.done()  # still waiting for the power action

            await power.wait_done(8)
            assert "started" in power.text and "running" in power.text  # its answer still went out
            await asyncio.wait_for(closing, 10)
            assert srv.state == "running"
            await rig.wait_for_text(CONSOLE, "last words before the shutdown")  # the relay flushed it
            assert rig.bot.manager.health() == []
        async with await open_store(settings.database_url) as store:
            audit = {e.action: e for e in await store.recent_audit(guild_id=GUILD)}
        assert audit["power"].outcome.startswith("done: started") and audit["power"].completed_at is not None
