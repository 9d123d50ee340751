"""Logging set-up in discord.py's style, with a filter that keeps secrets out of every log line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import discord

# A Wings JWT (three base64url parts, the first being a JSON header) anywhere in a message.
_JWT = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")


class RedactSecrets(logging.Filter):
    """Replaces known secrets and anything shaped like a JWT with `<redacted>` in every record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= 8)

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "<redacted>")
        return _JWT.sub("<redacted>", text) if "eyJ" in text else text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        return True


def setup_logging(level: int, secrets: Iterable[str] = ()) -> None:
    """Colourised stderr logging via discord.py's helper, at `level`, with secrets redacted."""
    discord.utils.setup_logging(level=level, root=True)
    redact = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
    logging.getLogger("discord.http").setLevel(max(level, logging.WARNING))
    logging.getLogger("websockets").setLevel(max(level, logging.INFO))
