"""A fake world with guilds on two shards, and the real bot as `python -m bot` child processes (tests/sandbox.py's way).

Guild IDs are chosen so Discord puts them on different shards of two: `(guild_id >> 22) % 2`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.fake_discord import FakeDiscord, PostedMessage

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 2
GUILD_OWNER = 930000000000000001
ADMINISTRATOR = 1 << 3


@dataclass(frozen=True)
class ShardGuild:
    """A guild on one shard: its #console, an admin role and alice-like admin."""

    shard: int
    id: int
    console: int
    admins: int
    admin: int


def _on_shard(base: int, shard: int) -> int:
    guild = base
    while (guild >> 22) % SHARDS != shard:
        guild += 1 << 22
    return guild


GUILDS = tuple(
    ShardGuild(
        shard,
        _on_shard(920000000000000000 + shard * 10**13, shard),
        921000000000000000 + shard,
        922000000000000000 + shard,
        923000000000000000 + shard,
    )
    for shard in range(SHARDS)
)


def build_shard_world(fake: FakeDiscord) -> None:
    for g in GUILDS:
        guild = fake.add_guild(g.id, f"Shard {g.shard} server")
        guild.add_role(g.admins, "Server admins")
        guild.add_channel(g.console, "console")
        guild.add_member(g.admin, f"admin{g.shard}", roles=[g.admins])
        # The fake makes its first member the owner, who has every permission: not the bot.
        guild.add_member(GUILD_OWNER, "owner")
        guild.members = {GUILD_OWNER: guild.members.pop(GUILD_OWNER), **guild.members}


def bot_env(
    fake: FakeDiscord, panel_url: str, api_key: str, database_url: str, shard_ids: str | None
) -> dict[str, str]:
    """The settings of one bot process, from the environment only (no `.env` in its folder)."""
    env = {
        "DISCORD_TOKEN": fake.token,
        "PANEL_URL": panel_url,
        "PANEL_API_KEY": api_key,
        "GUILD_IDS": ",".join(str(g.id) for g in GUILDS),
        "ADMIN_ROLE_IDS": ",".join(str(g.admins) for g in GUILDS),
        "DATABASE_URL": database_url,
        "DISCORD_API_URL": fake.base_url,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "LOG_LEVEL": "INFO",
    }
    if shard_ids is not None:
        env.update(SHARD_COUNT=str(SHARDS), SHARD_IDS=shard_ids)
    return env


_SGR = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class BotChild:
    """One `python -m bot` process with its own working folder and environment; its log is kept."""

    name: str
    proc: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, name: str, workdir: Path, settings: dict[str, str]) -> BotChild:
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "PANEL_", "SHARD_"))}
        env.update(settings)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        child = cls(name, proc)
        child._reader = asyncio.create_task(child._read())
        return child

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.log.append(_SGR.sub("", raw.decode("utf-8", "replace").rstrip()))

    def logged(self, needle: str) -> bool:
        return any(needle in line for line in self.log)

    def tail(self, count: int = 40) -> str:
        return f"--- {self.name} ---\n" + "\n".join(self.log[-count:])

    async def wait_logged(self, fake: FakeDiscord, needle: str, timeout: float) -> None:
        def seen() -> bool:
            if self.proc.returncode is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            return self.logged(needle)

        try:
            await fake.wait_for(seen, timeout, f"{needle!r} in {self.name}'s log")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None

    async def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then the exit status (killed if it hangs)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                status = await self.proc.wait()
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"{self.name} did not stop within {timeout} s:\n{self.tail()}") from None
        if self._reader is not None:
            await self._reader
        return status


def console_lines(messages: list[PostedMessage]) -> list[str]:
    """Every console line the bot posted, from code blocks and `.txt` attachments (a message with a file
    shows the latest lines in its block and all of them in the file: the file counts)."""
    out: list[str] = []
    for message in messages:
        if message.attachments:
            for _, data in message.attachments:
                out.extend(data.decode("utf-8", "replace").splitlines())
            continue
        content = message.content
        start = content.find("```")
        if start < 0:
            continue
        body = content[content.index("\n", start) + 1 : content.rindex("```")]
        out.extend(body.rstrip("\n").split("\n"))
    return out


def tally(lines: list[str], expected: list[str]) -> tuple[list[str], list[str]]:
    """(lost, duplicated): expected lines never posted, and lines posted more than once."""
    seen: dict[str, int] = {}
    for line in lines:
        seen[line] = seen.get(line, 0) + 1
    lost = [line for line in expected if line not in seen]
    duplicated = [line for line, n in seen.items() if n > 1]
    return lost, duplicated


Predicate = Callable[[], bool]
