"""The I/O half of the panel and Wings checks: ask, observe, and return facts for `bot.check.verdicts`.

Read-only: it lists servers, reads their permissions, asks for one console token per node and opens one
socket per node, which it closes as soon as Wings has answered the token. It never sends a command.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import replace
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from bot.check.timing import Timing
from bot.check.verdicts import (
    ClockReading,
    PanelFacts,
    PanelOutcome,
    ServerFacts,
    WingsFacts,
    WingsOutcome,
    display_url,
)
from bot.panel.client import PanelClient
from bot.panel.errors import (
    PanelAuthError,
    PanelError,
    PanelForbidden,
    PanelNotFound,
    PanelServerError,
    PanelUnavailable,
)
from bot.panel.models import Server
from bot.wings.frames import Event, FrameError, decode_frame, encode_frame
from bot.wings.tokens import TokenError, has_permission, read_claims

log = logging.getLogger(__name__)


async def probe_panel(client: PanelClient) -> PanelFacts:
    """The panel's answer to `GET /api/client/account`: does it answer, and does it take the key?"""
    facts = await _ask_account(client)
    # A PANEL_URL may carry user:password@ (a proxy's basic auth): never printed.
    shown = display_url(client.base_url)
    return replace(facts, url=shown, message=facts.message.replace(client.base_url, shown))


async def _ask_account(client: PanelClient) -> PanelFacts:
    url = client.base_url
    try:
        account = await client.account()
    except PanelUnavailable as exc:
        return PanelFacts(url, PanelOutcome.UNREACHABLE, network_reason(exc.__context__) or str(exc))
    except PanelAuthError as exc:
        return PanelFacts(url, PanelOutcome.KEY_REJECTED, str(exc))
    except PanelForbidden as exc:
        detail = exc.detail.lower()
        if "application api key" in detail:
            return PanelFacts(url, PanelOutcome.APPLICATION_KEY, str(exc))
        if "ip address" in detail:
            return PanelFacts(url, PanelOutcome.IP_NOT_ALLOWED, str(exc))
        return PanelFacts(url, PanelOutcome.ERROR, f"HTTP 403: {exc.detail or exc}")
    except PanelNotFound:
        return PanelFacts(url, PanelOutcome.NOT_A_PANEL, "it has no /api/client/account (HTTP 404)")
    except PanelServerError as exc:
        return PanelFacts(url, PanelOutcome.ERROR, f"HTTP {exc.status}: {exc.detail or exc}")
    except PanelError as exc:
        if exc.status is not None and exc.status < 300:
            return PanelFacts(url, PanelOutcome.NOT_A_PANEL, "its answer is not the panel's JSON")
        return PanelFacts(url, PanelOutcome.ERROR, str(exc))
    except (KeyError, TypeError, ValueError):
        return PanelFacts(url, PanelOutcome.NOT_A_PANEL, "its answer does not have the panel's shape")
    return PanelFacts(url, PanelOutcome.OK, username=account.username)


def network_reason(error: BaseException | None) -> str | None:
    """What went wrong reaching a URL, in an operator's words (None: nothing more precise than the client said).

    The panel client keeps the library's exception as the context of its own one-sentence error.
    """
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return f"Its TLS certificate was refused: {error.certificate_error}."
    if isinstance(error, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        reason = getattr(error.os_error, "reason", None) or error.os_error
        return f"The TLS handshake failed ({reason}): is the URL's scheme (http/https) and port right?"
    if isinstance(error, aiohttp.ClientConnectorError):
        host = f"{error.host}:{error.port}"
        if isinstance(error.os_error, socket.gaierror):
            return f"The name {error.host} could not be resolved (DNS)."
        if isinstance(error.os_error, ConnectionRefusedError):
            return f"Nothing accepts connections at {host} (connection refused)."
        return f"{host} could not be reached ({error.os_error.strerror or error.os_error})."
    return None


async def probe_servers(
    client: PanelClient, *, concurrency: int = 4
) -> tuple[list[Server], list[ServerFacts]]:
    """Every server the key sees, and the permissions it holds on each (`GET /api/client/servers/{id}`)."""
    servers = await client.list_servers()
    gate = asyncio.Semaphore(concurrency)

    async def one(server: Server) -> ServerFacts:
        async with gate:
            try:
                details = await client.get_server(server.identifier)
            except PanelError as exc:
                return ServerFacts(server.name, server.identifier, server.node, None, str(exc))
        return ServerFacts(server.name, server.identifier, server.node, details.user_permissions)

    return servers, list(await asyncio.gather(*(one(s) for s in servers)))


def pick_per_node(servers: Sequence[Server], facts: Sequence[ServerFacts]) -> dict[str, Server | None]:
    """For each node, a server whose console the key may open (None: there is none)."""
    permissions = {f.identifier: f.permissions for f in facts}
    picked: dict[str, Server | None] = {}
    for server in servers:
        picked.setdefault(server.node, None)
        if picked[server.node] is not None:
            continue
        perms = permissions.get(server.identifier)
        usable = not (
            server.is_suspended
            or server.is_installing
            or server.is_transferring
            or server.is_node_under_maintenance
            or server.status in ("installing", "install_failed", "restoring_backup")
        )
        if usable and perms is not None and has_permission(perms, "websocket.connect"):
            picked[server.node] = server
    return picked


def _issuer(token: str) -> str:
    # The `iss` claim is the panel's own URL (the value it writes into Wings' config as `remote:`).
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return ""
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else ""


def _address(socket_url: str) -> str:
    parts = urlsplit(socket_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname}:{port}" if port else str(parts.hostname or "")


async def node_clock_offset(socket_url: str, timeout: float) -> float | None:
    """The node's clock minus this machine's, from the `Date` header of any Wings HTTP answer."""
    parts = urlsplit(socket_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    url = f"{scheme}://{parts.netloc}/api/system"  # answers 401 without a node token, with a Date header
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            before = time.time()
            async with session.get(url, allow_redirects=False) as resp:
                after = time.time()
                raw = resp.headers.get("Date")
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    if not raw:
        return None
    try:
        node_now = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return node_now - (before + after) / 2


async def probe_node(
    client: PanelClient, node: str, server: Server | None, *, origin: str, timing: Timing
) -> WingsFacts:
    """Open one console socket on `server` and authenticate; what Wings answered, as facts."""
    if server is None:
        return WingsFacts(node, WingsOutcome.NO_SERVER)
    try:
        creds = await client.websocket_credentials(server.identifier)
    except PanelError as exc:
        return WingsFacts(
            node, WingsOutcome.NO_CREDENTIALS, server=server.name, detail=str(exc), origin=origin
        )
    received = time.time()
    facts = WingsFacts(
        node,
        WingsOutcome.OK,
        address=_address(creds.socket),
        server=server.name,
        origin=origin,
        issuer=_issuer(creds.token),
    )
    outcome, detail = await _authenticate(creds.socket, creds.token, origin, timing)
    facts = replace(facts, outcome=outcome, detail=detail)
    if outcome is WingsOutcome.CLOCK_SKEW:
        facts = replace(facts, clock=await _clock(creds.socket, creds.token, received, timing))
    return facts


async def _clock(socket_url: str, token: str, received: float, timing: Timing) -> ClockReading:
    try:
        claims = read_claims(token)
    except TokenError:
        return ClockReading(None, await node_clock_offset(socket_url, timing.node_clock), None)
    # The panel stamped iat (its clock) just before `received` (ours).
    panel = None if claims.iat is None else claims.iat - received
    return ClockReading(panel, await node_clock_offset(socket_url, timing.node_clock), claims.lifetime)


async def _authenticate(socket_url: str, token: str, origin: str, timing: Timing) -> tuple[WingsOutcome, str]:
    try:
        async with websockets.connect(
            socket_url,
            origin=websockets.Origin(origin),
            open_timeout=timing.socket_open,
            close_timeout=2,
            compression=None,
            user_agent_header="Wingbeat check",
            proxy=None,
        ) as ws:
            await ws.send(encode_frame(Event.AUTH, token))
            try:
                async with asyncio.timeout(timing.auth):
                    async for message in ws:
                        try:
                            frame = decode_frame(message)
                        except FrameError:
                            continue
                        if frame.known is Event.AUTH_SUCCESS:
                            return WingsOutcome.OK, ""
                        if frame.known is Event.JWT_ERROR:
                            text = _strip_event_prefix(frame.arg)
                            if "exp claim is invalid" in text.lower():
                                return WingsOutcome.CLOCK_SKEW, text
                            return WingsOutcome.TOKEN_REFUSED, text
                        if frame.known is Event.DAEMON_ERROR:
                            return WingsOutcome.DAEMON_ERROR, _strip_event_prefix(frame.arg)
            except TimeoutError:
                return WingsOutcome.NO_ANSWER, f"no auth success within {timing.auth:g} s"
            code = ws.close_code
            return WingsOutcome.CLOSED, f"close code {code}" if code is not None else "no close frame"
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status == 403:
            return WingsOutcome.ORIGIN_REFUSED, "HTTP 403"
        return WingsOutcome.UPGRADE_FAILED, f"HTTP {status}"
    except TimeoutError:
        return WingsOutcome.UNREACHABLE, f"no connection within {timing.socket_open:g} s"
    except ConnectionClosed as exc:
        return WingsOutcome.CLOSED, str(exc)
    except (InvalidURI, InvalidHandshake, OSError) as exc:
        return WingsOutcome.UNREACHABLE, f"{type(exc).__name__}: {exc}"


def _strip_event_prefix(text: str) -> str:
    # Handler errors arrive as "Error Event [<uuid>]: <text>"; the uuid means nothing to an operator.
    if text.startswith("Error Event [") and "]: " in text:
        return text.split("]: ", 1)[1]
    return text
