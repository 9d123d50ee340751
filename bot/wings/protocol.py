"""The sans-I/O Wings websocket protocol: every rule of reference/wings-protocol.md as plain functions.

Import everything from here. Frames live in `frames`, tokens in `tokens`, error texts in `errors_wings`;
this module adds the checks on what the bot is about to send. No I/O and no clock: times are arguments.
"""

from __future__ import annotations

import unicodedata

from bot.wings.error_texts import (
    DaemonErrorKind,
    JwtErrorCause,
    classify_daemon_error,
    classify_jwt_error,
    explain_daemon_error,
    explain_jwt_error,
    jwt_cause_refreshable,
    jwt_cause_terminal,
    strip_error_prefix,
)
from bot.wings.frames import (
    MAX_INBOUND_FRAME,
    MAX_OUTBOUND_FRAME,
    BackupResult,
    ConnectionCloseKind,
    Event,
    Frame,
    FrameError,
    PowerAction,
    PowerState,
    Stats,
    classify_close,
    close_is_terminal,
    decode_frame,
    encode_frame,
    parse_backup_completed,
    parse_stats,
)
from bot.wings.tokens import (
    DEFAULT_TOKEN_LIFETIME,
    MIN_REFRESH_DELAY,
    REFRESH_LEAD,
    TokenClaims,
    TokenError,
    has_permission,
    permission_for,
    read_claims,
    refresh_at,
)

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "MAX_INBOUND_FRAME",
    "MAX_OUTBOUND_FRAME",
    "MIN_REFRESH_DELAY",
    "REFRESH_LEAD",
    "BackupResult",
    "ConnectionCloseKind",
    "DaemonErrorKind",
    "Event",
    "Frame",
    "FrameError",
    "JwtErrorCause",
    "PowerAction",
    "PowerState",
    "Stats",
    "TokenClaims",
    "TokenError",
    "check_command",
    "classify_close",
    "classify_daemon_error",
    "classify_jwt_error",
    "close_is_terminal",
    "decode_frame",
    "encode_frame",
    "expected_states",
    "explain_daemon_error",
    "explain_jwt_error",
    "has_permission",
    "jwt_cause_refreshable",
    "jwt_cause_terminal",
    "parse_backup_completed",
    "parse_stats",
    "permission_for",
    "read_claims",
    "refresh_at",
    "strip_error_prefix",
]

# Bytes a `send command` frame costs around the command itself.
_COMMAND_OVERHEAD = len(encode_frame(Event.SEND_COMMAND, "").encode("utf-8"))
# Python's own idea of a line break beyond \r and \n; a game console may split on these too.
_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_CONTROL_NAMES = {"\t": "a tab", "\x1b": "an escape character (ESC)", "\x00": "a NUL character"}


def check_command(command: str, *, max_frame: int = MAX_OUTBOUND_FRAME) -> str | None:
    """None if `command` can go out as one `send command`, else one sentence saying why not.

    Refused: empty or blank (the panel refuses those too), a line break (Wings would run a second
    command), any other control character including tab, and a frame of `max_frame` bytes or more
    (hardened Wings closes the socket with 1009 on it).
    """
    if not command.strip():
        return "The command is empty."
    for ch in command:
        if ch in _LINE_BREAKS:
            return "The command holds a line break; send one command at a time."
        category = unicodedata.category(ch)
        if category == "Cc":
            name = _CONTROL_NAMES.get(ch, f"a control character (U+{ord(ch):04X})")
            return f"The command holds {name}; remove it and try again."
        if category == "Cs":
            return "The command holds an invalid character (a lone UTF-16 surrogate)."
    size = len(encode_frame(Event.SEND_COMMAND, command).encode("utf-8"))
    if size >= max_frame:
        room = max_frame - 1 - _COMMAND_OVERHEAD
        used = size - _COMMAND_OVERHEAD
        return f"The command is too long for Wings: it takes {used} bytes, the most is about {room}."
    return None


def expected_states(action: PowerAction, current: PowerState | None) -> tuple[PowerState, ...]:
    """The `status` milestones, in order, after which `action` counts as done; the last is the goal.

    Empty when nothing will change: stop or kill while offline, start while running (Wings answers
    the start with a daemon error). Restart passes through offline unless the server already is
    offline or its state is unknown, where only `running` can be counted on.
    """
    match action:
        case PowerAction.START:
            return () if current is PowerState.RUNNING else (PowerState.RUNNING,)
        case PowerAction.STOP | PowerAction.KILL:
            return () if current is PowerState.OFFLINE else (PowerState.OFFLINE,)
        case PowerAction.RESTART:
            if current is None or current is PowerState.OFFLINE:
                return (PowerState.RUNNING,)
            return (PowerState.OFFLINE, PowerState.RUNNING)
    raise ValueError(f"unknown power action {action!r}")
