"""Wings websocket tokens: reading claims, permission checks and when to refresh.

Pure code, no I/O, no clock: times are passed in. The facts: docs/wings-and-panel.md, Tokens and Permissions.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from bot.wings.frames import PowerAction

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "MIN_REFRESH_DELAY",
    "REFRESH_LEAD",
    "TokenClaims",
    "TokenError",
    "has_permission",
    "permission_for",
    "read_claims",
    "refresh_at",
]

# The panel issues 10-minute tokens; assumed when a token carries no iat.
DEFAULT_TOKEN_LIFETIME = 600
# Refresh this long before expiry (60–90 s ahead)...
REFRESH_LEAD = 75.0
# ...but never later than this share of the lifetime, so short tokens refresh well before expiry...
SHORT_TOKEN_SHARE = 0.75
# ...and never sooner than this after receipt, so a broken or already expired token cannot cause a storm.
MIN_REFRESH_DELAY = 1.0


class TokenError(ValueError):
    """A token that is not a readable JWT."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The claims of a Wings websocket JWT that the bot uses. NumericDates are whole seconds."""

    exp: int
    iat: int | None
    permissions: frozenset[str]
    server_uuid: str | None
    scope: str | None

    @property
    def lifetime(self) -> int | None:
        """exp - iat in seconds, or None without iat."""
        return None if self.iat is None else self.exp - self.iat


def _b64url(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("token part is not base64url") from None


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(_b64url(part))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TokenError(f"token {what} is not JSON") from None
    if not isinstance(obj, dict):
        raise TokenError(f"token {what} is not a JSON object")
    return obj


def _numeric_date(claims: dict[str, Any], key: str) -> int | None:
    value = claims.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"claim {key!r} is not a number")
    if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > 2**63:
        raise TokenError(f"claim {key!r} is out of range")
    return int(value)  # whole seconds, as Wings reads them


def _optional_str(claims: dict[str, Any], key: str) -> str | None:
    value = claims.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TokenError(f"claim {key!r} is not a string")
    return value


def read_claims(token: str) -> TokenClaims:
    """Decode a JWT's payload without checking its signature (only Wings holds the key)."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise TokenError("token is not a three-part JWT")
    _json_object(parts[0], "header")
    claims = _json_object(parts[1], "payload")
    exp = _numeric_date(claims, "exp")
    if exp is None:
        raise TokenError("token has no exp claim")
    perms = claims.get("permissions")
    if perms is None:
        perms = []
    if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
        raise TokenError("claim 'permissions' is not a list of strings")
    return TokenClaims(
        exp=exp,
        iat=_numeric_date(claims, "iat"),
        permissions=frozenset(perms),
        server_uuid=_optional_str(claims, "server_uuid"),
        scope=_optional_str(claims, "scope"),
    )


def has_permission(permissions: Iterable[str], permission: str) -> bool:
    """Mirror Wings: an exact match, or `*`, which covers everything except `admin*` permissions."""
    return any(p == permission or (p == "*" and not permission.startswith("admin")) for p in permissions)


_POWER_PERMISSIONS = {
    PowerAction.START: "control.start",
    PowerAction.STOP: "control.stop",
    PowerAction.KILL: "control.stop",  # Wings checks stop for kill too
    PowerAction.RESTART: "control.restart",
}


def permission_for(action: PowerAction | Literal["command"]) -> str:
    """The permission Wings needs before it acts on `set state <action>` or `send command`."""
    if action == "command":
        return "control.console"
    return _POWER_PERMISSIONS[PowerAction(action)]


def _lifetime(claims: TokenClaims) -> float:
    lifetime = claims.lifetime
    return float(DEFAULT_TOKEN_LIFETIME if lifetime is None else lifetime)


def refresh_at(claims: TokenClaims, received_at: float) -> float:
    """When, on the clock of `received_at`, to send a fresh token.

    Uses the token's own lifetime (exp - iat), not exp against the local clock, because panel and bot
    clocks may differ. Long tokens refresh REFRESH_LEAD seconds before expiry, short ones after three
    quarters of their lifetime (a 20 s token at 15 s), and never sooner than MIN_REFRESH_DELAY.
    """
    lifetime = _lifetime(claims)
    delay = max(lifetime - REFRESH_LEAD, lifetime * SHORT_TOKEN_SHARE, MIN_REFRESH_DELAY)
    return received_at + delay
