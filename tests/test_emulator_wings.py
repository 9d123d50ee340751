"""Tests of the emulated Wings websocket (tests/fakes/wings_app.py) with a real websocket client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from tests.fakes.emulator import Emulator, FakeServer, daemon_line

GENERIC = "an unexpected error was encountered while handling this request"
Frame = tuple[str, list[str]]


class Client:
    """A thin test client: JSON frames in, (event, args) out."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.raw: list[str] = []

    async def send(self, event: str, *args: str) -> None:
        await self.conn.send(json.dumps({"event": event, "args": list(args)}))

    async def recv(self, timeout: float = 1.0) -> Frame:
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        assert isinstance(raw, str)
        self.raw.append(raw)
        obj = json.loads(raw)
        return obj["event"], obj.get("args", [])

    async def until(self, event: str, timeout: float = 2.0) -> list[Frame]:
        """Frames up to and including the first `event`."""
        seen: list[Frame] = []
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - time.monotonic()))
            seen.append(frame)
            if frame[0] == event:
                return seen

    async def drain(self, duration: float) -> list[Frame]:
        """Every frame that arrives within `duration` seconds."""
        seen: list[Frame] = []
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            try:
                seen.append(await self.recv(left))
            except TimeoutError:
                break
        return seen

    async def close_code(self, timeout: float = 2.0) -> int | None:
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(self.conn.recv(), timeout)
        return self.conn.close_code


async def open_socket(emu: Emulator, srv: FakeServer, *, origin: str | None = None) -> Client:
    conn = await connect(
        emu.socket_url(srv),
        origin=Origin(origin or emu.panel_url),
        proxy=None,
        open_timeout=2,
        close_timeout=1,
    )
    return Client(conn)


async def authed(emu: Emulator, srv: FakeServer, token: str | None = None) -> tuple[Client, list[Frame]]:
    """Open, auth, and return the frames of the first auth (auth success, status, maybe stats)."""
    client = await open_socket(emu, srv)
    await client.send("auth", token or emu.mint_token(srv))
    frames = await client.until("status")
    if srv.state == "offline":
        frames += await client.until("stats")
    return client, frames


def fast(**kw: Any) -> Emulator:
    """An emulator with short game-server transitions."""
    return Emulator(**{"start_delay": 0.1, "stop_delay": 0.1, "stats_interval": 0.2, **kw})


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with fast() as e:
        yield e


@pytest.fixture
async def hard() -> AsyncIterator[Emulator]:
    async with fast(profile="hardened") as e:
        yield e


# -- upgrade ----------------------------------------------------------------------------------
async def test_unknown_server_and_origin_checks(emu: Emulator) -> None:
    srv = emu.add_server("mc")
    unknown = emu.wings_url + "/api/servers/00000000-0000-0000-0000-000000000000/ws"
    async with aiohttp.ClientSession() as http, http.get(unknown) as r:
        assert r.status == 404
        assert await r.json() == {"error": "The requested resource does not exist on this instance."}
    for origin in ("http://evil.example", emu.panel_url + "/"):
        with pytest.raises(InvalidStatus) as info:
            await open_socket(emu, srv, origin=origin)
        assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as info:
        await connect(emu.socket_url(srv), proxy=None)  # no Origin header at all
    assert info.value.response.status_code == 403


# -- auth -------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["classic", "hardened"])
async def test_first_auth_then_reauth(profile: str) -> None:
    async with fast(profile=profile) as emu:
        srv = emu.add_server("mc")
        client, frames = await authed(emu, srv)
        assert [f[0] for f in frames] == ["auth success", "status", "stats"]
        assert client.raw[0] == '{"event":"auth success"}\n'  # args omitted, Go encoder newline
        assert frames[1] == ("status", ["offline"])
        stats = json.loads(frames[2][1][0])
        assert stats["state"] == "offline" and stats["uptime"] == 0 and stats["memory_bytes"] == 0
        await client.send("auth", emu.mint_token(srv))
        assert await client.recv() == ("auth success", [])
        assert await client.drain(0.3) == []  # re-auth: no status, no stats
        sock = emu.sockets(srv)[0]
        assert sock.authenticated and [e for e, _ in sock.received] == ["auth", "auth"]
        assert srv.received[0][0] == "auth" and srv.received[0][1][0].count(".") == 2


async def test_running_server_first_auth_has_no_stats(emu: Emulator) -> None:
    srv = emu.add_server("mc", state="running")
    client = await open_socket(emu, srv)
    await client.send("auth", emu.mint_token(srv))
    assert await client.recv() == ("auth success", [])
    assert await client.recv() == ("status", ["running"])


async def test_frames_before_auth_success_get_no_jwt(emu: Emulator) -> None:
    srv = emu.add_server("mc", state="running")
    client = await open_socket(emu, srv)
    await client.send("send logs")
    assert await client.recv() == ("jwt error", ["jwt: no jwt present"])
    # auth and a request back to back: the request is handled before auth finished
    await client.send("auth", emu.mint_token(srv))
    await client.send("send stats")
    assert await client.recv() == ("jwt error", ["jwt: no jwt present"])
    assert await client.recv() == ("auth success", [])


async def test_bad_signature_and_malformed_token_are_generic_daemon_errors(emu: Emulator) -> None:
    srv = emu.add_server("mc")
    client = await open_socket(emu, srv)
    token = emu.mint_token(srv)
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "not-a-jwt"):
        await client.send("auth", bad)
        event, args = await client.recv()
        assert event == "daemon error"
        assert args[0].startswith("Error Event [") and args[0].endswith(f"]: {GENERIC}")


async def test_auth_args_are_joined(emu: Emulator) -> None:
    srv = emu.add_server("mc")
    token = emu.mint_token(srv)
    client = await open_socket(emu, srv)
    await client.send("auth", token[:10], token[10:])
    assert await client.recv() == ("auth success", [])


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({"exp": int(time.time()) - 2}, "jwt: exp claim is invalid"),
        ({"exp": None}, "jwt: exp claim is invalid"),
        ({"permissions": ["control.console"]}, "jwt: missing connect permission"),
        ({"permissions": ["admin.websocket.errors"]}, "jwt: missing connect permission"),
        ({"iat": int(time.time()) - 3600}, "jwt: created too far in past (denylist)"),
        ({"iat": None}, "jwt: created too far in past (denylist)"),
    ],
)
async def test_auth_jwt_errors_have_error_event_prefix(overrides: dict[str, Any], text: str) -> None:
    async with fast() as emu:
        srv = emu.add_server("mc")
        client = await open_socket(emu, srv)
        await client.send("auth", emu.mint_token(srv, **overrides))
        event, args = await client.recv()
        assert event == "jwt error"
        assert args[0].startswith("Error Event [") and args[0].endswith(f"]: {text}")
        await client.send("send stats")  # still no token stored
        assert await client.recv() == ("jwt error", ["jwt: no jwt present"])


async def test_hardened_needs_websocket_scope(hard: Emulator) -> None:
    srv = hard.add_server("mc")
    client = await open_socket(hard, srv)
    await client.send("auth", hard.mint_token(srv, scope=None))
    event, args = await client.recv()
    assert event == "jwt error" and args[0].endswith("jwt: missing connect permission")
    await client.send("auth", hard.mint_token(srv, scope="files websocket"))
    assert await client.recv() == ("auth success", [])


async def test_classic_uuid_mismatch_quirk(emu: Emulator) -> None:
    srv, other = emu.add_server("mc"), emu.add_server("other")
    client = await open_socket(emu, srv)
    await client.send("auth", emu.mint_token(other))
    assert await client.recv() == ("auth success", [])
    assert await client.recv() == ("jwt error", ["jwt: server uuid mismatch"])  # replaces `status`
    await client.send("send stats")
    frames = await client.drain(0.3)
    assert ("jwt error", ["jwt: server uuid mismatch"]) in frames


async def test_hardened_uuid_mismatch_is_rejected(hard: Emulator) -> None:
    srv, other = hard.add_server("mc"), hard.add_server("other")
    client, _ = await authed(hard, srv)
    await client.send("auth", hard.mint_token(other))
    event, args = await client.recv()
    assert event == "jwt error" and args[0].endswith("]: jwt: server uuid mismatch")
    await client.send("send stats")  # the old token stays in place
    event, args = await client.recv()
    assert event == "stats"


async def test_restart_wings_denylists_old_tokens(emu: Emulator) -> None:
    srv = emu.add_server("mc")
    old = emu.mint_token(srv)
    client, _ = await authed(emu, srv, old)
    await emu.restart_wings()
    assert await client.close_code() == 1006
    assert emu.sockets(srv) == []
    client = await open_socket(emu, srv)
    await client.send("auth", old)
    event, args = await client.recv()
    assert event == "jwt error" and args[0].endswith("]: jwt: created too far in past (denylist)")
    await client.send("auth", emu.mint_token(srv))
    assert await client.recv() == ("auth success", [])


async def test_revoked_token_is_denylisted_on_open_socket(emu: Emulator) -> None:
    srv = emu.add_server("mc", state="running")
    client, _ = await authed(emu, srv)
    emu.revoke(srv)
    await client.send("send stats")
    assert await client.recv() == ("jwt error", ["jwt: created too far in past (denylist)"])


# -- expiry -----------------------------------------------------------------------------------
async def test_expiry_ticker_and_flood() -> None:
    async with Emulator(token_lifetime=2, expiry_tick=0.5, expiry_window=1, stats_interval=0.2) as emu:
        srv = emu.add_server("mc", state="running")
        client, _ = await authed(emu, srv)
        frames = await client.until("token expiring", timeout=2.0)
        assert ("token expiring", []) in frames
        # once the exp second is over, every outbound event (stats here) becomes a jwt error
        deadline = time.monotonic() + 3.0
        while True:
            event, args = await client.recv(timeout=max(0.01, deadline - time.monotonic()))
            if event == "jwt error":
                assert args == ["jwt: exp claim is invalid"]
                break
            assert event in ("stats", "token expiring", "token expired")
        flood = await client.drain(0.5)
        assert len(flood) >= 2 and all(f == ("jwt error", ["jwt: exp claim is invalid"]) for f in flood)
        await client.send("send logs")  # inbound too
        assert ("jwt error", ["jwt: exp claim is invalid"]) in await client.drain(0.15)
        await client.send(
            "auth", emu.mint_token(srv, exp=int(time.time()) + 60)
        )  # refresh on the same socket
        await client.until("auth success")
        frames = await client.drain(0.5)
        assert frames and {e for e, _ in frames} == {"stats"}


async def test_token_expired_delivered_in_exp_second() -> None:
    async with Emulator(expiry_tick=0.25, expiry_window=5) as emu:
        srv = emu.add_server("mc")
        await asyncio.sleep(1.0 - time.time() % 1.0)  # start at a second boundary: ticks land predictably
        exp = int(time.time()) + 1
        client, _ = await authed(emu, srv, emu.mint_token(srv, exp=exp))
        frames = await client.drain(2.1)
        events = [e for e, _ in frames]
        assert events[0] == "token expiring"  # rem 1 s, inside the window
        assert "token expired" in events  # a tick inside the exp second (still valid) delivers it
        assert events[-1] == "jwt error" and frames[-1][1] == ["jwt: exp claim is invalid"]
        assert events.index("token expiring") < events.index("token expired") < events.index("jwt error")


# -- power and commands -------------------------------------------------------------------------
async def test_power_cycle_over_socket(emu: Emulator) -> None:
    srv = emu.add_server("mc")
    client, _ = await authed(emu, srv)
    await client.send("set state", "start")
    frames = await client.until("status")
    assert frames[-1] == ("status", ["starting"])
    frames = await client.until("status")
    assert frames[-1] == ("status", ["running"])
    assert any(e == "console output" and "Done" in a[0] for e, a in frames)
    stats = json.loads((await client.until("stats"))[-1][1][0])
    assert stats["state"] == "running" and stats["uptime"] > 0 and stats["memory_bytes"] > 0
    assert set(stats) == {
        "memory_bytes",
        "memory_limit_bytes",
        "cpu_absolute",
        "network",
        "uptime",
        "state",
        "disk_bytes",
    }
    await client.send("set state", "stop")
    assert ("status", ["stopping"]) in await client.until("status")
    frames = await client.until("status")
    assert frames[-1] == ("status", ["offline"])
    zero = json.loads((await client.until("stats"))[-1][1][0])
    assert (zero["state"], zero["uptime"], zero["cpu_absolute"]) == ("offline", 0, 0)
    await client.send("set state", "restart")
    statuses: list[str] = []
    while "running" not in statuses:
        statuses += [a[0] for e, a in await client.until("status") if e == "status"]
    assert statuses == ["starting", "running"]  # already offline: restart just starts
    await client.send("set state", "restart")
    while statuses[-4:] != ["stopping", "offline", "starting", "running"]:
        statuses += [a[0] for e, a in await client.until("status") if e == "status"]
    await client.send("set state", "kill")
    assert (await client.until("status"))[-1] == ("status", ["offline"])


async def test_power_errors(emu: Emulator) -> None:
    srv = emu.add_server("mc", state="running")
    client, _ = await authed(emu, srv)
    await client.send("set state", "start")
    event, args = await client.recv()
    assert event == "daemon error" and args[0].endswith(GENERIC)
    await client.send("set state", "explode")
    event, args = await client.recv()
    assert event == "daemon error" and args[0].endswith(GENERIC)
    await client.send("set state", "stop")
    await client.send("set state", "restart")  # the stop holds the power lock
    frames = await client.until("daemon error")
    assert frames[-1][1][0].endswith(
        "]: another power action is currently being processed for this server, please try again later"
    )
    admin = emu.add_server("adm", state="running", permissions=["*", "admin.websocket.errors"])
    client, _ = await authed(emu, admin)
    await client.send("set state", "start")
    event, args = await client.recv()
    assert event == "daemon error" and args[0].endswith("]: server is running")


async def test_missing_power_permission_is_silent(emu: Emulator) -> None:
    srv = emu.add_server("mc", permissions=["websocket.connect", "control.stop"])
    client, _ = await authed(emu, srv)
    await client.send("set state", "start")
    assert await client.drain(0.3) == []
    assert srv.state == "offline"
    assert srv.received[-1] == ("set state", ["start"])


async def test_commands(emu: Emulator) -> None:
    srv = emu.add_server("mc")
    client, _ = await authed(emu, srv)
    await client.send("send command", "say hi")
    assert await client.drain(0.2) == []  # offline: silently ignored
    await srv.set_power("running")
    await client.until("status")
    await client.send("send command", "say ", "hello")
    await client.send("send command", "list")
    await client.send("send command", "foo")
    lines = [a[0] for e, a in await client.drain(0.3) if e == "console output"]
    assert lines == [
        "> say hello",
        "[Server] hello",
        "> list",
        "There are 0 of a max of 20 players online",
        "> foo",
        "Unknown command: foo",
    ]
    await client.send("send command", "stop")
    frames = await client.until("status")
    assert frames[-1] == ("status", ["stopping"])
    assert (await client.until("status"))[-1] == ("status", ["offline"])


async def test_command_without_console_permission_is_silent(emu: Emulator) -> None:
    srv = emu.add_server("mc", state="running", permissions=["websocket.connect"])
    client, _ = await authed(emu, srv)
    await client.send("send command", "say hi")
    assert [e for e, _ in await client.drain(0.3) if e == "console output"] == []
    assert srv.received[-1] == ("send command", ["say hi"])


async def test_send_logs_and_stats() -> None:
    async with fast(log_count=3) as emu:
        srv = emu.add_server("mc")
        for i in range(5):
            srv.emit_console(f"line {i}")
        client, _ = await authed(emu, srv)
        await client.send("send logs")
        assert await client.drain(0.2) == []  # not running: nothing
        await client.send("send stats")
        event, args = await client.recv()
        assert event == "stats" and json.loads(args[0])["state"] == "offline"
        await srv.set_power("running")
        await client.until("status")
        await client.send("send logs")
        lines = [a[0] for e, a in await client.drain(0.2) if e == "console output"]
        assert lines == ["line 2", "line 3", "line 4"]


async def test_console_lines_are_split_like_wings(emu: Emulator) -> None:
    srv = emu.add_server("mc", state="running")
    client, _ = await authed(emu, srv)
    srv.emit_console("a\r\nb\n\nc <&>")
    assert [a[0] for e, a in await client.drain(0.2) if e == "console output"] == ["a", "b", "c <&>"]
    assert '{"event":"console output","args":["c \\u003c\\u0026\\u003e"]}\n' in client.raw


# -- event filtering ------------------------------------------------------------------------------
async def test_event_filtering_by_permission(emu: Emulator) -> None:
    owner = emu.add_server("mc")
    sub = emu.add_server("sub", permissions=["websocket.connect"], uuid=None)
    admin_perms = ["*", "admin.websocket.errors", "admin.websocket.install", "admin.websocket.transfer"]
    admin = emu.add_server("adm", permissions=admin_perms)
    clients = {}
    for srv in (owner, sub, admin):
        clients[srv.name], _ = await authed(emu, srv)
    for srv in (owner, sub, admin):
        srv.emit("install output", "pulling")
        srv.emit("backup completed", json.dumps({"uuid": "b", "is_successful": True}))
        srv.emit("transfer logs", "moving")
        srv.emit("daemon message", "hello")
    seen = {name: [e for e, _ in await c.drain(0.2)] for name, c in clients.items()}
    assert seen["mc"] == ["backup completed", "daemon message"]  # owners never see install output
    assert seen["sub"] == ["daemon message"]
    assert seen["adm"] == ["install output", "backup completed", "transfer logs", "daemon message"]


# -- console throttle -------------------------------------------------------------------------------
async def test_console_throttle() -> None:
    async with Emulator(throttle_lines=50, throttle_interval=5.0) as emu:
        srv = emu.add_server("mc", state="running")
        client, _ = await authed(emu, srv)
        for i in range(80):
            srv.emit_console(f"spam {i}")
        lines = [a[0] for e, a in await client.drain(0.3) if e == "console output"]
        assert lines[:50] == [f"spam {i}" for i in range(50)]
        assert lines[50:] == [
            daemon_line("Server is outputting console data too quickly -- throttling..."),
        ]
        assert lines[50] == (
            "\x1b[33m\x1b[1m[Pterodactyl Daemon]:\x1b[39m "
            "Server is outputting console data too quickly -- throttling...\x1b[0m"
        )
        assert len(srv.console_history) == 80


async def test_throttle_window_resets() -> None:
    async with Emulator(throttle_lines=3, throttle_interval=0.1) as emu:
        srv = emu.add_server("mc", state="running")
        client, _ = await authed(emu, srv)
        for i in range(5):
            srv.emit_console(f"a{i}")
        await asyncio.sleep(0.15)
        srv.emit_console("b")
        lines = [a[0] for e, a in await client.drain(0.2) if e == "console output"]
        assert lines[:3] == ["a0", "a1", "a2"] and lines[-1] == "b" and len(lines) == 5


# -- deletion and suspension -------------------------------------------------------------------------
@pytest.mark.parametrize(("profile", "code"), [("classic", 1001), ("hardened", 1006)])
async def test_delete(profile: str, code: int) -> None:
    async with fast(profile=profile) as emu:
        srv = emu.add_server("mc")
        client, _ = await authed(emu, srv)
        await srv.delete()
        assert await client.recv() == ("deleted", ["null"])
        assert await client.close_code() == code
        if code == 1001:
            assert client.conn.close_reason == "server deleted"
        with pytest.raises(InvalidStatus) as info:
            await open_socket(emu, srv)
        assert info.value.response.status_code == 404


async def test_hardened_suspension(hard: Emulator) -> None:
    srv = hard.add_server("mc")
    client, _ = await authed(hard, srv)
    await srv.suspend()
    assert await client.close_code() == 1006
    client = await open_socket(hard, srv)
    assert await client.close_code() == 4409
    assert client.conn.close_reason == "server is suspended"
    srv.panel_lag = True  # the panel has not seen the suspension: it still hands out tokens
    headers = {"Authorization": f"Bearer {hard.api_key}", "Accept": "application/json"}
    url = f"{hard.panel_url}/api/client/servers/{srv.identifier}/websocket"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        assert r.status == 200


async def test_classic_suspension_keeps_socket(emu: Emulator) -> None:
    srv = emu.add_server("mc")
    client, _ = await authed(emu, srv)
    await srv.suspend()
    await client.send("send stats")
    assert (await client.recv())[0] == "stats"
    await client.send("set state", "start")
    event, args = await client.recv()
    assert event == "daemon error" and args[0].endswith(GENERIC)
    assert srv.state == "offline"


async def test_drop_sockets_is_abnormal_close(emu: Emulator) -> None:
    srv = emu.add_server("mc")
    client, _ = await authed(emu, srv)
    await emu.drop_sockets(srv)
    assert await client.close_code() == 1006


# -- hardened limits ------------------------------------------------------------------------------------
async def test_hardened_event_bucket(hard: Emulator) -> None:
    srv = hard.add_server("mc")
    client, _ = await authed(hard, srv)
    for _ in range(6):
        await client.send("send stats")
    events = [(e, a) for e, a in await client.drain(0.3)]
    assert [e for e, _ in events].count("stats") == 4  # _default bucket: burst 4
    assert events.count(("throttled", ["send stats"])) == 1


async def test_hardened_global_bucket() -> None:
    limits = {"global": (3, 10.0)}
    async with fast(profile="hardened", inbound_limits=limits) as emu:
        srv = emu.add_server("mc")
        client = await open_socket(emu, srv)
        for _ in range(5):
            await client.send("ping")
        frames = await client.drain(0.3)
        assert frames.count(("throttled", ["global"])) == 1
        assert frames.count(("jwt error", ["jwt: no jwt present"])) == 3  # limits apply before the jwt check


async def test_hardened_read_limit(hard: Emulator) -> None:
    srv = hard.add_server("mc", state="running")
    client, _ = await authed(hard, srv)
    await client.send("send command", "say " + "x" * 5000)
    assert await client.close_code() == 1009


async def test_classic_has_no_read_limit(emu: Emulator) -> None:
    srv = emu.add_server("mc", state="running")
    client, _ = await authed(emu, srv)
    await client.send("send command", "say " + "x" * 5000)
    assert (await client.until("console output"))[-1][1][0].startswith("> say xxx")


async def test_hardened_socket_cap() -> None:
    async with fast(profile="hardened", max_sockets=2) as emu:
        srv = emu.add_server("mc")
        await open_socket(emu, srv)
        await open_socket(emu, srv)  # Pelican counts unauthenticated sockets too
        with pytest.raises(InvalidStatus) as info:
            await open_socket(emu, srv)
        assert info.value.response.status_code == 400
        plain = emu.socket_url(srv).replace("ws://", "http://")
        async with aiohttp.ClientSession() as http, http.get(plain) as r:
            assert r.status == 400
            assert await r.json() == {"error": "Too many open websocket connections."}


# -- robustness -------------------------------------------------------------------------------------
async def test_malformed_frames_are_dropped(emu: Emulator) -> None:
    srv = emu.add_server("mc")
    client, _ = await authed(emu, srv)
    for raw in ("{nope", '{"event":"send stats","args":"x"}', '{"event":"send stats","args":[1]}', "[]"):
        await client.conn.send(raw)
    assert await client.drain(0.2) == []
    await client.conn.send('{"event":"send stats","args":[null]}')
    assert (await client.recv())[0] == "stats"
    assert srv.received[-1] == ("send stats", [""])


async def test_close_cancels_every_task() -> None:
    before = set(asyncio.all_tasks())
    emu = fast()
    await emu.start()
    srv = emu.add_server("mc")
    client, _ = await authed(emu, srv)
    await client.send("set state", "start")
    await client.until("status")
    await emu.close()
    await client.conn.close()
    await asyncio.sleep(0.05)
    leftover = {t for t in asyncio.all_tasks() if t not in before and not t.done()}
    assert leftover == set()


async def test_installing_server(emu: Emulator) -> None:
    srv = emu.add_server("mc", status="installing")
    client = await open_socket(emu, srv)
    await client.send("auth", emu.mint_token(srv))
    assert await client.drain(0.3) == [("auth success", []), ("status", ["offline"])]  # no stats
    await client.send("set state", "start")
    event, args = await client.recv()
    assert event == "daemon error" and args[0].endswith(GENERIC)
    srv.emit("install output", "hidden from owners")
    srv.emit("install completed", "")
    assert await client.recv() == ("install completed", [""])


async def test_hardened_inbound_while_suspended_drops_socket(hard: Emulator) -> None:
    srv = hard.add_server("mc")
    client, _ = await authed(hard, srv)
    srv.suspended = True  # suspended without the node having synced yet
    await client.send("send stats")
    assert await client.close_code() == 1006


@pytest.mark.parametrize("profile", ["classic", "hardened"])
async def test_binary_frames_and_upgrade_headers(profile: str) -> None:
    async with fast(profile=profile) as emu:
        srv = emu.add_server("mc")
        client, _ = await authed(emu, srv)
        await client.conn.send(b'{"event":"send stats"}')
        frames = await client.drain(0.2)
        assert client.conn.response is not None
        headers = client.conn.response.headers
        if profile == "classic":
            assert [e for e, _ in frames] == ["stats"]
            assert "Sec-WebSocket-Extensions" not in headers
        else:
            assert frames == []  # non-text frames are dropped
            assert "permessage-deflate" in headers["Sec-WebSocket-Extensions"]
            assert headers["Content-Security-Policy"] == "default-src 'self'"
            assert headers["X-Frame-Options"] == "DENY"


async def test_hardened_auth_timeout() -> None:
    async with fast(profile="hardened", auth_timeout=0.2) as emu:
        srv = emu.add_server("mc")
        late = await open_socket(emu, srv)
        prompt, _ = await authed(emu, srv)
        assert await late.close_code() == 1006
        await prompt.send("send stats")
        assert (await prompt.recv())[0] == "stats"


# -- crashes --------------------------------------------------------------------------------------------
def _daemon_texts(frames: list[Frame], app: str = "Pterodactyl") -> list[str]:
    prefix = f"\x1b[33m\x1b[1m[{app} Daemon]:\x1b[39m "
    return [
        a[0].removeprefix(prefix).removesuffix("\x1b[0m")
        for e, a in frames
        if e == "console output" and a[0].startswith(prefix)
    ]


@pytest.mark.parametrize("profile", ["classic", "hardened"])
async def test_crash_with_automatic_restart(profile: str) -> None:
    async with fast(profile=profile) as emu:
        srv = emu.add_server("mc", state="running")
        client, _ = await authed(emu, srv)
        emu.crash(srv, exit_code=137, oom=True)
        frames = await client.until("status", timeout=1.0)
        assert frames[-1] == ("status", ["offline"])  # straight from running: no `stopping`
        frames += await client.drain(0.5)
        statuses = [a[0] for e, a in frames if e == "status"]
        assert statuses == ["offline", "starting", "running"]
        assert _daemon_texts(frames) == [
            "---------- Detected server process in a crashed state! ----------",
            "Exit code: 137",
            "Out of memory: true",
        ]
        assert srv.state == "running"
        # Wings' own lines are not in the container log that `send logs` replays
        await client.send("send logs")
        assert not _daemon_texts(await client.drain(0.2))


@pytest.mark.parametrize(
    ("reason", "last"),
    [
        ("recent", "Aborting automatic restart, last crash occurred less than 60 seconds ago."),
        ("disabled", "Aborting automatic restart, crash detection is disabled for this instance."),
    ],
)
async def test_crash_without_restart_says_why(emu: Emulator, reason: str, last: str) -> None:
    srv = emu.add_server("mc", state="running")
    client, _ = await authed(emu, srv)
    emu.crash(srv, exit_code=1, restart=False, reason=reason)
    frames = await client.drain(0.4)
    assert [a[0] for e, a in frames if e == "status"] == ["offline"]
    assert ("stats" in {e for e, _ in frames}) and srv.state == "offline"
    assert _daemon_texts(frames) == [
        "---------- Detected server process in a crashed state! ----------",
        "Exit code: 1",
        "Out of memory: false",
        last,
    ]


async def test_crash_lines_use_the_app_name_and_offline_servers_cannot_crash() -> None:
    async with fast(profile="hardened", app_name="pelican") as emu:
        srv = emu.add_server("mc", state="running")
        client, _ = await authed(emu, srv)
        emu.crash(srv, restart=False)
        assert _daemon_texts(await client.drain(0.3), app="pelican")[0].startswith("----------")
        with pytest.raises(ValueError, match="offline"):
            emu.crash(srv)
        with pytest.raises(ValueError, match="reason"):
            emu.crash(srv, reason="bored")


async def test_crash_on_start(emu: Emulator) -> None:
    from tests.fakes.emulator import CrashSpec

    srv = emu.add_server("mc", state="offline")
    srv.crash_on_start = CrashSpec(exit_code=1, restart=False)
    client, _ = await authed(emu, srv)
    await client.send("set state", "start")
    frames = await client.drain(0.5)
    assert [a[0] for e, a in frames if e == "status"] == ["starting", "offline"]
    assert "Exit code: 1" in _daemon_texts(frames)
    await client.send("set state", "start")  # only the next start crashed
    assert [a[0] for e, a in await client.drain(0.5) if e == "status"] == ["starting", "running"]


# -- token signals and first status ---------------------------------------------------------------------
async def test_expiry_notices_can_be_switched_off() -> None:
    async with Emulator(token_lifetime=2, expiry_tick=0.2, expiry_window=2, expiry_notices=False) as emu:
        srv = emu.add_server("mc")
        client, _ = await authed(emu, srv)
        frames = await client.drain(1.5)
        assert not {"token expiring", "token expired"} & {e for e, _ in frames}


async def test_first_status_can_come_late() -> None:
    async with fast(first_status_delay=0.4) as emu:
        srv = emu.add_server("mc", state="running")
        client = await open_socket(emu, srv)
        await client.send("auth", emu.mint_token(srv))
        assert (await client.recv())[0] == "auth success"
        started = time.monotonic()
        frames = await client.until("status", timeout=2.0)
        assert time.monotonic() - started >= 0.3 and frames[-1] == ("status", ["running"])
        await client.send("send stats")  # the socket works meanwhile: the delay is only the status's
        assert (await client.until("stats"))[-1][0] == "stats"


# -- nodes and transfers --------------------------------------------------------------------------------
async def _panel_socket_url(emu: Emulator, srv: FakeServer) -> str:
    headers = {"Authorization": f"Bearer {emu.api_key}", "Accept": "application/json"}
    url = f"{emu.panel_url}/api/client/servers/{srv.identifier}/websocket"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        return str((await r.json())["data"]["socket"])


async def test_a_second_node_and_a_transfer_to_it(emu: Emulator) -> None:
    node2 = await emu.add_node()
    assert node2.url and node2.url != emu.nodes[0].url
    srv = emu.add_server("mc", state="running")
    assert await _panel_socket_url(emu, srv) == emu.socket_url(srv)
    assert emu.socket_url(srv).startswith("ws://" + emu.nodes[0].url.removeprefix("http://"))
    old, _ = await authed(emu, srv)
    await emu.transfer(srv, node2)
    frames = await old.drain(0.2)
    assert [a[0] for e, a in frames if e == "transfer status"] == ["processing", "completed"]
    assert "transfer logs" not in {e for e, _ in frames}  # an owner lacks admin.websocket.transfer
    assert srv.node is node2 and await _panel_socket_url(emu, srv) == emu.socket_url(srv)
    assert emu.socket_url(srv).startswith("ws://" + node2.url.removeprefix("http://"))
    new, _ = await authed(emu, srv)
    srv.emit_console("on node 2")
    assert ("console output", ["on node 2"]) in await new.drain(0.2)
    assert ("console output", ["on node 2"]) not in await old.drain(0.2)  # the old node's socket is quiet
    with pytest.raises(InvalidStatus) as info:  # the old node no longer knows the server
        await connect(
            emu.nodes[0].url.replace("http://", "ws://") + f"/api/servers/{srv.uuid}/ws",
            origin=Origin(emu.panel_url),
            proxy=None,
        )
    assert info.value.response.status_code == 404


@pytest.mark.parametrize(("profile", "code"), [("classic", 1001), ("hardened", 1006)])
async def test_transfer_that_deletes_the_source(profile: str, code: int) -> None:
    async with fast(profile=profile) as emu:
        node2 = await emu.add_node()
        srv = emu.add_server("mc", state="running")
        client, _ = await authed(emu, srv)
        await emu.transfer(srv, node2, delete_source=True)
        frames = await client.until("deleted")
        assert ("transfer status", ["completed"]) in frames
        assert await client.close_code() == code
