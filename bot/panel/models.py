"""Small typed models for what the panel's Client API returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    def from_attributes(cls, attrs: dict[str, Any]) -> Server:
        return cls(
            identifier=str(attrs["identifier"]),
            uuid=str(attrs["uuid"]),
            name=str(attrs.get("name") or attrs["identifier"]),
            node=str(attrs.get("node") or ""),
            description=str(attrs.get("description") or ""),
            status=attrs.get("status"),
            is_suspended=bool(attrs.get("is_suspended", False)),
            is_installing=bool(attrs.get("is_installing", False)),
            is_transferring=bool(attrs.get("is_transferring", False)),
            is_node_under_maintenance=bool(attrs.get("is_node_under_maintenance", False)),
        )


@dataclass(frozen=True, slots=True)
class ServerDetails:
    """One server with the permissions the panel key holds on it."""

    server: Server
    user_permissions: frozenset[str]
    is_server_owner: bool


@dataclass(frozen=True, slots=True)
class WebsocketCredentials:
    """A fresh Wings token and the socket URL it is valid for."""

    token: str
    socket: str

    def __repr__(self) -> str:  # the token is a secret: keep it out of logs
        return f"WebsocketCredentials(socket={self.socket!r}, token=<hidden>)"


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
    def from_attributes(cls, attrs: dict[str, Any]) -> Resources:
        res = attrs.get("resources") or {}
        return cls(
            current_state=str(attrs.get("current_state") or "offline"),
            is_suspended=bool(attrs.get("is_suspended", False)),
            memory_bytes=int(res.get("memory_bytes") or 0),
            cpu_absolute=float(res.get("cpu_absolute") or 0.0),
            disk_bytes=int(res.get("disk_bytes") or 0),
            network_rx_bytes=int(res.get("network_rx_bytes") or 0),
            network_tx_bytes=int(res.get("network_tx_bytes") or 0),
            uptime_ms=int(res.get("uptime") or 0),
        )


@dataclass(frozen=True, slots=True)
class Account:
    """The panel user the API key belongs to."""

    id: int
    username: str
    admin: bool

    @classmethod
    def from_attributes(cls, attrs: dict[str, Any]) -> Account:
        return cls(
            id=int(attrs["id"]), username=str(attrs.get("username", "")), admin=bool(attrs.get("admin"))
        )
