"""The heartbeat file and `wingbeat healthcheck`: the pure verdict, and the real bot going stale when its
Discord gateway or its event loop stops."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import discord
import pytest

import bot.heartbeat as heartbeat
from bot.heartbeat import configured_path, file_age, gateway_alive, heartbeat_path, judge
from tests.e2e_helpers import build_world, running_bot, settings_for
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord


def test_judge() -> None:
    assert judge(None) == heartbeat.Health(
        False, "unhealthy: no heartbeat file yet (the bot is not running or not connected to Discord)"
    )
    assert judge(4.6, 60) == heartbeat.Health(True, "healthy: heartbeat 5 s old")
    assert judge(60.0, 60).healthy
    stale = judge(75.2, 60)
    assert not stale.healthy
    assert stale.reason == (
        "unhealthy: the heartbeat is 75 s old (limit 60 s): "
        "the Discord gateway is disconnected or the event loop is stuck"
    )
    assert judge(-3.0, 60) == heartbeat.Health(True, "healthy: heartbeat 0 s old")  # the clock was set back


def test_heartbeat_lives_next_to_the_sqlite_store() -> None:
    assert heartbeat_path("sqlite:///data/wingbeat.sqlite3") == Path("data/heartbeat")
    assert heartbeat_path("sqlite:////home/container/data/wingbeat.sqlite3") == Path(
        "/home/container/data/heartbeat"
    )
    assert heartbeat_path("sqlite:///:memory:") == Path("data/heartbeat")
    assert heartbeat_path("postgresql://u:p@db/w") == Path("data/heartbeat")
    assert configured_path({}) == Path("data/heartbeat")
    assert configured_path({"DATABASE_URL": "sqlite:////srv/w/x.db"}) == Path("/srv/w/heartbeat")


def test_configured_path_reads_dotenv_without_overriding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("DATABASE_URL=sqlite:////from/dotenv/w.db\n")
    assert configured_path(dotenv=dotenv) == Path("/from/dotenv/heartbeat")
    monkeypatch.setenv("DATABASE_URL", "sqlite:////from/env/w.db")
    assert configured_path(dotenv=dotenv) == Path("/from/env/heartbeat")


def test_file_age(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    assert file_age(path) is None
    path.touch()
    os.utime(path, (1000.0, 1000.0))
    assert file_age(path, now=1012.5) == pytest.approx(12.5)


async def healthcheck(cwd: Path, *args: str, database_url: str | None = None) -> tuple[int, str]:
    """`python -m bot healthcheck` as the container's HEALTHCHECK runs it."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "healthcheck",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode().strip()


async def test_healthcheck_command(tmp_path: Path) -> None:
    path = tmp_path / "data" / "heartbeat"
    assert await healthcheck(tmp_path) == (1, judge(None).reason)  # default: data/heartbeat in the cwd
    path.parent.mkdir()
    path.touch()
    code, line = await healthcheck(tmp_path)
    assert code == 0 and line.startswith("healthy: heartbeat ")
    os.utime(path, (time.time() - 90, time.time() - 90))
    code, line = await healthcheck(tmp_path)
    assert code == 1 and line.startswith("unhealthy: the heartbeat is 9") and "(limit 60 s)" in line
    assert (await healthcheck(tmp_path, "--max-age", "120"))[0] == 0
    assert (await healthcheck(tmp_path, "--file", str(tmp_path / "other")))[0] == 1


async def test_the_running_bot_is_healthy_until_its_gateway_or_loop_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interval, max_age = 0.1, 1.0
    monkeypatch.setattr(heartbeat, "DEFAULT_INTERVAL", interval)
    # discord.py's reconnect backoff is random and grows to minutes: shorten it (time, not behaviour).
    monkeypatch.setattr(discord.backoff.ExponentialBackoff, "delay", lambda self: 0.2)
    database_url = f"sqlite:///{tmp_path / 'wingbeat.sqlite3'}"
    path = tmp_path / "heartbeat"  # next to the store
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        async with running_bot(emu, fake, settings_for(emu, fake, tmp_path)) as rig:
            await fake.wait_for(lambda: path.exists(), 5, "the first heartbeat")
            code, line = await healthcheck(tmp_path, "--max-age", str(max_age), database_url=database_url)
            assert code == 0, line

            # A stuck event loop writes nothing: the writer is a task on the loop, not a thread.
            before = path.stat().st_mtime
            time.sleep(max_age + 0.3)  # noqa: ASYNC251 - blocks the loop on purpose
            assert path.stat().st_mtime == before
            assert not judge(file_age(path), max_age).healthy
            await fake.wait_for(lambda: judge(file_age(path), max_age).healthy, 5, "heartbeats again")

            # The gateway goes away (Discord refuses it): within max_age + an interval the file is stale.
            fake.refuse_gateway = True
            await fake.disconnect_gateway(code=4000)
            await fake.wait_for(lambda: not gateway_alive(rig.bot), 5, "discord.py noticing the lost gateway")
            lost = time.monotonic()
            await fake.wait_for(lambda: not judge(file_age(path), max_age).healthy, 5, "a stale heartbeat")
            assert time.monotonic() - lost <= max_age + interval + 0.5
            code, line = await healthcheck(tmp_path, "--max-age", str(max_age), database_url=database_url)
            assert code == 1 and "unhealthy: the heartbeat is" in line

            # Discord comes back: discord.py reconnects and the heartbeat resumes.
            fake.refuse_gateway = False
            await fake.wait_for(
                lambda: judge(file_age(path), max_age).healthy, 20, "heartbeats after the reconnect"
            )
            assert gateway_alive(rig.bot)
        assert not path.exists()  # a closed bot removes its heartbeat
