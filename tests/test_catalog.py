"""The server catalog's background refresh: it survives garbage and surprises, backs off, and recovers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from bot.catalog import ServerCatalog
from bot.panel.backoff import Backoff
from bot.panel.client import PanelClient
from bot.panel.models import Server
from bot.panel.pacing import Priority
from tests.fakes.emulator import Emulator
from tests.waiting import wait_until


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as emulator:
        emulator.add_server("Survival")
        emulator.add_server("Creative")
        yield emulator


@pytest.fixture
async def panel(emu: Emulator) -> AsyncIterator[PanelClient]:
    async with PanelClient(emu.panel_url, emu.api_key, timeout=2.0) as client:
        yield client


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    low, high = Backoff(1.0, 60.0, rng=lambda: 0.0), Backoff(1.0, 60.0, rng=lambda: 1.0)
    assert [low.next() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert [high.next() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    high.reset()
    assert high.next() == 1


async def test_a_malformed_list_then_a_good_one(emu: Emulator, panel: PanelClient) -> None:
    emu.panel_garbage["list"] = "half-json"
    catalog = ServerCatalog(panel, refresh_every=60.0, retry_first=0.05, retry_cap=0.2)
    catalog.start()
    try:
        await wait_until(lambda: catalog.last_error is not None)
        assert "could not be understood" in str(catalog.last_error) and not catalog.servers
        await wait_until(lambda: sum(r.path == "/api/client" for r in emu.requests) >= 3)  # it goes on
        del emu.panel_garbage["list"]
        await wait_until(lambda: catalog.last_error is None)
        assert {s.name for s in catalog.servers} == {"Survival", "Creative"}
    finally:
        await catalog.close()


async def test_waits_back_off_reset_on_success_and_honour_the_budget(
    emu: Emulator, panel: PanelClient
) -> None:
    waits: list[float] = []
    parked = asyncio.Event()

    async def sleep(delay: float) -> None:
        waits.append(delay)
        if len(waits) == 3:
            del emu.panel_garbage["list"]
        elif len(waits) == 4:
            emu.panel_garbage["list"] = "challenge"
        elif len(waits) == 6:
            del emu.panel_garbage["list"]
            emu.fail_next("GET", "/api/client", 429, retry_after=7)
        elif len(waits) == 7:
            parked.set()
            await asyncio.Event().wait()

    emu.panel_garbage["list"] = "no-attributes"
    catalog = ServerCatalog(panel, refresh_every=60.0, sleep=sleep, rng=lambda: 1.0)
    catalog.start()
    try:
        await asyncio.wait_for(parked.wait(), 10)
    finally:
        await catalog.close()
    # three failures, a success (the plain interval), then failures again from the start: the panel's own
    # page in front of it, then a 429 whose Retry-After the view's bound turns into a local refusal
    assert waits[:6] == [1, 2, 4, 60, 1, 2]
    assert waits[6] >= 6.5
    assert "request budget is spent" in str(catalog.last_error)
    assert len(catalog.servers) == 2


class _Flaky(PanelClient):
    """A panel client whose first list raises something no one expects (a bug somewhere below)."""

    broken = True

    async def list_servers(self, *, per_page: int = 100, priority: Priority = Priority.VIEW) -> list[Server]:
        if self.broken:
            self.broken = False
            raise RuntimeError("boom")
        return await super().list_servers(per_page=per_page, priority=priority)


async def test_an_unexpected_error_is_logged_with_its_traceback_and_the_loop_goes_on(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str | None] = []  # last_error at each wait of the loop

    async def sleep(delay: float) -> None:
        seen.append(catalog.last_error)
        await asyncio.sleep(0.01)

    async with _Flaky(emu.panel_url, emu.api_key) as panel:
        catalog = ServerCatalog(panel, sleep=sleep)
        with caplog.at_level(logging.WARNING, logger="bot.catalog"):
            catalog.start()
            try:
                await wait_until(lambda: len(catalog.servers) == 2)
            finally:
                await catalog.close()
    assert any("RuntimeError" in (text or "") for text in seen)
    assert catalog.last_error is None
    record = next(r for r in caplog.records if r.name == "bot.catalog")
    assert record.exc_info is not None and "boom" in caplog.text


async def test_a_panel_error_is_logged_once_per_change(
    emu: Emulator, panel: PanelClient, caplog: pytest.LogCaptureFixture
) -> None:
    emu.panel_garbage["list"] = "html"
    catalog = ServerCatalog(panel, retry_first=0.02, retry_cap=0.05)
    with caplog.at_level(logging.WARNING, logger="bot.catalog"):
        catalog.start()
        try:
            await wait_until(lambda: sum(r.path == "/api/client" for r in emu.requests) >= 4)
        finally:
            await catalog.close()
    assert len([r for r in caplog.records if r.name == "bot.catalog"]) == 1


async def test_an_admins_lookup_does_not_ride_on_a_refused_view(emu: Emulator) -> None:
    async with PanelClient(emu.panel_url, emu.api_key, view_wait=0.5) as panel:
        panel.scheduler.block(2.0)  # as after a 429 with Retry-After: 2
        catalog = ServerCatalog(panel)
        view = asyncio.create_task(catalog.refresh())
        action = asyncio.create_task(catalog.refresh(priority=Priority.ACTION))
        with pytest.raises(Exception, match="request budget is spent"):
            await view
        assert len(await asyncio.wait_for(action, 5)) == 2


async def test_a_failed_refresh_for_a_command_shows_in_health_at_once(
    emu: Emulator, panel: PanelClient
) -> None:
    catalog = ServerCatalog(panel)  # no background refresh: only what commands ask
    await catalog.refresh()
    emu.panel_garbage["list"] = "proxy-502"
    with pytest.raises(Exception, match="HTTP 502"):
        await catalog.refresh()
    assert catalog.last_error is not None and "HTTP 502" in catalog.last_error
    del emu.panel_garbage["list"]
    await catalog.refresh()
    assert catalog.last_error is None


async def test_autocomplete_with_no_list_yet_asks_the_panel_at_a_bounded_pace(
    emu: Emulator, panel: PanelClient
) -> None:
    emu.panel_garbage["list"] = "html"  # a challenge page answers quickly, every time
    catalog = ServerCatalog(panel)
    for _ in range(20):  # a member typing in the server option, key after key
        assert await catalog.cached(0.5) == ()
    assert sum(r.path == "/api/client" for r in emu.requests) == 1
