"""`python -m bot` when Discord cannot be used at start-up: one line saying why and what to do, no traceback.

A supervisor (an egg, a container's restart policy) reads the exit status: 2 for what only the operator can
fix (the token, a privileged intent the portal does not grant), 1 for what may pass (Discord unreachable).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app import WingbeatBot
from bot.store import open_store
from tests.e2e_helpers import build_world, settings_for, unused_port
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord
from tests.sandbox import BotProcess, Sandbox, open_sandbox


async def _exit_status(sandbox: Sandbox, env_file: Path, timeout: float = 30) -> tuple[int, str]:
    bot = await BotProcess.start(sandbox, env_file, echo=None)
    try:
        async with asyncio.timeout(timeout):
            status = await bot.proc.wait()
    finally:
        await bot.kill()
    return status, "\n".join(bot.log_lines)


async def test_console_input_without_the_portal_intent_exits_2_naming_the_fix(tmp_path: Path) -> None:
    async with open_sandbox(start_delay=0.3) as sandbox:
        sandbox.fake.application_flags = 0  # Message Content Intent switched off in the portal
        env_file = tmp_path / "bot.env"
        sandbox.write_env(env_file)
        env_file.write_text(env_file.read_text() + "CONSOLE_INPUT=true\n")
        status, log = await _exit_status(sandbox, env_file)
    assert status == 2, log
    assert "Traceback" not in log, log
    assert "Message Content Intent" in log and "CONSOLE_INPUT=false" in log, log
    assert sandbox.fake.token not in log


async def test_discord_unreachable_at_start_up_is_one_line_and_exit_1(tmp_path: Path) -> None:
    async with open_sandbox(start_delay=0.3) as sandbox:
        env_file = tmp_path / "bot.env"
        sandbox.write_env(env_file)
        nowhere = f"http://127.0.0.1:{unused_port()}/api/v10"
        env_file.write_text(
            env_file.read_text().replace(
                f"DISCORD_API_URL={sandbox.fake.base_url}", f"DISCORD_API_URL={nowhere}"
            )
        )
        status, log = await _exit_status(sandbox, env_file)
    assert status == 1, log
    assert "Traceback" not in log, log
    assert "could not reach Discord" in log and "DISCORD_API_URL" in log, log
    # Wingbeat has no voice: discord.py's warnings about missing voice libraries would only alarm operators.
    assert "voice will NOT be supported" not in log, log
    assert sandbox.fake.token not in log


async def test_a_store_in_use_stops_start_up_before_discord_is_asked(tmp_path: Path) -> None:
    async with open_sandbox(start_delay=0.3) as sandbox:
        env_file = tmp_path / "bot.env"
        sandbox.write_env(env_file)
        async with await open_store(f"sqlite:///{sandbox.database}"):  # another process holds it
            status, log = await _exit_status(sandbox, env_file)
        assert status == 1, log
        assert "another Wingbeat process" in log and "Traceback" not in log, log
        assert sandbox.fake.requests == []  # not even the login request


class _UnreadableCogs(WingbeatBot):
    """A bot whose cogs cannot be read: an OSError from setup_hook, after Discord has answered the login."""

    async def load_extension(self, name: str, *, package: str | None = None) -> None:
        raise PermissionError(13, "Permission denied", name)


async def test_an_os_error_while_setting_up_is_not_taken_for_discord_unreachable(tmp_path: Path) -> None:
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        bot = _UnreadableCogs(settings_for(emu, fake, tmp_path))
        with pytest.raises(PermissionError):
            async with fake.run_client(bot, ready_timeout=10):
                pass
