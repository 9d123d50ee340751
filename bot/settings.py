"""Typed settings read once from the environment (after loading `.env`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bot.relay.format import ColorMode
from bot.store import database_path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable, never its value."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bot is configured with (SPEC §2)."""

    discord_token: str = field(repr=False)
    panel_url: str
    panel_api_key: str = field(repr=False)
    admin_role_ids: frozenset[int] = frozenset()
    guild_ids: tuple[int, ...] = ()
    database_url: str = "sqlite:///data/wingbeat.sqlite3"
    wings_origin: str = ""
    console_input: bool = False
    console_color: ColorMode = ColorMode.PLAIN
    log_level: str = "INFO"
    # Advanced: where discord.py sends REST requests and opens its gateway (None = Discord's own).
    discord_api_url: str | None = None
    discord_gateway_url: str | None = None

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required but not set")
    return value


def _http_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(f"{name} must be an http(s) URL such as https://panel.example.com")
    return raw.rstrip("/")


def _endpoint(env: Mapping[str, str], name: str, schemes: tuple[str, str], kind: str) -> str | None:
    """An optional URL override (None when unset); only the scheme and a host are required."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number
        port_ok = False
    if parts.scheme not in schemes or not parts.hostname or not port_ok or parts.query or parts.fragment:
        raise SettingsError(f"{name} must be {kind}")
    return raw


def _api_url(env: Mapping[str, str]) -> str | None:
    url = _endpoint(
        env, "DISCORD_API_URL", ("http", "https"), "an http(s) URL such as https://discord.com/api/v10"
    )
    # discord.py appends paths that start with "/" to this base.
    return None if url is None else url.rstrip("/")


def _id_list(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return ()
    ids: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or len(part) > 20:
            raise SettingsError(f"{name} must be a comma-separated list of Discord IDs (digits only)")
        ids.append(int(part))
    return tuple(dict.fromkeys(ids))


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false")


def _database_url(env: Mapping[str, str]) -> str:
    raw = env.get("DATABASE_URL", "").strip() or "sqlite:///data/wingbeat.sqlite3"
    try:
        database_path(raw)  # the store's own reading of the URL, so both agree on what is valid
    except ValueError as exc:
        # The store's reason never quotes the value, so nothing configured is echoed.
        raise SettingsError(f"DATABASE_URL is not usable: {exc}") from None
    return raw


def load_settings(env: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")) -> Settings:
    """Build settings from `env` (default: the process environment, after loading `dotenv`)."""
    if env is None:
        if dotenv is not None and dotenv.is_file():
            from dotenv import load_dotenv

            load_dotenv(dotenv, override=False)
        env = os.environ
    token = _required(env, "DISCORD_TOKEN")
    if any(ch.isspace() for ch in token):
        raise SettingsError("DISCORD_TOKEN must be a single token with no spaces")
    panel_url = _http_url("PANEL_URL", _required(env, "PANEL_URL"))
    api_key = _required(env, "PANEL_API_KEY")
    if any(ch.isspace() for ch in api_key):
        raise SettingsError("PANEL_API_KEY must be a single key with no spaces")
    origin_raw = env.get("WINGS_ORIGIN", "").strip()
    origin = _http_url("WINGS_ORIGIN", origin_raw) if origin_raw else panel_url
    color_raw = env.get("CONSOLE_COLOR", "").strip().lower() or "plain"
    try:
        color = ColorMode(color_raw)
    except ValueError:
        raise SettingsError("CONSOLE_COLOR must be plain or ansi") from None
    level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in _LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(_LEVELS)}")
    return Settings(
        discord_token=token,
        panel_url=panel_url,
        panel_api_key=api_key,
        admin_role_ids=frozenset(_id_list(env, "ADMIN_ROLE_IDS")),
        guild_ids=_id_list(env, "GUILD_IDS"),
        database_url=_database_url(env),
        wings_origin=origin,
        console_input=_bool(env, "CONSOLE_INPUT"),
        console_color=color,
        log_level=level,
        discord_api_url=_api_url(env),
        discord_gateway_url=_endpoint(
            env, "DISCORD_GATEWAY_URL", ("ws", "wss"), "a ws(s) URL such as wss://gateway.discord.gg/"
        ),
    )
