"""An aiohttp client for the panel's Client API calls Wingbeat needs (docs/wings-and-panel.md, Panel Client API)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp

from bot.panel.errors import PanelBadAnswer, PanelRateLimited, PanelUnavailable, error_for_status
from bot.panel.models import Account, Resources, Server, ServerDetails, ServerPage, WebsocketCredentials
from bot.panel.pacing import DEFAULT_VIEW_WAIT, Priority, RequestPacer
from bot.panel.scheduler import RequestScheduler

log = logging.getLogger(__name__)

T = TypeVar("T")

POWER_SIGNALS = ("start", "stop", "restart", "kill")
MAX_BODY = 8 * 1024 * 1024  # a page of 100 servers is a few hundred KiB; more is not the panel talking
MAX_RETRY_AFTER = 60.0
MAX_PAGES = 100  # 10,000 servers at 100 a page: a larger claim is not believed


class PanelClient:
    """Talks to `PANEL_URL/api/client` with a client API key.

    Every error status, and every answer of the wrong shape, becomes a typed `PanelError`; 429s are waited out
    (`Retry-After`) a bounded number of times, and requests are paced below the panel's per-user budget, by
    priority: every call takes `priority=` (`Priority`), with a default that suits it. A `Priority.VIEW` call
    that would wait more than `view_wait` seconds for the budget raises `PanelBusy` at once.
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
        view_wait: float = DEFAULT_VIEW_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0))
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self.pacer = pacer or RequestPacer()
        self.scheduler = RequestScheduler(self.pacer, view_wait=view_wait, clock=clock)
        self._session: aiohttp.ClientSession | None = None
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"PanelClient({self.base_url!r})"

    async def __aenter__(self) -> Self:
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
        self.scheduler.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self,
        parse: Callable[[Any], T],
        method: str,
        path: str,
        *,
        priority: Priority,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> T:
        """One request, its answer read by `parse`; a wrong shape is logged (with the address) and raised."""
        data = await self._request(method, path, priority=priority, params=params, body=body)
        try:
            return parse(data)
        except PanelBadAnswer as exc:
            log.warning(
                "the panel at %s answered %s /api/client%s with garbage: %s",
                self.base_url,
                method,
                path,
                exc.detail,
            )
            raise

    async def _request(
        self,
        method: str,
        path: str,
        *,
        priority: Priority,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        url = f"{self.base_url}/api/client{path}"
        path = f"/api/client{path}"  # for log lines, which name the panel's address apart
        attempt = 0
        while True:
            await self.scheduler.slot(priority)
            try:
                async with self._get_session().request(method, url, params=params, json=body) as resp:
                    self.requests_made += 1
                    self.scheduler.observe(
                        limit=resp.headers.get("X-RateLimit-Limit"),
                        remaining=resp.headers.get("X-RateLimit-Remaining"),
                    )
                    raw = await _read_body(resp)
                    if resp.status < 300:
                        return _decode_success(raw, resp.status)
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    error = error_for_status(resp.status, _decode_lenient(raw), retry_after=retry_after)
            except TimeoutError:
                log.warning("the panel at %s did not answer %s %s in time", self.base_url, method, path)
                raise PanelUnavailable(
                    f"The panel did not answer within {self._timeout.total:g} s; it may be down or overloaded."
                ) from None
            except aiohttp.ClientError as exc:
                log.warning(
                    "the panel at %s could not be reached for %s %s: %r", self.base_url, method, path, exc
                )
                raise PanelUnavailable(
                    f"The panel could not be reached ({type(exc).__name__}); it may be down."
                ) from None
            except PanelBadAnswer as exc:
                log.warning(
                    "the panel at %s answered %s %s with garbage: %s", self.base_url, method, path, exc.detail
                )
                raise
            if isinstance(error, PanelRateLimited):
                self.scheduler.block(error.retry_after)
                attempt += 1
                if attempt <= self._max_retries and error.retry_after <= self._max_retry_wait:
                    log.warning(
                        "panel rate limit hit on %s %s; waiting %.1f s", method, path, error.retry_after
                    )
                    continue
            if isinstance(error, PanelBadAnswer):
                log.warning("the panel at %s answered %s %s: %s", self.base_url, method, path, error.detail)
            else:
                log.debug("panel %s %s -> %s %s", method, path, error.status, error.code)
            raise error

    # -- calls -------------------------------------------------------------------------------------------

    async def list_servers(self, *, per_page: int = 100, priority: Priority = Priority.VIEW) -> list[Server]:
        """Every server the key's user can see (all pages)."""
        servers: dict[str, Server] = {}  # by uuid: a server that moves between pages while paging counts once
        page = 1
        while True:
            params = {"page": str(page), "per_page": str(per_page)}
            answer = await self._call(ServerPage.from_answer, "GET", "", priority=priority, params=params)
            for server in answer.servers:
                servers.setdefault(server.uuid, server)
            if page >= answer.total_pages or not answer.servers:
                return list(servers.values())
            if page >= MAX_PAGES:
                log.warning("the panel claims %d pages of servers; reading only %d", answer.total_pages, page)
                return list(servers.values())
            page += 1

    async def get_server(self, server: str, *, priority: Priority = Priority.ACTION) -> ServerDetails:
        """One server, with the permissions the key's user holds on it."""
        return await self._call(
            ServerDetails.from_answer, "GET", f"/servers/{_seg(server)}", priority=priority
        )

    async def websocket_credentials(
        self, server: str, *, priority: Priority = Priority.CREDENTIALS
    ) -> WebsocketCredentials:
        """A fresh Wings token and the socket URL (docs/wings-and-panel.md, Tokens)."""
        return await self._call(
            WebsocketCredentials.from_answer, "GET", f"/servers/{_seg(server)}/websocket", priority=priority
        )

    async def resources(self, server: str, *, priority: Priority = Priority.VIEW) -> Resources:
        """Power state and usage as the panel last heard them from Wings (cached there for 20 s)."""
        return await self._call(
            Resources.from_answer, "GET", f"/servers/{_seg(server)}/resources", priority=priority
        )

    async def account(self, *, priority: Priority = Priority.ACTION) -> Account:
        """The panel user the key belongs to."""
        return await self._call(Account.from_answer, "GET", "/account", priority=priority)

    async def send_power(self, server: str, signal: str, *, priority: Priority = Priority.ACTION) -> None:
        """`POST /power`. A 204 only means the panel accepted it; watch the socket for the outcome."""
        if signal not in POWER_SIGNALS:
            raise ValueError(f"unknown power signal {signal!r}")
        await self._request(
            "POST", f"/servers/{_seg(server)}/power", priority=priority, body={"signal": signal}
        )

    async def send_command(self, server: str, command: str, *, priority: Priority = Priority.ACTION) -> None:
        """`POST /command`: the panel answers 502 when the server is not running."""
        await self._request(
            "POST", f"/servers/{_seg(server)}/command", priority=priority, body={"command": command}
        )


def _seg(server: str) -> str:
    return quote(server, safe="")


def _retry_after(raw: str | None) -> float:
    """`Retry-After` in seconds: 1 when absent or unreadable, at most a panel window (a 429 costs nothing, so
    trying again after a minute is cheap, while a garbage header must not stop every request for years)."""
    try:
        value = float(raw) if raw else 1.0
    except ValueError:
        return 1.0
    return min(MAX_RETRY_AFTER, max(0.0, value)) if math.isfinite(value) else 1.0


async def _read_body(resp: aiohttp.ClientResponse) -> bytes:
    """The whole body, or `PanelBadAnswer` once it grows past what the panel ever sends."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise PanelBadAnswer(f"an answer over {MAX_BODY} bytes", status=resp.status)
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number the panel sends")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _decode(raw: bytes) -> Any:
    """Strict JSON: no NaN or Infinity (Python's json would accept them), no number too large for a float."""
    return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)


def _decode_success(raw: bytes, status: int) -> Any:
    """A 2xx body: None when empty (204), else JSON, else `PanelBadAnswer`."""
    if not raw.strip():
        return None
    try:
        return _decode(raw)
    except (ValueError, RecursionError):
        start = raw[:15].decode("utf-8", "replace").strip()
        raise PanelBadAnswer(
            f"HTTP {status} with a body that is not JSON (starts {start!r})", status=status
        ) from None


def _decode_lenient(raw: bytes) -> Any:
    """An error status's body: JSON when it is, None otherwise (the status says enough)."""
    try:
        return _decode(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        return None
