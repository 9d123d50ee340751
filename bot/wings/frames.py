"""Wings websocket frames: the JSON envelope, event names and the payloads carried in args.

Pure code, no I/O. The facts: docs/wings-and-panel.md, Frames, Events and payloads, Closing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "MAX_INBOUND_FRAME",
    "MAX_OUTBOUND_FRAME",
    "BackupResult",
    "ConnectionCloseKind",
    "Event",
    "Frame",
    "FrameError",
    "PowerAction",
    "PowerState",
    "Stats",
    "classify_close",
    "decode_frame",
    "encode_frame",
    "parse_backup_completed",
    "parse_stats",
]

# Wings cuts console lines at 64 KiB, so anything far beyond that is not a frame we can use .
MAX_INBOUND_FRAME = 1 << 20
# Hardened Wings closes with 1009 on a frame over its 4096-byte read limit; we stay strictly below it.
MAX_OUTBOUND_FRAME = 4096


class FrameError(ValueError):
    """A frame or payload that does not follow the Wings envelope; log it and skip it."""


class Event(StrEnum):
    """Every event name Wings sends or accepts (docs/wings-and-panel.md, Events and payloads)."""

    # client -> Wings
    AUTH = "auth"
    SET_STATE = "set state"
    SEND_COMMAND = "send command"
    SEND_LOGS = "send logs"
    SEND_STATS = "send stats"
    # Wings -> client
    AUTH_SUCCESS = "auth success"
    STATUS = "status"
    STATS = "stats"
    CONSOLE_OUTPUT = "console output"
    INSTALL_OUTPUT = "install output"
    INSTALL_STARTED = "install started"
    INSTALL_COMPLETED = "install completed"
    DAEMON_MESSAGE = "daemon message"
    DAEMON_ERROR = "daemon error"
    JWT_ERROR = "jwt error"
    TOKEN_EXPIRING = "token expiring"
    TOKEN_EXPIRED = "token expired"
    BACKUP_COMPLETED = "backup completed"
    BACKUP_RESTORE_COMPLETED = "backup restore completed"
    TRANSFER_LOGS = "transfer logs"
    TRANSFER_STATUS = "transfer status"
    DELETED = "deleted"
    THROTTLED = "throttled"
    FEATURE_MATCH = "feature match"  # Pelican only


_EVENTS: dict[str, Event] = {e.value: e for e in Event}


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded websocket message: an event name and its string args."""

    event: str
    args: tuple[str, ...] = ()

    @property
    def known(self) -> Event | None:
        """The event as an `Event`, or None for a name this code does not know."""
        return _EVENTS.get(self.event)

    @property
    def arg(self) -> str:
        """The first arg, or "" when there is none."""
        return self.args[0] if self.args else ""


def encode_frame(event: str | Event, *args: str) -> str:
    """Encode one outbound frame as compact JSON; `args` is always present, even when empty."""
    for a in args:
        if not isinstance(a, str):
            raise TypeError(f"frame args must be str, not {type(a).__name__}")
    # ensure_ascii=False keeps non-ASCII text at its UTF-8 size, which matters against the 4 KiB limit.
    return json.dumps({"event": str(event), "args": list(args)}, separators=(",", ":"), ensure_ascii=False)


def _reject_constant(name: str) -> Any:
    raise FrameError(f"non-finite number {name} in JSON")


# One decoder for every frame: json.loads with options would build a new one per call (a hot path).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise FrameError(f"invalid JSON: {exc.msg} at {exc.pos}") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise FrameError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise FrameError("JSON nested too deeply") from None


def _frame_size(data: str | bytes) -> int:
    if isinstance(data, bytes):
        return len(data)
    # A str of n chars is n..4n UTF-8 bytes: only encode when the answer is not already known.
    if len(data) > MAX_INBOUND_FRAME or len(data) * 4 <= MAX_INBOUND_FRAME:
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


def decode_frame(data: str | bytes) -> Frame:
    """Decode one frame the way Wings does: missing or null args mean none, null elements mean "".

    Raises FrameError for bad JSON, a non-object, a missing or non-string event, non-list args,
    a non-string element, or a frame over MAX_INBOUND_FRAME bytes.
    """
    size = _frame_size(data)
    if size > MAX_INBOUND_FRAME:
        raise FrameError(f"frame of {size} bytes is over the {MAX_INBOUND_FRAME}-byte limit")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("frame is not valid UTF-8") from None
    obj = _loads(data)  # json tolerates the trailing "\n" Go's json.Encoder writes
    if not isinstance(obj, dict):
        raise FrameError(f"frame is a JSON {type(obj).__name__}, not an object")
    event = obj.get("event")
    if not isinstance(event, str):
        raise FrameError("frame has no string 'event'")
    raw_args = obj.get("args")
    if raw_args is None:
        return Frame(event, ())
    if not isinstance(raw_args, list):
        raise FrameError(f"frame 'args' is a JSON {type(raw_args).__name__}, not an array")
    if all(type(item) is str for item in raw_args):  # the common case, kept cheap for console floods
        return Frame(event, tuple(raw_args))
    args: list[str] = []
    for item in raw_args:
        if item is None:
            args.append("")
        elif isinstance(item, str):
            args.append(item)
        else:
            raise FrameError(f"frame arg is a JSON {type(item).__name__}, not a string")
    return Frame(event, tuple(args))


class PowerState(StrEnum):
    """A server's power state as `status` and stats report it."""

    OFFLINE = "offline"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"

    @classmethod
    def parse(cls, value: object) -> PowerState | None:
        """The state for a `status` arg or stats `state`, or None if it is not one."""
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                return None
        return None


class PowerAction(StrEnum):
    """A `set state` argument."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"
    KILL = "kill"


@dataclass(frozen=True, slots=True)
class Stats:
    """One `stats` payload. Sizes in bytes, uptime in ms, cpu in percent of one core (may exceed 100)."""

    memory_bytes: int
    memory_limit_bytes: int
    cpu_absolute: float
    network_rx_bytes: int
    network_tx_bytes: int
    uptime_ms: int
    state: PowerState | None
    disk_bytes: int
    disk_read_bytes: int | None = None  # Pelican's disk_io; None when Wings does not send it
    disk_write_bytes: int | None = None


def _parse_json_object(arg: str, what: str) -> dict[str, Any]:
    obj = _loads(arg)
    if not isinstance(obj, dict):
        raise FrameError(f"{what} payload is a JSON {type(obj).__name__}, not an object")
    return obj


# Wings' counters are Go int64/uint64; anything beyond is not a real reading (e.g. 1e400, which JSON reads as inf).
_MAX_COUNT = 2**64


def _number(value: Any, key: str) -> float | int:
    # bool is an int in Python, but never a number in Wings' payloads
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FrameError(f"{key!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise FrameError(f"{key!r} is not a finite number")
    if abs(value) > _MAX_COUNT:
        raise FrameError(f"{key!r} is out of range")
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    return int(_number(value, key))


def _sub(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FrameError(f"{key!r} is not an object")
    return value


def parse_stats(arg: str) -> Stats:
    """Parse the JSON string in a `stats` arg; missing keys read as zero, key order does not matter."""
    obj = _parse_json_object(arg, "stats")
    cpu = obj.get("cpu_absolute")
    cpu = 0.0 if cpu is None else _number(cpu, "cpu_absolute")
    network = _sub(obj, "network")
    io = _sub(obj, "disk_io") if obj.get("disk_io") is not None else None
    return Stats(
        memory_bytes=_int(obj, "memory_bytes"),
        memory_limit_bytes=_int(obj, "memory_limit_bytes"),
        cpu_absolute=float(cpu),
        network_rx_bytes=_int(network, "rx_bytes"),
        network_tx_bytes=_int(network, "tx_bytes"),
        uptime_ms=_int(obj, "uptime"),
        state=PowerState.parse(obj.get("state")),
        disk_bytes=_int(obj, "disk_bytes"),
        disk_read_bytes=None if io is None else _int(io, "read_bytes"),
        disk_write_bytes=None if io is None else _int(io, "write_bytes"),
    )


@dataclass(frozen=True, slots=True)
class BackupResult:
    """A `backup completed` payload."""

    uuid: str
    is_successful: bool
    file_size: int
    checksum: str
    checksum_type: str


def parse_backup_completed(arg: str) -> BackupResult:
    """Parse the JSON string in a `backup completed` arg."""
    obj = _parse_json_object(arg, "backup")
    ok = obj.get("is_successful")
    if not isinstance(ok, bool):
        raise FrameError("'is_successful' is not a boolean")
    return BackupResult(
        uuid=str(obj.get("uuid") or ""),
        is_successful=ok,
        file_size=_int(obj, "file_size"),
        checksum=str(obj.get("checksum") or ""),
        checksum_type=str(obj.get("checksum_type") or ""),
    )


class ConnectionCloseKind(StrEnum):
    """What a websocket close code means for reconnecting (docs/wings-and-panel.md, Closing and close codes)."""

    NORMAL = "normal"  # 1000, 1001 (Classic: server deleted), 1005
    ABNORMAL = "abnormal"  # 1006 or no close frame at all: most server-side closes
    TOO_BIG = "too big"  # 1009: we sent a frame over the hardened read limit
    SUSPENDED = "suspended"  # 4409: do not reconnect
    OTHER = "other"


_CLOSE_KINDS = {
    1000: ConnectionCloseKind.NORMAL,
    1001: ConnectionCloseKind.NORMAL,
    1005: ConnectionCloseKind.NORMAL,
    1006: ConnectionCloseKind.ABNORMAL,
    1009: ConnectionCloseKind.TOO_BIG,
    4409: ConnectionCloseKind.SUSPENDED,
}


def classify_close(code: int | None) -> ConnectionCloseKind:
    """Classify a close code; None (the connection ended without a close frame) is ABNORMAL."""
    if code is None:
        return ConnectionCloseKind.ABNORMAL
    return _CLOSE_KINDS.get(code, ConnectionCloseKind.OTHER)
