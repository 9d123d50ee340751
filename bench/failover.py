"""Failover, measured: the real bot killed with SIGKILL at random moments while consoles print, then restarted.

One `python -m bot` process (SQLite store) mirrors `--servers` consoles into as many channels of the fake
Discord; every server prints numbered lines (`--rate` per second, now and then a burst that needs a file).
The bot is killed `--kills` times, each after a random 1 to 4 s of work, and started again at once. At the end
every posted line (attachments included) is compared with what was printed: lost and duplicated lines, and how
many messages the restarts sent again that Discord had already created (answered through their nonce).

    .venv/bin/python -m bench.failover                    # 20 servers, 10 kills (about 2 minutes)
    .venv/bin/python -m bench.failover --kills 30 --rate 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord
from tests.shard_helpers import GUILDS, BotChild, bot_env, build_shard_world, console_lines, tally

CHANNEL_BASE = 951000000000000000


async def run(servers: int, kills: int, rate: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="wingbeat-failover-"))
    guild = GUILDS[0]
    try:
        async with Emulator(stats_interval=1.0) as emu, FakeDiscord() as fake:
            srvs = [emu.add_server(f"srv-{i:02d}", state="running") for i in range(servers)]
            build_shard_world(fake)
            channels = [CHANNEL_BASE + i for i in range(servers)]
            for channel in channels:
                fake.guilds[guild.id].add_channel(channel, f"console-{channel}")
            env = bot_env(fake, emu.panel_url, emu.api_key, f"sqlite:///{folder / 'wingbeat.sqlite3'}", None)
            bot = await BotChild.start("bot 0", folder / "run0", env)
            await bot.wait_logged(fake, "Wingbeat ready", 60)
            for srv, channel in zip(srvs, channels, strict=True):
                inter = await fake.invoke(
                    guild.id, channel, guild.admin, "console", {"server": srv.identifier}, subcommand="link"
                )
                await inter.wait_done(15)

            def all_up() -> bool:
                return all(any(s.authenticated for s in emu.sockets(srv)) for srv in srvs)

            await fake.wait_for(all_up, 60, "every console socket")
            emitted: dict[int, list[str]] = {c: [] for c in channels}

            async def emit() -> None:
                n = 0
                while True:
                    for i, (srv, channel) in enumerate(zip(srvs, channels, strict=True)):
                        burst = 30 if rng.random() < 0.01 else 1
                        for k in range(burst):
                            line = f"S{i:02d} {n:06d}.{k:02d}" + (" " + "x" * 90 if burst > 1 else "")
                            srv.emit_console(line)
                            emitted[channel].append(line)
                    n += 1
                    await asyncio.sleep(1 / rate)

            emitter = asyncio.create_task(emit())
            started = time.monotonic()
            try:
                for k in range(kills):
                    await asyncio.sleep(rng.uniform(1.0, 4.0))
                    await bot.kill()
                    bot = await BotChild.start(f"bot {k + 1}", folder / f"run{k + 1}", env)
                    await bot.wait_logged(fake, "Wingbeat ready", 60)
                await asyncio.sleep(2.0)
            finally:
                emitter.cancel()
                await asyncio.gather(emitter, return_exceptions=True)
            elapsed = time.monotonic() - started

            def complete() -> bool:
                return all(set(lines) <= set(console_lines(fake.messages(c))) for c, lines in emitted.items())

            with contextlib.suppress(TimeoutError):  # what is missing is counted below
                await fake.wait_for(complete, 30, "every line")
            lost = duplicated = out_of_order = 0
            for channel, lines in emitted.items():
                posted = console_lines(fake.messages(channel))
                missing, twice = tally(posted, lines)
                lost += len(missing)
                duplicated += len(twice)
                out_of_order += posted != lines and not missing and not twice
            status = await bot.stop()
            return {
                "servers": servers,
                "kills": kills,
                "seconds": round(elapsed, 1),
                "lines_emitted": sum(len(v) for v in emitted.values()),
                "lines_lost": lost,
                "lines_duplicated": duplicated,
                "channels_out_of_order": out_of_order,
                "messages": sum(len(fake.messages(c)) for c in channels),
                "messages_sent_again_and_answered_by_nonce": fake.nonce_hits,
                "last_exit_status": status,
            }
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5.0, help="console lines per second per server")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.servers, args.kills, args.rate, args.seed))
    for name, value in result.items():
        print(f"  {name:44s} {value}")
    print("JSON " + json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
