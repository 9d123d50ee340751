"""Scale benchmark: N emulated game servers held by ONE `ConnectionManager` for a fixed time.

Every server sends `stats` about once a second and a numbered console line every 2 s; tokens are short-lived so
several refresh rounds happen. The panel + Wings emulator runs in a child process (this module with
`--emulator-child`), so CPU and memory figures cover the bot side only.

Run: ``.venv/bin/python -m bench.connections [--quick] [--servers N] [--duration S] [--token-lifetime S]
[--profile classic|hardened]``. It prints one figure per line, then a one-line JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.panel.client import PanelClient
from bot.panel.pacing import RequestPacer
from bot.wings.connection import Timing
from bot.wings.events import ConnectionState, Notice, WingsEvent
from bot.wings.frames import Event
from bot.wings.manager import ConnectionManager

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
PANEL_BUDGET = 720  # Pterodactyl's default per-user Client API requests per minute
TARGET_CPU_PCT = 20.0
TARGET_RSS_MIB = 250.0
TARGET_REFRESH_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to run; shared with the emulator child as JSON."""

    servers: int = 500
    duration: float = 300.0
    token_lifetime: float = 80.0
    profile: str = "classic"
    stats_interval: float = 1.0
    console_period: float = 2.0
    drain: float = 3.0  # emitting stops this long before the end, so lines in flight can arrive
    rate_limit: int = PANEL_BUDGET

    @property
    def expiry_tick(self) -> float:
        # Wings checks every 30 s and warns 60 s ahead for 10-minute tokens; scale both with the lifetime so
        # the bot's own proactive refresh (at 3/4 of a short token) still comes before Wings' warning.
        return min(30.0, self.token_lifetime / 8)

    @property
    def expiry_window(self) -> float:
        return min(60.0, self.token_lifetime / 8)


# -- bot side: counting ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class CountingPacer(RequestPacer):
    """The client's own pacer, also noting when each panel response arrived and how many were 429s."""

    response_times: list[float] = field(default_factory=list)
    rate_limited: int = 0

    def observe(self, *, limit: str | None, remaining: str | None) -> None:
        self.response_times.append(time.monotonic())
        RequestPacer.observe(self, limit=limit, remaining=remaining)

    def block(self, now: float, retry_after: float) -> None:
        self.rate_limited += 1  # the client calls this once for every 429
        RequestPacer.block(self, now, retry_after)


class LineCounter:
    """A subscriber that checks one server's console lines arrive as 1, 2, 3 ... with no gap or repeat.

    Keeps only the next expected number and the numbers still missing, so it costs the bot process almost nothing.
    """

    __slots__ = (
        "delivered",
        "duplicated",
        "holes",
        "late",
        "name",
        "next_seq",
        "notices",
        "other",
        "sessions",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.next_seq = 1
        self.holes: set[int] = set()
        self.delivered = 0
        self.duplicated = 0
        self.late = 0  # missing lines that came later (a gap fill)
        self.other = 0
        self.sessions = 0
        self.notices = 0

    def deliver(self, event: WingsEvent) -> None:
        kind = event.frame.known
        if kind is Event.STATUS:
            self.sessions += 1  # Wings sends `status` right after the first auth of every socket
            return
        if kind is not Event.CONSOLE_OUTPUT:
            return
        prefix, _, number = event.frame.arg.rpartition(" line ")
        if prefix != self.name or not number.isdigit():
            self.other += 1
            return
        seq = int(number)
        self.delivered += 1
        if seq == self.next_seq:
            self.next_seq += 1
        elif seq > self.next_seq:
            self.holes.update(range(self.next_seq, seq))
            self.next_seq = seq + 1
        elif seq in self.holes:
            self.holes.discard(seq)
            self.late += 1
        else:
            self.duplicated += 1

    def notice(self, notice: Notice) -> None:
        self.notices += 1

    def lost(self, emitted: int) -> int:
        return len(self.holes) + max(0, emitted - (self.next_seq - 1))


@dataclass(slots=True)
class Mark:
    """Wall and CPU time of the bot process at one moment."""

    wall: float
    cpu: float

    @classmethod
    def now(cls) -> Mark:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(time.monotonic(), usage.ru_utime + usage.ru_stime)


def cpu_pct(start: Mark | None, end: Mark) -> float | None:
    if start is None or end.wall <= start.wall:
        return None
    return 100.0 * (end.cpu - start.cpu) / (end.wall - start.wall)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def peak_per_window(times: list[float], window: float = 60.0) -> int:
    """Most requests in any `window` seconds (sliding)."""
    best = 0
    for i, t in enumerate(times):
        best = max(best, bisect.bisect_left(times, t + window) - i)
    return best


def raise_open_files(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


# -- bot side: the run -----------------------------------------------------------------------------------------


class Child:
    """The emulator process, spoken to in JSON lines over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def spawn(cls, cfg: BenchConfig) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.connections",
            "--emulator-child",
            json.dumps(asdict(cfg)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        return cls(proc)

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator process ended (exit code {await self.proc.wait()})")
        msg: dict[str, Any] = json.loads(line)
        return msg

    async def ask(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd}) + "\n").encode())
        await self.proc.stdin.drain()
        return await self.read()


@dataclass(slots=True)
class Progress:
    """What the sampling loop saw while the run went on."""

    all_connected: Mark | None = None
    events_at_all_connected: int = 0
    max_connected: int = 0
    rss_steady_mib: float | None = None


async def watch(manager: ConnectionManager, servers: int, until: float, progress: Progress) -> None:
    """Sample the connection states twice a second until `until` (monotonic)."""
    while (left := until - time.monotonic()) > 0:
        await asyncio.sleep(min(0.5, left))
        connected = sum(c.state is ConnectionState.CONNECTED for c in manager.connections())
        progress.max_connected = max(progress.max_connected, connected)
        if progress.all_connected is None and connected == servers:
            progress.all_connected = Mark.now()
            progress.events_at_all_connected = sum(c.events for c in manager.connections())


async def run_bot(cfg: BenchConfig) -> dict[str, Any]:
    """Start the emulator child, hold every server for `cfg.duration` seconds, return the figures."""
    nofile = raise_open_files(4 * cfg.servers + 512)
    child = await Child.spawn(cfg)
    ready = await child.read()
    pacer = CountingPacer()
    panel = PanelClient(ready["panel_url"], ready["api_key"], pacer=pacer)
    manager = ConnectionManager(panel, origin=ready["panel_url"], timing=Timing())
    counters: dict[str, LineCounter] = {}
    progress = Progress()
    start = Mark.now()
    try:
        for ident, name in ready["servers"]:
            counters[ident] = LineCounter(name)
            manager.subscribe(ident, counters[ident])
        await watch(manager, cfg.servers, start.wall + cfg.duration - cfg.drain, progress)
        stop_emit = Mark.now()
        events_at_stop = sum(c.events for c in manager.connections())
        progress.rss_steady_mib = current_rss_mib()
        emitted = await child.ask("stop emitting")
        await watch(manager, cfg.servers, start.wall + cfg.duration, progress)
        end = Mark.now()
        conns = manager.connections()
        connected_end = sum(c.state is ConnectionState.CONNECTED for c in conns)
        refreshes = [c.refreshes for c in conns]
        events = sum(c.events for c in conns)
        reconnects = sum(c.reconnects for c in conns)
    finally:
        await manager.close()
        await panel.close()
        emu = await child.ask("quit")
        await child.proc.wait()

    counts: dict[str, int] = emitted["counts"]
    lines_emitted = sum(counts.values())
    times = sorted(pacer.response_times)
    wall = end.wall - start.wall
    steady_wall = stop_emit.wall - progress.all_connected.wall if progress.all_connected else 0.0
    per_minute = [0] * (int(wall // 60) + 1)
    for t in times:
        per_minute[min(len(per_minute) - 1, int((t - start.wall) // 60))] += 1
    return {
        "servers": cfg.servers,
        "duration_s": round(wall, 1),
        "profile": cfg.profile,
        "token_lifetime_s": cfg.token_lifetime,
        "open_files_limit": nofile,
        "connections_established": sum(1 for c in counters.values() if c.sessions > 0),
        "connected_at_end": connected_end,
        "time_to_all_connected_s": (
            round(progress.all_connected.wall - start.wall, 1) if progress.all_connected else None
        ),
        "wings_sessions": sum(c.sessions for c in counters.values()),
        "refresh_rounds_min": min(refreshes, default=0),
        "refresh_rounds_max": max(refreshes, default=0),
        "refreshes_total": sum(refreshes),
        "reconnects": reconnects,
        "console_lines_emitted": lines_emitted,
        "console_lines_delivered": sum(c.delivered for c in counters.values()),
        "console_lines_lost": sum(c.lost(counts.get(i, 0)) for i, c in counters.items()),
        "console_lines_duplicated": sum(c.duplicated for c in counters.values()),
        "console_lines_recovered_late": sum(c.late for c in counters.values()),
        "console_lines_foreign": sum(c.other for c in counters.values()),
        "servers_with_lines": sum(1 for n in counts.values() if n > 0),
        "notices": sum(c.notices for c in counters.values()),
        "events_total": events,
        "events_per_s": round(events / wall, 1) if wall else None,
        "events_per_s_steady": (
            round((events_at_stop - progress.events_at_all_connected) / steady_wall, 1)
            if steady_wall
            else None
        ),
        "bot_cpu_pct_steady": _round(cpu_pct(progress.all_connected, stop_emit)),
        "steady_phase_s": round(steady_wall, 1),
        "bot_cpu_pct_connect_phase": _round(
            cpu_pct(start, progress.all_connected) if progress.all_connected else None
        ),
        "bot_cpu_pct_overall": _round(cpu_pct(start, end)),
        "bot_peak_rss_mib": round(peak_rss_mib(), 1),
        "bot_rss_steady_mib": _round(progress.rss_steady_mib),
        "panel_requests_total": len(times),
        "panel_requests_per_min_peak60s": peak_per_window(times),
        "panel_requests_per_min_avg": round(len(times) / (wall / 60), 1) if wall else None,
        "panel_requests_by_minute": per_minute,
        "panel_pacer_per_min": pacer.per_minute,
        "panel_429s": pacer.rate_limited,
        "emulator_panel_requests": emu["panel_requests"],
        "emulator_frames_sent": emu["frames"],
        "emulator_cpu_pct": emu["cpu_pct"],
    }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def verdicts(r: dict[str, Any]) -> dict[str, bool]:
    cpu = r["bot_cpu_pct_steady"]
    return {
        "all_connected_through_3_refresh_rounds": (
            r["connections_established"] == r["servers"]
            and r["connected_at_end"] == r["servers"]
            and r["refresh_rounds_min"] >= TARGET_REFRESH_ROUNDS
        ),
        "zero_lost_or_duplicated_lines": (
            r["console_lines_lost"] == 0
            and r["console_lines_duplicated"] == 0
            and r["servers_with_lines"] > 0
        ),
        "cpu_le_20pct_of_a_core": cpu is not None and cpu <= TARGET_CPU_PCT,
        "rss_le_250_mib": r["bot_peak_rss_mib"] <= TARGET_RSS_MIB,
        "panel_paced_under_720_per_min": (
            r["panel_requests_per_min_peak60s"] < PANEL_BUDGET and r["panel_429s"] == 0
        ),
    }


def report(r: dict[str, Any]) -> None:
    for key, value in r.items():
        print(f"{key}: {value}")
    checks = verdicts(r)
    for name, ok in checks.items():
        print(f"target {name}: {'PASS' if ok else 'FAIL'}")
    print(json.dumps({**r, "targets": checks, "passed": all(checks.values())}, separators=(",", ":")))


# -- emulator child --------------------------------------------------------------------------------------------


async def run_child(cfg: BenchConfig) -> None:
    """Serve the panel + Wings for `cfg.servers` running servers; emit numbered console lines until told."""
    from tests.fakes import wings_app  # only the child loads the emulator
    from tests.fakes.emulator import Emulator

    frames: Counter[str] = Counter()
    send_raw = wings_app.WingsSocket.send_raw

    def counting_send(self: wings_app.WingsSocket, event: str, args: list[str] | None = None) -> None:
        frames[event] += 1
        send_raw(self, event, args)

    setattr(wings_app.WingsSocket, "send_raw", counting_send)  # noqa: B010 - count without changing behaviour
    emu = Emulator(
        profile=cfg.profile,
        token_lifetime=cfg.token_lifetime,
        expiry_tick=cfg.expiry_tick,
        expiry_window=cfg.expiry_window,
        stats_interval=cfg.stats_interval,
        rate_limit=cfg.rate_limit,
        max_sockets=30,
    )
    await emu.start()
    servers = []
    for i in range(cfg.servers):
        # Spread the stats loops over one interval, as real servers are not in step.
        servers.append(emu.add_server(f"srv-{i:04d}", identifier=f"s{i:07d}", state="running"))
        await asyncio.sleep(cfg.stats_interval / cfg.servers)
    emitted = [0] * len(servers)
    stop = asyncio.Event()
    emitter = asyncio.create_task(emit_lines(servers, cfg.console_period, emitted, stop))
    _send(
        {
            "panel_url": emu.panel_url,
            "api_key": emu.api_key,
            "servers": [[s.identifier, s.name] for s in servers],
        }
    )
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            cmd = json.loads(line)["cmd"]
            if cmd == "stop emitting":
                stop.set()  # takes effect at once: the emitter only runs between our awaits
                _send({"counts": {s.identifier: n for s, n in zip(servers, emitted, strict=True)}})
            elif cmd == "quit":
                break
    finally:
        stop.set()
        await emitter
        await emu.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _send(
        {
            "panel_requests": len(emu.requests),
            "frames": dict(frames),
            "cpu_pct": round(100 * (usage.ru_utime + usage.ru_stime) / (time.monotonic() - CHILD_STARTED), 1),
        }
    )


async def emit_lines(servers: list[Any], period: float, emitted: list[int], stop: asyncio.Event) -> None:
    """One line per server every `period` s, spread evenly; a server starts once a bot socket is authenticated."""
    n = len(servers)
    started = [False] * n
    t0 = time.monotonic()
    slot = 0
    while not stop.is_set():
        await asyncio.sleep(0.02)
        due = int((time.monotonic() - t0) * n / period)
        while slot < due and not stop.is_set():
            i = slot % n
            slot += 1
            srv = servers[i]
            if not started[i]:
                started[i] = any(sock.authenticated for sock in srv.socket_list)
                if not started[i]:
                    continue
            emitted[i] += 1
            srv.emit_console(f"{srv.name} line {emitted[i]:06d}")


def _send(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


CHILD_STARTED = time.monotonic()


# -- command line ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[BenchConfig, str | None]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, help="emulated servers (default 500; --quick: 50)")
    parser.add_argument("--duration", type=float, help="seconds to hold them (default 300; --quick: 60)")
    parser.add_argument(
        "--token-lifetime", type=float, help="Wings token lifetime s (default 80; --quick: 20)"
    )
    parser.add_argument("--profile", choices=("classic", "hardened"), default="classic")
    parser.add_argument(
        "--quick", action="store_true", help="a fast sanity run: 50 servers, 60 s, 20 s tokens"
    )
    parser.add_argument("--verbose", action="store_true", help="log the bot's INFO messages")
    parser.add_argument("--emulator-child", metavar="CONFIG_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.emulator_child:
        return BenchConfig(**json.loads(args.emulator_child)), "child"
    base = BenchConfig(servers=50, duration=60.0, token_lifetime=20.0) if args.quick else BenchConfig()
    cfg = BenchConfig(
        servers=args.servers or base.servers,
        duration=args.duration or base.duration,
        token_lifetime=args.token_lifetime or base.token_lifetime,
        profile=args.profile,
    )
    if cfg.servers < 1 or cfg.duration <= cfg.drain + 1 or cfg.token_lifetime < 4:
        parser.error("need at least 1 server, a duration over 4 s and a token lifetime of at least 4 s")
    return cfg, "verbose" if args.verbose else None


def main(argv: list[str] | None = None) -> None:
    cfg, mode = parse_args(argv)
    if mode == "child":
        logging.basicConfig(level=logging.ERROR)
        asyncio.run(run_child(cfg))
        return
    logging.basicConfig(
        level=logging.INFO if mode == "verbose" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    print(
        f"# {cfg.servers} servers for {cfg.duration:g} s, {cfg.token_lifetime:g} s tokens, {cfg.profile} profile",
        flush=True,
    )
    report(asyncio.run(run_bot(cfg)))


if __name__ == "__main__":
    main()
