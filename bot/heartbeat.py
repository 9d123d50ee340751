"""The heartbeat file a container health check reads (`wingbeat healthcheck`).

A task on the bot's own event loop touches the file every few seconds while the Discord gateway is
connected. So the file goes stale when the gateway is down *or* when the loop is stuck: a thread could
keep writing while the loop hangs, which is why no thread is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import discord

from bot.settings import SQLITE_MEMORY, Database, DatabaseKind, Settings
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

FILE_NAME = "heartbeat"
DEFAULT_INTERVAL = 10.0  # seconds between touches while healthy
DEFAULT_MAX_AGE = 60.0  # `healthcheck` calls an older file unhealthy
_DEFAULT_DATABASE_URL: str = next(f.default for f in fields(Settings) if f.name == "database_url")  # type: ignore[assignment]


def configured_path(env: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")) -> Path:
    """The heartbeat path for the configured DATABASE_URL, read as the bot reads it (`.env` first, never
    overriding the environment); the bot's other settings are not needed, so a health check runs without
    its secrets."""
    if env is None:
        if dotenv is not None and dotenv.is_file():
            from dotenv import load_dotenv

            load_dotenv(dotenv, override=False)
        env = os.environ
    return heartbeat_path(env.get("DATABASE_URL", "").strip() or _DEFAULT_DATABASE_URL)


def heartbeat_path(database_url: str) -> Path:
    """Where the heartbeat lives: next to the SQLite store (`data/heartbeat` by default), else `data/heartbeat`."""
    try:
        database = Database.parse(database_url)
    except ValueError:
        return Path("data", FILE_NAME)
    if database.kind is DatabaseKind.SQLITE and database.target != SQLITE_MEMORY:
        return Path(database.target).parent / FILE_NAME
    return Path("data", FILE_NAME)


@dataclass(frozen=True, slots=True)
class Health:
    """The health check's verdict: `healthy`, and one line saying why."""

    healthy: bool
    reason: str


def judge(age: float | None, max_age: float = DEFAULT_MAX_AGE) -> Health:
    """Decide from the heartbeat file's age in seconds (None: there is no file)."""
    if age is None:
        return Health(
            False, "unhealthy: no heartbeat file yet (the bot is not running or not connected to Discord)"
        )
    if age <= max_age:
        # A file from the future (the clock was set back) was still written recently by a live bot.
        return Health(True, f"healthy: heartbeat {max(age, 0.0):.0f} s old")
    return Health(
        False,
        f"unhealthy: the heartbeat is {age:.0f} s old (limit {max_age:g} s): "
        "the Discord gateway is disconnected or the event loop is stuck",
    )


def file_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since `path` was last touched, or None when it does not exist."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - modified


def gateway_alive(client: discord.Client) -> bool:
    """True while the client is logged in, ready and its gateway socket(s) are open and heartbeating."""
    if client.is_closed() or not client.is_ready():
        return False
    if isinstance(client, discord.AutoShardedClient):
        shards = client.shards.values()
        return bool(shards) and all(not shard.is_closed() for shard in shards)
    ws = client.ws
    return ws is not None and ws.open and math.isfinite(client.latency)


class Heartbeat:
    """Touches `path` every `interval` seconds while `gateway_alive(client)`; `stop()` ends it."""

    def __init__(self, client: discord.Client, path: Path, *, interval: float | None = None) -> None:
        self.client = client
        self.path = path
        self.interval = DEFAULT_INTERVAL if interval is None else interval
        self.beats = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Heartbeat:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")
        return self

    async def close(self) -> None:
        """Stop touching the file and remove it: a stopped bot is not healthy."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                if gateway_alive(self.client):
                    self._touch()
                    self.beats += 1
                failures = 0
            except Exception:
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    log.exception("could not write the heartbeat file %s", self.path)
            await asyncio.sleep(self.interval)

    def _touch(self) -> None:
        # A single small write; done on the loop itself on purpose (see the module docstring).
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
