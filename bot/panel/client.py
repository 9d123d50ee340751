"""An aiohttp client for the panel's Client API calls Wingbeat needs (reference §5)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.panel.errors import PanelError, PanelRateLimited, PanelUnavailable, error_for_status
from bot.panel.models import Account, Resources, Server, ServerDetails, WebsocketCredentials
from bot.panel.pacing import RequestPacer

log = logging.getLogger(__name__)

POWER_SIGNALS = ("start", "stop", "restart", "kill")


class PanelClient:
    """Talks to `PANEL_URL/api/client` with a client API key.

    Every error status becomes a typed `PanelError`; 429s are waited out (`Retry-After`) a bounded number of
    times, and requests are paced below the panel's per-user budget.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 15.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        pacer: RequestPacer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0))
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self.pacer = pacer or RequestPacer()
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"PanelClient({self.base_url!r})"

    async def __aenter__(self) -> PanelClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={
                    "Authorization": f"Bearer {self._api_key}",
                    "Accept": "application/json",
                    "User-Agent": "Wingbeat (Discord bot)",
                },
                connector=aiohttp.TCPConnector(limit=20),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> Any:
        url = f"{self.base_url}/api/client{path}"
        attempt = 0
        while True:
            wait = self.pacer.reserve(self._clock())
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                async with self._get_session().request(method, url, params=params, json=body) as resp:
                    self.requests_made += 1
                    self.pacer.observe(
                        limit=resp.headers.get("X-RateLimit-Limit"),
                        remaining=resp.headers.get("X-RateLimit-Remaining"),
                    )
                    if resp.status == 204:
                        return None
                    data = await _read_json(resp)
                    if resp.status < 300 and data is not None:
                        return data
                    if resp.status < 300:
                        raise PanelError(
                            "The panel answered with something that is not JSON; is PANEL_URL the panel's address?",
                            status=resp.status,
                        )
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    error = error_for_status(resp.status, data, retry_after=retry_after)
            except TimeoutError:
                raise PanelUnavailable(
                    f"The panel did not answer within {self._timeout.total:g} s; it may be down or overloaded."
                ) from None
            except aiohttp.ClientError as exc:
                log.debug("panel request %s %s failed: %s", method, path, type(exc).__name__)
                raise PanelUnavailable(
                    f"The panel at {self.base_url} could not be reached ({type(exc).__name__})."
                ) from None
            if isinstance(error, PanelRateLimited):
                self.pacer.block(self._clock(), error.retry_after)
                attempt += 1
                if attempt <= self._max_retries and error.retry_after <= self._max_retry_wait:
                    log.warning(
                        "panel rate limit hit on %s %s; waiting %.1f s", method, path, error.retry_after
                    )
                    continue
            log.debug("panel %s %s -> %s %s", method, path, error.status, error.code)
            raise error

    # -- calls -------------------------------------------------------------------------------------------

    async def list_servers(self, *, per_page: int = 100) -> list[Server]:
        """Every server the key's user can see (all pages)."""
        servers: list[Server] = []
        page = 1
        while True:
            data = await self._request("GET", "", params={"page": str(page), "per_page": str(per_page)})
            servers.extend(Server.from_attributes(item["attributes"]) for item in data.get("data", []))
            pagination = (data.get("meta") or {}).get("pagination") or {}
            total_pages = int(pagination.get("total_pages") or 1)
            if page >= total_pages:
                return servers
            page += 1

    async def get_server(self, server: str) -> ServerDetails:
        """One server, with the permissions the key's user holds on it."""
        data = await self._request("GET", f"/servers/{_seg(server)}")
        meta = data.get("meta") or {}
        return ServerDetails(
            server=Server.from_attributes(data["attributes"]),
            user_permissions=frozenset(str(p) for p in meta.get("user_permissions") or ()),
            is_server_owner=bool(meta.get("is_server_owner")),
        )

    async def websocket_credentials(self, server: str) -> WebsocketCredentials:
        """A fresh Wings token and the socket URL (reference §5.4)."""
        data = await self._request("GET", f"/servers/{_seg(server)}/websocket")
        inner = data.get("data") or {}
        return WebsocketCredentials(token=str(inner["token"]), socket=str(inner["socket"]))

    async def resources(self, server: str) -> Resources:
        data = await self._request("GET", f"/servers/{_seg(server)}/resources")
        return Resources.from_attributes(data.get("attributes") or {})

    async def account(self) -> Account:
        data = await self._request("GET", "/account")
        return Account.from_attributes(data["attributes"])

    async def send_power(self, server: str, signal: str) -> None:
        """`POST /power`. A 204 only means the panel accepted it; watch the socket for the outcome."""
        if signal not in POWER_SIGNALS:
            raise ValueError(f"unknown power signal {signal!r}")
        await self._request("POST", f"/servers/{_seg(server)}/power", body={"signal": signal})

    async def send_command(self, server: str, command: str) -> None:
        await self._request("POST", f"/servers/{_seg(server)}/command", body={"command": command})


def _seg(server: str) -> str:
    return quote(server, safe="")


def _retry_after(raw: str | None) -> float:
    try:
        return max(0.0, float(raw)) if raw else 1.0
    except ValueError:
        return 1.0


async def _read_json(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return None
