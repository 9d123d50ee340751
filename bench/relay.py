"""Console relay benchmark over the real path: emulator → Wings socket → relay → discord.py → fake Discord.

The emulator (with the game servers that emit lines) and the fake Discord each run in their own process, so
the CPU figures are the bot's alone. Every line carries its server, sequence number and emission time
(CLOCK_MONOTONIC, shared by all processes on this machine); the fake Discord reads them back from the posted
messages and attachments to count lost and duplicated lines and the latency to the Discord request.

    .venv/bin/python -m bench.relay                 # all runs (about 3 minutes)
    .venv/bin/python -m bench.relay --runs 2000     # one run: 2000 lines/s into one channel
    .venv/bin/python -m bench.relay --duration 10   # shorter runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import resource
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

GUILD = 1000
CHANNEL_BASE = 5000


@dataclass(frozen=True)
class Run:
    name: str
    servers: int
    rate: float  # lines per second per server


RUNS = {
    "20": Run("1 channel, 20 lines/s", 1, 20.0),
    "200": Run("1 channel, 200 lines/s", 1, 200.0),
    "2000": Run("1 channel, 2000 lines/s", 1, 2000.0),
    "200ch": Run("200 channels, 2 lines/s each", 200, 2.0),
}


# -- emulator process ---------------------------------------------------------------------------------------


def emulator_main(conn: Connection, servers: int, rate: float, duration: float) -> None:
    asyncio.run(_emulator(conn, servers, rate, duration))


async def _emulator(conn: Connection, servers: int, rate: float, duration: float) -> None:
    from tests.fakes.emulator import Emulator

    async with Emulator(stats_interval=1.0) as emu:
        srvs = [emu.add_server(f"srv-{i:03d}", state="running") for i in range(servers)]
        conn.send((emu.panel_url, emu.api_key, [s.identifier for s in srvs]))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "go"
        pad = "x" * 40
        emitted = [0] * servers
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < duration:
            target = int(elapsed * rate)
            for i, srv in enumerate(srvs):
                while emitted[i] < target:
                    srv.emit_console(
                        f"S{i:03d} {emitted[i]:07d} {time.monotonic():.6f} <Player> hello @everyone {pad}"
                    )
                    emitted[i] += 1
            await asyncio.sleep(0.005)
        conn.send(emitted)
        await loop.run_in_executor(None, conn.recv)  # "stop"


# -- fake Discord process -----------------------------------------------------------------------------------


def discord_main(conn: Connection, channels: list[int]) -> None:
    asyncio.run(_discord(conn, channels))


async def _discord(conn: Connection, channels: list[int]) -> None:
    from tests.fakes.fake_discord import FakeDiscord

    async with FakeDiscord(bucket_limit=5, bucket_window=5.0) as fake:
        guild = fake.add_guild(GUILD)
        for cid in channels:
            guild.add_channel(cid, f"console-{cid}")
        conn.send((fake.base_url, fake.gateway_url, fake.token))
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd == "count":
                conn.send(sum(_count(fake.messages(c)) for c in channels))
            elif cmd == "report":
                conn.send(_report(fake, channels))
                return


def _lines(msg: Any) -> list[str]:
    if msg.attachments:
        return msg.attachments[0][1].decode().splitlines()
    content: str = msg.content
    start = content.find("```")
    if start < 0:
        return []
    return content[content.index("\n", start) + 1 : content.rindex("```")].rstrip("\n").split("\n")


def _count(messages: list[Any]) -> int:
    return sum(len(_lines(m)) for m in messages)


def _report(fake: Any, channels: list[int]) -> dict[str, Any]:
    seen: dict[tuple[int, int], int] = {}
    latencies: list[float] = []
    messages = attachments = 0
    first = last = None
    for cid in channels:
        for msg in fake.messages(cid):
            messages += 1
            attachments += bool(msg.attachments)
            first = msg.at if first is None else min(first, msg.at)
            last = msg.at if last is None else max(last, msg.at)
            for line in _lines(msg):
                parts = line.split(" ", 3)
                if len(parts) < 3 or not parts[0].startswith("S"):
                    continue
                key = (int(parts[0][1:]), int(parts[1]))
                if key in seen:
                    seen[key] += 1
                    continue
                seen[key] = 1
                latencies.append(msg.at - float(parts[2]))
    posts = [r for r in fake.requests if r.method == "POST" and r.path.startswith("/channels/")]
    span = (posts[-1].at - posts[0].at) if len(posts) > 1 else 1.0
    # the busiest second of Discord requests (all routes)
    per_second: dict[int, int] = {}
    for r in fake.requests:
        per_second[int(r.at)] = per_second.get(int(r.at), 0) + 1
    return {
        "seen": {f"{k[0]}:{k[1]}": v for k, v in seen.items() if v > 1},
        "unique": len(seen),
        "by_server": _by_server(seen),
        "latencies": sorted(latencies),
        "messages": messages,
        "attachments": attachments,
        "count_429": fake.count_429,
        "posts": len(posts),
        "requests_per_s": len(posts) / span if span > 0 else 0.0,
        "peak_requests_in_a_second": max(per_second.values(), default=0),
    }


def _by_server(seen: dict[tuple[int, int], int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for server, _seq in seen:
        out[server] = out.get(server, 0) + 1
    return out


# -- the bot side (this process) ----------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


async def run_bot(run: Run, duration: float) -> dict[str, Any]:
    import discord
    import yarl

    from bot.panel.client import PanelClient
    from bot.relay.discord_poster import DiscordPoster
    from bot.relay.service import ConsoleRelay
    from bot.wings.manager import ConnectionManager

    ctx = mp.get_context("spawn")
    channels = [CHANNEL_BASE + i for i in range(run.servers)]
    emu_conn, emu_child = ctx.Pipe()
    dis_conn, dis_child = ctx.Pipe()
    emu_proc = ctx.Process(
        target=emulator_main, args=(emu_child, run.servers, run.rate, duration), daemon=True
    )
    dis_proc = ctx.Process(target=discord_main, args=(dis_child, channels), daemon=True)
    emu_proc.start()
    dis_proc.start()
    loop = asyncio.get_running_loop()
    panel_url, api_key, identifiers = await loop.run_in_executor(None, emu_conn.recv)
    base_url, gateway_url, token = await loop.run_in_executor(None, dis_conn.recv)
    discord.http.Route.BASE = base_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)

    client = discord.Client(intents=discord.Intents(guilds=True))
    starter = asyncio.create_task(client.start(token))
    while not client.is_ready():
        if starter.done():
            starter.result()
        await asyncio.sleep(0.05)
    panel = PanelClient(panel_url, api_key)
    manager = ConnectionManager(panel, origin=panel_url)
    relay = ConsoleRelay(manager, DiscordPoster(client))
    for ident, cid in zip(identifiers, channels, strict=True):
        await relay.link(ident, cid, server_name=ident)
    await asyncio.gather(*(manager.connection(i).wait_ready(30) for i in identifiers))

    cpu0 = _cpu()
    wall0 = time.monotonic()
    emu_conn.send("go")
    emitted: list[int] = await loop.run_in_executor(None, emu_conn.recv)
    total = sum(emitted)
    # let the relay drain what is still pending (at most ~10 s)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        dis_conn.send("count")
        if await loop.run_in_executor(None, dis_conn.recv) >= total:
            break
        await asyncio.sleep(0.25)
    cpu = _cpu() - cpu0
    wall = time.monotonic() - wall0
    await relay.close()
    await manager.close()
    await panel.close()
    await client.close()
    await asyncio.gather(starter, return_exceptions=True)
    dis_conn.send("report")
    report: dict[str, Any] = await loop.run_in_executor(None, dis_conn.recv)
    emu_conn.send("stop")
    for proc in (emu_proc, dis_proc):
        proc.join(10)

    lat = report["latencies"]
    delivered = report["unique"]
    duplicated = sum(v - 1 for v in report["seen"].values())
    return {
        "run": run.name,
        "duration_s": duration,
        "lines_emitted": total,
        "lines_delivered": delivered,
        "lines_lost": total - delivered,
        "lines_duplicated": duplicated,
        "messages": report["messages"],
        "attachments": report["attachments"],
        "http_429": report["count_429"],
        "latency_p50_s": round(_percentile(lat, 0.50), 3),
        "latency_p99_s": round(_percentile(lat, 0.99), 3),
        "latency_max_s": round(lat[-1], 3) if lat else float("nan"),
        "discord_requests_per_s": round(report["requests_per_s"], 2),
        "discord_peak_requests_in_1s": report["peak_requests_in_a_second"],
        "bot_cpu_s": round(cpu, 3),
        "bot_cpu_s_per_1000_lines": round(cpu / max(total, 1) * 1000, 4),
        "bot_cpu_pct_of_core": round(100 * cpu / wall, 1),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("discord.client").setLevel(logging.ERROR)  # no voice warnings
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    results = []
    for key in args.runs:
        result = asyncio.run(run_bot(RUNS[key], args.duration))
        results.append(result)
        print(f"\n== {result['run']} for {args.duration:g} s")
        for name, value in result.items():
            if name != "run":
                print(f"  {name:30s} {value}")
        sys.stdout.flush()
    print("\nJSON " + json.dumps(results))


if __name__ == "__main__":
    main()
