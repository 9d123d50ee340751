"""The real entrypoint (`python -m bot`) installs the log filter that hides the Discord token and panel key.

discord.py logs every gateway event at DEBUG: a channel whose name holds both secrets puts them in the bot's
log through a code path nobody wrote for the test, and the log must show neither.
"""

from __future__ import annotations

from pathlib import Path

from tests.sandbox import GUILD, BotProcess, open_sandbox

LEAKY_CHANNEL = 910000000000000099


async def test_python_m_bot_redacts_the_token_and_the_panel_key_from_its_log(tmp_path: Path) -> None:
    async with open_sandbox(start_delay=0.3) as sandbox:
        token, key = sandbox.fake.token, sandbox.emu.api_key
        sandbox.fake.guilds[GUILD].add_channel(LEAKY_CHANNEL, f"leak {token} and {key}")
        env_file = tmp_path / "debug.env"
        sandbox.write_env(env_file)
        env_file.write_text(env_file.read_text().replace("LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG"))
        bot = await BotProcess.start(sandbox, env_file, echo=None)
        try:
            await bot.wait_ready(sandbox.fake, timeout=30)
            assert await bot.interrupt(timeout=15) == 0
        finally:
            await bot.kill()
        log = "\n".join(bot.log_lines)
        assert "WebSocket Event" in log and "leak <redacted> and <redacted>" in log  # the path was taken
        assert token not in log and key not in log
