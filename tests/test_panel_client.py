"""The panel client against the emulator's Client API: shapes, pagination, every error status, 429, timeouts."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.panel.client import PanelClient
from bot.panel.errors import (
    ConflictKind,
    PanelAuthError,
    PanelBadAnswer,
    PanelConflict,
    PanelError,
    PanelForbidden,
    PanelNotFound,
    PanelRateLimited,
    PanelServerError,
    PanelUnavailable,
    PanelValidationError,
    error_for_status,
)
from bot.panel.models import WebsocketCredentials
from bot.panel.pacing import RequestPacer
from tests.fakes.emulator import Emulator


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[PanelClient]:
    async with PanelClient(emu.panel_url, emu.api_key, timeout=2.0) as panel:
        yield panel


async def test_sends_bearer_key_and_json_accept(emu: Emulator, client: PanelClient) -> None:
    emu.add_server("Survival")
    await client.list_servers()
    req = emu.requests[-1]
    assert req.headers["Authorization"] == f"Bearer {emu.api_key}"
    assert "application/json" in req.headers["Accept"]


async def test_lists_every_page(emu: Emulator, client: PanelClient) -> None:
    names = [f"srv-{i:03d}" for i in range(120)]
    for name in names:
        emu.add_server(name)
    servers = await client.list_servers(per_page=50)
    assert [s.name for s in servers] == names
    assert [r.query.get("page") for r in emu.requests if r.path == "/api/client"] == ["1", "2", "3"]


async def test_single_page_with_empty_links_quirk(emu: Emulator, client: PanelClient) -> None:
    emu.add_server("Only")
    servers = await client.list_servers()
    assert [s.name for s in servers] == ["Only"]


async def test_server_details_carry_permissions(emu: Emulator, client: PanelClient) -> None:
    srv = emu.add_server("Sub", permissions=["websocket.connect", "control.console"])
    details = await client.get_server(srv.identifier)
    assert details.server.uuid == srv.uuid and details.server.identifier == srv.identifier
    assert {"websocket.connect", "control.console"} <= details.user_permissions
    by_uuid = await client.get_server(srv.uuid)
    assert by_uuid.server.name == "Sub"


async def test_websocket_credentials_resources_account(emu: Emulator, client: PanelClient) -> None:
    srv = emu.add_server("Survival", state="running")
    creds = await client.websocket_credentials(srv.identifier)
    assert creds.socket.startswith("ws://127.0.0.1:") and creds.socket.endswith(f"/api/servers/{srv.uuid}/ws")
    assert creds.token.count(".") == 2
    assert creds.token not in repr(creds)
    res = await client.resources(srv.identifier)
    assert res.current_state == "running"
    account = await client.account()
    assert account.id >= 1


async def test_power_and_command(emu: Emulator, client: PanelClient) -> None:
    srv = emu.add_server("Survival", state="running")
    await client.send_command(srv.identifier, "say hi")
    assert any("say hi" in line for line in srv.console_history)
    await client.send_power(srv.identifier, "kill")
    assert srv.state == "offline"


async def test_401_bad_key_names_the_setting_not_the_key(emu: Emulator) -> None:
    emu.add_server("Survival")
    bad = "ptlc_wrongwrongwrongSECRET" + "y" * 20
    async with PanelClient(emu.panel_url, bad) as panel:
        with pytest.raises(PanelAuthError) as info:
            await panel.list_servers()
    assert info.value.status == 401 and info.value.detail == "Unauthenticated."
    assert "PANEL_API_KEY" in str(info.value) and bad not in str(info.value) and bad not in repr(info.value)


async def test_404_unknown_server(client: PanelClient) -> None:
    with pytest.raises(PanelNotFound) as info:
        await client.get_server("deadbeef")
    assert info.value.status == 404 and "does not know this server" in str(info.value)


async def test_403_missing_subuser_permission(emu: Emulator, client: PanelClient) -> None:
    srv = emu.add_server("Sub", permissions=["websocket.connect"], state="running")
    with pytest.raises(PanelForbidden) as info:
        await client.send_power(srv.identifier, "start")
    assert info.value.detail == "This action is unauthorized."
    assert "lacks the permission" in str(info.value)


async def test_403_missing_websocket_permission(emu: Emulator, client: PanelClient) -> None:
    srv = emu.add_server("Sub", permissions=["control.console"])
    with pytest.raises(PanelForbidden) as info:
        await client.websocket_credentials(srv.identifier)
    assert "websocket.connect" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "kind", "words"),
    [
        ({"suspended": True}, ConflictKind.SUSPENDED, "suspended"),
        ({"status": "installing"}, ConflictKind.INSTALLING, "installing"),
        ({"transferring": True}, ConflictKind.TRANSFERRING, "moved to another node"),
    ],
)
async def test_409_conflicts(
    emu: Emulator, client: PanelClient, kwargs: dict, kind: ConflictKind, words: str
) -> None:
    srv = emu.add_server("Busy", **kwargs)
    with pytest.raises(PanelConflict) as info:
        await client.resources(srv.identifier)
    assert info.value.status == 409 and info.value.kind is kind and words in str(info.value)


async def test_502_command_while_offline(emu: Emulator, client: PanelClient) -> None:
    srv = emu.add_server("Down", state="offline")
    with pytest.raises(PanelConflict) as info:
        await client.send_command(srv.identifier, "list")
    assert info.value.status == 502 and "must be online" in str(info.value)


async def test_422_validation(emu: Emulator, client: PanelClient) -> None:
    srv = emu.add_server("Survival", state="running")
    with pytest.raises(PanelValidationError) as info:
        await client.send_command(srv.identifier, "")
    assert info.value.status == 422 and "command" in info.value.detail


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_means_panel_or_node_trouble(emu: Emulator, client: PanelClient, status: int) -> None:
    srv = emu.add_server("Survival")
    emu.fail_next("GET", "/resources", status)
    with pytest.raises(PanelServerError) as info:
        await client.resources(srv.identifier)
    assert info.value.status == status and "try again" in str(info.value)


async def test_429_waits_retry_after_then_succeeds(emu: Emulator, client: PanelClient) -> None:
    srv = emu.add_server("Survival")
    emu.fail_next("GET", f"/servers/{srv.identifier}", 429, retry_after=1)
    started = time.monotonic()
    details = await client.get_server(srv.identifier)
    assert details.server.name == "Survival"
    assert time.monotonic() - started >= 0.9
    assert sum(r.path.endswith(srv.identifier) for r in emu.requests) == 2


async def test_429_gives_up_after_bounded_retries(emu: Emulator) -> None:
    srv = emu.add_server("Survival")
    emu.fail_next("GET", f"/servers/{srv.identifier}", 429, retry_after=0, times=10)
    async with PanelClient(emu.panel_url, emu.api_key, max_retries=2) as panel:
        with pytest.raises(PanelRateLimited) as info:
            await panel.get_server(srv.identifier)
    assert "rate-limiting" in str(info.value)
    assert sum(r.path.endswith(srv.identifier) for r in emu.requests) == 3


async def test_429_longer_than_allowed_wait_is_raised_at_once(emu: Emulator) -> None:
    srv = emu.add_server("Survival")
    emu.fail_next("GET", f"/servers/{srv.identifier}", 429, retry_after=50)
    async with PanelClient(emu.panel_url, emu.api_key, max_retry_wait=5) as panel:
        with pytest.raises(PanelRateLimited) as info:
            await panel.get_server(srv.identifier)
    assert info.value.retry_after == 50


async def test_a_garbage_retry_after_blocks_for_at_most_a_window(emu: Emulator) -> None:
    srv = emu.add_server("Survival")
    emu.fail_next("GET", f"/servers/{srv.identifier}", 429, retry_after=10**9)
    async with PanelClient(emu.panel_url, emu.api_key, max_retry_wait=5) as panel:
        with pytest.raises(PanelRateLimited) as info:
            await panel.get_server(srv.identifier)
        assert info.value.retry_after == 60
        assert panel.pacer.delay(time.monotonic()) <= 60


async def test_real_rate_limiter_window(emu: Emulator) -> None:
    emu.rate_limit, emu.rate_window = 3, 1.0
    emu.add_server("Survival")
    pacer = RequestPacer(per_minute=6000, burst=50, window=1.0)
    async with PanelClient(emu.panel_url, emu.api_key, pacer=pacer) as panel:
        for _ in range(8):
            await panel.list_servers()
    # every call succeeded: the pacer spread them out as Remaining fell, or waited out a 429's Retry-After
    assert sum(1 for r in emu.requests if r.path == "/api/client") >= 8


async def test_timeout_becomes_unavailable(emu: Emulator) -> None:
    emu.add_server("Survival")
    emu.fail_next("GET", "/api/client", 0, delay=2.0)
    async with PanelClient(emu.panel_url, emu.api_key, timeout=0.3) as panel:
        with pytest.raises(PanelUnavailable) as info:
            await panel.list_servers()
    assert "did not answer within 0.3 s" in str(info.value)


async def test_unreachable_panel() -> None:
    async with PanelClient("http://127.0.0.1:9", "ptlc_x", timeout=1.0) as panel:
        with pytest.raises(PanelUnavailable) as info:
            await panel.account()
    assert "could not be reached" in str(info.value) and "127.0.0.1" not in str(info.value)


async def test_html_answer_is_a_clear_error(emu: Emulator) -> None:
    """A PANEL_URL pointing at something that is not the panel API answers HTML, not JSON."""
    async with PanelClient(emu.wings_url, emu.api_key) as panel:
        with pytest.raises(PanelError) as info:
            await panel.account()
    assert info.value.status == 404 or "not JSON" in str(info.value)


# -- garbage in --------------------------------------------------------------------------------------------

CALLS: dict[str, Callable[[PanelClient, str], Awaitable[object]]] = {
    "list": lambda panel, ident: panel.list_servers(),
    "server": lambda panel, ident: panel.get_server(ident),
    "websocket": lambda panel, ident: panel.websocket_credentials(ident),
    "resources": lambda panel, ident: panel.resources(ident),
    "account": lambda panel, ident: panel.account(),
    "power": lambda panel, ident: panel.send_power(ident, "kill"),
    "command": lambda panel, ident: panel.send_command(ident, "say hi"),
}
PROXY_KINDS = ["html", "challenge", "proxy-401", "proxy-403", "proxy-404", "proxy-502"]
SHAPE_KINDS = ["half-json", "empty", "null", "array", "types", "deep"]
# Further wrong shapes that matter for each call (they touch the fields it reads).
MORE_KINDS = {
    "list": ["no-data", "no-attributes", "strings", "nan", "infinity", "huge", "negative", "pages-text"],
    "server": ["no-attributes", "nan"],
    "websocket": ["no-data", "no-token", "no-socket", "bad-socket"],
    "resources": ["no-attributes", "strings", "nan", "infinity", "huge", "negative"],
    "account": ["no-attributes", "strings", "nan", "huge", "negative"],
}
CASES = [(call, kind) for call in CALLS for kind in PROXY_KINDS] + [
    (call, kind) for call in MORE_KINDS for kind in SHAPE_KINDS + MORE_KINDS[call]
]


@pytest.mark.parametrize(("call", "kind"), CASES)
async def test_garbage_is_a_panel_error(
    emu: Emulator, client: PanelClient, call: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    srv = emu.add_server("Survival", state="running")
    emu.panel_garbage[call] = kind
    with caplog.at_level(logging.WARNING, logger="bot.panel.client"), pytest.raises(PanelBadAnswer) as info:
        await CALLS[call](client, srv.identifier)
    error = info.value
    assert isinstance(error, PanelUnavailable)  # retried like an outage, never a verdict on key or server
    assert emu.panel_url not in str(error) and "127.0.0.1" not in str(error)
    assert str(error).endswith("try again shortly.")
    assert emu.panel_url in caplog.text  # the address goes to the log, for the operator
    assert srv.state == "running"  # a proxy's page in the panel's place: the action never happened


async def test_unused_odd_fields_and_pagination_quirks_are_tolerated(
    emu: Emulator, client: PanelClient
) -> None:
    for i in range(3):
        emu.add_server(f"srv{i}")
    emu.panel_garbage["list"] = "pages-null"  # no page count: one page
    assert len(await client.list_servers()) == 3
    emu.panel_garbage["server"] = "strings"  # numbers Wingbeat does not read (limits, ports) as strings
    assert (await client.get_server(emu.servers()[0].identifier)).server.name == "srv0"
    emu.panel_garbage["list"] = (
        "pages-endless"  # a billion pages claimed: paging stops at the first empty one
    )
    servers = await client.list_servers(per_page=2)
    assert [s.name for s in servers] == ["srv0", "srv1", "srv2"]
    assert sum(1 for r in emu.requests if r.path == "/api/client") == 1 + 3


async def test_a_good_answer_after_garbage_is_read_normally(emu: Emulator, client: PanelClient) -> None:
    srv = emu.add_server("Survival", state="running")
    emu.panel_garbage["websocket"] = "no-token"
    with pytest.raises(PanelBadAnswer) as info:
        await client.websocket_credentials(srv.identifier)
    assert "token" in info.value.detail
    del emu.panel_garbage["websocket"]
    assert (await client.websocket_credentials(srv.identifier)).socket.startswith("ws://")


def test_detail_of_a_bad_token_never_quotes_it() -> None:
    secret = "eyJhbGciOi.secret part"
    with pytest.raises(PanelBadAnswer) as info:
        WebsocketCredentials.from_answer({"data": {"token": secret, "socket": "wss://node:8080/ws"}})
    assert "secret" not in info.value.detail and "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"message": "Unauthenticated."}),  # Laravel's default shape, not the panel's
        (403, {"errors": []}),
        (404, ["not", "an", "object"]),
        (404, None),
    ],
)
def test_error_status_without_the_panels_error_format_is_unavailability(status: int, body: object) -> None:
    error = error_for_status(status, body)
    assert isinstance(error, PanelBadAnswer) and error.status == status
    assert f"HTTP {status}" in str(error) and "try again" in str(error)


def test_panel_errors_keep_their_meaning() -> None:
    body = {"errors": [{"code": "AuthenticationException", "status": "401", "detail": "Unauthenticated."}]}
    assert isinstance(error_for_status(401, body), PanelAuthError)
    html_429 = error_for_status(429, None, retry_after=3)  # any proxy's 429 means the same
    assert isinstance(html_429, PanelRateLimited) and html_429.retry_after == 3
