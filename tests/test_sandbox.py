"""The new-user path: the real `python -m bot`, configured only by a `.env`, against the fakes (tests/sandbox.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import discord
import pytest
from dotenv import dotenv_values

from bot.settings import load_settings
from tests.e2e_helpers import GUILD, build_world, make_bot, settings_for
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord
from tests.sandbox import GUILD as SANDBOX_GUILD
from tests.sandbox import SETTING_NAMES, open_sandbox, parse_poke

ROOT = Path(__file__).resolve().parents[1]


def test_demo_drives_the_real_bot_through_every_command(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.sandbox",
            "--demo",
            "--env-file",
            str(env_file),
            "--start-delay",
            "0.3",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in SETTING_NAMES},
        capture_output=True,
        text=True,
        timeout=90,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"demo failed:\n{proc.stderr}\n--- transcript ---\n{out}"
    assert "demo passed" in out
    # A few landmarks of the transcript (the demo itself asserts each step).
    for landmark in (
        "synced: access grant, access list, access revoke, alerts off, alerts set, alerts show, audit channel,"
        " audit show, board card, board post, board remove, command, console link,"
        " console list, console unlink, health, logs, power, servers, status",
        "alice> /power server:Survival action:start",
        "[Server] hi",
        "#console: [Server thread/INFO]: alice joined the game",
        "bob> /power server:Survival action:stop",
        "the bot exited with status 0",
        "audit_log in ",
    ):
        assert landmark in out, f"{landmark!r} missing from the transcript:\n{out}"
    written = dotenv_values(env_file)
    assert {
        "DISCORD_TOKEN",
        "PANEL_URL",
        "PANEL_API_KEY",
        "ADMIN_ROLE_IDS",
        "GUILD_IDS",
        "DATABASE_URL",
        "DISCORD_API_URL",
        "DISCORD_GATEWAY_URL",
    } <= set(written)


async def test_env_file_is_valid_settings_pointing_at_the_fakes(tmp_path: Path) -> None:
    async with open_sandbox() as sandbox:
        env_file = tmp_path / "sandbox.env"
        sandbox.write_env(env_file)
        values = {k: v or "" for k, v in dotenv_values(env_file).items()}
        settings = load_settings(values)
        assert settings.discord_token == sandbox.fake.token
        assert settings.panel_url == sandbox.emu.panel_url
        assert settings.discord_api_url == sandbox.fake.base_url
        assert settings.discord_gateway_url == sandbox.fake.gateway_url
        assert settings.guild_ids == (SANDBOX_GUILD,)
        assert settings.database_url.startswith("sqlite:////")  # absolute, inside the sandbox folder
        assert str(sandbox.folder) in settings.database_url
        folder = sandbox.folder
    assert not folder.exists()  # the sandbox cleans up after itself


async def test_endpoint_settings_alone_reach_a_local_discord(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Restored afterwards: the bot sets these process-wide attributes itself (no FakeDiscord.patch_discord).
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    gateway = discord.gateway.DiscordWebSocket
    monkeypatch.setattr(gateway, "DEFAULT_GATEWAY", gateway.DEFAULT_GATEWAY)
    async with Emulator() as emu, FakeDiscord() as fake:
        build_world(fake)
        settings = dataclasses.replace(
            settings_for(emu, fake, tmp_path),
            discord_api_url=fake.base_url,
            discord_gateway_url=fake.gateway_url,
        )
        bot = make_bot(settings)
        task = asyncio.create_task(bot.start(settings.discord_token))
        try:
            await fake.wait_for(lambda: fake.connected and bot.is_ready(), 8.0, "the bot to be ready")
            assert GUILD in fake.synced_commands
            assert fake.base_url == discord.http.Route.BASE
            assert str(gateway.DEFAULT_GATEWAY) == fake.gateway_url
        finally:
            await bot.close()
            await asyncio.wait_for(task, 5.0)


def test_interactive_lines_parse_into_slash_commands() -> None:
    assert parse_poke("alice /console link server=Lobby") == ("alice", "console", {"server": "Lobby"}, "link")
    assert parse_poke("bob /power server='Friends SMP' action=stop") == (
        "bob",
        "power",
        {"server": "Friends SMP", "action": "stop"},
        None,
    )
    with pytest.raises(ValueError, match="expected"):
        parse_poke("carol /servers")
