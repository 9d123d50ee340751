"""What a Wings `jwt error` or `daemon error` text means, and how to say it to a user.

What the connection does about each jwt cause is the session's table (`bot.wings.session`).

Pure code. Texts are matched by case-insensitive substring, as the panel's own frontend does
(docs/wings-and-panel.md, Error texts).
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = [
    "DaemonErrorKind",
    "JwtErrorCause",
    "classify_daemon_error",
    "classify_jwt_error",
    "explain_daemon_error",
    "explain_jwt_error",
    "strip_error_prefix",
]

_PREFIX = re.compile(r"^\s*error event \[[^\]]*\]:\s*", re.IGNORECASE)
# Long enough for any real Wings message, short enough for a Discord notice.
_MAX_QUOTED = 300


def strip_error_prefix(text: str) -> str:
    """Remove the `Error Event [<id>]: ` prefix Wings puts on handler errors."""
    return _PREFIX.sub("", text, count=1).strip()


class JwtErrorCause(StrEnum):
    """The likely cause behind a `jwt error`."""

    EXPIRED = "expired"
    DENYLISTED = "denylisted"
    NO_CONNECT_PERMISSION = "no connect permission"
    UUID_MISMATCH = "uuid mismatch"
    CLOCK_SKEW = "clock skew"
    NOT_PRESENT = "not present"
    BAD_TOKEN = "bad token"
    OTHER = "other"


# Checked in order; first match wins.
_JWT_PATTERNS: tuple[tuple[tuple[str, ...], JwtErrorCause], ...] = (
    (("exp claim is invalid", "token is expired", "token has expired"), JwtErrorCause.EXPIRED),
    (("created too far in past", "denylist"), JwtErrorCause.DENYLISTED),
    (("missing connect permission",), JwtErrorCause.NO_CONNECT_PERMISSION),
    (("uuid mismatch",), JwtErrorCause.UUID_MISMATCH),
    (("no jwt present",), JwtErrorCause.NOT_PRESENT),
    # A token not valid yet by the node's clock (libraries that check iat or nbf): the node's clock is behind.
    (("used before issued", "not valid yet", "nbf claim", "iat claim"), JwtErrorCause.CLOCK_SKEW),
    (("hmac", "malformed", "signature"), JwtErrorCause.BAD_TOKEN),
)


def classify_jwt_error(text: str, *, fresh_token: bool = False) -> JwtErrorCause:
    """Classify a `jwt error` text, with or without its `Error Event [..]: ` prefix.

    `fresh_token` says the token was issued moments ago (it was refused in answer to our own `auth`): Wings calling it
    expired then means the panel's and the node's clocks differ, not that it aged out.
    """
    lowered = strip_error_prefix(text).lower()
    for needles, cause in _JWT_PATTERNS:
        if any(n in lowered for n in needles):
            if cause is JwtErrorCause.EXPIRED and fresh_token:
                return JwtErrorCause.CLOCK_SKEW
            return cause
    return JwtErrorCause.OTHER


_JWT_EXPLANATIONS = {
    JwtErrorCause.EXPIRED: "The Wings token expired before it was refreshed; fetching a new one.",
    JwtErrorCause.DENYLISTED: (
        "Wings rejected the token as issued before its last restart or a permission change; refreshing it."
    ),
    JwtErrorCause.NO_CONNECT_PERMISSION: (
        "The panel key lacks the websocket.connect permission on this server; "
        "grant it in the panel, then try again."
    ),
    JwtErrorCause.UUID_MISMATCH: (
        "Wings says the token belongs to a different server; check that the panel and node agree "
        "on this server, then try again."
    ),
    JwtErrorCause.CLOCK_SKEW: (
        "Wings called a token the panel had just issued expired or not yet valid, so the panel's and the "
        "node's clocks differ; an administrator should sync both clocks (NTP)."
    ),
    JwtErrorCause.NOT_PRESENT: "Wings had no token for this connection yet; sending it again.",
    JwtErrorCause.BAD_TOKEN: (
        "Wings could not verify the token's signature, so the panel and the node disagree on the node "
        "token; an administrator should re-apply the node configuration."
    ),
    JwtErrorCause.OTHER: "Wings rejected the token for an unrecognised reason; see the bot's log.",
}


def explain_jwt_error(cause: JwtErrorCause) -> str:
    """One user-facing sentence naming the likely cause and what happens or should happen next."""
    return _JWT_EXPLANATIONS[cause]


class DaemonErrorKind(StrEnum):
    """What a `daemon error` text reports."""

    POWER_LOCK_BUSY = "power lock busy"
    ALREADY_RUNNING = "already running"
    SUSPENDED = "suspended"
    INSTALLING = "installing"
    TRANSFERRING = "transferring"
    RESTORING = "restoring"
    UNKNOWN_ACTION = "unknown action"
    TOO_MANY_CONNECTIONS = "too many connections"
    GENERIC = "generic"
    OTHER = "other"


_DAEMON_PATTERNS: tuple[tuple[str, DaemonErrorKind], ...] = (
    ("another power action is currently being processed", DaemonErrorKind.POWER_LOCK_BUSY),
    ("server is running", DaemonErrorKind.ALREADY_RUNNING),
    ("suspended state", DaemonErrorKind.SUSPENDED),
    ("currently installing", DaemonErrorKind.INSTALLING),
    ("being transferred", DaemonErrorKind.TRANSFERRING),
    ("being restored", DaemonErrorKind.RESTORING),
    ("unknown power action", DaemonErrorKind.UNKNOWN_ACTION),
    ("too many open websocket connections", DaemonErrorKind.TOO_MANY_CONNECTIONS),
    ("an unexpected error was encountered while handling this request", DaemonErrorKind.GENERIC),
)


def classify_daemon_error(text: str) -> DaemonErrorKind:
    """Classify a `daemon error` text, with or without its `Error Event [..]: ` prefix."""
    lowered = strip_error_prefix(text).lower()
    for needle, kind in _DAEMON_PATTERNS:
        if needle in lowered:
            return kind
    return DaemonErrorKind.OTHER


_DAEMON_EXPLANATIONS = {
    DaemonErrorKind.POWER_LOCK_BUSY: (
        "Another power action is still running on this server; wait for it to finish and try again."
    ),
    DaemonErrorKind.ALREADY_RUNNING: (
        "The server is already running (or starting), so it was not started again."
    ),
    DaemonErrorKind.SUSPENDED: "The server is suspended, so Wings refused the action.",
    DaemonErrorKind.INSTALLING: "The server is still installing; try again when the install has finished.",
    DaemonErrorKind.TRANSFERRING: "The server is being transferred to another node; try again afterwards.",
    DaemonErrorKind.RESTORING: "The server is restoring a backup; try again when the restore has finished.",
    DaemonErrorKind.UNKNOWN_ACTION: "Wings did not recognise the power action.",
    DaemonErrorKind.TOO_MANY_CONNECTIONS: (
        "The server has too many open console connections; close some panel tabs and try again."
    ),
    DaemonErrorKind.GENERIC: (
        "Wings refused the request without details (only panel admins see them); the server may be "
        "running already, installing, transferring or restoring."
    ),
}


_GENERIC_DURING_AUTH = (
    "Wings refused the token without details, so it is malformed or signed with a different node "
    "token than Wings holds; an administrator should re-apply the node configuration."
)


def explain_daemon_error(text: str, *, during_auth: bool = False) -> str:
    """One clear sentence for a user about a `daemon error` text.

    `during_auth`: the error answered our `auth`. Wings then sends the generic text for a token whose
    signature it cannot verify, because no token is stored yet to unlock the real text (docs/wings-and-panel.md, Error texts).
    """
    kind = classify_daemon_error(text)
    if kind is DaemonErrorKind.GENERIC and during_auth:
        return _GENERIC_DURING_AUTH
    if kind is not DaemonErrorKind.OTHER:
        return _DAEMON_EXPLANATIONS[kind]
    detail = " ".join(strip_error_prefix(text).split())  # one line, whatever Wings sent
    if not detail:
        return "Wings reported an error without a message."
    if len(detail) > _MAX_QUOTED:
        detail = detail[: _MAX_QUOTED - 1] + "…"
    if detail[-1] not in ".!?…":
        detail += "."
    return f"Wings reported an error: {detail}"
