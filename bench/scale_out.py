"""Several bot processes on one token: the real bot (`python -m bot`'s code) as child processes, one per shard.

Runs, each with the same world (two guilds, one per shard of two; one linked channel per game server; the links
saved in a throwaway PostgreSQL store beforehand, so each process restores its own at start-up):

    2x200  two processes (SHARD_COUNT=2, SHARD_IDS=0 / 1), 200 linked servers each
    1x400  one process, not sharded, all 400 (for comparison)

The panel + Wings emulator and the fake Discord run in their own processes (as in bench.relay); every game
server prints numbered console lines (`--rate` per second each) for `--duration` seconds. Figures: lines lost and
duplicated (from what the fake Discord received, attachments included), the latency from emission to the
Discord request, Discord requests per second (all processes together: the busiest whole second, and the busiest
one-second window anywhere), and each bot process's CPU and RSS over the emission window.

By default each process takes its share of the token's budget (45/s split between the processes: 22.5/s
each). `--proxy` instead points the bots at the fake Discord through `DISCORD_API_URL`, as behind a shared
rate-limiting proxy (nirn-proxy): each takes the whole budget and the fake answers like such a proxy, letting
through 45 requests in any second and refusing the rest with its own 429s.

    .venv/bin/python -m bench.scale_out                       # both runs, 30 s of console each (a few minutes)
    .venv/bin/python -m bench.scale_out --runs 2x200 --duration 20
    .venv/bin/python -m bench.scale_out --proxy
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import logging
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bot.store import open_store

ROOT = Path(__file__).resolve().parents[1]
CHANNEL_BASE = 941000000000000000
BOT_CHILD = "--bot-child"
PROXY_LIMIT = 45  # what the fake, as a shared proxy, lets through in any second


@dataclass(frozen=True)
class Run:
    name: str
    processes: int
    servers: int  # in all


RUNS = {"2x200": Run("2 processes x 200 linked servers", 2, 400), "1x400": Run("1 process x 400", 1, 400)}


# -- emulator process ---------------------------------------------------------------------------------------


def emulator_main(conn: Connection, servers: int, rate: float, duration: float) -> None:
    asyncio.run(_emulator(conn, servers, rate, duration))


async def _emulator(conn: Connection, servers: int, rate: float, duration: float) -> None:
    from tests.fakes.emulator import Emulator

    async with Emulator(stats_interval=1.0, max_sockets=60) as emu:
        srvs = [emu.add_server(f"srv-{i:03d}", state="running") for i in range(servers)]
        conn.send((emu.panel_url, emu.api_key, [s.identifier for s in srvs]))
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd == "authenticated":
                conn.send(sum(any(s.authenticated for s in emu.sockets(srv)) for srv in srvs))
            elif cmd == "go":
                conn.send(await _emit(srvs, rate, duration))
            elif cmd == "stop":
                return


async def _emit(srvs: list[Any], rate: float, duration: float) -> list[int]:
    emitted = [0] * len(srvs)
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < duration:
        target = int(elapsed * rate)
        for i, srv in enumerate(srvs):
            while emitted[i] < target:
                srv.emit_console(f"S{i:03d} {emitted[i]:07d} {time.monotonic():.6f} <Player> hello @everyone")
                emitted[i] += 1
        await asyncio.sleep(0.02)
    return emitted


# -- fake Discord process -----------------------------------------------------------------------------------


def discord_main(conn: Connection, servers: int, proxy: bool) -> None:
    asyncio.run(_discord(conn, servers, proxy))


async def _discord(conn: Connection, servers: int, proxy: bool) -> None:
    from tests.fakes.fake_discord import FakeDiscord
    from tests.shard_helpers import GUILDS, build_shard_world

    async with FakeDiscord(bucket_limit=5, bucket_window=5.0) as fake:
        build_shard_world(fake)
        for i in range(servers):
            fake.guilds[GUILDS[i % len(GUILDS)].id].add_channel(CHANNEL_BASE + i, f"console-{i:03d}")
        conn.send((fake.base_url, fake.gateway_url, fake.token))
        loop = asyncio.get_running_loop()
        while True:
            cmd, arg = await loop.run_in_executor(None, conn.recv)
            if cmd == "proxy" and proxy:
                fake.proxy_limit = PROXY_LIMIT
                conn.send(True)
            elif cmd == "proxy":
                conn.send(False)
            elif cmd == "count":
                conn.send(
                    sum(len(_lines(m)) for i in range(servers) for m in fake.messages(CHANNEL_BASE + i))
                )
            elif cmd == "report":
                conn.send(_report(fake, servers, arg))
                return


def _lines(message: Any) -> list[str]:
    if message.attachments:
        return [line for _, data in message.attachments for line in data.decode().splitlines()]
    content: str = message.content
    start = content.find("```")
    if start < 0:
        return []
    return content[content.index("\n", start) + 1 : content.rindex("```")].rstrip("\n").split("\n")


def _report(fake: Any, servers: int, since: float) -> dict[str, Any]:
    seen: dict[tuple[int, int], int] = {}
    latencies: list[float] = []
    messages = attachments = 0
    for i in range(servers):
        for msg in fake.messages(CHANNEL_BASE + i):
            messages += 1
            attachments += bool(msg.attachments)
            for line in _lines(msg):
                parts = line.split(" ", 3)
                if len(parts) < 3 or not parts[0].startswith("S"):
                    continue
                key = (int(parts[0][1:]), int(parts[1]))
                seen[key] = seen.get(key, 0) + 1
                if seen[key] == 1:
                    latencies.append(msg.at - float(parts[2]))
    # Requests that reached "Discord" (behind the proxy: those it let through), from the first line on.
    times = sorted(r.at for r in fake.requests if r.at >= since)
    refused = sorted(at for at, _, _ in fake.proxy_refusals if at >= since)
    reached = _minus(times, refused)
    per_second: dict[int, int] = {}
    for at in reached:
        per_second[int(at - since)] = per_second.get(int(at - since), 0) + 1
    return {
        "unique": len(seen),
        "duplicated": sum(n - 1 for n in seen.values()),
        "latencies": sorted(latencies),
        "messages": messages,
        "attachments": attachments,
        "requests": len(reached),
        "span": (reached[-1] - reached[0]) if len(reached) > 1 else 0.0,
        "busiest_second": max(per_second.values(), default=0),
        "busiest_window": _busiest_window(reached),
        "discord_429": sum(1 for r in fake.requests if r.status == 429 and r.at >= since) - len(refused),
        "proxy_429": len(refused),
        "nonce_hits": fake.nonce_hits,
    }


def _minus(times: list[float], refused: list[float]) -> list[float]:
    out = list(times)
    for at in refused:
        index = bisect.bisect_left(out, at)
        if index < len(out) and out[index] == at:
            out.pop(index)
    return out


def _busiest_window(times: list[float], window: float = 1.0) -> int:
    """The most requests within any `window` seconds (a sliding window, not whole seconds)."""
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


# -- bot processes ------------------------------------------------------------------------------------------


def bot_child() -> None:
    """One bot process: settings from the environment, Discord endpoints patched (not through DISCORD_API_URL,
    which would mean a shared proxy and the whole budget) unless `--proxy` set DISCORD_API_URL itself."""
    from bot.app import run_bot, use_discord_endpoints
    from bot.logs import setup_logging
    from bot.settings import load_settings

    settings = load_settings(dotenv=None)
    setup_logging(logging.WARNING, secrets=(settings.discord_token, settings.panel_api_key))
    if settings.discord_api_url is None:
        use_discord_endpoints(os.environ["BENCH_DISCORD_API"], os.environ["BENCH_DISCORD_GATEWAY"])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    asyncio.run(run_bot(settings))


@dataclass
class BotProc:
    name: str
    proc: asyncio.subprocess.Process
    log: Path

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mib(self) -> tuple[float, float]:
        """(RSS now, peak RSS) in MiB."""
        values: dict[str, float] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)

    def ready(self) -> bool:
        return "Wingbeat ready" in self.log.read_text(errors="replace")


async def start_bot(name: str, env: dict[str, str], folder: Path) -> BotProc:
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    log = folder / "bot.log"
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "PANEL_", "SHARD_"))}
    full.update(env)
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), full.get("PYTHONPATH", "")) if p)
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.scale_out", BOT_CHILD, cwd=folder, env=full, stdout=out, stderr=out
        )
    return BotProc(name, proc, log)


async def seed_links(dsn: str, identifiers: list[str]) -> None:
    from bot.store import Link
    from tests.shard_helpers import GUILDS

    async with await open_store(dsn) as store:
        for i, ident in enumerate(identifiers):
            g = GUILDS[i % len(GUILDS)]
            await store.add_link(
                Link(g.id, CHANNEL_BASE + i, ident, f"srv-{i:03d}", g.admin, datetime.now(UTC))
            )


async def ask(conn: Connection, message: Any) -> Any:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.send, message)
    return await loop.run_in_executor(None, conn.recv)


async def run(run: Run, duration: float, rate: float, proxy: bool) -> dict[str, Any]:
    from tests.pg import PostgresCluster, find_bindir
    from tests.shard_helpers import GUILDS

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql-15)")
    cluster = await asyncio.to_thread(PostgresCluster.start, bindir)
    folder = Path(tempfile.mkdtemp(prefix="wingbeat-scale-"))
    ctx = mp.get_context("spawn")
    emu_conn, emu_child = ctx.Pipe()
    dis_conn, dis_child = ctx.Pipe()
    emu_proc = ctx.Process(target=emulator_main, args=(emu_child, run.servers, rate, duration), daemon=True)
    dis_proc = ctx.Process(target=discord_main, args=(dis_child, run.servers, proxy), daemon=True)
    emu_proc.start()
    dis_proc.start()
    bots: list[BotProc] = []
    loop = asyncio.get_running_loop()
    try:
        panel_url, api_key, identifiers = await loop.run_in_executor(None, emu_conn.recv)
        base_url, gateway_url, token = await loop.run_in_executor(None, dis_conn.recv)
        dsn = cluster.fresh_database()
        await seed_links(dsn, identifiers)
        settings = {
            "DISCORD_TOKEN": token,
            "PANEL_URL": panel_url,
            "PANEL_API_KEY": api_key,
            "GUILD_IDS": ",".join(str(g.id) for g in GUILDS),
            "ADMIN_ROLE_IDS": ",".join(str(g.admins) for g in GUILDS),
            "DATABASE_URL": dsn,
            "BENCH_DISCORD_API": base_url,
            "BENCH_DISCORD_GATEWAY": gateway_url,
        }
        if proxy:
            settings.update(DISCORD_API_URL=base_url, DISCORD_GATEWAY_URL=gateway_url)
        t0 = time.monotonic()
        for p in range(run.processes):
            env = dict(settings)
            if run.processes > 1:
                env.update(SHARD_COUNT=str(run.processes), SHARD_IDS=str(p))
            bots.append(await start_bot(f"bot {p}", env, folder / f"bot{p}"))
        await _until(lambda: all(b.ready() for b in bots), 120, "the bots to be ready", bots)
        while await ask(emu_conn, "authenticated") < run.servers:
            if time.monotonic() - t0 > 300:
                raise SystemExit("not every console socket came up within 300 s")
            await asyncio.sleep(1.0)
        connect_s = time.monotonic() - t0
        await ask(dis_conn, ("proxy", None))
        cpu0 = [b.cpu_seconds() for b in bots]
        go = time.monotonic()
        emitted: list[int] = await ask(emu_conn, "go")
        emission = time.monotonic() - go
        cpu1 = [b.cpu_seconds() for b in bots]
        memory = [b.memory_mib() for b in bots]
        total = sum(emitted)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and await ask(dis_conn, ("count", None)) < total:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.5)
        drain_s = time.monotonic() - go - emission
        report: dict[str, Any] = await ask(dis_conn, ("report", go))
    finally:
        for b in bots:
            if b.proc.returncode is None:
                b.proc.terminate()
        for b in bots:
            try:
                await asyncio.wait_for(b.proc.wait(), 15)
            except TimeoutError:
                b.proc.kill()
        if emu_proc.is_alive():
            emu_conn.send("stop")
        for proc in (emu_proc, dis_proc):
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        await asyncio.to_thread(cluster.destroy)
        await asyncio.to_thread(shutil.rmtree, folder, True)
    lat = report["latencies"]
    result: dict[str, Any] = {
        "run": run.name + (" (behind a shared proxy)" if proxy else ""),
        "seconds_to_all_connected": round(connect_s, 1),
        "emission_s": round(emission, 1),
        "drain_s": round(drain_s, 1),
        "lines_emitted": total,
        "lines_delivered": report["unique"],
        "lines_lost": total - report["unique"],
        "lines_duplicated": report["duplicated"],
        "messages": report["messages"],
        "attachments": report["attachments"],
        "latency_p50_s": round(_pct(lat, 0.5), 2),
        "latency_p99_s": round(_pct(lat, 0.99), 2),
        "discord_requests_per_s": round(report["requests"] / report["span"], 1) if report["span"] else 0.0,
        "discord_busiest_whole_second": report["busiest_second"],
        "discord_busiest_1s_window": report["busiest_window"],
        "discord_429": report["discord_429"],
        "proxy_429": report["proxy_429"],
    }
    for b, before, after, (rss, peak) in zip(bots, cpu0, cpu1, memory, strict=True):
        key = b.name.replace(" ", "")
        result[f"{key}_cpu_pct_of_core"] = round(100 * (after - before) / emission, 1)
        result[f"{key}_rss_mib"] = round(rss, 1)
        result[f"{key}_peak_rss_mib"] = round(peak, 1)
    return result


async def _until(pred: Any, timeout: float, what: str, bots: list[BotProc]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        for b in bots:
            if b.proc.returncode is not None:
                raise SystemExit(f"{b.name} exited with {b.proc.returncode}:\n{b.log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main(argv: list[str] | None = None) -> None:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == [BOT_CHILD]:
        bot_child()
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of console output (default 30)")
    parser.add_argument(
        "--rate", type=float, default=2.0, help="console lines per second per server (default 2)"
    )
    parser.add_argument("--proxy", action="store_true", help="the bots behind a shared rate-limiting proxy")
    parser.add_argument("--servers", type=int, default=400, help="linked servers in all (default 400)")
    args = parser.parse_args(args_in)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    results = []
    for key in args.runs:
        chosen = RUNS[key]
        if args.servers != chosen.servers:
            per = args.servers // chosen.processes
            chosen = Run(
                f"{chosen.processes} process(es) x {per} linked servers", chosen.processes, args.servers
            )
        result = asyncio.run(run(chosen, args.duration, args.rate, args.proxy))
        results.append(result)
        print(f"\n== {result['run']}: {args.rate:g} lines/s per server for {args.duration:g} s")
        for name, value in result.items():
            if name != "run":
                print(f"  {name:34s} {value}")
        sys.stdout.flush()
    print("\nJSON " + json.dumps(results))


if __name__ == "__main__":
    main()
