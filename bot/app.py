"""The Discord side: one `commands.Bot` subclass that owns the application's resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import discord
from discord.ext import commands

from bot.settings import Settings

log = logging.getLogger(__name__)


class WingbeatBot(commands.Bot):
    """Holds settings and resources; cogs only translate Discord input into calls on these."""

    def __init__(self, settings: Settings) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        if settings.console_input:
            intents.guild_messages = True
            intents.message_content = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
        )
        self.settings = settings

    async def on_ready(self) -> None:
        log.info("ready as %s in %d guild(s)", self.user, len(self.guilds))


async def run_bot(settings: Settings) -> None:
    """Run until closed; SIGINT/SIGTERM close the bot cleanly."""
    async with WingbeatBot(settings) as bot:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
        try:
            await bot.start(settings.discord_token)
        except discord.LoginFailure:
            log.error("Discord rejected DISCORD_TOKEN; check the bot token in the developer portal.")
            raise SystemExit(2) from None
