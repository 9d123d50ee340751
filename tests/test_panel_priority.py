"""The panel budget by priority: the pacer's pace, the queue's order and the views' bound as plain logic, then
the client against the emulator's rate limiter."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from bot.panel.client import PanelClient
from bot.panel.errors import PanelBusy
from bot.panel.pacing import Priority, Refusal, RequestPacer, RequestQueue, Ticket
from tests.fakes.emulator import Emulator, FakeServer, RecordedRequest
from tests.waiting import wait_until


def test_pacer_bursts_then_spreads() -> None:
    pacer = RequestPacer(per_minute=60, burst=3)
    assert [pacer.delay(100.0, ahead) for ahead in range(5)] == pytest.approx([0, 0, 0, 1, 2])
    for _ in range(3):
        pacer.take(100.0)
    assert pacer.delay(100.0) == pytest.approx(1.0)
    assert pacer.delay(100.5) == pytest.approx(0.5)
    assert pacer.delay(101.0) == 0


def test_pacer_slows_down_when_panel_budget_runs_low() -> None:
    pacer = RequestPacer(per_minute=6000, burst=100, low_water=30)
    assert pacer.delay(0.0) == 0
    pacer.take(0.0)
    pacer.observe(limit="720", remaining="10")
    assert pacer.delay(0.0) >= 3.0  # 10 left in the window: about one every 3 s
    assert pacer.delay(0.0, ahead=2) >= 9.0
    pacer.observe(limit="720", remaining="700")  # a new window
    assert pacer.delay(0.0) == 0


def test_pacer_blocks_after_429() -> None:
    pacer = RequestPacer()
    pacer.block(10.0, 5.0)
    assert pacer.delay(11.0) == pytest.approx(4.0)
    assert pacer.delay(16.0) == 0


def _drain(queue: RequestQueue, until: float, step: float = 0.25) -> list[tuple[float, Ticket]]:
    """Poll like the scheduler's timer would, every `step` s; the grants in order with their times."""
    grants: list[tuple[float, Ticket]] = []
    now = 0.0
    while now <= until:
        grants += [(now, t) for t in queue.poll(now).granted]
        now += step
    return grants


def test_waiting_requests_go_by_priority_then_arrival() -> None:
    pacer = RequestPacer(per_minute=60, burst=1)  # one request a second
    queue = RequestQueue(pacer, max_wait={})  # no bound here: only the order is tested
    pacer.take(0.0)  # the budget is spent for the next second
    arrivals = [Priority.VIEW, Priority.ACTION, Priority.VIEW, Priority.CREDENTIALS, Priority.ACTION]
    tickets = [queue.submit(0.0, p) for p in arrivals]
    assert all(isinstance(t, Ticket) for t in tickets)
    assert queue.poll(0.0).granted == ()
    grants = _drain(queue, until=6.0)
    order = [t.seq for _, t in grants]
    assert order == [4, 2, 5, 1, 3]  # CREDENTIALS, ACTION x2 in arrival order, VIEW x2 in arrival order
    assert [when for when, _ in grants] == pytest.approx([1, 2, 3, 4, 5])


def test_a_late_credentials_request_overtakes_waiting_actions() -> None:
    pacer = RequestPacer(per_minute=60, burst=1)
    queue = RequestQueue(pacer, max_wait={})
    pacer.take(0.0)
    first, second = queue.submit(0.0, Priority.ACTION), queue.submit(0.0, Priority.ACTION)
    late = queue.submit(0.5, Priority.CREDENTIALS)
    grants = [t for _, t in _drain(queue, until=4.0)]
    assert grants == [late, first, second]


def test_a_view_that_would_wait_too_long_is_refused_at_once() -> None:
    pacer = RequestPacer(per_minute=60, burst=1)
    queue = RequestQueue(pacer, max_wait={Priority.VIEW: 3.0})
    pacer.take(0.0)
    for _ in range(2):
        assert isinstance(queue.submit(0.0, Priority.ACTION), Ticket)  # actions queue however long
    assert isinstance(queue.submit(0.0, Priority.VIEW), Ticket)  # third in line: 3 s, within the bound
    refused = queue.submit(0.0, Priority.VIEW)
    assert isinstance(refused, Refusal) and refused.wait == pytest.approx(4.0)
    assert isinstance(queue.submit(0.0, Priority.ACTION), Ticket)
    assert len(queue) == 4


def test_a_waiting_view_gives_up_when_higher_priorities_push_it_past_its_bound() -> None:
    pacer = RequestPacer(per_minute=60, burst=1)
    queue = RequestQueue(pacer, max_wait={Priority.VIEW: 3.0})
    pacer.take(0.0)
    view = queue.submit(0.0, Priority.VIEW)
    assert isinstance(view, Ticket)
    assert queue.poll(0.0).expired == ()
    for _ in range(3):
        queue.submit(0.1, Priority.CREDENTIALS)
    result = queue.poll(0.1)
    assert [t for t, _ in result.expired] == [view]  # now 4th in line: ~4 s, past its 3 s bound
    assert result.expired[0][1] == pytest.approx(3.9)
    assert len(queue) == 3 and result.wake_in == pytest.approx(0.9)


def test_views_are_refused_while_the_panel_blocks_after_a_429_but_credentials_wait() -> None:
    pacer = RequestPacer()
    queue = RequestQueue(pacer)  # the default bound on views
    pacer.block(0.0, 10.0)
    assert isinstance(queue.submit(0.0, Priority.VIEW), Refusal)
    creds = queue.submit(0.0, Priority.CREDENTIALS)
    result = queue.poll(0.0)
    assert result.granted == () and result.wake_in == pytest.approx(10.0)
    assert queue.poll(10.0).granted == (creds,)


def test_a_cancelled_request_leaves_the_line() -> None:
    pacer = RequestPacer(per_minute=60, burst=1)
    queue = RequestQueue(pacer, max_wait={})
    pacer.take(0.0)
    gone, stays = queue.submit(0.0, Priority.ACTION), queue.submit(0.0, Priority.ACTION)
    assert isinstance(gone, Ticket)
    queue.cancel(gone)
    assert queue.poll(1.0).granted == (stays,)
    assert queue.poll(5.0).wake_in is None


# -- against the emulator's rate limiter ---------------------------------------------------------------------


async def test_with_the_window_spent_views_fail_fast_and_credentials_go_first_when_it_reopens() -> None:
    async with Emulator(rate_limit=4, rate_window=2.0) as emu:
        srv = emu.add_server("Survival", state="running")
        await _spend_the_window(emu)  # the key's user spent it elsewhere (the panel's web UI counts too)
        async with PanelClient(emu.panel_url, emu.api_key, view_wait=0.5) as panel:
            started = time.monotonic()
            with pytest.raises(PanelBusy) as info:  # sent, met a 429 for ~2 s: not worth waiting for
                await panel.resources(srv.identifier)
            assert time.monotonic() - started < 0.5 and info.value.retry_after > 1.0
            assert "request budget is spent" in str(info.value)
            # An admin's action and a connection's credentials wait for the window to reopen ...
            action = asyncio.create_task(panel.get_server(srv.identifier))
            await wait_until(lambda: panel.scheduler.waiting == 1)
            credentials = asyncio.create_task(panel.websocket_credentials(srv.identifier))
            await wait_until(lambda: panel.scheduler.waiting == 2)
            started = time.monotonic()
            with pytest.raises(PanelBusy):  # ... while a view is refused without a place in line
                await panel.resources(srv.identifier, priority=Priority.VIEW)
            assert time.monotonic() - started < 0.1
            creds = await asyncio.wait_for(credentials, 5)
            details = await asyncio.wait_for(action, 5)
        assert creds.token and details.server.uuid == srv.uuid
        sent = [r.path.rsplit("/", 1)[-1] for r in _server_requests(emu, srv)]
        assert sent == ["resources", "websocket", srv.identifier]  # the credentials went first


async def _spend_the_window(emu: Emulator) -> None:
    headers = {"Authorization": f"Bearer {emu.api_key}", "Accept": "application/json"}
    async with aiohttp.ClientSession(emu.panel_url, headers=headers) as http:
        for _ in range(emu.rate_limit):
            async with http.get("/api/client/account") as resp:
                assert resp.status == 200
        async with http.get("/api/client/account") as resp:
            assert resp.status == 429


def _server_requests(emu: Emulator, srv: FakeServer) -> list[RecordedRequest]:
    return [r for r in emu.requests if f"/servers/{srv.identifier}" in r.path]


async def test_a_request_cancelled_while_waiting_gives_its_place_to_the_next() -> None:
    async with Emulator() as emu:
        srv = emu.add_server("Survival")
        async with PanelClient(emu.panel_url, emu.api_key) as panel:
            panel.scheduler.block(0.5)
            gone = asyncio.create_task(panel.get_server(srv.identifier))
            stays = asyncio.create_task(panel.get_server(srv.identifier))
            await wait_until(lambda: panel.scheduler.waiting == 2)
            gone.cancel()
            await wait_until(lambda: panel.scheduler.waiting == 1)
            assert (await asyncio.wait_for(stays, 5)).server.name == "Survival"
        assert len(_server_requests(emu, srv)) == 1
