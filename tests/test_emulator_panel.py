"""Tests of the emulated panel Client API (tests/fakes/panel_app.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.emulator import Emulator
from tests.fakes.jwt_hs256 import decode, decode_unverified

JSON = {"Accept": "application/json"}


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(start_delay=0.05, stop_delay=0.05) as e:
        yield e


@pytest.fixture
async def http(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {emu.api_key}", **JSON}
    async with aiohttp.ClientSession(emu.panel_url, headers=headers) as session:
        yield session


async def get(http: aiohttp.ClientSession, path: str, **kw: Any) -> tuple[int, Any, Any]:
    async with http.get(path, **kw) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp.headers


async def post(
    http: aiohttp.ClientSession, path: str, payload: Any = None, **kw: Any
) -> tuple[int, Any, Any]:
    async with http.post(path, json=payload, **kw) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp.headers


def error(status: int, code: str, detail: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "status": str(status), "detail": detail}]}


async def test_list_pagination_and_links_quirk(emu: Emulator, http: aiohttp.ClientSession) -> None:
    for i in range(3):
        emu.add_server(f"srv{i}")
    emu.add_server("not mine", permissions=[])
    status, body, _ = await get(http, "/api/client")
    assert status == 200
    assert body["object"] == "list"
    assert [d["attributes"]["name"] for d in body["data"]] == ["srv0", "srv1", "srv2"]
    assert body["meta"]["pagination"] == {
        "total": 3,
        "count": 3,
        "per_page": 50,
        "current_page": 1,
        "total_pages": 1,
        "links": [],
    }
    status, body, _ = await get(http, "/api/client?per_page=2&page=1")
    page = body["meta"]["pagination"]
    assert (page["count"], page["total_pages"]) == (2, 2)
    assert set(page["links"]) == {"next"} and "page=2" in page["links"]["next"]
    status, body, _ = await get(http, "/api/client?per_page=2&page=2")
    assert [d["attributes"]["name"] for d in body["data"]] == ["srv2"]
    assert set(body["meta"]["pagination"]["links"]) == {"previous"}
    attrs = body["data"][0]["attributes"]
    for key in ("identifier", "uuid", "is_suspended", "is_installing", "is_transferring", "status", "limits"):
        assert key in attrs
    assert attrs["relationships"]["allocations"]["data"][0]["object"] == "allocation"


async def test_list_filters(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.add_server("Alpha")
    emu.add_server("Beta")
    _, body, _ = await get(http, "/api/client?filter[name]=alp")
    assert [d["attributes"]["name"] for d in body["data"]] == ["Alpha"]
    status, body, _ = await get(http, "/api/client?filter[bogus]=x")
    assert status == 400


async def test_view_server_by_identifier_and_uuid(emu: Emulator, http: aiohttp.ClientSession) -> None:
    srv = emu.add_server("mc", permissions=["websocket.connect", "control.console"])
    for key in (srv.identifier, srv.uuid):
        status, body, _ = await get(http, f"/api/client/servers/{key}")
        assert status == 200
        assert body["object"] == "server"
        assert body["attributes"]["uuid"] == srv.uuid
        assert body["meta"] == {
            "is_server_owner": False,
            "user_permissions": ["websocket.connect", "control.console"],
        }
    owner = emu.add_server("own")
    _, body, _ = await get(http, f"/api/client/servers/{owner.identifier}")
    assert body["meta"] == {"is_server_owner": True, "user_permissions": ["*"]}


async def test_not_found_texts(emu: Emulator, http: aiohttp.ClientSession) -> None:
    hidden = emu.add_server("other", permissions=[])
    status, body, _ = await get(http, "/api/client/servers/deadbeef")
    assert (status, body) == (
        404,
        error(404, "NotFoundHttpException", "The requested resource could not be found on the server."),
    )
    status, body, _ = await get(http, "/api/client/nope")
    assert (status, body["errors"][0]["code"]) == (404, "NotFoundHttpException")
    status, body, _ = await get(http, f"/api/client/servers/{hidden.identifier}")
    assert (status, body) == (
        404,
        error(404, "NotFoundHttpException", "The requested resource does not exist on this server."),
    )


async def test_auth_and_accept(emu: Emulator) -> None:
    async with aiohttp.ClientSession(emu.panel_url) as s:
        async with s.get("/api/client", headers={"Authorization": "Bearer wrong", **JSON}) as r:
            assert r.status == 401
            assert await r.json() == error(401, "AuthenticationException", "Unauthenticated.")
        async with s.get("/api/client", headers=JSON) as r:
            assert r.status == 401
        async with s.get(
            "/api/client", headers={"Authorization": "Bearer wrong"}, allow_redirects=False
        ) as r:
            assert r.status == 302
            assert r.headers["Location"] == emu.panel_url + "/auth/login"
        key = "ptla_" + "y" * 43
        async with s.get("/api/client", headers={"Authorization": f"Bearer {key}", **JSON}) as r:
            assert r.status == 403
        headers = {"Authorization": f"Bearer {emu.api_key}", "Accept": "Application/vnd.pterodactyl.v1+json"}
        async with s.get("/api/client", headers=headers) as r:
            assert r.status == 200


async def test_requests_are_recorded(emu: Emulator, http: aiohttp.ClientSession) -> None:
    await get(http, "/api/client?per_page=5")
    req = emu.requests[-1]
    assert (req.method, req.path, req.query) == ("GET", "/api/client", {"per_page": "5"})
    assert req.headers["Authorization"] == f"Bearer {emu.api_key}"
    assert req.headers["Accept"] == "application/json"


@pytest.mark.parametrize("profile", ["classic", "hardened"])
async def test_websocket_token(profile: str) -> None:
    async with Emulator(profile=profile, token_lifetime=4) as emu:
        srv = emu.add_server("mc")
        headers = {"Authorization": f"Bearer {emu.api_key}", **JSON}
        async with aiohttp.ClientSession(emu.panel_url, headers=headers) as http:
            before = int(time.time())
            status, body, _ = await get(http, f"/api/client/servers/{srv.identifier}/websocket")
    assert status == 200
    port = emu.wings_url.rsplit(":", 1)[1]
    assert body["data"]["socket"] == f"ws://127.0.0.1:{port}/api/servers/{srv.uuid}/ws"
    header, claims = decode(body["data"]["token"], emu.node_secret)
    assert header["alg"] == "HS256" and header["jti"] == claims["jti"]
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 4 and claims["iat"] >= before
    assert claims["nbf"] == claims["iat"] - 300
    assert claims["server_uuid"] == srv.uuid and claims["permissions"] == ["*"]
    source = f"1{srv.uuid}".encode()
    if profile == "classic":
        assert claims["jti"] == hashlib.md5(source).hexdigest()
        assert "scope" not in claims and claims["user_id"] == 1
    else:
        assert claims["jti"] == hashlib.sha256(source).hexdigest()
        assert claims["scope"] == "websocket" and "user_id" not in claims


async def test_websocket_token_refusals(emu: Emulator, http: aiohttp.ClientSession) -> None:
    sub = emu.add_server("sub", permissions=["control.console"])
    status, body, _ = await get(http, f"/api/client/servers/{sub.identifier}/websocket")
    assert (status, body) == (
        403,
        error(
            403, "HttpForbiddenException", "You do not have permission to connect to this server's websocket."
        ),
    )
    susp = emu.add_server("susp", suspended=True)
    status, body, _ = await get(http, f"/api/client/servers/{susp.identifier}/websocket")
    assert (status, body) == (
        409,
        error(
            409,
            "ServerStateConflictException",
            "This server is currently suspended and the functionality requested is unavailable.",
        ),
    )
    # GET of the server itself still works while suspended
    status, body, _ = await get(http, f"/api/client/servers/{susp.identifier}")
    assert status == 200 and body["attributes"]["is_suspended"] is True


async def test_conflict_messages(emu: Emulator, http: aiohttp.ClientSession) -> None:
    cases = {
        emu.add_server("i", status="installing"): "not yet completed its installation",
        emu.add_server("r", status="restoring_backup"): "restoring from a backup",
        emu.add_server("t", transferring=True): "being transferred to a new machine",
    }
    for srv, text in cases.items():
        for method, path in (
            ("get", "resources"),
            ("post", "power"),
            ("post", "command"),
            ("get", "websocket"),
        ):
            url = f"/api/client/servers/{srv.identifier}/{path}"
            async with http.request(method, url, json={"signal": "start", "command": "x"}) as r:
                body = await r.json()
                assert r.status == 409, (srv.name, path)
                assert body["errors"][0]["code"] == "ServerStateConflictException"
                assert text in body["errors"][0]["detail"]
    admin = emu.add_server("adm", status="installing", permissions=["*", "admin.websocket.errors"])
    status, _, _ = await get(http, f"/api/client/servers/{admin.identifier}/websocket")
    assert status == 200  # root admins may watch an installing server


async def test_resources_are_cached(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.resources_cache = 0.3
    srv = emu.add_server("mc")
    path = f"/api/client/servers/{srv.identifier}/resources"
    status, body, _ = await get(http, path)
    assert status == 200 and body["object"] == "stats"
    assert body["attributes"]["current_state"] == "offline"
    assert set(body["attributes"]["resources"]) == {
        "memory_bytes",
        "cpu_absolute",
        "disk_bytes",
        "network_rx_bytes",
        "network_tx_bytes",
        "uptime",
    }
    await srv.set_power("running")
    _, body, _ = await get(http, path)
    assert body["attributes"]["current_state"] == "offline"  # still cached
    await asyncio.sleep(0.35)
    _, body, _ = await get(http, path)
    assert body["attributes"]["current_state"] == "running"


async def test_power_flow(emu: Emulator, http: aiohttp.ClientSession) -> None:
    srv = emu.add_server("mc")
    url = f"/api/client/servers/{srv.identifier}/power"
    status, _, _ = await post(http, url, {"signal": " start "})
    assert status == 204
    assert srv.state == "starting"
    await asyncio.sleep(0.1)
    assert srv.state == "running"
    status, _, _ = await post(http, url, {"signal": "start"})
    assert status == 204  # Wings errors are not reported back to the API caller
    status, body, _ = await post(http, url, {"signal": "explode"})
    assert status == 422
    assert body["errors"][0]["meta"] == {"source_field": "signal", "rule": "in"}
    assert body["errors"][0]["detail"] == "The selected signal is invalid."
    status, body, _ = await post(http, url, {})
    assert status == 422 and body["errors"][0]["meta"]["rule"] == "required"
    assert (await post(http, url, {"signal": "kill"}))[0] == 204
    assert srv.state == "offline"


async def test_power_permissions(emu: Emulator, http: aiohttp.ClientSession) -> None:
    sub = emu.add_server("sub", permissions=["websocket.connect", "control.start"])
    url = f"/api/client/servers/{sub.identifier}/power"
    forbidden = error(403, "AccessDeniedHttpException", "This action is unauthorized.")
    assert (await post(http, url, {"signal": "stop"}))[:2] == (403, forbidden)
    assert (await post(http, url, {"signal": "explode"}))[:2] == (403, forbidden)  # authorize before validate
    assert (await post(http, url, {"signal": "start"}))[0] == 204
    susp = emu.add_server("s", suspended=True)
    status, body, _ = await post(http, f"/api/client/servers/{susp.identifier}/power", {"signal": "start"})
    assert status == 409 and body["errors"][0]["code"] == "ServerStateConflictException"


async def test_malformed_json(emu: Emulator, http: aiohttp.ClientSession) -> None:
    srv = emu.add_server("mc")
    url = f"/api/client/servers/{srv.identifier}/power"
    async with http.post(url, data="{nope", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        body = await r.json()
        assert body["errors"][0]["detail"].startswith(
            "The JSON data passed in the request appears to be malformed"
        )


async def test_command(emu: Emulator, http: aiohttp.ClientSession) -> None:
    srv = emu.add_server("mc")
    url = f"/api/client/servers/{srv.identifier}/command"
    status, body, _ = await post(http, url, {"command": "say hi"})
    assert (status, body) == (
        502,
        error(502, "HttpException", "Server must be online in order to send commands."),
    )
    await srv.set_power("running")
    assert (await post(http, url, {"command": "say hi"}))[0] == 204
    assert srv.console_history[-2:] == ["> say hi", "[Server] hi"]
    assert (await post(http, url, {"command": "list"}))[0] == 204
    assert srv.console_history[-1] == "There are 0 of a max of 20 players online"
    assert (await post(http, url, {"command": "foo"}))[0] == 204
    assert srv.console_history[-1] == "Unknown command: foo"
    status, body, _ = await post(http, url, {"command": ""})
    assert status == 422 and body["errors"][0]["detail"] == "The command field is required."
    sub = emu.add_server("sub", permissions=["websocket.connect"], state="running")
    status, _, _ = await post(http, f"/api/client/servers/{sub.identifier}/command", {"command": "x"})
    assert status == 403


async def test_rate_limiter() -> None:
    async with Emulator(rate_limit=3, rate_window=1.0) as emu:
        headers = {"Authorization": f"Bearer {emu.api_key}", **JSON}
        async with aiohttp.ClientSession(emu.panel_url, headers=headers) as http:
            remaining = []
            for _ in range(3):
                status, _, h = await get(http, "/api/client")
                assert status == 200 and h["X-RateLimit-Limit"] == "3"
                remaining.append(h["X-RateLimit-Remaining"])
            assert remaining == ["2", "1", "0"]
            status, body, h = await get(http, "/api/client")
            assert (status, body) == (429, error(429, "ThrottleRequestsException", "Too Many Attempts."))
            assert h["Retry-After"] == "1"
            assert abs(int(h["X-RateLimit-Reset"]) - (time.time() + 1)) <= 2
            await asyncio.sleep(1.05)
            status, _, h = await get(http, "/api/client")
            assert status == 200 and h["X-RateLimit-Remaining"] == "2"


async def test_fail_next(emu: Emulator, http: aiohttp.ClientSession) -> None:
    srv = emu.add_server("mc")
    emu.fail_next("GET", "/websocket", 500, times=2, detail="boom", retry_after=7)
    for _ in range(2):
        status, body, h = await get(http, f"/api/client/servers/{srv.identifier}/websocket")
        assert status == 500 and body["errors"][0]["detail"] == "boom" and h["Retry-After"] == "7"
    assert (await get(http, f"/api/client/servers/{srv.identifier}/websocket"))[0] == 200
    emu.fail_next("GET", "/api/client", 0, delay=1.0)
    with pytest.raises(asyncio.TimeoutError):
        await get(http, "/api/client", timeout=aiohttp.ClientTimeout(total=0.2))
    emu.fail_next("GET", "/api/client", 429, retry_after=3)
    status, body, h = await get(http, "/api/client")
    assert status == 429 and body["errors"][0]["code"] == "ThrottleRequestsException"


async def test_account(emu: Emulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await get(http, "/api/client/account")
    assert status == 200 and body["object"] == "user"
    assert set(body["attributes"]) == {
        "id",
        "admin",
        "username",
        "email",
        "first_name",
        "last_name",
        "language",
    }
    assert decode_unverified(emu.mint_token(emu.add_server("x")))["user_uuid"] == emu.user_uuid


async def test_garbage_injection(emu: Emulator, http: aiohttp.ClientSession) -> None:
    srv = emu.add_server("mc", state="running")
    ws_path = f"/api/client/servers/{srv.identifier}/websocket"
    emu.panel_garbage["list"] = "half-json"
    async with http.get("/api/client") as resp:
        text = await resp.text()
    assert resp.status == 200 and text.startswith('{"object"')
    with pytest.raises(ValueError):
        json.loads(text)
    emu.panel_garbage["list"] = "challenge"  # a proxy's page: no panel headers, not counted by its limiter
    hits = emu.rate.hits
    status, body, headers = await get(http, "/api/client")
    assert status == 403 and "Just a moment" in body and "X-RateLimit-Limit" not in headers
    assert emu.rate.hits == hits
    emu.panel_garbage["list"] = "pages-text"
    status, body, _ = await get(http, "/api/client")
    assert status == 200 and body["meta"]["pagination"]["total_pages"] == "lots"
    del emu.panel_garbage["list"]
    assert (await get(http, "/api/client"))[1]["meta"]["pagination"]["total_pages"] == 1
    emu.panel_garbage["websocket"] = "no-token"
    status, body, _ = await get(http, ws_path)
    assert status == 200 and set(body["data"]) == {"socket"}
    emu.panel_garbage["resources"] = "nan"
    async with http.get(f"/api/client/servers/{srv.identifier}/resources") as resp:
        assert '"memory_bytes": NaN' in await resp.text()
    emu.panel_garbage["resources"] = "strings"
    status, body, _ = await get(http, f"/api/client/servers/{srv.identifier}/resources")
    assert isinstance(body["attributes"]["resources"]["uptime"], str)
    emu.panel_garbage["server"] = "no-attributes"
    status, body, _ = await get(http, f"/api/client/servers/{srv.identifier}")
    assert status == 200 and "attributes" not in body and "meta" in body
    # errors are left alone: only answers that would have succeeded are garbled
    status, body, _ = await get(http, "/api/client/servers/deadbeef")
    assert status == 404 and body["errors"][0]["code"] == "NotFoundHttpException"
