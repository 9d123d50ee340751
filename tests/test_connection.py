"""Wings connections against the emulator: auth, refresh, error recovery, reconnects, stops and actions."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.datastructures import Headers

from bot.panel.client import PanelClient
from bot.panel.models import WebsocketCredentials
from bot.wings import actions
from bot.wings.connection import Timing, WingsConnection
from bot.wings.errors import ActionRefused, WingsError, WingsUnavailable
from bot.wings.events import ConnectionState, Notice, NoticeKind, PowerOutcome, WingsEvent
from bot.wings.frames import Event, PowerAction, PowerState
from bot.wings.manager import ConnectionManager, QueueSubscriber
from tests.fakes.emulator import Emulator, FakeServer
from tests.waiting import wait_until

FAST = Timing(
    auth_timeout=2.0,
    open_timeout=2.0,
    ping_interval=1.0,
    ping_timeout=1.0,
    backoff_min=0.05,
    backoff_max=0.4,
    healthy_after=5.0,
    lost_grace=1.0,
    min_refresh_gap=0.5,
    gap_first_line=0.4,
    gap_quiet=0.15,
    gap_max=2.0,
    power_timeout=3.0,
    command_window=0.4,
    logs_quiet=0.2,
    logs_max=2.0,
    outbound_scale=0.2,
)
# Wings' own buckets shrunk the same way, for tests whose short tokens refresh every couple of seconds.
FAST_WINGS_LIMITS = {"auth": (2, 1.0), "send logs": (2, 1.0)}


class Sink:
    """Records what a connection delivers."""

    def __init__(self) -> None:
        self.events: list[WingsEvent] = []
        self.notices: list[Notice] = []
        self.gap = True
        self.filled = 0

    def deliver(self, event: WingsEvent) -> None:
        self.events.append(event)

    def notice(self, notice: Notice) -> None:
        self.notices.append(notice)

    def wants_gap_fill(self, server: str) -> bool:
        return self.gap

    def gap_filled(self, server: str) -> None:
        self.filled += 1

    def console(self) -> list[str]:
        return [e.frame.arg for e in self.events if e.frame.event == "console output"]

    def kinds(self) -> list[NoticeKind]:
        return [n.kind for n in self.notices]


def auths(srv: FakeServer) -> int:
    return sum(1 for event, _ in srv.received if event == "auth")


@pytest.fixture(params=["classic", "hardened"])
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def panel_emu(profile: str) -> AsyncIterator[tuple[Emulator, PanelClient]]:
    async with (
        Emulator(
            profile=profile,
            stats_interval=0.2,
            start_delay=0.2,
            stop_delay=0.2,
            inbound_limits=FAST_WINGS_LIMITS,
        ) as emu,
        PanelClient(emu.panel_url, emu.api_key) as panel,
    ):
        yield emu, panel


@pytest.fixture
async def conn_factory(
    panel_emu: tuple[Emulator, PanelClient],
) -> AsyncIterator[Callable[..., tuple[WingsConnection, Sink]]]:
    emu, panel = panel_emu
    made: list[WingsConnection] = []

    def make(srv: FakeServer, timing: Timing = FAST) -> tuple[WingsConnection, Sink]:
        sink = Sink()
        conn = WingsConnection(panel, srv.identifier, sink, origin=emu.panel_url, timing=timing)
        made.append(conn)
        return conn, sink

    yield make
    for conn in made:
        await conn.close()


@contextlib.asynccontextmanager
async def own_connection(
    emulator: dict[str, Any], *, timing: Timing = FAST, **server: Any
) -> AsyncIterator[tuple[Emulator, FakeServer, WingsConnection, Sink]]:
    """A running server "Survival" on its own emulator, and one connection to it (not yet started)."""
    async with Emulator(**emulator) as emu, PanelClient(emu.panel_url, emu.api_key) as panel:
        srv = emu.add_server("Survival", **{"state": "running", **server})
        sink = Sink()
        conn = WingsConnection(panel, srv.identifier, sink, origin=emu.panel_url, timing=timing)
        try:
            yield emu, srv, conn, sink
        finally:
            await conn.close()


async def test_first_auth_sends_nothing_before_auth_success(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    assert conn.state is ConnectionState.CONNECTED
    assert srv.received[0][0] == "auth"
    await wait_until(lambda: conn.power is PowerState.RUNNING)
    assert not any(n.kind is NoticeKind.JWT_ERROR for n in sink.notices)
    sock = emu.sockets(srv)[0]
    assert sock.authenticated


async def test_origin_header_is_the_panel_url_and_wrong_origin_stops(panel_emu, conn_factory) -> None:
    emu, panel = panel_emu
    srv = emu.add_server("Survival")
    sink = Sink()
    conn = WingsConnection(panel, srv.identifier, sink, origin="https://elsewhere.example", timing=FAST)
    try:
        with pytest.raises(Exception, match="WINGS_ORIGIN"):
            await conn.wait_ready(3)
        assert conn.state is ConnectionState.STOPPED
    finally:
        await conn.close()


async def test_proactive_refresh_keeps_socket_and_every_line(profile: str) -> None:
    emulator = {"profile": profile, "token_lifetime": 3, "expiry_tick": 0.5, "expiry_window": 1}
    async with own_connection(dict(emulator, inbound_limits=FAST_WINGS_LIMITS)) as (emu, srv, conn, sink):
        await conn.wait_ready(3)
        sent = []
        for i in range(120):  # 6 s of console: two refresh rounds of a 3 s token
            line = f"line {i}"
            sent.append(line)
            srv.emit_console(line)
            await asyncio.sleep(0.05)
        with contextlib.suppress(AssertionError):
            await wait_until(lambda: len(sink.console()) >= len(sent), 3)
        assert sink.console() == sent, (
            sink.notices,
            conn.refreshes,
            conn.reconnects,
            conn.last_error,
        )
        assert conn.refreshes >= 2 and conn.reconnects == 0
        assert auths(srv) == conn.refreshes + 1 and len(emu.sockets(srv)) == 1
        assert not any(n.kind is NoticeKind.JWT_ERROR for n in sink.notices)


async def test_refresh_on_token_expiring(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, _sink = conn_factory(srv)
    await conn.wait_ready(3)
    srv.emit("token expiring")
    await wait_until(lambda: conn.refreshes == 1, 2)
    assert auths(srv) == 2 and conn.reconnects == 0


async def test_short_tokens_do_not_storm(profile: str) -> None:
    """20 s tokens refresh at 15 s; with expiring notices every tick, still one refresh per min gap."""
    emulator = {"profile": profile, "token_lifetime": 20, "expiry_tick": 0.1, "expiry_window": 25}
    async with own_connection(dict(emulator, inbound_limits=FAST_WINGS_LIMITS)) as (_emu, _srv, conn, _sink):
        await conn.wait_ready(3)
        await asyncio.sleep(1.6)
        # expiring arrives every 0.1 s; refreshes are held to one per min_refresh_gap (0.5 s)
        assert 1 <= conn.refreshes <= 4


async def test_recovers_from_jwt_error_flood_and_fills_the_gap(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    for i in range(5):
        srv.emit_console(f"before {i}")
    await wait_until(lambda: len(sink.console()) == 5)
    emu.revoke(srv)  # the panel denylists the token: every event becomes a jwt error
    for i in range(5):
        srv.emit_console(f"during {i}")
    await wait_until(lambda: conn.refreshes >= 1, 3)
    srv.emit_console("after")
    expected = [f"before {i}" for i in range(5)] + [f"during {i}" for i in range(5)] + ["after"]
    await wait_until(lambda: len(sink.console()) >= len(expected), 4)
    assert sink.console() == expected
    assert NoticeKind.JWT_ERROR in sink.kinds()
    assert "restart or a permission change" in next(
        n.text for n in sink.notices if n.kind is NoticeKind.JWT_ERROR
    )
    assert conn.reconnects == 0


async def test_recovers_after_wings_restart_without_duplicates(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    for i in range(3):
        srv.emit_console(f"old {i}")
    await wait_until(lambda: len(sink.console()) == 3)
    await emu.restart_wings()
    srv.emit_console("while down")  # nobody is connected: only `send logs` can bring it back
    await wait_until(lambda: conn.reconnects >= 1 and conn.state is ConnectionState.CONNECTED, 4)
    await wait_until(lambda: "while down" in sink.console(), 3)
    srv.emit_console("new")
    await wait_until(lambda: "new" in sink.console(), 3)
    assert sink.console() == ["old 0", "old 1", "old 2", "while down", "new"]


async def test_reconnects_after_a_dropped_socket(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    ws_requests = sum(r.path.endswith("/websocket") for r in emu.requests)
    await emu.drop_sockets(srv)
    await wait_until(lambda: conn.reconnects == 1 and conn.state is ConnectionState.CONNECTED, 3)
    # fresh credentials for every new socket
    assert sum(r.path.endswith("/websocket") for r in emu.requests) == ws_requests + 1
    # back within the grace period: nobody is told about it
    assert NoticeKind.CONNECTION_LOST not in sink.kinds()


async def test_long_outage_is_reported_once_and_its_end_too(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    # each failure answers after 0.2 s, so the outage (>= 1.6 s) surely outlasts the 1 s grace period
    emu.fail_next("GET", "/websocket", 504, times=8, delay=0.2)
    await emu.drop_sockets(srv)
    await wait_until(lambda: NoticeKind.CONNECTION_RESTORED in sink.kinds(), 8)
    assert sink.kinds().count(NoticeKind.CONNECTION_LOST) == 1
    lost = next(n for n in sink.notices if n.kind is NoticeKind.CONNECTION_LOST)
    assert "could not reach the node" in lost.text
    assert conn.reconnects >= 3


async def test_panel_429_is_honoured_on_reconnect(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, _sink = conn_factory(srv)
    await conn.wait_ready(3)
    emu.fail_next("GET", "/websocket", 429, retry_after=1, times=1)
    started = time.monotonic()
    await emu.drop_sockets(srv)
    await wait_until(lambda: conn.reconnects >= 1 and conn.state is ConnectionState.CONNECTED, 4)
    assert time.monotonic() - started >= 0.9


async def test_deleted_stops_without_retrying(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    await srv.delete()
    await wait_until(lambda: conn.state is ConnectionState.STOPPED, 3)
    requests = len(emu.requests)
    await asyncio.sleep(0.6)
    assert len(emu.requests) == requests
    assert NoticeKind.DELETED in sink.kinds()
    assert conn.stopped_reason and "deleted" in conn.stopped_reason


async def test_unknown_server_stops_on_panel_404(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Ghost")
    emu.servers_by_uuid.pop(srv.uuid)
    conn, _sink = conn_factory(srv)
    with pytest.raises(Exception, match="does not know this server"):
        await conn.wait_ready(2)
    assert conn.state is ConnectionState.STOPPED


async def test_missing_connect_permission_stops(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Sub", permissions=["control.console"])
    conn, _sink = conn_factory(srv)
    with pytest.raises(Exception, match=r"websocket\.connect"):
        await conn.wait_ready(2)
    assert conn.state is ConnectionState.STOPPED


async def test_4409_suspended_stops_without_retrying() -> None:
    async with own_connection({"profile": "hardened"}, suspended=True) as (emu, srv, conn, sink):
        srv.panel_lag = True  # a panel behind its node still hands out a token; Wings then closes with 4409
        with pytest.raises(Exception, match="suspended"):
            await conn.wait_ready(3)
        assert conn.state is ConnectionState.STOPPED and NoticeKind.SUSPENDED in sink.kinds()
        seen = len(emu.requests)
        await asyncio.sleep(0.6)
        assert len(emu.requests) == seen


async def test_power_start_reports_transitions(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="offline")
    conn, _sink = conn_factory(srv)
    result = await actions.set_state(conn, PowerAction.START)
    assert result.outcome is PowerOutcome.DONE
    assert result.transitions == (PowerState.STARTING, PowerState.RUNNING)
    assert result.describe().startswith("started: offline → starting → running in")
    assert ("set state", ["start"]) in srv.received


async def test_power_restart_and_kill(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, _sink = conn_factory(srv)
    restart = await actions.set_state(conn, PowerAction.RESTART)
    assert restart.outcome is PowerOutcome.DONE and restart.transitions[-1] is PowerState.RUNNING
    assert PowerState.OFFLINE in restart.transitions
    kill = await actions.set_state(conn, PowerAction.KILL)
    assert kill.outcome is PowerOutcome.DONE and kill.transitions[-1] is PowerState.OFFLINE


async def test_kill_through_stopping_is_done_not_a_crash() -> None:
    async with own_connection({"kill_via_stopping": True}) as (_emu, srv, conn, _sink):
        await conn.wait_ready(3)
        await wait_until(lambda: conn.power is PowerState.RUNNING)
        result = await actions.set_state(conn, PowerAction.KILL)
        assert result.outcome is PowerOutcome.DONE
        assert result.transitions == (PowerState.STOPPING, PowerState.OFFLINE)
        assert result.describe().startswith("killed: running → stopping → offline")
        assert srv.state == "offline"


async def test_power_action_on_a_server_deleted_meanwhile_ends_at_once_saying_why() -> None:
    async with own_connection({"stop_delay": 20.0}) as (_emu, srv, conn, _sink):
        await conn.wait_ready(3)
        await wait_until(lambda: conn.power is PowerState.RUNNING)
        started = time.monotonic()
        pending = asyncio.create_task(actions.set_state(conn, PowerAction.STOP, timeout=20.0))
        await wait_until(lambda: conn.power is PowerState.STOPPING)
        await srv.delete()
        result = await asyncio.wait_for(pending, 5)
        assert time.monotonic() - started < 5
        assert result.outcome is PowerOutcome.ENDED
        assert result.describe() == (
            "stop: outcome unknown, the console connection stopped: the server was deleted (seen: running → stopping)"
        )


async def test_power_lock_busy_comes_back_as_daemon_error(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    srv.power_busy = True
    conn, _sink = conn_factory(srv)
    result = await actions.set_state(conn, PowerAction.STOP)
    assert result.outcome is PowerOutcome.DAEMON_ERROR
    assert "Another power action" in (result.error or "")


async def test_missing_power_permission_is_refused_before_sending(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Sub", state="offline", permissions=["websocket.connect", "control.console"])
    conn, _sink = conn_factory(srv)
    with pytest.raises(ActionRefused, match=r"control\.start"):
        await actions.set_state(conn, PowerAction.START)
    with pytest.raises(ActionRefused, match=r"control\.stop"):
        await actions.set_state(conn, PowerAction.KILL)
    assert not any(event == "set state" for event, _ in srv.received)


async def test_start_while_running_is_refused(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, _sink = conn_factory(srv)
    await conn.wait_ready(3)
    await wait_until(lambda: conn.power is PowerState.RUNNING)
    with pytest.raises(ActionRefused, match="already running"):
        await actions.set_state(conn, PowerAction.START)


async def test_start_while_starting_or_stopping_is_refused_before_wings_errors(
    panel_emu, conn_factory
) -> None:
    # Wings answers either start with "server is running" as a daemon error, which reaches non-admins as a
    # generic "unexpected error": the bot says what is going on instead.
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, _sink = conn_factory(srv)
    await conn.wait_ready(3)
    await emu.server(srv.identifier).set_power("starting")
    await wait_until(lambda: conn.power is PowerState.STARTING)
    with pytest.raises(ActionRefused, match="already starting; nothing to start"):
        await actions.set_state(conn, PowerAction.START)
    await emu.server(srv.identifier).set_power("stopping")
    await wait_until(lambda: conn.power is PowerState.STOPPING)
    with pytest.raises(ActionRefused, match="still stopping"):
        await actions.set_state(conn, PowerAction.START)
    assert not any(event == "set state" for event, _ in srv.received)


async def test_command_returns_its_output(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, _sink = conn_factory(srv)
    await conn.wait_ready(3)
    srv.emit_console("an older line")
    await asyncio.sleep(0.1)
    result = await actions.send_command(conn, "say hello")
    assert "[Server] hello" in result.lines
    assert "an older line" not in result.lines


async def test_command_refused_offline_without_permission_or_malformed(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    off = emu.add_server("Down", state="offline")
    conn, _sink = conn_factory(off)
    with pytest.raises(ActionRefused, match="offline"):
        await actions.send_command(conn, "list")
    sub = emu.add_server("Sub", state="running", permissions=["websocket.connect"])
    conn2, _ = conn_factory(sub)
    with pytest.raises(ActionRefused, match=r"control\.console"):
        await actions.send_command(conn2, "list")
    with pytest.raises(ActionRefused, match="line break"):
        await actions.send_command(conn2, "list\nop me")
    with pytest.raises(ActionRefused, match="too long"):
        await actions.send_command(conn2, "x" * 5000)
    assert not any(event == "send command" for event, _ in off.received + sub.received)


async def test_fetch_logs_returns_the_backlog(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    for i in range(20):
        srv.emit_console(f"history {i}")
    conn, _sink = conn_factory(srv)
    lines = await actions.fetch_logs(conn)
    assert lines[-20:] == [f"history {i}" for i in range(20)]


async def test_hardened_throttled_is_reported_and_commands_are_paced() -> None:
    real_pacing = dataclasses.replace(FAST, outbound_scale=1.0)
    async with own_connection({"profile": "hardened"}, timing=real_pacing) as (_emu, srv, conn, sink):
        await conn.wait_ready(3)
        await wait_until(lambda: conn.power is PowerState.RUNNING)
        # 12 commands at once: our pacing keeps them inside Wings' buckets, so none is throttled
        await asyncio.gather(*(actions.send_command(conn, f"say {i}", window=0.05) for i in range(12)))
        assert sum(1 for e, _ in srv.received if e == "send command") == 12
        assert NoticeKind.THROTTLED not in sink.kinds()
        srv.emit("throttled", "send logs")  # what Wings says when a bucket overflows anyway
        await wait_until(lambda: NoticeKind.THROTTLED in sink.kinds(), 2)


async def test_manager_shares_one_connection_and_closes_when_idle(panel_emu) -> None:
    emu, panel = panel_emu
    srv = emu.add_server("Survival", state="running")
    manager = ConnectionManager(panel, origin=emu.panel_url, timing=FAST, idle_close=0.3)
    try:
        a, b = QueueSubscriber(), QueueSubscriber(maxsize=2)
        sub_a = manager.subscribe(srv.identifier, a)
        sub_b = manager.subscribe(srv.identifier, b)
        await manager.connection(srv.identifier).wait_ready(3)
        for i in range(10):
            srv.emit_console(f"l{i}")
        await wait_until(lambda: a.queue.qsize() >= 10)
        assert len(emu.sockets(srv)) == 1
        assert b.overflowed > 0  # the slow subscriber lost its own overflow, nobody else's
        health = manager.health()[0]
        assert health.subscribers == 2 and health.overflowed == b.overflowed
        manager.unsubscribe(sub_a)
        manager.unsubscribe(sub_b)
        await wait_until(lambda: manager.peek(srv.identifier) is None, 2)
        await wait_until(lambda: not emu.sockets(srv), 2)
    finally:
        await manager.close()


async def test_a_subscriber_joining_an_outage_already_reported_is_told_of_it() -> None:
    # Wings accepts the socket and never answers `auth`: the connection retries, and says so after the grace.
    async with Emulator(auth_latency=1000.0) as emu, PanelClient(emu.panel_url, emu.api_key) as panel:
        srv = emu.add_server("Survival", state="running")
        manager = ConnectionManager(panel, origin=emu.panel_url, timing=FAST, idle_close=30.0)
        try:
            first = Sink()
            manager.subscribe(srv.identifier, first)
            await wait_until(lambda: NoticeKind.CONNECTION_LOST in first.kinds(), 8)
            late = Sink()  # e.g. a second channel linked a minute later: it hears at once why it stays quiet
            manager.subscribe(srv.identifier, late)
            assert late.kinds() == [NoticeKind.CONNECTION_LOST]
            assert "no auth success within 2 s" in late.notices[0].text
            assert first.kinds() == [NoticeKind.CONNECTION_LOST]  # told once, not again
        finally:
            await manager.close()


async def test_an_action_waiting_for_a_connection_that_is_closed_is_told_so(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    emu.fail_next("GET", "/websocket", 0, delay=30.0)  # the panel is slow to hand out credentials
    conn, _ = conn_factory(srv)
    waiting = asyncio.create_task(conn.wait_ready(10.0))
    await asyncio.sleep(0.3)
    await conn.close()  # Wingbeat shuts down meanwhile
    with pytest.raises(WingsUnavailable, match="Wingbeat closed the console connection"):
        await asyncio.wait_for(waiting, 3.0)


async def test_manager_dedupes_notices() -> None:
    from bot.wings.manager import NoticeFilter

    now = [0.0]
    flt = NoticeFilter(180.0, clock=lambda: now[0])
    n = Notice("abc", NoticeKind.JWT_ERROR, "x", "jwt:expired")
    assert flt.allow(n) and not flt.allow(n)
    now[0] = 181.0
    assert flt.allow(n)
    assert flt.allow(Notice("other", NoticeKind.JWT_ERROR, "x", "jwt:expired"))


def test_lost_and_restored_notices_pair_so_a_channel_is_never_left_believing_it_is_up() -> None:
    from bot.wings.manager import NoticeFilter

    now = [0.0]
    flt = NoticeFilter(180.0, clock=lambda: now[0])
    lost = Notice(
        "abc", NoticeKind.CONNECTION_LOST, "Lost the console connection (x); retrying.", "connection lost"
    )
    back = Notice(
        "abc", NoticeKind.CONNECTION_RESTORED, "Console connection restored.", "connection restored"
    )
    assert flt.allow(lost)
    now[0] = 60.0
    assert flt.allow(back)
    # a second outage within the window is held back, not dropped: due when the window ends
    now[0] = 90.0
    assert not flt.allow(lost) and flt.held_until("abc") == 180.0
    now[0] = 100.0  # it ended before anyone was told: its end is no news either
    assert not flt.allow(back) and flt.held_until("abc") is None
    now[0] = 120.0
    assert not flt.allow(lost)
    now[0] = 180.0  # still down when the window ends: told now, and its end will be told too
    assert flt.allow(lost) and flt.held_until("abc") is None
    now[0] = 181.0  # a restored notice is never held back by its own window while its outage was told
    assert flt.allow(back)


async def test_an_outage_held_back_by_the_notice_window_is_told_when_it_ends_if_still_down(panel_emu) -> None:
    emu, panel = panel_emu
    srv = emu.add_server("Survival", state="running")
    manager = ConnectionManager(panel, origin=emu.panel_url, timing=FAST, notice_window=5.0)
    try:
        sink = Sink()
        manager.subscribe(srv.identifier, sink)
        await manager.connection(srv.identifier).wait_ready(3)
        emu.fail_next("GET", "/websocket", 504, times=8, delay=0.2)
        await emu.drop_sockets(srv)
        await wait_until(lambda: NoticeKind.CONNECTION_RESTORED in sink.kinds(), 8)
        # down again at once, and for long: held back by the window, then told while it goes on
        emu.fail_next("GET", "/websocket", 504, times=1000, delay=0.2)
        await emu.drop_sockets(srv)
        await wait_until(lambda: sink.kinds().count(NoticeKind.CONNECTION_LOST) == 2, 10)
        assert sink.kinds()[-1] is NoticeKind.CONNECTION_LOST
    finally:
        await manager.close()


async def test_oversized_and_malformed_frames_are_skipped_not_fatal(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    srv.emit("console output", "x" * (64 * 1024))  # Wings' longest line: delivered
    srv.emit("console output", "y" * (2 * 1024 * 1024))  # far beyond any Wings line: skipped
    srv.emit("no such event", "whatever")  # unknown: ignored
    srv.emit_console("still here")
    await wait_until(lambda: "still here" in sink.console())
    assert sink.console() == ["x" * (64 * 1024), "still here"]
    assert conn.skipped_frames == 1 and conn.reconnects == 0


async def test_losing_the_websocket_permission_mid_session_stops_with_the_reason(
    panel_emu, conn_factory
) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Sub", state="running", permissions=["websocket.connect", "control.console"])
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    srv.permissions = ["control.console"]  # the panel owner takes websocket.connect away...
    emu.revoke(srv)  # ...which denylists the old token on Wings
    srv.emit_console("tick")
    await wait_until(lambda: conn.state is ConnectionState.STOPPED)
    assert conn.stopped_reason and "websocket.connect" in conn.stopped_reason
    assert NoticeKind.JWT_ERROR in sink.kinds()


async def test_a_server_gone_from_the_panel_is_reported_once(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Ghost", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    emu.servers_by_uuid.pop(srv.uuid)  # deleted while the bot was away: the panel now answers 404
    await emu.drop_sockets(srv)
    await wait_until(lambda: conn.state is ConnectionState.STOPPED)
    [stopped] = [n for n in sink.notices if n.kind is NoticeKind.STOPPED]
    assert "does not know this server" in stopped.text


async def test_deleted_after_a_finished_transfer_follows_the_server(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    srv.emit("transfer status", "completed")
    srv.emit("deleted", "null")  # the old node drops its copy; the panel now points at the new node
    await wait_until(lambda: conn.reconnects == 1 and conn.state is ConnectionState.CONNECTED)
    assert NoticeKind.DELETED not in sink.kinds()
    srv.emit_console("hello from the new node")
    await wait_until(lambda: "hello from the new node" in sink.console())


# -- the timer, crashes and moves (each catches a bug a hand-made mutation showed the suite missed) -----------


async def test_refresh_happens_from_the_timer_alone(profile: str) -> None:
    """Wings never warns here: only the session's own refresh timer keeps the token alive."""
    emulator = {"profile": profile, "token_lifetime": 3, "expiry_tick": 0.5, "expiry_notices": False}
    async with own_connection(dict(emulator, inbound_limits=FAST_WINGS_LIMITS)) as (emu, srv, conn, sink):
        await conn.wait_ready(3)
        sent = []
        for i in range(100):  # 5 s of console: past the first token's expiry and the second's refresh
            sent.append(f"line {i}")
            srv.emit_console(sent[-1])
            await asyncio.sleep(0.05)
        await wait_until(lambda: len(sink.console()) >= len(sent), 3)
        assert sink.console() == sent
        assert conn.refreshes >= 2 and conn.reconnects == 0
        assert not any(event in ("token expiring", "token expired") for event, _ in emu.sockets(srv)[0].sent)
        assert NoticeKind.JWT_ERROR not in sink.kinds()


async def test_power_start_of_a_server_that_crashes_on_start_is_failed(panel_emu) -> None:
    from tests.fakes.emulator import CrashSpec

    emu, panel = panel_emu
    srv = emu.add_server("Survival", state="offline")
    srv.crash_on_start = CrashSpec(exit_code=1, restart=False)
    manager = ConnectionManager(panel, origin=emu.panel_url, timing=FAST)
    try:
        result = await manager.set_state(srv.identifier, PowerAction.START)
    finally:
        await manager.close()
    assert result.outcome is PowerOutcome.FAILED
    assert result.transitions == (PowerState.STARTING, PowerState.OFFLINE)
    assert "went offline" in result.describe()


async def test_power_restart_that_crashes_and_is_restarted_by_wings_is_done(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    await wait_until(lambda: conn.power is PowerState.RUNNING)
    emu.crash(srv, exit_code=137, oom=True, restart=True)  # a crash nobody asked for: Wings restarts it
    await wait_until(lambda: any("Out of memory: true" in line for line in sink.console()))
    await wait_until(lambda: conn.power is PowerState.RUNNING)
    statuses = [e.frame.arg for e in sink.events if e.frame.event == "status"]
    assert statuses[-3:] == ["offline", "starting", "running"]


async def test_a_refresh_that_finds_the_server_on_another_node_follows_it(profile: str) -> None:
    emulator = {
        "profile": profile,
        "token_lifetime": 3,
        "expiry_notices": False,
        "inbound_limits": FAST_WINGS_LIMITS,
    }
    async with own_connection(emulator) as (emu, srv, conn, sink):
        node2 = await emu.add_node()
        await conn.wait_ready(3)
        srv.emit_console("on node 1")
        await wait_until(lambda: sink.console() == ["on node 1"])
        await emu.transfer(srv, node2)  # the old node keeps its socket open, but quiet
        srv.emit_console("moved, nobody listening yet")
        await wait_until(lambda: conn.reconnects == 1 and conn.state is ConnectionState.CONNECTED, 5)
        await wait_until(lambda: [s.node for s in emu.sockets(srv)] == [node2])
        srv.emit_console("on node 2")
        await wait_until(lambda: "on node 2" in sink.console(), 3)
        assert sink.console() == ["on node 1", "moved, nobody listening yet", "on node 2"]


# -- replays never reach subscribers -------------------------------------------------------------------------


async def test_fetch_logs_replay_is_not_relayed_and_a_live_line_in_it_arrives_once(panel_emu) -> None:
    emu, panel = panel_emu
    srv = emu.add_server("Survival", state="running")
    manager = ConnectionManager(panel, origin=emu.panel_url, timing=FAST)
    linked = Sink()  # what the relay would post into a linked channel
    try:
        manager.subscribe(srv.identifier, linked)
        await manager.connection(srv.identifier).wait_ready(3)
        for i in range(30):
            srv.emit_console(f"history {i}")
        await wait_until(lambda: len(linked.console()) == 30)
        logs = asyncio.create_task(manager.fetch_logs(srv.identifier))
        await wait_until(lambda: ("send logs", []) in srv.received)
        srv.emit_console("live during the replay")
        lines = await logs
        assert lines[:30] == [f"history {i}" for i in range(30)]
        srv.emit_console("after")
        await wait_until(lambda: "after" in linked.console())
        seen = linked.console()
        assert seen == [f"history {i}" for i in range(30)] + ["live during the replay", "after"]
    finally:
        await manager.close()


async def test_command_output_never_holds_replayed_lines(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    for i in range(20):
        srv.emit_console(f"old {i}")
    conn, _sink = conn_factory(srv)
    await conn.wait_ready(3)
    logs = asyncio.create_task(actions.fetch_logs(conn))
    await wait_until(lambda: ("send logs", []) in srv.received)
    result = await actions.send_command(conn, "say hi", window=0.3)
    await logs
    assert not any(line.startswith("old ") for line in result.lines)


# -- garbage in, no silent death -----------------------------------------------------------------------------


async def test_huge_numbers_in_stats_are_skipped_not_fatal(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    srv.emit("stats", '{"memory_bytes":1,"uptime":1e400,"state":"running"}')
    srv.emit_console("still here")
    await wait_until(lambda: "still here" in sink.console())
    assert conn.state is ConnectionState.CONNECTED and conn.reconnects == 0
    assert conn.health().skipped_frames == 1


class SurprisingPanel(PanelClient):
    """The real client, except that the next `surprises` credential calls fail in a way nobody planned for."""

    surprises = 0

    async def websocket_credentials(self, server: str, **kw: Any) -> WebsocketCredentials:
        if self.surprises > 0:
            self.surprises -= 1
            raise RuntimeError("a bug nobody foresaw")
        return await super().websocket_credentials(server, **kw)


async def test_the_refresher_survives_a_panel_answer_without_a_token(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    conn, sink = conn_factory(srv)
    await conn.wait_ready(3)
    emu.fail_next("GET", "/websocket", 200, times=2)  # 200, but an error body: no token in it
    srv.emit("token expiring")
    await wait_until(lambda: conn.refreshes == 1, 5)
    assert conn.reconnects == 0 and conn.state is ConnectionState.CONNECTED
    assert NoticeKind.REFRESH_FAILED in sink.kinds()


async def test_the_refresher_survives_an_unexpected_failure(panel_emu) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    async with SurprisingPanel(emu.panel_url, emu.api_key) as panel:
        sink = Sink()
        conn = WingsConnection(panel, srv.identifier, sink, origin=emu.panel_url, timing=FAST)
        try:
            await conn.wait_ready(3)
            panel.surprises = 2
            srv.emit("token expiring")
            await wait_until(lambda: conn.refreshes == 1, 5)
            assert conn.reconnects == 0 and conn.state is ConnectionState.CONNECTED
            assert "token refresh" in (conn.health().loop_error or "")
        finally:
            await conn.close()


async def test_a_malformed_panel_answer_on_connect_is_retried(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    emu.fail_next("GET", "/websocket", 200, times=2)
    conn, _sink = conn_factory(srv)
    await conn.wait_ready(5)
    assert conn.reconnects == 2


async def test_an_unexpected_failure_on_connect_is_retried(panel_emu) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    async with SurprisingPanel(emu.panel_url, emu.api_key) as panel:
        panel.surprises = 2
        conn = WingsConnection(panel, srv.identifier, Sink(), origin=emu.panel_url, timing=FAST)
        try:
            await conn.wait_ready(5)
            assert conn.reconnects == 2 and "credentials" in (conn.health().loop_error or "")
        finally:
            await conn.close()


async def test_a_connection_that_stops_on_an_internal_error_says_so(panel_emu) -> None:
    emu, panel = panel_emu
    srv = emu.add_server("Survival", state="running")
    sink = Sink()

    def broken_rng() -> float:
        raise RuntimeError("a bug in the backoff")

    conn = WingsConnection(panel, srv.identifier, sink, origin=emu.panel_url, timing=FAST, rng=broken_rng)
    try:
        await conn.wait_ready(3)
        await emu.drop_sockets(srv)
        await wait_until(lambda: conn.state is ConnectionState.STOPPED)
        assert NoticeKind.STOPPED in sink.kinds()
        assert "internal error" in next(n.text for n in sink.notices if n.kind is NoticeKind.STOPPED)
        assert "RuntimeError" in (conn.health().loop_error or "")
    finally:
        await conn.close()


async def test_panel_outage_retries_back_off(panel_emu, conn_factory) -> None:
    emu, _ = panel_emu
    srv = emu.add_server("Survival", state="running")
    timing = dataclasses.replace(FAST, backoff_min=0.05, backoff_max=1.6)
    conn, _sink = conn_factory(srv, timing)
    await conn.wait_ready(3)
    emu.fail_next("GET", "/websocket", 502, times=100)
    before = sum(r.path.endswith("/websocket") for r in emu.requests)
    await emu.drop_sockets(srv)
    await asyncio.sleep(3.0)
    tries = sum(r.path.endswith("/websocket") for r in emu.requests) - before
    # one try every 50 ms would be 60; doubling from 50 ms to 1.6 s with full jitter is about a dozen
    assert 3 <= tries <= 20, tries


# -- unknown is not offline ----------------------------------------------------------------------------------


async def test_a_command_on_a_fresh_socket_waits_for_the_first_status(profile: str) -> None:
    emulator = {"profile": profile, "first_status_delay": 0.5}
    async with own_connection(emulator) as (_emu, srv, conn, _sink):
        result = await actions.send_command(conn, "say hello")  # opens the socket on demand
        assert "[Server] hello" in result.lines and not result.state_unknown
        assert ("send command", ["say hello"]) in srv.received


async def test_logs_on_a_fresh_socket_wait_for_the_first_status(profile: str) -> None:
    async with own_connection({"profile": profile, "first_status_delay": 0.5}) as (_emu, srv, conn, _sink):
        srv.emit_console("history")
        assert await actions.fetch_logs(conn) == ["history"]


async def test_a_still_unknown_state_is_said_not_called_offline() -> None:
    timing = dataclasses.replace(FAST, first_status_wait=0.2)
    async with own_connection({"first_status_delay": 2.0}, timing=timing) as (_emu, srv, conn, _sink):
        result = await actions.send_command(conn, "list", window=0.1)
        assert result.state_unknown and ("send command", ["list"]) in srv.received
    # a late status that says offline, within the wait, is still refused
    async with own_connection({"first_status_delay": 0.5}, state="offline") as (_e, off, conn, _k):
        with pytest.raises(ActionRefused, match="offline"):
            await actions.send_command(conn, "list")
        assert ("send command", ["list"]) not in off.received


async def test_a_full_socket_cap_is_retried_with_wings_reason_until_a_slot_frees() -> None:
    # Hardened Wings answers HTTP 400 {"error": "Too many open websocket connections."} once 30 sockets are open
    # (panel tabs, other bots): the reason says so, and the connection comes up once someone lets go.
    async with own_connection({"profile": "hardened", "max_sockets": 1}) as (emu, srv, conn, _sink):
        other = await connect(
            emu.socket_url(srv), additional_headers=Headers(Origin=emu.panel_url), proxy=None
        )
        try:
            conn.start()
            await wait_until(lambda: "Too many open websocket connections" in (conn.last_error or ""), 3)
            assert (
                conn.last_error
                == "Wings answered HTTP 400 to the socket upgrade: Too many open websocket connections"
            )
            assert conn.state is not ConnectionState.STOPPED
        finally:
            await other.close()
        await conn.wait_ready(3)


async def test_a_command_or_power_action_wings_throttles_is_never_reported_as_done() -> None:
    # A Wings whose buckets are tighter than the documented ones drops the frame and says `throttled`: the
    # action is told it did not run, rather than "no output" or a 30 s wait for a status that never comes.
    tight = {"send command": (1, 30.0), "_default": (1, 30.0)}
    async with own_connection({"profile": "hardened", "inbound_limits": tight}) as (_emu, srv, conn, _sink):
        await conn.wait_ready(3)
        await wait_until(lambda: conn.power is PowerState.RUNNING)
        first = await actions.send_command(conn, "say one", window=0.3)
        assert "> say one" in first.lines
        with pytest.raises(WingsError, match="sent, but Wings throttled the console connection"):
            await actions.send_command(conn, "say two", window=1.0)
        done = await actions.set_state(conn, PowerAction.KILL)
        assert done.outcome is PowerOutcome.DONE
        started = time.monotonic()
        throttled = await actions.set_state(conn, PowerAction.START)
        assert throttled.outcome is PowerOutcome.THROTTLED and time.monotonic() - started < 2
        assert throttled.describe().startswith("start sent, but Wings throttled the console connection")
        assert srv.state == "offline"


async def test_a_node_clock_running_ahead_is_named_as_clock_skew(profile: str) -> None:
    # The node's clock is 38 s ahead of the panel's, so a 40 s token lives 2 s on the node: Wings accepts it,
    # then replaces events with `jwt error` "exp claim is invalid". The channel is told the likely cause.
    emulator = {
        "profile": profile,
        "token_lifetime": 40,
        "clock_offset": 38,
        "expiry_notices": False,
        "stats_interval": 0.1,
    }
    async with own_connection(emulator) as (emu, _srv, conn, sink):
        emu.boot_time -= 3600  # Wings has been up a while: the panel's iat is after its boot
        conn.start()
        await wait_until(lambda: any(n.key == "jwt:clock skew" for n in sink.notices), 6)
        assert not any(n.key == "jwt:expired" for n in sink.notices)
        await wait_until(lambda: conn.refreshes >= 1, 3)  # each fresh token is still used while it lasts


def test_a_tls_failure_to_the_node_never_names_the_node_in_the_reason() -> None:
    from bot.wings.connection import _describe

    exc = ssl.SSLCertVerificationError(
        1,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, certificate is not "
        "valid for 'node.example.com'. (_ssl.c:1006)",
    )
    exc.reason = "CERTIFICATE_VERIFY_FAILED"
    text = _describe(exc)
    assert "node.example.com" not in text
    assert text.startswith("TLS certificate error talking to the node (CERTIFICATE_VERIFY_FAILED")


async def test_a_token_refresh_never_queues_behind_paced_commands() -> None:
    # Commands beyond hardened Wings' burst wait about a second each; a refresh `auth` must not wait behind them,
    # or its deadline runs out and the refresh "fails" while the token ages.
    real_pacing = dataclasses.replace(FAST, outbound_scale=1.0, auth_timeout=1.0)
    async with own_connection({"profile": "hardened"}, timing=real_pacing) as (_emu, srv, conn, sink):
        await conn.wait_ready(3)
        await wait_until(lambda: conn.power is PowerState.RUNNING)
        sends = [asyncio.create_task(conn.send(Event.SEND_COMMAND, f"say {i}")) for i in range(16)]
        await wait_until(lambda: sum(1 for e, _ in srv.received if e == "send command") >= 10, 2)
        srv.emit("token expiring")
        await wait_until(lambda: conn.refreshes == 1, 2)
        assert sum(1 for e, _ in srv.received if e == "send command") < 16  # the refresh went first
        assert NoticeKind.REFRESH_FAILED not in sink.kinds()
        await asyncio.gather(*sends)
        await wait_until(lambda: sum(1 for e, _ in srv.received if e == "send command") == 16, 2)
        assert [a[0] for e, a in srv.received if e == "send command"] == [f"say {i}" for i in range(16)]
        assert NoticeKind.THROTTLED not in sink.kinds()


async def test_a_wait_for_the_socket_that_times_out_leaves_no_waiter_behind(panel_emu, conn_factory) -> None:
    # Every /command or /power on a server whose Wings never answers waits here and gives up: no task may be left.
    emu, _ = panel_emu
    emu.auth_latency = 1000.0  # Wings takes the socket and never answers `auth`
    conn, _ = conn_factory(emu.add_server("Survival", state="running"))

    def waiters() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if "Event.wait" in repr(t.get_coro()) and not t.done()]

    before = len(waiters())
    for _ in range(3):
        with pytest.raises(WingsUnavailable):
            await conn.wait_ready(0.2)
    await asyncio.sleep(0)
    assert len(waiters()) == before
