"""Minimal HS256 JWT signing and verification for the emulator (tests only).

Verification follows the order Wings uses (docs/wings-and-panel.md, Tokens): split, decode header, check the HMAC
(the header's `alg` is not looked at), decode the payload. Claim checks are the caller's job.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


class JwtMalformed(ValueError):
    """The token is not three base64url JSON parts."""


class JwtBadSignature(ValueError):
    """The HMAC does not match (Wings: `jwt: HMAC verification failed`)."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise JwtMalformed("jwt: malformed token") from exc


def _sign(signing_input: bytes, secret: bytes) -> str:
    return b64url_encode(hmac.new(secret, signing_input, hashlib.sha256).digest())


def encode(claims: dict[str, Any], secret: str, *, header: dict[str, Any] | None = None) -> str:
    """Sign `claims` with HMAC-SHA256; the header defaults to `{"typ":"JWT","alg":"HS256"}`."""
    head = {"typ": "JWT", "alg": "HS256", **(header or {})}
    parts = [
        b64url_encode(json.dumps(head, separators=(",", ":")).encode()),
        b64url_encode(json.dumps(claims, separators=(",", ":")).encode()),
    ]
    signing_input = ".".join(parts).encode("ascii")
    return ".".join([*parts, _sign(signing_input, secret.encode())])


def _json_part(text: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(text))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwtMalformed("jwt: malformed token") from exc
    if not isinstance(value, dict):
        raise JwtMalformed("jwt: malformed token")
    return value


def decode(token: str, secret: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify `token` and return (header, claims); raises JwtMalformed or JwtBadSignature."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtMalformed("jwt: malformed token")
    header = _json_part(parts[0])
    expected = _sign(f"{parts[0]}.{parts[1]}".encode("ascii", "replace"), secret.encode())
    if not hmac.compare_digest(expected, parts[2]):
        raise JwtBadSignature("jwt: HMAC verification failed")
    return header, _json_part(parts[1])


def decode_unverified(token: str) -> dict[str, Any]:
    """The claims of `token` without checking the signature (for test assertions)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtMalformed("jwt: malformed token")
    return _json_part(parts[1])
