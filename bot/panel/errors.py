"""Typed panel errors, each with one sentence a user can act on.

    PanelError                    any failure talking to the panel's Client API
    ├── PanelUnavailable          unreachable, timed out: retry later
    │   └── PanelBadAnswer        an answer that is not the Client API's (HTML, a proxy's page, a wrong shape)
    ├── PanelAuthError            401: the key is wrong or revoked
    ├── PanelForbidden            403: the key's user lacks a permission
    ├── PanelNotFound             404: no such server, or the user cannot see it
    ├── PanelConflict             409 (and 502 "must be online"): the server's state forbids it
    ├── PanelValidationError      400/422: the request's content was refused
    ├── PanelRateLimited          429 that outlasted the client's retries
    ├── PanelBusy                 a view refused before sending: Wingbeat's share of the budget is spent
    └── PanelServerError          5xx: the panel failed, or could not reach the node behind it

`str(error)` is that sentence; `detail` keeps the panel's own text for logs. Neither ever holds the API key,
and no sentence carries the panel's address (people who are not admins read them): that goes in logs only.
Only a body in the panel's own error format (`{"errors": [...]}`) is taken as the panel's verdict; anything
else at an error status came from something in front of it and is a `PanelBadAnswer`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from bot.errors import WingbeatError


class ConflictKind(StrEnum):
    """Why the panel answered 409 (docs/wings-and-panel.md, Panel Client API)."""

    SUSPENDED = "suspended"
    MAINTENANCE = "maintenance"
    INSTALLING = "installing"
    RESTORING = "restoring"
    TRANSFERRING = "transferring"
    OTHER = "other"


class PanelError(WingbeatError):
    """Any failure talking to the panel's Client API."""

    def __init__(self, cause: str, *, status: int | None = None, code: str = "", detail: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        return self.cause


class PanelUnavailable(PanelError):
    """The panel could not be reached, or did not answer in time: worth retrying later."""


BAD_ANSWER = (
    "The panel's answer could not be understood (a proxy or a challenge page may have answered in its "
    "place); try again shortly."
)


class PanelBadAnswer(PanelUnavailable):
    """The answer was not the Client API's: not JSON, the wrong shape, or an error page from a proxy.

    Retried like an outage: a challenge page or a half-sent answer usually passes. `detail` says what was wrong.
    """

    def __init__(self, detail: str, *, status: int | None = None, cause: str = BAD_ANSWER) -> None:
        super().__init__(cause, status=status, detail=detail)


class PanelAuthError(PanelError):
    """401: the API key is wrong, revoked or of the wrong kind."""


class PanelForbidden(PanelError):
    """403: the key's user lacks a permission (or the key is restricted)."""


class PanelNotFound(PanelError):
    """404: no such server, or the key's user cannot see it."""


class PanelConflict(PanelError):
    """409: the server is suspended, installing, transferring, restoring, or its node is in maintenance."""

    def __init__(self, cause: str, kind: ConflictKind, **kw: Any) -> None:
        super().__init__(cause, **kw)
        self.kind = kind


class PanelValidationError(PanelError):
    """400/422: the panel refused the request's content."""


class PanelRateLimited(PanelError):
    """429 that outlasted the client's retries."""

    def __init__(self, cause: str, retry_after: float, **kw: Any) -> None:
        super().__init__(cause, **kw)
        self.retry_after = retry_after


class PanelBusy(PanelError):
    """A view was refused before it was sent: the panel's request budget is spent for a while.

    `retry_after` is about how long until a view would go through; views answer from what is known instead.
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "The panel's request budget is spent right now, so this was not checked; what is shown may be older."
        )
        self.retry_after = retry_after


class PanelServerError(PanelError):
    """5xx: the panel failed, or could not reach the node (Wings) behind it."""


_CONFLICTS: tuple[tuple[str, ConflictKind, str], ...] = (
    (
        "suspended",
        ConflictKind.SUSPENDED,
        "The server is suspended on the panel; an admin of the panel must unsuspend it.",
    ),
    (
        "maintenance",
        ConflictKind.MAINTENANCE,
        "The server's node is under maintenance; try again when it is back.",
    ),
    (
        "installation",
        ConflictKind.INSTALLING,
        "The server is still installing; try again when installation has finished.",
    ),
    (
        "restoring",
        ConflictKind.RESTORING,
        "The server is restoring a backup; try again when the restore has finished.",
    ),
    (
        "transferred",
        ConflictKind.TRANSFERRING,
        "The server is being moved to another node; try again when the transfer is done.",
    ),
)


MAX_DETAIL = 300  # the panel's own text is quoted in a few sentences; a runaway one is cut


def is_panel_error_body(body: Any) -> bool:
    """True when `body` is in the panel's own error format: `{"errors": [{"code", "status", "detail"}…]}`."""
    if not isinstance(body, dict):
        return False
    errors = body.get("errors")
    return (
        isinstance(errors, list)
        and bool(errors)
        and isinstance(errors[0], dict)
        and isinstance(errors[0].get("detail"), str)
    )


def first_error(body: Any) -> tuple[str, str]:
    """The `(code, detail)` of the first entry in a panel error body, or empty strings."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("code", ""))[:MAX_DETAIL], str(errors[0].get("detail", ""))[:MAX_DETAIL]
        if isinstance(body.get("error"), str):
            return "", str(body["error"])[:MAX_DETAIL]
    return "", ""


def error_for_status(status: int, body: Any, *, retry_after: float = 0.0) -> PanelError:
    """Turn an error response into the matching typed exception.

    A body that is not the panel's error format (a proxy's or a challenge page) says nothing about the key or
    the server, so it is a `PanelBadAnswer` whatever the status, except a 429, which any proxy means alike.
    """
    code, detail = first_error(body)
    if status != 429 and not is_panel_error_body(body):
        return PanelBadAnswer(
            f"HTTP {status} without the panel's error format",
            status=status,
            cause=(
                f"The panel is unavailable: something in front of it (a proxy or a challenge page) answered "
                f"HTTP {status}; try again shortly."
            ),
        )
    low = detail.lower()
    kw: dict[str, Any] = {"status": status, "code": code, "detail": detail}
    if status == 401:
        return PanelAuthError(
            "The panel rejected the API key: check that PANEL_API_KEY is a valid client key (ptlc_… or pacc_…).",
            **kw,
        )
    if status == 403:
        if "application api key" in low:
            cause = "PANEL_API_KEY is an application key; Wingbeat needs a client API key (ptlc_… or pacc_…)."
        elif "ip address" in low:
            cause = "The API key's IP allow-list does not include the machine Wingbeat runs on."
        elif "websocket" in low:
            cause = "The panel key's user lacks the websocket.connect permission on this server."
        elif "transfer" in low:
            cause = "The server is being transferred and the panel key's user may not follow transfers."
        else:
            cause = "The panel key's user lacks the permission for this action on this server."
        return PanelForbidden(cause, **kw)
    if status == 404:
        return PanelNotFound("The panel does not know this server, or the key's user cannot see it.", **kw)
    if status == 409:
        for needle, kind, cause in _CONFLICTS:
            if needle in low:
                return PanelConflict(cause, kind, **kw)
        return PanelConflict(
            f"The panel refused because of the server's state: {detail}", ConflictKind.OTHER, **kw
        )
    if status == 429:
        wait = max(1, round(retry_after))
        return PanelRateLimited(
            f"The panel is rate-limiting Wingbeat; try again in {wait} s.", retry_after, **kw
        )
    if status in (400, 422):
        return PanelValidationError(f"The panel refused the request: {detail or 'invalid request'}", **kw)
    if status == 502 and "must be online" in low:
        return PanelConflict(
            "The server must be online to receive console commands.", ConflictKind.OTHER, **kw
        )
    if status >= 500:
        if code == "DaemonConnectionException" or status in (502, 504):
            cause = "The panel could not reach the node (Wings) that runs this server; try again shortly."
        else:
            cause = f"The panel had an internal error (HTTP {status}); try again shortly."
        return PanelServerError(cause, **kw)
    return PanelError(f"The panel answered HTTP {status}: {detail or 'unexpected response'}", **kw)
