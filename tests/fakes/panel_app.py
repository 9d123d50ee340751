"""The emulated panel Client API (docs/wings-and-panel.md, Panel Client API): routes, errors, conflicts and the rate limiter."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.emulator import Emulator, FakeServer, LockBusy, PowerError, RecordedRequest

EMU_KEY = web.AppKey("emulator", Emulator)

NOT_FOUND = "The requested resource could not be found on the server."
NOT_YOURS = "The requested resource does not exist on this server."
UNAUTHORIZED = "This action is unauthorized."
WS_FORBIDDEN = "You do not have permission to connect to this server's websocket."
TRANSFER_FORBIDDEN = "You do not have permission to view server transfer logs."
APP_KEY = "You are attempting to use an application API key on an endpoint that requires a client API key."
CONFLICT = {
    "suspended": "This server is currently suspended and the functionality requested is unavailable.",
    "maintenance": (
        "The node of this server is currently under maintenance and the functionality requested is unavailable."
    ),
    "installing": "This server has not yet completed its installation process, please try again later.",
    "restoring": "This server is currently restoring from a backup, please try again later.",
    "transferring": "This server is currently being transferred to a new machine, please try again later.",
}
DEFAULT_CODES = {
    400: ("BadRequestHttpException", "Bad Request"),
    401: ("AuthenticationException", "Unauthenticated."),
    403: ("AccessDeniedHttpException", UNAUTHORIZED),
    404: ("NotFoundHttpException", NOT_FOUND),
    409: ("ServerStateConflictException", CONFLICT["suspended"]),
    422: ("ValidationException", "The given data was invalid."),
    429: ("ThrottleRequestsException", "Too Many Attempts."),
    500: (
        "HttpException",
        "An unexpected error was encountered while processing this request, please try again.",
    ),
    502: (
        "DaemonConnectionException",
        "There was an error while communicating with the machine running this server.",
    ),
    503: ("HttpException", "Service Unavailable"),
    504: (
        "DaemonConnectionException",
        "Could not establish a connection to the machine running this server. Please try again.",
    ),
}
POWER_PERMS = {
    "start": "control.start",
    "stop": "control.stop",
    "kill": "control.stop",
    "restart": "control.restart",
}


class PanelError(Exception):
    """Rendered as the panel's error JSON (docs/wings-and-panel.md, Panel Client API)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        meta: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.meta = status, code, detail, meta
        self.headers = headers or {}

    def response(self, wants_json: bool) -> web.Response:
        if not wants_json:  # Laravel renders an HTML page when the client does not expect JSON
            html = f"<html><body><h1>{self.status}</h1><p>{self.detail}</p></body></html>"
            return web.Response(status=self.status, text=html, content_type="text/html", headers=self.headers)
        entry: dict[str, Any] = {"code": self.code, "status": str(self.status), "detail": self.detail}
        if self.meta is not None:
            entry["meta"] = self.meta
        return web.json_response({"errors": [entry]}, status=self.status, headers=self.headers)


CHALLENGE_PAGE = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head>'
    "<body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>"
)
# What a proxy or a CDN in front of the panel answers in its place (route served without the panel's logic).
PROXY_PAGES: dict[str, tuple[int, str]] = {
    "html": (200, "<!DOCTYPE html><html><head><title>Pterodactyl</title></head><body>Login</body></html>"),
    "challenge": (403, CHALLENGE_PAGE),
    "proxy-401": (401, "<html><body><h1>401 Authorization Required</h1><hr>nginx</body></html>"),
    "proxy-403": (403, "<html><body><h1>403 Forbidden</h1><hr>nginx</body></html>"),
    "proxy-404": (404, "<html><body><h1>404 Not Found</h1><hr>nginx</body></html>"),
    "proxy-502": (502, "<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"),
}


def _walk(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """`value` with `leaf` applied to every number (not booleans) inside it."""
    if isinstance(value, dict):
        return {k: _walk(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, leaf) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return leaf(value)
    return value


def _retype(value: Any) -> Any:
    """`value` with every string made a number and every boolean a string."""
    if isinstance(value, dict):
        return {k: _retype(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_retype(v) for v in value]
    if isinstance(value, bool):
        return "yes" if value else "no"
    return 12345678 if isinstance(value, str) else value


def _drop(value: Any, key: str) -> Any:
    """`value` without `key` anywhere inside it."""
    if isinstance(value, dict):
        return {k: _drop(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [_drop(v, key) for v in value]
    return value


def _set_pages(payload: Any, pages: Any) -> Any:
    payload["meta"]["pagination"]["total_pages"] = pages
    return payload


# Wrong shapes of a real answer, by kind: each takes the decoded JSON and returns the text to send.
GARBAGE: dict[str, Callable[[Any, str], str]] = {
    "half-json": lambda payload, text: text[: len(text) // 2],
    "empty": lambda payload, text: "",
    "null": lambda payload, text: "null",
    "array": lambda payload, text: json.dumps([payload]),
    "no-data": lambda payload, text: json.dumps({k: v for k, v in payload.items() if k != "data"}),
    "no-attributes": lambda payload, text: json.dumps(_drop(payload, "attributes")),
    "no-token": lambda payload, text: json.dumps(_drop(payload, "token")),
    "no-socket": lambda payload, text: json.dumps(_drop(payload, "socket")),
    "bad-socket": lambda payload, text: json.dumps({"data": {**payload["data"], "socket": "/ws"}}),
    "strings": lambda payload, text: json.dumps(_walk(payload, str)),
    "types": lambda payload, text: json.dumps(_retype(payload)),
    "nan": lambda payload, text: json.dumps(_walk(payload, lambda n: math.nan)),
    "infinity": lambda payload, text: json.dumps(_walk(payload, lambda n: math.inf)),
    "huge": lambda payload, text: json.dumps(_walk(payload, lambda n: 10**400)),
    "negative": lambda payload, text: json.dumps(_walk(payload, lambda n: -1)),
    "pages-text": lambda payload, text: json.dumps(_set_pages(payload, "lots")),
    "pages-null": lambda payload, text: json.dumps(_set_pages(payload, None)),
    "pages-endless": lambda payload, text: json.dumps(_set_pages(payload, 10**9)),
    "deep": lambda payload, text: "[" * 100_000 + "]" * 100_000,
}


def garble(response: web.Response, kind: str) -> web.Response:
    """The same answer made into the garbage `kind` (a key of GARBAGE), still with status 200."""
    text = response.text or ""
    payload = json.loads(text) if text else None
    body = GARBAGE[kind](payload, text)
    return web.Response(status=200, text=body, content_type="application/json")


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "").lower()
    return "/json" in accept or "+json" in accept


def _is_owner(srv: FakeServer) -> bool:
    return "*" in srv.permissions


def _is_root_admin(srv: FakeServer) -> bool:
    return any(p.startswith("admin.") for p in srv.permissions)


class Panel:
    """Request handlers bound to one emulator."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    # -- middleware ---------------------------------------------------------------------------
    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.text() if request.can_read_body else ""
        self.emu.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        wants_json = _wants_json(request)
        garbage = self.emu.panel_garbage.get(request.match_info.route.name or "")
        if garbage in PROXY_PAGES:  # something in front of the panel answers: no auth, no rate limit
            status, page = PROXY_PAGES[garbage]
            return web.Response(status=status, text=page, content_type="text/html")
        try:
            injected = await self._injected(request)
            if injected is not None:
                return injected.response(wants_json)
            self._authenticate(request)
        except PanelError as exc:
            if exc.status == 401 and not wants_json:
                raise web.HTTPFound(self.emu.panel_url + "/auth/login") from None
            return exc.response(wants_json)
        limit_headers: dict[str, str] = {}
        try:
            limit_headers = self._rate_limit()
            response = await handler(request)
        except PanelError as exc:
            response = exc.response(wants_json)
        except web.HTTPNotFound:
            response = PanelError(404, "NotFoundHttpException", NOT_FOUND).response(wants_json)
        except web.HTTPMethodNotAllowed:
            response = PanelError(405, "MethodNotAllowedHttpException", "Method Not Allowed").response(
                wants_json
            )
        if garbage is not None and 200 <= response.status < 300 and isinstance(response, web.Response):
            response = garble(response, garbage)
        for key, value in limit_headers.items():
            response.headers.setdefault(key, value)
        return response

    async def _injected(self, request: web.Request) -> PanelError | None:
        for failure in self.emu.failures:
            if failure.method == request.method and request.path.endswith(failure.path_suffix):
                failure.times -= 1
                if failure.times <= 0:
                    self.emu.failures.remove(failure)
                if failure.delay > 0:
                    await asyncio.sleep(failure.delay)
                if failure.status == 0:
                    return None
                code, detail = DEFAULT_CODES.get(failure.status, ("HttpException", "Error"))
                headers = {}
                if failure.retry_after is not None:
                    headers["Retry-After"] = str(failure.retry_after)
                return PanelError(failure.status, code, failure.detail or detail, headers=headers)
        return None

    def _authenticate(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if key == self.emu.api_key:
            return
        if key.startswith(("ptla_", "papp_")):  # an application key: Pterodactyl, Pelican
            raise PanelError(403, "AccessDeniedHttpException", APP_KEY)
        raise PanelError(401, "AuthenticationException", "Unauthenticated.")

    def _rate_limit(self) -> dict[str, str]:
        """Laravel's fixed window: starts at the first hit; 429s do not count."""
        emu, window = self.emu, self.emu.rate
        now = time.monotonic()
        if now >= window.started + emu.rate_window:
            window.started, window.hits = now, 0
        if window.hits >= emu.rate_limit:
            retry = max(1, math.ceil(window.started + emu.rate_window - now))
            raise PanelError(
                429,
                "ThrottleRequestsException",
                "Too Many Attempts.",
                headers={
                    "Retry-After": str(retry),
                    "X-RateLimit-Reset": str(int(time.time()) + retry),
                    "X-RateLimit-Limit": str(emu.rate_limit),
                    "X-RateLimit-Remaining": "0",
                },
            )
        window.hits += 1
        return {
            "X-RateLimit-Limit": str(emu.rate_limit),
            "X-RateLimit-Remaining": str(emu.rate_limit - window.hits),
        }

    # -- helpers ------------------------------------------------------------------------------
    def _server(self, request: web.Request) -> FakeServer:
        key = request.match_info["server"]
        for srv in self.emu.servers_by_uuid.values():
            if (len(key) == 8 and srv.identifier == key) or (len(key) != 8 and srv.uuid == key):
                if not srv.permissions:
                    raise PanelError(404, "NotFoundHttpException", NOT_YOURS)
                return srv
        raise PanelError(404, "NotFoundHttpException", NOT_FOUND)

    @staticmethod
    def _check_state(srv: FakeServer, *, admin_exempt: bool = False) -> None:
        """`validateCurrentState` (docs/wings-and-panel.md, Panel Client API); root admins may still open the websocket."""
        if srv.suspended and not srv.panel_lag:
            reason = "suspended"
        elif srv.node_maintenance:
            reason = "maintenance"
        elif srv.status in ("installing", "install_failed"):
            reason = "installing"
        elif srv.status == "restoring_backup":
            reason = "restoring"
        elif srv.transferring:
            reason = "transferring"
        else:
            return
        if admin_exempt and reason not in ("suspended", "maintenance") and _is_root_admin(srv):
            return
        raise PanelError(409, "ServerStateConflictException", CONFLICT[reason])

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        text = await request.text()
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            raise PanelError(
                400,
                "BadRequestHttpException",
                "The JSON data passed in the request appears to be malformed: Syntax error",
            ) from None
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _validation(field: str, rule: str, detail: str) -> PanelError:
        return PanelError(422, "ValidationException", detail, meta={"source_field": field, "rule": rule})

    def attributes(self, srv: FakeServer) -> dict[str, Any]:
        """`ServerTransformer` output (relationships sit inside attributes)."""
        perms = srv.permissions
        may = _is_owner(srv)
        panel_suspended = srv.suspended and not srv.panel_lag
        return {
            "server_owner": _is_owner(srv) and not _is_root_admin(srv),
            "identifier": srv.identifier,
            "internal_id": abs(hash(srv.uuid)) % 10_000,
            "uuid": srv.uuid,
            "name": srv.name,
            "node": srv.node.name,
            "is_node_under_maintenance": srv.node_maintenance,
            "sftp_details": {"ip": "127.0.0.1", "port": 2022},
            "description": f"{srv.name} (emulated)",
            "limits": {
                "memory": 1024,
                "swap": 0,
                "disk": 5120,
                "io": 500,
                "cpu": 200,
                "threads": None,
                "oom_disabled": True,
            },
            "invocation": "java -Xms128M -Xmx1024M -jar server.jar",
            "docker_image": "ghcr.io/pterodactyl/yolks:java_17",
            "egg_features": ["eula", "java_version", "pid_limit"],
            "feature_limits": {"databases": 0, "allocations": 1, "backups": 3},
            "status": "suspended" if panel_suspended and srv.status is None else srv.status,
            "is_suspended": panel_suspended,
            "is_installing": srv.status == "installing",
            "is_transferring": srv.transferring,
            "relationships": {
                "allocations": {
                    "object": "list",
                    "data": [
                        {
                            "object": "allocation",
                            "attributes": {
                                "id": 1,
                                "ip": "127.0.0.1",
                                "ip_alias": None,
                                "port": 25565,
                                "notes": None,
                                "is_default": True,
                            },
                        }
                    ],
                },
                "variables": (
                    {"object": "list", "data": []}
                    if may or "startup.read" in perms
                    else {"object": "null_resource", "attributes": None}
                ),
            },
        }

    # -- routes -------------------------------------------------------------------------------
    async def list_servers(self, request: web.Request) -> web.Response:
        query = request.query
        for key in query:
            if key.startswith("filter[") and key not in (
                "filter[uuid]",
                "filter[name]",
                "filter[description]",
                "filter[external_id]",
                "filter[*]",
            ):
                name = key[7:-1]
                raise PanelError(
                    400,
                    "InvalidFilterQuery",
                    f"Requested filter(s) `{name}` are not allowed. Allowed filter(s) are "
                    "`uuid, name, description, external_id, *`.",
                )
        kind = query.get("type", "")
        servers = [s for s in self.emu.servers_by_uuid.values() if s.permissions]
        if kind == "owner":
            servers = [s for s in servers if _is_owner(s) and not _is_root_admin(s)]
        elif kind in ("admin", "admin-all"):
            servers = []  # the emulated account is not a root admin
        if "filter[uuid]" in query:
            servers = [s for s in servers if s.uuid == query["filter[uuid]"]]
        if "filter[name]" in query:
            servers = [s for s in servers if query["filter[name]"].lower() in s.name.lower()]
        if "filter[*]" in query:
            term = query["filter[*]"]
            servers = [
                s
                for s in servers
                if s.uuid.startswith(term) or s.identifier == term or term.lower() in s.name.lower()
            ]
        try:
            per_page = min(max(int(query.get("per_page", "50")), 1), 100)
            page = max(int(query.get("page", "1")), 1)
        except ValueError:
            per_page, page = 50, 1
        total = len(servers)
        pages = max(1, math.ceil(total / per_page))
        chunk = servers[(page - 1) * per_page : page * per_page]
        links: dict[str, str] = {}
        base = {k: v for k, v in query.items() if k != "page"}
        if page > 1:
            links["previous"] = f"{self.emu.panel_url}/api/client?{urlencode({**base, 'page': page - 1})}"
        if page < pages:
            links["next"] = f"{self.emu.panel_url}/api/client?{urlencode({**base, 'page': page + 1})}"
        return web.json_response(
            {
                "object": "list",
                "data": [{"object": "server", "attributes": self.attributes(s)} for s in chunk],
                "meta": {
                    "pagination": {
                        "total": total,
                        "count": len(chunk),
                        "per_page": per_page,
                        "current_page": page,
                        "total_pages": pages,
                        "links": links or [],  # PHP serialises an empty array as []
                    }
                },
            }
        )

    async def account(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "user",
                "attributes": {
                    "id": self.emu.user_id,
                    "admin": False,
                    "username": "wingbeat",
                    "email": "wingbeat@example.com",
                    "first_name": "Wing",
                    "last_name": "Beat",
                    "language": "en",
                },
            }
        )

    async def view_server(self, request: web.Request) -> web.Response:
        srv = self._server(request)
        return web.json_response(
            {
                "object": "server",
                "attributes": self.attributes(srv),
                "meta": {"is_server_owner": _is_owner(srv), "user_permissions": list(srv.permissions)},
            }
        )

    async def websocket(self, request: web.Request) -> web.Response:
        srv = self._server(request)
        self._check_state(srv, admin_exempt=True)
        if not (_is_owner(srv) or "websocket.connect" in srv.permissions):
            raise PanelError(403, "HttpForbiddenException", WS_FORBIDDEN)
        if srv.transferring and "admin.websocket.transfer" not in srv.permissions:
            raise PanelError(403, "HttpForbiddenException", TRANSFER_FORBIDDEN)
        return web.json_response(
            {"data": {"token": self.emu.mint_token(srv), "socket": self.emu.socket_url(srv)}}
        )

    async def resources(self, request: web.Request) -> web.Response:
        srv = self._server(request)
        self._check_state(srv)
        now = time.monotonic()
        cached = self.emu.resource_cache.get(srv.uuid)
        if cached is None or now >= cached[0]:
            stats = srv.stats()
            payload = {
                "object": "stats",
                "attributes": {
                    "current_state": srv.state,
                    "is_suspended": srv.suspended and not srv.panel_lag,
                    "resources": {
                        "memory_bytes": stats["memory_bytes"],
                        "cpu_absolute": stats["cpu_absolute"],
                        "disk_bytes": stats["disk_bytes"],
                        "network_rx_bytes": stats["network"]["rx_bytes"],
                        "network_tx_bytes": stats["network"]["tx_bytes"],
                        "uptime": stats["uptime"],
                    },
                },
            }
            cached = (now + self.emu.resources_cache, payload)
            self.emu.resource_cache[srv.uuid] = cached
        return web.json_response(cached[1])

    async def power(self, request: web.Request) -> web.Response:
        srv = self._server(request)
        self._check_state(srv)
        data = await self._json_body(request)
        raw = data.get("signal")
        signal = raw.strip() if isinstance(raw, str) else raw
        # Authorization runs before validation: an unknown signal needs a permission nobody has.
        if not _is_owner(srv):
            needed = POWER_PERMS.get(signal) if isinstance(signal, str) else None
            if needed is None or needed not in srv.permissions:
                raise PanelError(403, "AccessDeniedHttpException", UNAUTHORIZED)
        if signal in (None, ""):
            raise self._validation("signal", "required", "The signal field is required.")
        if signal not in POWER_PERMS:
            raise self._validation("signal", "in", "The selected signal is invalid.")
        with contextlib.suppress(LockBusy, PowerError):
            # Wings runs the action in the background: failures only reach the node's log
            srv.handle_power(str(signal))
        return web.Response(status=204)

    async def command(self, request: web.Request) -> web.Response:
        srv = self._server(request)
        self._check_state(srv)
        if not (_is_owner(srv) or "control.console" in srv.permissions):
            raise PanelError(403, "AccessDeniedHttpException", UNAUTHORIZED)
        data = await self._json_body(request)
        cmd = data.get("command")
        if cmd is None or cmd == "":
            raise self._validation("command", "required", "The command field is required.")
        if not isinstance(cmd, str):
            raise self._validation("command", "string", "The command must be a string.")
        if srv.state == "offline":
            raise PanelError(502, "HttpException", "Server must be online in order to send commands.")
        srv.run_command(cmd)
        return web.Response(status=204)


def build_panel_app(emu: Emulator) -> web.Application:
    panel = Panel(emu)
    app = web.Application(middlewares=[panel.middleware])
    app[EMU_KEY] = emu
    # Route names are the keys of `Emulator.panel_garbage`.
    app.router.add_get("/api/client", panel.list_servers, name="list")
    app.router.add_get("/api/client/account", panel.account, name="account")
    app.router.add_get("/api/client/servers/{server}", panel.view_server, name="server")
    app.router.add_get("/api/client/servers/{server}/websocket", panel.websocket, name="websocket")
    app.router.add_get("/api/client/servers/{server}/resources", panel.resources, name="resources")
    app.router.add_post("/api/client/servers/{server}/power", panel.power, name="power")
    app.router.add_post("/api/client/servers/{server}/command", panel.command, name="command")
    return app
