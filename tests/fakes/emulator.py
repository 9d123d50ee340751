"""A Pterodactyl/Pelican panel + Wings emulator for tests.

Two aiohttp servers on 127.0.0.1: the panel Client API (`panel_app`) and the Wings console
websocket (`wings_app`). Behaviour follows docs/wings-and-panel.md; `profile`
picks "classic" (pterodactyl wings 1.11) or "hardened" (newest pterodactyl wings / Pelican).
Known simplifications: inbound frames are handled in order (except that a fresh socket's first
`auth` takes `auth_latency` seconds, during which other frames get `jwt: no jwt present`), event
delivery never drops frames for slow clients, and "issued before Wings booted" is judged on the
token's exact issue time rather than its whole-second `iat`, so tests are not flaky.

What tests can make happen, beyond the panel and socket basics:

- Crashes, as Wings reports them: ``emu.crash(srv, exit_code=1, oom=False, restart=True)`` sends `status`
  `offline` straight from running/starting (no `stopping`), zeroed `stats`, then the daemon-prefixed console
  lines ``---------- Detected server process in a crashed state! ----------``, ``Exit code: <n>``,
  ``Out of memory: <bool>``, and either restarts the server (`starting` -> `running`) or, with
  ``restart=False``, says why not: ``reason="recent"`` (``Aborting automatic restart, last crash occurred less
  than <crash_window> seconds ago.``) or ``reason="disabled"`` (``... crash detection is disabled for this
  instance.``). ``srv.crash_on_start = CrashSpec(...)`` makes the next start crash instead of reaching
  `running` (start -> starting -> crash). Daemon lines use `app_name` (``Pterodactyl``; Pelican: ``pelican``).
- Several nodes: every server lives on a node (``emu.nodes[0]`` by default), each node its own Wings app and
  port; the panel's websocket endpoint names the socket URL of the server's node. ``await emu.add_node()``
  starts another; ``await emu.transfer(srv, node)`` moves a server the way a panel transfer does (`transfer
  status` `processing`, a `transfer logs` line and `completed` on the old node, then the server runs on the
  new one); with ``delete_source=True`` the old node then sends `deleted` and closes its sockets, otherwise
  they stay open but quiet (a client learns of the move from its next credentials).
- Token expiry signals: ``expiry_notices=False`` never sends `token expiring`/`token expired`, so only a
  client's own timer can refresh in time.
- ``first_status_delay``: the `status` (and offline `stats`) that follows a first `auth success` comes this
  many seconds late, as it can on a busy Wings.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import random
import secrets
import string
import time
import uuid as uuidlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes import jwt_hs256

if TYPE_CHECKING:
    from tests.fakes.wings_app import WingsSocket

PROFILES = ("classic", "hardened")
STATES = ("offline", "starting", "running", "stopping")

ERR_NOT_PRESENT = "jwt: no jwt present"
ERR_NO_CONNECT = "jwt: missing connect permission"
ERR_UUID_MISMATCH = "jwt: server uuid mismatch"
ERR_DENYLIST = "jwt: created too far in past (denylist)"
ERR_EXP = "jwt: exp claim is invalid"
LOCK_BUSY_TEXT = "another power action is currently being processed for this server, please try again later"
THROTTLE_TEXT = "Server is outputting console data too quickly -- throttling..."
MAX_LINE = 64 * 1024
# Hardened per-connection token buckets: name -> (capacity, seconds per token) (docs/wings-and-panel.md, Limits)
DEFAULT_INBOUND_LIMITS: dict[str, tuple[int, float]] = {
    "global": (10, 0.2),
    "auth": (2, 5.0),
    "send logs": (2, 5.0),
    "send command": (10, 1.0),
    "_default": (4, 1.0),
}


def daemon_line(text: str, app_name: str = "Pterodactyl") -> str:
    """A Wings-generated console line (docs/wings-and-panel.md, Events and payloads)."""
    return f"\x1b[33m\x1b[1m[{app_name} Daemon]:\x1b[39m {text}\x1b[0m"


CRASH_HEADER = "---------- Detected server process in a crashed state! ----------"
CRASH_REASONS = ("recent", "disabled")


@dataclass(frozen=True)
class CrashSpec:
    """How a crash goes (see Emulator.crash)."""

    exit_code: int = 1
    oom: bool = False
    restart: bool = True
    reason: str = "recent"  # why an automatic restart was not done: "recent" or "disabled"

    def __post_init__(self) -> None:
        if self.reason not in CRASH_REASONS:
            raise ValueError(f"reason must be one of {CRASH_REASONS}")


@dataclass(eq=False)
class Node:
    """One emulated Wings: its own app on its own port."""

    name: str
    url: str = ""  # http://127.0.0.1:<port>, set when it starts


class PowerError(Exception):
    """A Wings power-action error; its text is shown only to admin tokens."""


class LockBusy(Exception):
    """Another power action holds the server's power lock."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the panel received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str


@dataclass
class Failure:
    """A pending injected panel failure (see Emulator.fail_next)."""

    method: str
    path_suffix: str
    status: int
    times: int
    detail: str | None
    retry_after: int | None
    delay: float


@dataclass
class _Throttle:
    window_start: float = -math.inf
    count: int = 0
    throttling: bool = False


class FakeServer:
    """One game server: panel record, Wings state and a tiny simulated game process."""

    def __init__(
        self,
        emu: Emulator,
        name: str,
        *,
        identifier: str,
        uuid: str,
        state: str,
        permissions: list[str],
        suspended: bool,
        status: str | None,
        transferring: bool,
    ) -> None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        self.emu = emu
        self.name = name
        self.identifier = identifier
        self.uuid = uuid
        self.state = state
        self.permissions = permissions
        self.suspended = suspended
        self.status = status
        self.transferring = transferring
        self.node_maintenance = False
        # True: the panel has not caught up with a suspension the node already enforces
        # (it still issues tokens and reports is_suspended false), e.g. to reach Hardened 4409.
        self.panel_lag = False
        self.deleted = False
        self.received: list[tuple[str, list[str]]] = []
        self.console_history: list[str] = []
        self.power_busy = False
        self.node: Node = emu.nodes[0]
        self.crash_on_start: CrashSpec | None = None  # the next start crashes instead of reaching `running`
        self.socket_list: list[WingsSocket] = []
        self._throttle = _Throttle()
        self._started_at = time.monotonic()
        self._rx = 0
        self._tx = 0
        self._transition: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._offline = asyncio.Event()
        if state == "offline":
            self._offline.set()

    def __repr__(self) -> str:
        return f"FakeServer({self.name!r}, {self.identifier}, state={self.state})"

    # -- outbound events -------------------------------------------------------------------
    def emit(self, event: str, *args: str) -> None:
        """Publish any event on the server's bus to every listening socket (SendJson rules apply)."""
        self._publish(event, list(args))

    def _publish(self, event: str, args: list[str]) -> None:
        for sock in list(self.socket_list):
            # Sockets left on a node the server moved away from hear nothing more from it.
            if sock.authenticated and sock.node is self.node:
                sock.send_json(event, args)

    def emit_daemon(self, text: str) -> None:
        """A Wings-generated console line: not throttled, never part of `send logs` (docs/wings-and-panel.md, Events and payloads)."""
        self._publish("console output", [daemon_line(text, self.emu.app_name)])

    def emit_console(self, line: str) -> None:
        """Container output: split into lines like Wings, recorded, then sent through the throttle."""
        for piece in line.replace(" \r", "\r\n").split("\n"):
            piece = piece.rstrip("\r")
            if not piece:
                continue
            for start in range(0, len(piece), MAX_LINE):
                chunk = piece[start : start + MAX_LINE]
                self.console_history.append(chunk)
                if self._throttle_allows():
                    self._publish("console output", [chunk])

    def _throttle_allows(self) -> bool:
        # Fixed window that restarts on the first line after the interval (docs/wings-and-panel.md, Limits).
        t = self._throttle
        now = time.monotonic()
        if now - t.window_start > self.emu.throttle_interval:
            t.window_start = now
            t.count = 0
        t.count += 1
        if t.count > self.emu.throttle_lines:
            if not t.throttling:
                t.throttling = True
                self.emit_daemon(THROTTLE_TEXT)
            return False
        t.throttling = False
        return True

    # -- stats -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """A `ResourceUsage` snapshot (docs/wings-and-panel.md, Events and payloads); zeroed while offline."""
        limit = 1024 * 1024 * 1024 + 200 * 1024 * 1024
        disk = 300 * 1024 * 1024 + 12345
        if self.state == "offline":
            return {
                "memory_bytes": 0,
                "memory_limit_bytes": limit,
                "cpu_absolute": 0,
                "network": {"rx_bytes": 0, "tx_bytes": 0},
                "uptime": 0,
                "state": "offline",
                "disk_bytes": disk,
            }
        self._rx += random.randint(500, 5000)
        self._tx += random.randint(500, 5000)
        base = 150 if self.state == "starting" else 600
        return {
            "memory_bytes": (base + random.randint(0, 100)) * 1024 * 1024,
            "memory_limit_bytes": limit,
            "cpu_absolute": round(random.uniform(3.0, 140.0), 3),
            "network": {"rx_bytes": self._rx, "tx_bytes": self._tx},
            "uptime": int((time.monotonic() - self._started_at) * 1000),
            "state": self.state,
            "disk_bytes": disk,
        }

    def stats_json(self) -> str:
        return json.dumps(self.stats(), separators=(",", ":"))

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.emu.stats_interval)
            self._publish("stats", [self.stats_json()])

    # -- state machine -----------------------------------------------------------------------
    def _set_state(self, new: str) -> None:
        if new == self.state:
            return  # Wings dedupes status changes
        old, self.state = self.state, new
        if old == "offline":
            self._started_at = time.monotonic()
        self._publish("status", [new])
        if new == "offline":
            self._offline.set()
            self._rx = self._tx = 0
            if self._stats_task is not None:
                self._stats_task.cancel()
                self._stats_task = None
            self._publish("stats", [self.stats_json()])
        else:
            self._offline.clear()
            if self._stats_task is None:
                self._stats_task = self.emu.spawn(self._stats_loop())

    def _run_transition(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._transition is not None:
            self._transition.cancel()
        self._transition = self.emu.spawn(coro)

    def _begin_start(self) -> None:
        self._throttle = _Throttle()  # the counter resets when the server enters `starting`
        self._set_state("starting")
        self.emit_console("container@pterodactyl~ java -Xms128M -Xmx1024M -jar server.jar")
        self.emit_console("[Server thread/INFO]: Starting minecraft server version 1.20.4")
        self.emit_console('[Server thread/INFO]: Preparing level "world"')
        self._run_transition(self._finish_start())

    async def _finish_start(self) -> None:
        await asyncio.sleep(self.emu.start_delay)
        if self.crash_on_start is not None:
            spec, self.crash_on_start = self.crash_on_start, None
            self._transition = None
            self.crash(spec)
            return
        self.emit_console(f'[Server thread/INFO]: Done ({self.emu.start_delay:.3f}s)! For help, type "help"')
        self._set_state("running")

    def _begin_stop(self) -> None:
        if self.state in ("offline", "stopping"):
            return
        self._set_state("stopping")
        self.emit_console("[Server thread/INFO]: Stopping the server")
        self._run_transition(self._finish_stop())

    async def _finish_stop(self) -> None:
        await asyncio.sleep(self.emu.stop_delay)
        self.emit_console("[Server thread/INFO]: Saving chunks for level 'ServerLevel[world]'")
        self._set_state("offline")

    async def _stop_then_maybe_start(self, restart: bool) -> None:
        try:
            self._begin_stop()
            await self._offline.wait()
            if restart and not self.suspended:
                self._begin_start()
        finally:
            self.power_busy = False

    def crash(self, spec: CrashSpec | None = None) -> None:
        """The game process dies: Wings' crash handling (see Emulator.crash)."""
        spec = spec or CrashSpec()
        if self.state == "offline":
            raise ValueError("an offline server cannot crash")
        if self._transition is not None and self._transition is not asyncio.current_task():
            self._transition.cancel()
        self._transition = None
        self.power_busy = False
        self._set_state("offline")  # straight from running or starting: no `stopping`
        self.emit_daemon(CRASH_HEADER)
        self.emit_daemon(f"Exit code: {spec.exit_code}")
        self.emit_daemon(f"Out of memory: {'true' if spec.oom else 'false'}")
        if spec.restart:
            self._begin_start()
        elif spec.reason == "disabled":
            self.emit_daemon("Aborting automatic restart, crash detection is disabled for this instance.")
        else:
            self.emit_daemon(
                f"Aborting automatic restart, last crash occurred less than {self.emu.crash_window} seconds ago."
            )

    def handle_power(self, action: str) -> None:
        """Wings `HandlePowerAction` without waiting for the lock; raises PowerError or LockBusy."""
        if self.status == "installing":
            raise PowerError("server is currently installing")
        if self.transferring:
            raise PowerError("server is currently being transferred")
        if self.status == "restoring_backup":
            raise PowerError("server is currently being restored")
        if action == "kill":  # kill skips the lock when it is busy
            if self.state != "offline":
                if self._transition is not None:
                    self._transition.cancel()
                if self.emu.kill_via_stopping:
                    self._set_state("stopping")
                self._set_state("offline")
            return
        if self.power_busy:
            raise LockBusy
        if action == "start":
            if self.state != "offline":
                raise PowerError("server is running")
            if self.suspended:
                raise PowerError("server is currently in a suspended state")
            self._begin_start()
        elif action in ("stop", "restart"):
            if action == "restart" and self.suspended:
                raise PowerError("server is currently in a suspended state")
            self.power_busy = True  # held until the process stopped (and, for restart, started)
            self.emu.spawn(self._stop_then_maybe_start(action == "restart"))
        else:
            raise PowerError("attempting to handle unknown power action")

    def run_command(self, command: str) -> None:
        """Write `command` to the game's stdin; each line is one command, ignored unless running."""
        for cmd in command.split("\n"):
            cmd = cmd.rstrip("\r")
            if self.state not in ("starting", "running") or not cmd:
                continue
            self.emit_console(f"> {cmd}")
            if cmd == "stop":
                self._begin_stop()
            elif cmd.startswith("say "):
                self.emit_console(f"[Server] {cmd[4:]}")
            elif cmd == "list":
                self.emit_console("There are 0 of a max of 20 players online")
            else:
                self.emit_console(f"Unknown command: {cmd}")

    async def set_power(self, state: str) -> None:
        """Force a state change (publishes `status`; stats run while not offline)."""
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        if self._transition is not None:
            self._transition.cancel()
            self._transition = None
        self._set_state(state)

    # -- lifecycle ---------------------------------------------------------------------------
    async def suspend(self) -> None:
        """Suspend: the panel answers 409; Hardened Wings drops open sockets (no close frame)."""
        self.suspended = True
        if self.emu.profile == "hardened":
            await self.emu.drop_sockets(self)

    async def unsuspend(self) -> None:
        self.suspended = False

    async def delete(self) -> None:
        """Send `deleted`, then close (Classic 1001 "server deleted", Hardened no close frame)."""
        self.deleted = True
        self.emu.servers_by_uuid.pop(self.uuid, None)
        self._publish("deleted", ["null"])
        for sock in list(self.socket_list):
            if self.emu.profile == "classic":
                sock.enqueue_close(1001, "server deleted")
            else:
                sock.enqueue_abort()
        await self.emu.wait_sockets_closed(self)
        self._cancel_tasks()

    async def _move_to(self, node: Node, delete_source: bool) -> None:
        source = self.node
        self.transferring = True
        self._publish("transfer status", ["processing"])
        self._publish(
            "transfer logs",
            [f"\x1b[33m\x1b[1m{time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())} [Transfer System] "
             f"[Source Node]:\x1b[39m Streaming archive to destination...\x1b[0m"],
        )  # fmt: skip
        self._publish("transfer status", ["completed"])
        self.node = node
        self.transferring = False
        if delete_source:
            for sock in [s for s in self.socket_list if s.node is source]:
                if sock.authenticated:
                    sock.send_json("deleted", ["null"])
                if self.emu.profile == "classic":
                    sock.enqueue_close(1001, "server deleted")
                else:
                    sock.enqueue_abort()
            await self.emu.wait_sockets_closed(self, node=source)

    def _cancel_tasks(self) -> None:
        for task in (self._transition, self._stats_task):
            if task is not None:
                task.cancel()
        self._transition = self._stats_task = None


@dataclass
class _RateWindow:
    started: float = -math.inf
    hits: int = 0


@dataclass
class _Issued:
    issued_at: float
    claims: dict[str, Any] = field(default_factory=dict)


class Emulator:
    """Panel Client API + Wings websocket on ephemeral 127.0.0.1 ports."""

    def __init__(
        self,
        *,
        profile: str = "classic",
        api_key: str = "ptlc_testkey0000" + "x" * 32,
        token_lifetime: float = 600.0,
        expiry_tick: float = 30.0,
        expiry_window: float = 60.0,
        stats_interval: float = 1.0,
        start_delay: float = 0.3,
        stop_delay: float = 0.3,
        rate_limit: int = 720,
        rate_window: float = 60.0,
        resources_cache: float = 20.0,
        throttle_lines: int = 2000,
        throttle_interval: float = 0.1,
        log_count: int = 150,
        max_sockets: int = 30,
        inbound_limits: dict[str, tuple[int, float]] | None = None,
        auth_latency: float = 0.05,
        allowed_origins: tuple[str, ...] = (),
        read_limit: int = 4096,
        auth_timeout: float | None = None,
        clock_offset: float = 0.0,
        expiry_notices: bool = True,
        first_status_delay: float = 0.0,
        app_name: str = "Pterodactyl",
        crash_window: int = 60,
        kill_via_stopping: bool = False,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}")
        self.profile = profile
        self.api_key = api_key
        self.token_lifetime = token_lifetime
        self.expiry_tick = expiry_tick
        self.expiry_window = expiry_window
        self.stats_interval = stats_interval
        self.start_delay = start_delay
        self.stop_delay = stop_delay
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.resources_cache = resources_cache
        self.throttle_lines = throttle_lines
        self.throttle_interval = throttle_interval
        self.log_count = log_count
        # Wings' Terminate sets `stopping` then `offline` (so its crash detection stays quiet); off by default, where
        # a kill goes straight to offline as some setups show it.
        self.kill_via_stopping = kill_via_stopping
        self.max_sockets = max_sockets
        # (capacity, seconds per token) for the Hardened per-connection buckets (docs/wings-and-panel.md, Limits)
        self.inbound_limits = {**DEFAULT_INBOUND_LIMITS, **(inbound_limits or {})}
        self.auth_latency = auth_latency
        self.allowed_origins = allowed_origins
        self.read_limit = read_limit
        # Hardened, newest pterodactyl only: close sockets not authenticated in time (None = Pelican: never)
        self.auth_timeout = auth_timeout
        # The node's clock minus the panel's (seconds): Wings judges exp, boot time and its Date headers by
        # its own clock, while the panel stamps iat/exp by the real one. 900 makes every token expired at once.
        self.clock_offset = clock_offset
        # False: Wings never says `token expiring`/`token expired` (only a client's own timer refreshes in time)
        self.expiry_notices = expiry_notices
        self.first_status_delay = first_status_delay
        self.app_name = app_name
        self.crash_window = crash_window
        self.nodes: list[Node] = [Node("node-1")]

        self.node_secret = secrets.token_urlsafe(48)
        self.user_id = 1
        self.user_uuid = str(uuidlib.uuid4())
        self.boot_time = self.node_time()
        self.servers_by_uuid: dict[str, FakeServer] = {}
        self.requests: list[RecordedRequest] = []
        self.failures: list[Failure] = []
        # route name -> kind of garbage the panel answers with there (tests/fakes/panel_app.py GARBAGE)
        self.panel_garbage: dict[str, str] = {}
        self.rate = _RateWindow()
        self.resource_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self.panel_url = ""
        self.wings_url = ""
        self._issued: dict[str, _Issued] = {}
        self._jti_denied: dict[str, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runners: list[web.AppRunner] = []

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        from tests.fakes.panel_app import build_panel_app  # the apps import this module

        panel_port = await self._serve(build_panel_app(self))
        self.panel_url = f"http://127.0.0.1:{panel_port}"
        await self._start_node(self.nodes[0])
        self.wings_url = self.nodes[0].url

    async def _start_node(self, node: Node) -> None:
        from tests.fakes.wings_app import build_wings_app

        node.url = f"http://127.0.0.1:{await self._serve(build_wings_app(self, node))}"

    async def add_node(self, name: str | None = None) -> Node:
        """Start another Wings node on its own port."""
        node = Node(name or f"node-{len(self.nodes) + 1}")
        self.nodes.append(node)
        await self._start_node(node)
        return node

    async def transfer(self, server: FakeServer, node: Node, *, delete_source: bool = False) -> None:
        """Move `server` to `node` as a panel transfer does (see the module docstring)."""
        if node is server.node:
            raise ValueError("the server is already on that node")
        await server._move_to(node, delete_source)

    def crash(
        self,
        server: FakeServer,
        *,
        exit_code: int = 1,
        oom: bool = False,
        restart: bool = True,
        reason: str = "recent",
    ) -> None:
        """Crash a running or starting server the way Wings reports it (see the module docstring)."""
        server.crash(CrashSpec(exit_code, oom, restart, reason))

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        server = site._server
        assert isinstance(server, asyncio.Server)
        return int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop both servers and cancel every task the emulator started."""
        for srv in list(self.servers_by_uuid.values()):
            srv._cancel_tasks()
            for sock in list(srv.socket_list):
                sock.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start a task that close() will cancel."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- servers -----------------------------------------------------------------------------
    def add_server(
        self,
        name: str,
        *,
        identifier: str | None = None,
        uuid: str | None = None,
        state: str = "offline",
        permissions: list[str] | None = None,
        suspended: bool = False,
        status: str | None = None,
        transferring: bool = False,
    ) -> FakeServer:
        full = uuid or str(uuidlib.uuid4())
        srv = FakeServer(
            self,
            name,
            identifier=identifier or full[:8],
            uuid=full,
            state=state,
            permissions=["*"] if permissions is None else list(permissions),
            suspended=suspended,
            status=status,
            transferring=transferring,
        )
        self.servers_by_uuid[full] = srv
        if state != "offline":
            srv._stats_task = self.spawn(srv._stats_loop())
        return srv

    def server(self, key: str) -> FakeServer:
        """A server by identifier or uuid (KeyError if unknown)."""
        for srv in self.servers_by_uuid.values():
            if key in (srv.identifier, srv.uuid):
                return srv
        raise KeyError(key)

    def servers(self) -> list[FakeServer]:
        return list(self.servers_by_uuid.values())

    def sockets(self, server: FakeServer) -> list[WingsSocket]:
        """Currently open Wings sockets of `server`."""
        return list(server.socket_list)

    async def drop_sockets(self, server: FakeServer | None = None) -> None:
        """Close sockets at the TCP level, no close frame (the client sees 1006)."""
        targets = [server] if server is not None else list(self.servers_by_uuid.values())
        for srv in targets:
            for sock in list(srv.socket_list):
                sock.abort()
        for srv in targets:
            await self.wait_sockets_closed(srv)

    async def restart_wings(self) -> None:
        """Drop every socket; tokens issued before now are denylisted (docs/wings-and-panel.md, Tokens)."""
        self.boot_time = self.node_time()
        await self.drop_sockets()

    async def wait_sockets_closed(
        self, server: FakeServer, timeout: float = 2.0, *, node: Node | None = None
    ) -> None:
        waits = [sock.closed.wait() for sock in server.socket_list if node is None or sock.node is node]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout)

    def revoke(self, server: FakeServer) -> None:
        """Panel `revokeUserJTI`: tokens of this user+server issued before now become denylisted."""
        self._jti_denied[self._jti(server.uuid)] = time.time()

    def fail_next(
        self,
        method: str,
        path_suffix: str,
        status: int,
        *,
        times: int = 1,
        detail: str | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next `times` matching panel requests fail (status 0 + delay: just hang, then serve)."""
        self.failures.append(Failure(method.upper(), path_suffix, status, times, detail, retry_after, delay))

    # -- tokens ------------------------------------------------------------------------------
    def _jti(self, server_uuid: str) -> str:
        source = f"{self.user_id}{server_uuid}".encode()
        if self.profile == "classic":
            return hashlib.md5(source).hexdigest()
        return hashlib.sha256(source).hexdigest()

    def mint_token(self, server: FakeServer, **overrides: Any) -> str:
        """A token as the panel issues it; `overrides` replace claims (None removes one)."""
        now = time.time()
        iat = int(now)
        jti = self._jti(server.uuid)
        claims: dict[str, Any] = {
            "iss": self.panel_url,
            "aud": [server.node.url],
            "jti": jti,
            "iat": iat,
            "nbf": iat - 300,
            "exp": iat + int(self.token_lifetime),
            "server_uuid": server.uuid,
            "permissions": list(server.permissions),
            "user_uuid": self.user_uuid,
        }
        if self.profile == "classic":
            claims["user_id"] = self.user_id
        claims["unique_id"] = "".join(random.choices(string.ascii_letters + string.digits, k=16))
        if self.profile == "hardened":
            claims["scope"] = "websocket"
        for key, value in overrides.items():
            if value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        if "iat" not in overrides:
            self._issued[claims["unique_id"]] = _Issued(now, claims)
        return jwt_hs256.encode(claims, self.node_secret, header={"jti": claims.get("jti", jti)})

    def _issued_at(self, claims: dict[str, Any]) -> float | None:
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            return None
        known = self._issued.get(str(claims.get("unique_id")))
        if known is not None and known.claims.get("iat") == iat:
            return known.issued_at
        return float(iat)

    def denylisted(self, claims: dict[str, Any]) -> bool:
        issued = self._issued_at(claims)
        if issued is None or issued < self.boot_time:
            return True
        denied = self._jti_denied.get(str(claims.get("jti")))
        return denied is not None and issued < denied

    def node_time(self) -> float:
        """Now, on the node's (Wings') clock."""
        return time.time() + self.clock_offset

    def exp_valid(self, claims: dict[str, Any]) -> bool:
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            return False
        return math.floor(self.node_time()) <= exp  # valid through the exp second

    def has_permission(self, claims: dict[str, Any], perm: str) -> bool:
        """Wings `HasPermission`: `*` covers everything but admin.*; false when denylisted."""
        if self.denylisted(claims):
            return False
        perms = claims.get("permissions")
        if not isinstance(perms, list):
            return False
        ok = perm in perms or ("*" in perms and not perm.startswith("admin"))
        if ok and perm == "websocket.connect" and self.profile == "hardened":
            scope = claims.get("scope")
            ok = isinstance(scope, str) and "websocket" in scope.split(" ")
        return ok

    def token_error(self, claims: dict[str, Any] | None, server: FakeServer) -> str | None:
        """Wings `TokenValid` (used before non-auth events and in SendJson)."""
        if claims is None:
            return ERR_NOT_PRESENT
        if not self.exp_valid(claims):
            return ERR_EXP
        if self.denylisted(claims):
            return ERR_DENYLIST
        if not self.has_permission(claims, "websocket.connect"):
            return ERR_NO_CONNECT
        if claims.get("server_uuid") != server.uuid:
            return ERR_UUID_MISMATCH
        return None

    def verify_auth(self, raw: str, server: FakeServer) -> tuple[dict[str, Any] | None, str, bool]:
        """Check an `auth` token: (claims, "", False) or (None, error text, is_jwt_class)."""
        try:
            _header, claims = jwt_hs256.decode(raw, self.node_secret)
        except (jwt_hs256.JwtMalformed, jwt_hs256.JwtBadSignature) as exc:
            return None, str(exc), False
        if not self.exp_valid(claims):
            return None, ERR_EXP, True
        if self.denylisted(claims):
            return None, ERR_DENYLIST, True
        if not self.has_permission(claims, "websocket.connect"):
            return None, ERR_NO_CONNECT, True
        if self.profile == "hardened" and claims.get("server_uuid") != server.uuid:
            return None, ERR_UUID_MISMATCH, True
        return claims, "", False

    def socket_url(self, server: FakeServer) -> str:
        """The socket URL the panel hands out: on the node the server is on now."""
        return "ws://" + server.node.url.removeprefix("http://") + f"/api/servers/{server.uuid}/ws"


__all__ = [
    "CRASH_HEADER",
    "CrashSpec",
    "Emulator",
    "FakeServer",
    "LockBusy",
    "Node",
    "PowerError",
    "RecordedRequest",
    "daemon_line",
]
