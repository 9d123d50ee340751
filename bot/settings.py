"""Typed settings read once from the environment (after loading `.env`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable, never its value."""


class ColorMode(StrEnum):
    """How console colours reach Discord (`CONSOLE_COLOR`)."""

    PLAIN = "plain"
    ANSI = "ansi"


class DatabaseKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")
SQLITE_MEMORY = ":memory:"
MAX_AUDIT_RETENTION_DAYS = 36500


@dataclass(frozen=True, slots=True)
class Database:
    """Where the store lives (`DATABASE_URL`): a SQLite file (or `:memory:`), or a PostgreSQL server.

    `target` is the SQLite path, or the whole PostgreSQL URL, which may hold a password: it is kept
    out of `repr`, and messages about it never quote it.
    """

    kind: DatabaseKind
    target: str = field(repr=False)

    @classmethod
    def parse(cls, url: str) -> Database:
        """Read a `sqlite:///…` or `postgresql://…` URL; ValueError says what is wrong without quoting it.

        SQLite takes three slashes then a relative path (`sqlite:///data/x.db`), four for an absolute one
        (`sqlite:////srv/x.db`), or `sqlite:///:memory:`.
        """
        text = url.strip()
        lowered = text.lower()
        if lowered.startswith(_POSTGRES):
            if not urlsplit(text).hostname and "host=" not in text:
                raise ValueError("the postgresql URL names no host, e.g. postgresql://user:pass@db/wingbeat")
            return cls(DatabaseKind.POSTGRESQL, text)
        if not lowered.startswith(_SQLITE):
            raise ValueError(
                "expected a URL like sqlite:///data/wingbeat.sqlite3 (relative), "
                "sqlite:////var/lib/wingbeat.sqlite3 (absolute) or postgresql://user:pass@host/db"
            )
        path = text[len(_SQLITE) :]
        if not path:
            raise ValueError("the sqlite URL names no database file, e.g. sqlite:///data/wingbeat.sqlite3")
        if "?" in path or "#" in path:
            # SQLAlchemy-style options would otherwise silently become part of the file name.
            raise ValueError("query options are not supported in a sqlite URL")
        if path != SQLITE_MEMORY and path.endswith("/"):
            raise ValueError("the sqlite URL names a folder, not a database file")
        return cls(DatabaseKind.SQLITE, path)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bot is configured with (docs/behaviour.md)."""

    discord_token: str = field(repr=False)
    panel_url: str
    panel_api_key: str = field(repr=False)
    admin_role_ids: frozenset[int] = frozenset()
    guild_ids: tuple[int, ...] = ()  # the guilds allowed to use Wingbeat; required when loaded
    database_url: str = "sqlite:///data/wingbeat.sqlite3"
    wings_origin: str = ""
    console_input: bool = False
    console_color: ColorMode = ColorMode.PLAIN
    log_level: str = "INFO"
    status_interval: float = 15.0  # seconds between edits of one status board message
    audit_retention_days: int = 365  # 0 keeps audit rows forever
    shard_count: int | None = None  # several processes on one token: how many shards in all...
    shard_ids: tuple[int, ...] | None = None  # ...and which of them this process runs
    # Advanced: where discord.py sends REST requests and opens its gateway (None = Discord's own).
    discord_api_url: str | None = None
    discord_gateway_url: str | None = None

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]

    @property
    def database(self) -> Database:
        return Database.parse(self.database_url)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required but not set")
    return value


def _port_ok(parts: SplitResult) -> bool:
    try:
        return parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number, or past 65535
        return False


def _http_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not _port_ok(parts)
        or parts.query
        or parts.fragment
        # The panel URL is shown in logs, /health and `wingbeat check`: a password in it would go with it.
        or "@" in parts.netloc
    ):
        raise SettingsError(f"{name} must be an http(s) URL such as https://panel.example.com")
    return raw.rstrip("/")


def _endpoint(env: Mapping[str, str], name: str, schemes: tuple[str, str], kind: str) -> str | None:
    """An optional URL override (None when unset); only the scheme and a host are required."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if (
        parts.scheme not in schemes
        or not parts.hostname
        or not _port_ok(parts)
        or parts.query
        or parts.fragment
    ):
        raise SettingsError(f"{name} must be {kind}")
    return raw


def _api_url(env: Mapping[str, str]) -> str | None:
    url = _endpoint(
        env, "DISCORD_API_URL", ("http", "https"), "an http(s) URL such as https://discord.com/api/v10"
    )
    # discord.py appends paths that start with "/" to this base.
    return None if url is None else url.rstrip("/")


def _digits(text: str) -> bool:
    # str.isdigit() also accepts superscripts and other scripts' digits, which int() refuses.
    return text.isascii() and text.isdigit()


def _id_list(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    """Comma-separated Discord IDs (snowflakes: positive, at most 20 digits)."""
    ids = _number_list(env, name)
    if any(not 0 < i < 1 << 64 for i in ids):
        raise SettingsError(f"{name} must be a comma-separated list of Discord IDs (digits only)")
    return ids


def _number_list(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return ()
    ids: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if not _digits(part) or len(part) > 20:
            what = "shard numbers" if name == "SHARD_IDS" else "Discord IDs"
            raise SettingsError(f"{name} must be a comma-separated list of {what} (digits only)")
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
        Database.parse(raw)
    except ValueError as exc:
        # The reason never quotes the value (a PostgreSQL URL may hold a password).
        raise SettingsError(f"DATABASE_URL is not usable: {exc}") from None
    return raw


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    integer: bool,
    maximum: float = float("inf"),
    hint: str = "",
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise SettingsError(f"{name} must be {kind} (at least {minimum:g})") from None
    if not value >= minimum or value != value or value == float("inf"):
        raise SettingsError(f"{name} must be at least {minimum:g}")
    if value > maximum:
        raise SettingsError(f"{name} must be at most {maximum:g}{hint}")
    return value


def _shards(env: Mapping[str, str]) -> tuple[int | None, tuple[int, ...] | None]:
    count_raw = env.get("SHARD_COUNT", "").strip()
    ids = _number_list(env, "SHARD_IDS")
    if not count_raw:
        if ids:
            raise SettingsError("SHARD_IDS needs SHARD_COUNT (the number of shards in all processes)")
        return None, None
    if not _digits(count_raw) or not 1 <= int(count_raw) <= 1_000_000:
        raise SettingsError("SHARD_COUNT must be a whole number of at least 1")
    count = int(count_raw)
    if any(i >= count for i in ids):
        raise SettingsError(f"SHARD_IDS must be shard numbers from 0 to {count - 1} (SHARD_COUNT - 1)")
    return count, (ids or tuple(range(count)))


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
    guild_ids = _id_list(env, "GUILD_IDS")
    if not guild_ids:
        raise SettingsError(
            "GUILD_IDS is required: the comma-separated IDs of the Discord servers allowed to use Wingbeat"
        )
    shard_count, shard_ids = _shards(env)
    level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in _LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(_LEVELS)}")
    return Settings(
        discord_token=token,
        panel_url=panel_url,
        panel_api_key=api_key,
        admin_role_ids=frozenset(_id_list(env, "ADMIN_ROLE_IDS")),
        guild_ids=guild_ids,
        database_url=_database_url(env),
        wings_origin=origin,
        console_input=_bool(env, "CONSOLE_INPUT"),
        console_color=color,
        log_level=level,
        status_interval=_number(env, "STATUS_INTERVAL", 15.0, minimum=5.0, integer=False),
        audit_retention_days=int(
            _number(
                env,
                "AUDIT_RETENTION_DAYS",
                365,
                minimum=0,
                integer=True,
                # Beyond about a century a cut-off date is meaningless (and far beyond, not a date at all).
                maximum=MAX_AUDIT_RETENTION_DAYS,
                hint=" (0 keeps audit rows forever)",
            )
        ),
        shard_count=shard_count,
        shard_ids=shard_ids,
        discord_api_url=_api_url(env),
        discord_gateway_url=_endpoint(
            env, "DISCORD_GATEWAY_URL", ("ws", "wss"), "a ws(s) URL such as wss://gateway.discord.gg/"
        ),
    )
