"""The emulated Wings console websocket (docs/wings-and-panel.md)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid as uuidlib
from email.utils import formatdate
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.emulator import LOCK_BUSY_TEXT, Emulator, FakeServer, LockBusy, Node, PowerError

EMU_KEY = web.AppKey("emulator", Emulator)
NODE_KEY = web.AppKey("node", Node)
GENERIC_ERROR = "an unexpected error was encountered while handling this request"
SET_STATE_PERMS = {
    "start": "control.start",
    "stop": "control.stop",
    "kill": "control.stop",
    "restart": "control.restart",
}
_BUCKET_OF = {"auth": "auth", "send logs": "send logs", "send command": "send command"}


def encode_frame(event: str, args: list[str]) -> str:
    """Like Go's json.Encoder: `args` omitted when empty, `<>&` escaped, trailing newline."""
    msg: dict[str, Any] = {"event": event}
    if args:
        msg["args"] = args
    text = json.dumps(msg, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


def parse_frame(text: str) -> tuple[str, list[str]] | None:
    """Decode like Go's json.Unmarshal into {event string, args []string}; None = drop silently."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    event = obj.get("event")
    if event is None:
        event = ""
    if not isinstance(event, str):
        return None
    raw_args = obj.get("args")
    if raw_args is None:
        raw_args = []
    if not isinstance(raw_args, list):
        return None
    args: list[str] = []
    for arg in raw_args:
        if arg is None:
            args.append("")
        elif isinstance(arg, str):
            args.append(arg)
        else:
            return None
    return event, args


class TokenBucket:
    """golang.org/x/time/rate-style bucket: `capacity` burst, one token per `period` seconds."""

    def __init__(self, capacity: int, period: float) -> None:
        self.capacity = capacity
        self.period = period
        self.tokens = float(capacity)
        self.last = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        if self.period > 0:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) / self.period)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class WingsSocket:
    """One upgraded console socket: its token, listeners, writer and (Hardened) limiters."""

    def __init__(
        self, emu: Emulator, server: FakeServer, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        self.emu = emu
        self.server = server
        self.node = request.app[NODE_KEY]
        self.ws = ws
        self.transport = request.transport
        self.claims: dict[str, Any] | None = None
        self.authenticated = False  # first auth succeeded: listeners and expiry ticker run
        self.received: list[tuple[str, list[str]]] = []
        self.sent: list[tuple[str, list[str]]] = []
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._writer = emu.spawn(self._write_loop())
        self._ticker: asyncio.Task[None] | None = None
        self._first_auth: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._auth_timer: asyncio.Task[None] | None = None
        if emu.profile == "hardened" and emu.auth_timeout is not None:
            self._auth_timer = emu.spawn(self._auth_deadline(emu.auth_timeout))
        self._buckets = {name: TokenBucket(*spec) for name, spec in emu.inbound_limits.items()}
        self._global_notified = False
        self._throttled_events: set[str] = set()
        self.closed = asyncio.Event()

    @property
    def token(self) -> dict[str, Any] | None:
        return self.claims

    # -- outbound -----------------------------------------------------------------------------
    def send_raw(self, event: str, args: list[str] | None = None) -> None:
        """`unsafeSendJson`: written as is, no token check."""
        self.sent.append((event, list(args or [])))
        self._queue.put_nowait(("frame", encode_frame(event, list(args or []))))

    def send_json(self, event: str, args: list[str]) -> None:
        """`SendJson`: re-check the token (replace by `jwt error`), then filter by permission."""
        error = self.emu.token_error(self.claims, self.server)
        if error is not None:
            self.send_raw("jwt error", [error])
            return
        assert self.claims is not None
        needs = None
        if event.startswith("backup completed"):
            needs = "backup.read"
        elif event == "install output":
            needs = "admin.websocket.install"
        elif event == "transfer logs":
            needs = "admin.websocket.transfer"
        if needs is not None and not self.emu.has_permission(self.claims, needs):
            return
        self.send_raw(event, args)

    def send_error(self, text: str, jwt_class: bool) -> None:
        """`SendErrorJson`: JWT-class errors as `jwt error`, others generic unless admin."""
        prefix = f"Error Event [{uuidlib.uuid4()}]: "
        if jwt_class:
            self.send_raw("jwt error", [prefix + text])
        elif self.claims is not None and self.emu.has_permission(self.claims, "admin.websocket.errors"):
            self.send_raw("daemon error", [prefix + text])
        else:
            self.send_raw("daemon error", [prefix + GENERIC_ERROR])

    def enqueue_close(self, code: int, message: str) -> None:
        """Close with a close frame after the frames already queued."""
        self._queue.put_nowait(("close", (code, message)))

    def enqueue_abort(self) -> None:
        """Drop the TCP connection (no close frame) after the frames already queued."""
        self._queue.put_nowait(("abort", None))

    def abort(self) -> None:
        """Drop the TCP connection now; the client sees 1006."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if self._writer is not asyncio.current_task():
            self._writer.cancel()

    async def _write_loop(self) -> None:
        while True:
            kind, item = await self._queue.get()
            try:
                if kind == "frame":
                    await self.ws.send_str(item)
                elif kind == "close":
                    await self.ws.close(code=item[0], message=item[1].encode())
                    return
                else:
                    self.abort()
                    return
            except (ConnectionError, RuntimeError):
                self.abort()  # a failed send closes the connection without a close frame
                return

    # -- inbound ------------------------------------------------------------------------------
    async def on_message(self, msg: Any) -> None:
        hardened = self.emu.profile == "hardened"
        if hardened and not self._allow_global():
            return
        if msg.type == WSMsgType.BINARY:
            if hardened:
                return  # Hardened drops non-text frames; Classic parses them anyway
            data = msg.data.decode("utf-8", "replace")
        else:
            data = msg.data
        parsed = parse_frame(data)
        if parsed is None:
            return
        self.received.append(parsed)
        self.server.received.append(parsed)
        event, args = parsed
        if hardened:
            if self.server.suspended:
                self.abort()
                return
            if not self._allow_event(event):
                return
        if event == "auth":
            await self._on_auth("".join(args))
            return
        if self._first_auth is not None and not self._first_auth.done():
            # Wings handles each frame in its own goroutine: this one ran before auth finished.
            self.send_raw("jwt error", ["jwt: no jwt present"])
            return
        error = self.emu.token_error(self.claims, self.server)
        if error is not None:
            self.send_raw("jwt error", [error])
            return
        self._dispatch(event, args)

    def _allow_global(self) -> bool:
        if self._buckets["global"].allow():
            self._global_notified = False
            return True
        if not self._global_notified:
            self._global_notified = True
            self.send_raw("throttled", ["global"])
        return False

    def _allow_event(self, event: str) -> bool:
        if self._buckets[_BUCKET_OF.get(event, "_default")].allow():
            self._throttled_events.discard(event)
            return True
        if event not in self._throttled_events:
            self._throttled_events.add(event)
            self.send_raw("throttled", [event])
        return False

    async def _on_auth(self, raw: str) -> None:
        if self._first_auth is not None and not self._first_auth.done():
            await asyncio.shield(self._first_auth)
        if self.claims is None and self.emu.auth_latency > 0:
            self._first_auth = self.emu.spawn(self._auth(raw, delay=self.emu.auth_latency))
        else:
            await self._auth(raw, delay=0.0)

    async def _auth(self, raw: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        claims, error, jwt_class = self.emu.verify_auth(raw, self.server)
        if claims is None:
            self.send_error(error, jwt_class)
            return
        refresh = self.claims is not None
        self.claims = claims
        self.send_raw("auth success")
        if refresh:
            return  # re-auth: no status, no second set of listeners
        self.authenticated = True
        self._ticker = self.emu.spawn(self._expiry_ticker())
        if self.emu.first_status_delay > 0:
            self._status_task = self.emu.spawn(self._first_status(self.emu.first_status_delay))
        else:
            self._send_first_status()

    async def _first_status(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._send_first_status()

    def _send_first_status(self) -> None:
        srv = self.server
        self.send_json("status", [srv.state])
        if srv.state == "offline" and srv.status != "installing" and not srv.transferring:
            self.send_json("stats", [srv.stats_json()])

    async def _auth_deadline(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        if not self.authenticated:
            self.abort()  # no close frame, as newest pterodactyl Wings does

    async def _expiry_ticker(self) -> None:
        while True:
            await asyncio.sleep(self.emu.expiry_tick)
            exp = (self.claims or {}).get("exp")
            if not isinstance(exp, int | float):
                continue
            remaining = int(exp) - int(self.emu.node_time())
            if not self.emu.expiry_notices:
                continue
            if remaining <= 0:
                self.send_json("token expired", [])
            elif remaining <= self.emu.expiry_window:
                self.send_json("token expiring", [])

    def _dispatch(self, event: str, args: list[str]) -> None:
        assert self.claims is not None
        srv = self.server
        if event == "set state":
            action = "".join(args)
            needed = SET_STATE_PERMS.get(action)
            if needed is not None and not self.emu.has_permission(self.claims, needed):
                return  # missing permission: silently ignored
            try:
                srv.handle_power(action)
            except LockBusy:
                self.send_json("daemon error", [f"Error Event [{uuidlib.uuid4()}]: {LOCK_BUSY_TEXT}"])
            except PowerError as exc:
                self.send_error(str(exc), jwt_class=False)
        elif event == "send command":
            if self.emu.has_permission(self.claims, "control.console") and srv.state != "offline":
                srv.run_command("".join(args))
        elif event == "send logs":
            if srv.state != "offline":
                for line in srv.console_history[-self.emu.log_count :]:
                    self.send_json("console output", [line])
        elif event == "send stats":
            self.send_json("stats", [srv.stats_json()])

    def close_tasks(self) -> None:
        for task in (self._ticker, self._first_auth, self._status_task, self._auth_timer, self._writer):
            if task is not None:
                task.cancel()


async def handle_ws(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMU_KEY]
    srv = emu.servers_by_uuid.get(request.match_info["uuid"])
    if srv is None or srv.node is not request.app[NODE_KEY]:
        return web.json_response(
            {"error": "The requested resource does not exist on this instance."}, status=404
        )
    hardened = emu.profile == "hardened"
    if hardened and len(srv.socket_list) >= emu.max_sockets:
        return web.json_response({"error": "Too many open websocket connections."}, status=400)
    origin = request.headers.get("Origin")
    if origin != emu.panel_url and origin not in emu.allowed_origins and "*" not in emu.allowed_origins:
        return web.Response(status=403, text="Forbidden\n", headers={"Sec-Websocket-Version": "13"})
    ws = web.WebSocketResponse(
        autoping=True,
        compress=hardened,
        max_msg_size=emu.read_limit if hardened else 0,
    )
    if hardened:
        ws.headers["Content-Security-Policy"] = "default-src 'self'"
        ws.headers["X-Frame-Options"] = "DENY"
    await ws.prepare(request)
    sock = WingsSocket(emu, srv, ws, request)
    srv.socket_list.append(sock)
    try:
        if hardened and srv.suspended:
            await ws.close(code=4409, message=b"server is suspended")
            return ws
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await sock.on_message(msg)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
    finally:
        sock.close_tasks()
        sock.closed.set()
        if sock in srv.socket_list:
            srv.socket_list.remove(sock)
    return ws


async def handle_system(request: web.Request) -> web.Response:
    """`GET /api/system` without the node token: Wings' auth middleware answers 401."""
    return web.json_response(
        {"error": "The required authorization heads were not present in the request."},
        status=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _node_date(request: web.Request, response: web.StreamResponse) -> None:
    # Like Go's net/http, every answer carries a Date header from the node's own clock.
    response.headers["Date"] = formatdate(request.app[EMU_KEY].node_time(), usegmt=True)


def build_wings_app(emu: Emulator, node: Node) -> web.Application:
    app = web.Application()
    app[EMU_KEY] = emu
    app[NODE_KEY] = node
    app.router.add_get("/api/servers/{uuid}/ws", handle_ws)
    app.router.add_get("/api/system", handle_system)
    app.on_response_prepare.append(_node_date)
    return app
