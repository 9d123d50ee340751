"""Small typed models for what the panel's Client API returns, read defensively (see `bot.panel.shape`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.panel import shape


@dataclass(frozen=True, slots=True)
class Server:
    """A game server as the panel lists it."""

    identifier: str
    uuid: str
    name: str
    node: str = ""
    description: str = ""
    status: str | None = None
    is_suspended: bool = False
    is_installing: bool = False
    is_transferring: bool = False
    is_node_under_maintenance: bool = False

    @classmethod
    def from_attributes(cls, attrs: Any, where: str = "server") -> Server:
        """A server from its `attributes` object; raises `PanelBadAnswer` on a wrong shape."""
        attrs = shape.obj(attrs, where)
        identifier = shape.ident(attrs, "identifier", where)
        return cls(
            identifier=identifier,
            uuid=shape.ident(attrs, "uuid", where),
            name=shape.opt_text(attrs, "name", where).strip() or identifier,
            node=shape.opt_text(attrs, "node", where),
            description=shape.opt_text(attrs, "description", where),
            status=shape.opt_word(attrs, "status", where),
            is_suspended=shape.opt_flag(attrs, "is_suspended", where),
            is_installing=shape.opt_flag(attrs, "is_installing", where),
            is_transferring=shape.opt_flag(attrs, "is_transferring", where),
            is_node_under_maintenance=shape.opt_flag(attrs, "is_node_under_maintenance", where),
        )


@dataclass(frozen=True, slots=True)
class ServerPage:
    """One page of `GET /api/client`: its servers and how many pages there are."""

    servers: tuple[Server, ...]
    total_pages: int

    @classmethod
    def from_answer(cls, data: Any) -> ServerPage:
        """Reads `{"data": [{"attributes": …}…], "meta": {"pagination": {"total_pages": n}}}`."""
        data = shape.obj(data, "server list")
        items = shape.seq(shape.member(data, "data", "server list"), "server list `data`")
        servers = tuple(
            Server.from_attributes(
                shape.member(shape.obj(item, f"server list item {i}"), "attributes", f"server list item {i}"),
                f"server list item {i}",
            )
            for i, item in enumerate(items, 1)
        )
        total_pages = 1
        meta = data.get("meta")
        if meta is not None:
            pagination = shape.obj(meta, "server list `meta`").get("pagination")
            if pagination is not None:
                pagination = shape.obj(pagination, "server list pagination")
                if pagination.get("total_pages") is not None:
                    total_pages = max(1, shape.count(pagination, "total_pages", "server list pagination"))
        return cls(servers, total_pages)


@dataclass(frozen=True, slots=True)
class ServerDetails:
    """One server with the permissions the panel key holds on it."""

    server: Server
    user_permissions: frozenset[str]
    is_server_owner: bool

    @classmethod
    def from_answer(cls, data: Any) -> ServerDetails:
        """Reads `GET /servers/{id}`: `{"attributes": …, "meta": {"user_permissions": […], …}}`."""
        data = shape.obj(data, "server")
        server = Server.from_attributes(shape.member(data, "attributes", "server"))
        meta = shape.obj(data.get("meta") or {}, "server `meta`")
        perms = shape.seq(meta.get("user_permissions") or [], "server `meta.user_permissions`")
        if not all(isinstance(p, str) for p in perms):
            raise shape.bad("server `meta.user_permissions`", "holds something other than strings")
        return cls(
            server=server,
            user_permissions=frozenset(perms),
            is_server_owner=shape.opt_flag(meta, "is_server_owner", "server `meta`"),
        )


@dataclass(frozen=True, slots=True)
class WebsocketCredentials:
    """A fresh Wings token and the socket URL it is valid for."""

    token: str
    socket: str

    def __repr__(self) -> str:  # the token is a secret: keep it out of logs
        return f"WebsocketCredentials(socket={self.socket!r}, token=<hidden>)"

    @classmethod
    def from_answer(cls, data: Any) -> WebsocketCredentials:
        """Reads `{"data": {"token": "<jwt>", "socket": "wss://…"}}`; both must be there and look right."""
        where = "websocket credentials"
        inner = shape.obj(shape.member(shape.obj(data, where), "data", where), where)
        token = shape.text(inner, "token", where)
        if token.count(".") != 2 or any(c.isspace() for c in token):
            raise shape.bad(where, "`token` is not a JWT")  # never quote the token: it is a secret
        socket = shape.text(inner, "socket", where)
        try:
            parts = urlsplit(socket)
            valid = parts.scheme in ("ws", "wss") and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:
            raise shape.bad(where, f"`socket` is not a ws:// or wss:// URL: {socket[:80]!r}")
        return cls(token=token, socket=socket)


@dataclass(frozen=True, slots=True)
class Resources:
    """`GET /servers/{id}/resources`: power state and usage."""

    current_state: str
    is_suspended: bool
    memory_bytes: int
    cpu_absolute: float
    disk_bytes: int
    network_rx_bytes: int
    network_tx_bytes: int
    uptime_ms: int

    @classmethod
    def from_attributes(cls, attrs: Any, where: str = "resources") -> Resources:
        """Usage from the `attributes` object; absent figures are 0, wrong ones raise `PanelBadAnswer`."""
        attrs = shape.obj(attrs, where)
        res = shape.obj(attrs.get("resources") or {}, f"{where} `resources`")
        figures = f"{where} `resources`"
        return cls(
            current_state=shape.opt_word(attrs, "current_state", where) or "offline",
            is_suspended=shape.opt_flag(attrs, "is_suspended", where),
            memory_bytes=shape.opt_count(res, "memory_bytes", figures),
            cpu_absolute=shape.opt_amount(res, "cpu_absolute", figures),
            disk_bytes=shape.opt_count(res, "disk_bytes", figures),
            network_rx_bytes=shape.opt_count(res, "network_rx_bytes", figures),
            network_tx_bytes=shape.opt_count(res, "network_tx_bytes", figures),
            uptime_ms=shape.opt_count(res, "uptime", figures),
        )

    @classmethod
    def from_answer(cls, data: Any) -> Resources:
        """Reads `{"object": "stats", "attributes": {…}}`."""
        return cls.from_attributes(shape.member(shape.obj(data, "resources"), "attributes", "resources"))


@dataclass(frozen=True, slots=True)
class Account:
    """The panel user the API key belongs to."""

    id: int
    username: str
    admin: bool

    @classmethod
    def from_attributes(cls, attrs: Any, where: str = "account") -> Account:
        """The user from its `attributes` object; raises `PanelBadAnswer` on a wrong shape."""
        attrs = shape.obj(attrs, where)
        return cls(
            id=shape.count(attrs, "id", where),
            username=shape.opt_text(attrs, "username", where),
            admin=shape.opt_flag(attrs, "admin", where),
        )

    @classmethod
    def from_answer(cls, data: Any) -> Account:
        """Reads `{"object": "user", "attributes": {…}}`."""
        return cls.from_attributes(shape.member(shape.obj(data, "account"), "attributes", "account"))
