"""Boards, cards and alerts under load, beside a busy console relay: the real `WingbeatBot` end to end.

The emulator (100 running game servers, `stats` every second, console floods on the linked ones) and the fake
Discord each run in their own process, so the CPU and memory figures are the bot's alone. The bot posts
4 boards and 20 cards (half of them for servers whose figures stay within a rounding step, i.e. idle), turns
alerts on (so every server's socket is followed) and mirrors 50 consoles into 50 channels. The fake Discord
keeps Discord's per-channel create and edit buckets and its global 50 requests/s, and reports every request.

    .venv/bin/python -m bench.boards                  # 5 minutes, STATUS_INTERVAL 15 s
    .venv/bin/python -m bench.boards --quick          # 60 s, STATUS_INTERVAL 5 s (a quick check)
    .venv/bin/python -m bench.boards --duration 120 --interval 10 --lines 3
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import logging
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

GUILD = 1000
BOARD_CHANNELS = [6000 + i for i in range(4)]
CARD_CHANNELS = [6100 + i for i in range(4)]
ALERT_CHANNEL = 6200
RELAY_CHANNELS = [5000 + i for i in range(50)]
SERVERS = 100
BUSY = 50  # servers 0..49 have figures jumping every second; 50..99 stay within a rounding step (idle)
CARDS = 20


# -- emulator process ---------------------------------------------------------------------------------------


def emulator_main(conn: Connection, linked: int, rate: float, duration: float) -> None:
    asyncio.run(_emulator(conn, linked, rate, duration))


def _make_idle(srv: Any) -> None:
    original = srv.stats

    def idle() -> dict[str, Any]:
        stats: dict[str, Any] = original()
        stats["cpu_absolute"] = round(random.uniform(11.5, 13.4), 3)
        stats["memory_bytes"] = int(random.uniform(0.58, 0.62) * 1024**3)
        return stats

    srv.stats = idle


async def _emulator(conn: Connection, linked: int, rate: float, duration: float) -> None:
    from tests.fakes.emulator import Emulator

    async with Emulator(stats_interval=1.0) as emu:
        srvs = []
        for i in range(SERVERS):
            srv = emu.add_server(f"{'busy' if i < BUSY else 'idle'}-{i:03d}", state="running")
            if i >= BUSY:
                _make_idle(srv)
            srvs.append(srv)
        conn.send((emu.panel_url, emu.api_key, [s.identifier for s in srvs]))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "go"
        pad = "x" * 40
        emitted = [0] * linked
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < duration:
            target = int(elapsed * rate)
            for i in range(linked):
                while emitted[i] < target:
                    srvs[i].emit_console(
                        f"S{i:03d} {emitted[i]:07d} {time.monotonic():.6f} <Player> hi {pad}"
                    )
                    emitted[i] += 1
            await asyncio.sleep(0.02)
        conn.send(emitted)
        await loop.run_in_executor(None, conn.recv)  # "stop"


# -- fake Discord process -----------------------------------------------------------------------------------


def discord_main(conn: Connection) -> None:
    asyncio.run(_discord(conn))


async def _discord(conn: Connection) -> None:
    from tests.fakes.fake_discord import FakeDiscord

    async with FakeDiscord() as fake:
        guild = fake.add_guild(GUILD)
        for cid in (*BOARD_CHANNELS, *CARD_CHANNELS, ALERT_CHANNEL, *RELAY_CHANNELS):
            guild.add_channel(cid, f"channel-{cid}")
        conn.send((fake.base_url, fake.gateway_url, fake.token))
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd[0] == "count":
                conn.send(_relay_lines(fake)[0])
            elif cmd[0] == "report":
                _, t0, t1, interval, boards = cmd
                conn.send(_report(fake, t0, t1, interval, boards))
                return


def _lines(msg: Any) -> list[str]:
    """The console lines of one relay message: its attachment, else its code block."""
    if msg.attachments:
        return list(msg.attachments[0][1].decode().splitlines())
    content: str = msg.content
    start = content.find("```")
    if start < 0:
        return []
    return content[content.index("\n", start) + 1 : content.rindex("```")].rstrip("\n").split("\n")


def _relay_lines(fake: Any) -> tuple[int, int]:
    seen: set[tuple[str, str]] = set()
    duplicated = 0
    for cid in RELAY_CHANNELS:
        for msg in fake.messages(cid):
            for line in _lines(msg):
                parts = line.split(" ", 3)
                if len(parts) < 3 or not parts[0].startswith("S"):
                    continue
                key = (parts[0], parts[1])
                duplicated += key in seen
                seen.add(key)
    return len(seen), duplicated


def _max_in_window(times: list[float], window: float) -> int:
    """The most events in any `window`-long stretch (sliding)."""
    best = 0
    for i, t in enumerate(times):
        best = max(best, bisect.bisect_left(times, t + window - 1e-9) - i)
    return best


def _report(fake: Any, t0: float, t1: float, interval: float, boards: dict[int, str]) -> dict[str, Any]:
    run = [r for r in fake.requests if t0 <= r.at <= t1]
    times = sorted(r.at for r in run)
    kinds = Counter(f"{r.method} {'edit' if r.method == 'PATCH' else r.path.split('/')[1]}" for r in run)
    per_message: dict[str, list[int]] = {}
    min_gap = float("inf")
    worst_window = 0
    for message_id, group in boards.items():
        edits = sorted(r.at for r in run if r.method == "PATCH" and r.path.endswith(f"/{message_id}"))
        per_message.setdefault(group, []).append(len(edits))
        worst_window = max(worst_window, _max_in_window(edits, interval))
        for a, b in itertools.pairwise(edits):
            min_gap = min(min_gap, b - a)
    unique, duplicated = _relay_lines(fake)
    alerts = fake.messages(ALERT_CHANNEL)
    return {
        "requests": len(run),
        "requests_per_s": round(len(run) / (t1 - t0), 2),
        "peak_requests_in_any_1s": _max_in_window(times, 1.0),
        "requests_by_kind": dict(kinds),
        "http_429": fake.count_429,
        "edits_per_message": {k: sorted(v) for k, v in per_message.items()},
        "max_edits_of_one_message_in_any_interval": worst_window,
        "min_gap_between_edits_s": round(min_gap, 2) if min_gap != float("inf") else None,
        "relay_lines_delivered": unique,
        "relay_lines_duplicated": duplicated,
        "alerts_posted": len(alerts),
    }


# -- the bot side (this process) ----------------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(duration: float, interval: float, lines: float) -> dict[str, Any]:
    from bot.app import WingbeatBot
    from bot.panel.models import Server
    from bot.settings import Settings

    ctx = mp.get_context("spawn")
    emu_conn, emu_child = ctx.Pipe()
    dis_conn, dis_child = ctx.Pipe()
    emu_proc = ctx.Process(
        target=emulator_main, args=(emu_child, len(RELAY_CHANNELS), lines, duration), daemon=True
    )
    dis_proc = ctx.Process(target=discord_main, args=(dis_child,), daemon=True)
    emu_proc.start()
    dis_proc.start()
    loop = asyncio.get_running_loop()
    panel_url, api_key, identifiers = await loop.run_in_executor(None, emu_conn.recv)
    base_url, gateway_url, token = await loop.run_in_executor(None, dis_conn.recv)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            discord_token=token,
            panel_url=panel_url,
            panel_api_key=api_key,
            guild_ids=(GUILD,),
            database_url=f"sqlite:///{tmp}/wingbeat.sqlite3",
            wings_origin=panel_url,
            status_interval=interval,
            discord_api_url=base_url,
            discord_gateway_url=gateway_url,
        )
        bot = WingbeatBot(settings)
        starter = asyncio.create_task(bot.start(token))
        while not bot.is_ready():
            if starter.done():
                starter.result()
            await asyncio.sleep(0.05)
        servers = await bot.catalog.refresh()
        by_id = {s.identifier: s for s in servers}
        await bot.alerts.set(GUILD, ALERT_CHANNEL, None)
        for ident, cid in zip(identifiers, RELAY_CHANNELS, strict=False):
            await bot.links.add(guild_id=GUILD, channel_id=cid, server=by_id[ident], created_by=0)
        await asyncio.gather(*(bot.manager.connection(i).wait_ready(60) for i in identifiers))
        boards: dict[int, str] = {}
        for cid in BOARD_CHANNELS:
            board = await bot.boards.post_board(guild_id=GUILD, channel_id=cid, created_by=0)
            boards[board.message_id] = "board"
        # Half the cards show busy servers (figures jumping every second), half idle ones.
        carded: list[Server] = [by_id[identifiers[i]] for i in range(CARDS // 2)]
        carded += [by_id[identifiers[BUSY + i]] for i in range(CARDS // 2)]
        for n, server in enumerate(carded):
            card = await bot.boards.post_card(
                guild_id=GUILD, channel_id=CARD_CHANNELS[n % len(CARD_CHANNELS)], server=server, created_by=0
            )
            boards[card.message_id] = "card (busy server)" if n < CARDS // 2 else "card (idle server)"

        cpu0 = _cpu()
        t0 = time.monotonic()
        emu_conn.send("go")
        emitted: list[int] = await loop.run_in_executor(None, emu_conn.recv)
        t1 = time.monotonic()
        cpu = _cpu() - cpu0
        total = sum(emitted)
        deadline = time.monotonic() + 15  # let the relay drain what is pending
        while time.monotonic() < deadline:
            dis_conn.send(("count",))
            if await loop.run_in_executor(None, dis_conn.recv) >= total:
                break
            await asyncio.sleep(0.25)
        health = bot.boards.health()
        await bot.close()
        await asyncio.gather(starter, return_exceptions=True)
    dis_conn.send(("report", t0, t1, interval, boards))
    report: dict[str, Any] = await loop.run_in_executor(None, dis_conn.recv)
    emu_conn.send("stop")
    for proc in (emu_proc, dis_proc):
        proc.join(10)
    return {
        "duration_s": duration,
        "status_interval_s": interval,
        "servers": SERVERS,
        "boards_and_cards": len(boards),
        "relay_channels": len(RELAY_CHANNELS),
        "relay_lines_per_s_per_channel": lines,
        **report,
        "relay_lines_emitted": total,
        "relay_lines_lost": total - report["relay_lines_delivered"],
        "board_reposts": sum(h.reposts for h in health),
        "bot_cpu_s": round(cpu, 2),
        "bot_cpu_pct_of_core": round(100 * cpu / (t1 - t0), 1),
        "bot_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds of load (default 300, quick 60)"
    )
    parser.add_argument("--interval", type=float, default=None, help="STATUS_INTERVAL (default 15, quick 5)")
    parser.add_argument("--lines", type=float, default=2.0, help="console lines per second per linked server")
    parser.add_argument("--quick", action="store_true", help="60 s with STATUS_INTERVAL 5 s")
    args = parser.parse_args(argv)
    duration = args.duration if args.duration is not None else (60.0 if args.quick else 300.0)
    interval = args.interval if args.interval is not None else (5.0 if args.quick else 15.0)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("discord.client").setLevel(logging.ERROR)  # no voice warnings
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    result = asyncio.run(run(duration, interval, args.lines))
    print(f"\n== boards bench: {duration:g} s, STATUS_INTERVAL {interval:g} s")
    for name, value in result.items():
        print(f"  {name:42s} {value}")
    checks = {
        "no 429": result["http_429"] == 0,
        "at most 45 requests in any second": result["peak_requests_in_any_1s"] <= 45,
        "at most one edit per message per STATUS_INTERVAL": result["max_edits_of_one_message_in_any_interval"]
        <= 1,
        "no relay line lost or duplicated": result["relay_lines_lost"] == 0
        and result["relay_lines_duplicated"] == 0,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    print("\nJSON " + json.dumps({**result, "checks": checks}))


if __name__ == "__main__":
    main()
