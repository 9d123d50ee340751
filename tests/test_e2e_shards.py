"""Several processes on one bot token: discord.py's sharding against a sharded fake Discord.

In-process: a bot on some shards sees and serves only its guilds, restores only their links, leaves command
registration to the process with shard 0, and leaves unanswered what Discord should not have sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

from bot.app import ShardedWingbeatBot, WingbeatBot, create_bot
from bot.command_sync import command_payloads
from bot.settings import Settings
from bot.store import Link, open_store
from tests.e2e_helpers import TIMING
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord
from tests.shard_helpers import GUILDS, SHARDS, BotChild, bot_env, build_shard_world, console_lines, tally

SERVER = "1a2b3c4d"


def sharded_settings(
    emu: Emulator, fake: FakeDiscord, database: Path, shard_ids: tuple[int, ...] | None
) -> Settings:
    return Settings(
        discord_token=fake.token,
        panel_url=emu.panel_url,
        panel_api_key=emu.api_key,
        admin_role_ids=frozenset(g.admins for g in GUILDS),
        guild_ids=tuple(g.id for g in GUILDS),
        database_url=f"sqlite:///{database}",
        wings_origin=emu.panel_url,
        shard_count=SHARDS if shard_ids is not None else None,
        shard_ids=shard_ids,
    )


def make(settings: Settings) -> WingbeatBot:
    return create_bot(
        settings,
        timing=TIMING,
        relay_interval=0.2,
        idle_close=5.0,
        panel_timeout=3.0,
        guild_ready_timeout=0.05,
    )


async def seed_links(database: Path) -> None:
    """One saved link per guild, as an earlier run would have left them."""
    async with await open_store(f"sqlite:///{database}") as store:
        for g in GUILDS:
            await store.add_link(Link(g.id, g.console, SERVER, "Lobby", g.admin, datetime.now(UTC)))


async def test_the_one_process_default_is_the_plain_bot(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        bot = make(sharded_settings(emu, fake, tmp_path / "db.sqlite3", None))
        assert type(bot) is WingbeatBot and bot.shard_count is None


async def test_a_process_serves_only_the_guilds_on_its_shards(tmp_path: Path) -> None:
    shard0, shard1 = GUILDS
    async with Emulator() as emu, FakeDiscord() as fake:
        srv = emu.add_server("Lobby", identifier=SERVER, state="running")
        build_shard_world(fake)
        database = tmp_path / "one.sqlite3"
        await seed_links(database)
        bot = make(sharded_settings(emu, fake, database, (1,)))
        assert isinstance(bot, ShardedWingbeatBot)
        async with fake.run_client(bot):
            assert fake.sessions() == [(1, SHARDS)]
            assert [g.id for g in bot.guilds] == [shard1.id]
            # Shard 0's process registers the commands; this one pushed none and removed no globals.
            assert fake.command_put_count == 0
            assert not any(r.path.endswith("/commands") for r in fake.requests)
            # Only this shard's guild's link was restored, and only its server's socket opened.
            assert [(h.channel_id, h.server) for h in bot.relay.link_health()] == [(shard1.console, SERVER)]
            await bot.manager.connection(SERVER).wait_ready(5)
            srv.emit_console("hello shard one")
            await fake.wait_for(
                lambda: any("hello shard one" in m.content for m in fake.messages(shard1.console)),
                5,
                "the line",
            )
            assert fake.messages(shard0.console) == []

            # The commands as shard 0's process would have registered them.
            for g in GUILDS:
                fake.register_commands(g.id, command_payloads(bot.tree))
            served = await fake.invoke(shard1.id, shard1.console, shard1.admin, "console", subcommand="list")
            await served.wait_done(8)
            assert "Lobby" in served.text
            # A Discord that delivers another shard's interaction here: left for that shard's process.
            fake.misroute_to = 1
            stray = await fake.invoke(shard0.id, shard0.console, shard0.admin, "console", subcommand="list")
            stray_power = await fake.invoke(
                shard0.id, shard0.console, shard0.admin, "power", {"server": SERVER, "action": "stop"}
            )
            await asyncio.sleep(1.0)  # nothing to wait for: the point is that nothing comes
            assert stray.responses == [] and stray_power.responses == []
            assert srv.state == "running" and ("set state", ["stop"]) not in srv.received
            assert [e for e in await bot.store.recent_audit() if e.guild_id == shard0.id] == []


async def test_the_process_with_shard_zero_registers_the_commands_for_every_guild(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_shard_world(fake)
        bot = make(sharded_settings(emu, fake, tmp_path / "zero.sqlite3", (0,)))
        async with fake.run_client(bot):
            assert fake.sessions() == [(0, SHARDS)]
            assert [g.id for g in bot.guilds] == [GUILDS[0].id]
            assert set(fake.synced_commands) == {g.id for g in GUILDS}
            assert fake.command_put_count == len(GUILDS)


async def test_one_process_may_run_several_shards(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_shard_world(fake)
        bot = make(sharded_settings(emu, fake, tmp_path / "both.sqlite3", (0, 1)))

        async def quick_identify(shard_id: int | None, *, initial: bool = False) -> None:
            await asyncio.sleep(0 if initial else 0.1)  # discord.py waits 5 s: Discord's identify pace

        bot.before_identify_hook = quick_identify  # type: ignore[method-assign]
        async with fake.run_client(bot):
            await fake.wait_for(lambda: len(bot.guilds) == len(GUILDS), 5, "both guilds")
            assert sorted(fake.sessions()) == [(0, SHARDS), (1, SHARDS)]
            for g in GUILDS:
                inter = await fake.invoke(g.id, g.console, g.admin, "console", subcommand="list")
                await inter.wait_done(8)
                assert inter.ephemeral and inter.responses


# -- two real processes on one PostgreSQL store ---------------------------------------------------------------


async def test_two_processes_share_the_token_and_a_killed_one_resumes_without_loss(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """`python -m bot` twice (SHARD_COUNT=2, SHARD_IDS=0 and 1) on one fake Discord and one store: each answers
    its own guild; console lines flow into both guilds' channels while one process is killed with SIGKILL and
    started again; every line arrives exactly once, files included."""
    async with Emulator() as emu, FakeDiscord() as fake:
        servers = [
            emu.add_server(f"Game {g.shard}", identifier=f"{g.shard}a2b3c4d", state="running") for g in GUILDS
        ]
        build_shard_world(fake)
        envs = [bot_env(fake, emu.panel_url, emu.api_key, postgres_dsn, str(g.shard)) for g in GUILDS]
        bots = [
            await BotChild.start(f"shard {g.shard}", tmp_path / f"shard{g.shard}", envs[g.shard])
            for g in GUILDS
        ]
        restarted: BotChild | None = None
        emitter: asyncio.Task[None] | None = None
        try:
            for bot in bots:
                await bot.wait_logged(fake, "Wingbeat ready", 40)
            assert sorted(fake.sessions()) == [(0, SHARDS), (1, SHARDS)]
            assert set(fake.synced_commands) == {g.id for g in GUILDS}
            assert fake.command_put_count == len(GUILDS)  # by shard 0's process, once

            for g, srv in zip(GUILDS, servers, strict=True):
                inter = await fake.invoke(
                    g.id, g.console, g.admin, "console", {"server": srv.identifier}, subcommand="link"
                )
                await inter.wait_done(15)
                assert "Mirroring" in inter.text, inter.text + bots[g.shard].tail()
            for g, bot in zip(GUILDS, bots, strict=True):
                other = GUILDS[1 - g.shard]
                assert bot.logged(f"linked to channel {g.console}") and not bot.logged(
                    f"channel {other.console}"
                )
            await fake.wait_for(
                lambda: all(any(s.authenticated for s in emu.sockets(srv)) for srv in servers), 15, "sockets"
            )

            emitted: dict[int, list[str]] = {g.console: [] for g in GUILDS}

            async def emit() -> None:
                for n in range(10_000):
                    # Now and then a burst too long for one message: its lines come as a file.
                    burst = 25 if n % 25 == 5 else 1
                    for g, srv in zip(GUILDS, servers, strict=True):
                        for k in range(burst):
                            line = f"shard {g.shard} line {n:05d}.{k:02d} " + "x" * (100 if burst > 1 else 0)
                            srv.emit_console(line.rstrip())
                            emitted[g.console].append(line.rstrip())
                    await asyncio.sleep(0.1)

            emitter = asyncio.create_task(emit())
            await asyncio.sleep(2.0)
            await bots[1].kill()  # SIGKILL: no shutdown, nothing flushed
            await asyncio.sleep(1.0)
            restarted = await BotChild.start("shard 1 again", tmp_path / "shard1-again", envs[1])
            await restarted.wait_logged(fake, f"resumes {servers[1].identifier}", 40)
            await asyncio.sleep(2.0)
            emitter.cancel()
            await asyncio.gather(emitter, return_exceptions=True)

            def complete() -> bool:
                return all(set(lines) <= set(console_lines(fake.messages(c))) for c, lines in emitted.items())

            with contextlib.suppress(TimeoutError):  # the assertions below say what is missing
                await fake.wait_for(complete, 20, "every emitted line")
            for g in GUILDS:
                posted = console_lines(fake.messages(g.console))
                lost, duplicated = tally(posted, emitted[g.console])
                assert (len(lost), duplicated) == (0, []), (
                    f"shard {g.shard}: lost {lost[:5]}… dup {duplicated[:5]}"
                )
                assert posted == emitted[g.console]  # in order, too
            assert restarted.logged("restored 1 of 1 console link(s)")
            assert all(any(m.attachments for m in fake.messages(g.console)) for g in GUILDS)
            assert len(emitted[GUILDS[1].console]) >= 40
        finally:
            if emitter is not None:
                emitter.cancel()
            for bot in (*bots, *([restarted] if restarted else [])):
                await bot.kill()
