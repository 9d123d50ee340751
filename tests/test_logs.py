"""Secrets never reach a log line: the redaction filter on every handler, fed by real log calls."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.logs import RedactSecrets, setup_logging
from tests.fakes.jwt_hs256 import encode

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.Gabcde.secret-discord-token-value"
KEY = "ptlc_abcdefghijkSECRETSECRETSECRETSECRET12345"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    setup_logging(logging.DEBUG, secrets=(TOKEN, KEY))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    for existing in root.handlers:
        for flt in existing.filters:
            handler.addFilter(flt)
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_configured_secrets_and_jwts_are_redacted(captured: io.StringIO) -> None:
    jwt = encode({"exp": 1, "permissions": ["*"]}, "node-secret")
    log = logging.getLogger("bot.test")
    log.info("token %s key %s", TOKEN, KEY)
    log.warning("panel said %r", {"data": {"token": jwt}})
    try:
        raise RuntimeError(f"boom with {KEY}")
    except RuntimeError:
        log.exception("failed")
    out = captured.getvalue()
    assert TOKEN not in out and KEY not in out and jwt not in out
    assert out.count("<redacted>") >= 4
    assert "boom with" in out  # the rest of the message survives


def test_websocket_frame_dumps_stay_off_even_at_debug(captured: io.StringIO) -> None:
    # websockets logs whole frames (an `auth` frame holds the Wings token) at DEBUG
    assert logging.getLogger("websockets").getEffectiveLevel() >= logging.INFO


def test_short_values_are_not_treated_as_secrets() -> None:
    flt = RedactSecrets(["", "abc"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "abc and more", None, None)
    flt.filter(record)
    assert record.getMessage() == "abc and more"
