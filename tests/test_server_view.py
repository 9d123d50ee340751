"""What views ask the panel while it fails: each server's power state at a backed-off pace, not at every call."""

from __future__ import annotations

from bot.catalog import ServerCatalog
from bot.panel.client import PanelClient
from bot.server_view import ServerViews
from bot.wings.manager import ConnectionManager
from tests.fakes.emulator import Emulator


async def test_a_failing_panel_is_asked_each_server_s_state_once_per_backoff() -> None:
    async with Emulator() as emu, PanelClient(emu.panel_url, emu.api_key) as panel:
        for name in ("Survival", "Creative", "Lobby"):
            emu.add_server(name)
        catalog = ServerCatalog(panel)
        await catalog.refresh()
        manager = ConnectionManager(panel, origin=emu.panel_url)
        try:
            views = ServerViews(catalog, manager, panel, panel_wait=2.0)
            emu.fail_next("GET", "/resources", 502, times=1000)  # the node behind the panel is down
            for _ in range(5):  # several members asking /servers one after the other
                listing = await views.server_list()
                assert {row.state for row in listing.rows} == {"not checked"}
                assert listing.unchecked is not None and "could not reach the node" in listing.unchecked
            asked = [r for r in emu.requests if r.path.endswith("/resources")]
            assert len(asked) == 3  # once per server: the next try waits about a second, then longer
        finally:
            await manager.close()
