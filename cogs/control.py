"""/power, /command and /logs: admin actions on a game server over its Wings socket."""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WingbeatBot
from bot.tree import Refusal
from bot.wings.events import CommandResult, PowerOutcome, PowerResult
from bot.wings.frames import PowerAction
from cogs._common import (
    audited,
    console_block,
    console_file,
    defer,
    label,
    reply,
    resolve,
    server_autocomplete,
)

log = logging.getLogger(__name__)

MAX_LOG_LINES = 150


def power_outcome(result: PowerResult) -> str:
    return f"{result.outcome.value}: {result.describe()}"


def command_outcome(result: CommandResult) -> str:
    count = len(result.lines)
    return f"sent; {count} line{'s' if count != 1 else ''} of output"


def inline(text: str, limit: int = 200) -> str:
    """Text shown inside single backticks: no backtick can end the span early."""
    text = text.replace("`", "ˋ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ControlCog(commands.Cog):
    """Power actions, console commands and the console backlog."""

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot

    @app_commands.command(name="power", description="Start, stop, restart or kill a game server")
    @app_commands.describe(server="The game server", action="What to do")
    @app_commands.autocomplete(server=server_autocomplete)
    @app_commands.guild_only()
    async def power(
        self,
        interaction: discord.Interaction,
        server: str,
        action: Literal["start", "stop", "restart", "kill"],
    ) -> None:
        await defer(interaction, ephemeral=True)
        found = await resolve(self.bot, server)
        result = await audited(
            interaction,
            server=found,
            action="power",
            arguments=action,
            work=self.bot.manager.set_state(found.identifier, PowerAction(action)),
            outcome=power_outcome,
        )
        icon = "✅" if result.outcome is PowerOutcome.DONE else "⚠️"
        await reply(interaction, f"{icon} {label(found)} {result.describe()}", ephemeral=True)

    @app_commands.command(name="command", description="Send a console command and show the output it caused")
    @app_commands.describe(server="The game server", command="The console command, e.g. say hello")
    @app_commands.autocomplete(server=server_autocomplete)
    @app_commands.guild_only()
    async def command(self, interaction: discord.Interaction, server: str, command: str) -> None:
        await defer(interaction, ephemeral=True)
        found = await resolve(self.bot, server)
        result = await audited(
            interaction,
            server=found,
            action="command",
            arguments=command,
            work=self.bot.manager.send_command(found.identifier, command),
            outcome=command_outcome,
        )
        head = f"Sent `{inline(command)}` to {label(found)}"
        block = console_block(result.lines)
        if block is None:
            await reply(interaction, f"{head}; no output within {result.window:g} s.", ephemeral=True)
            return
        await reply(
            interaction,
            f"{head}:\n{block}",
            ephemeral=True,
            file_text=console_file(result.lines),
            filename="output.txt",
            summary=f"{head}; {len(result.lines)} lines of output are attached.",
        )

    @app_commands.command(name="logs", description="Show the recent console output of a game server")
    @app_commands.describe(server="The game server", lines="How many of the latest lines (1–150, default 50)")
    @app_commands.autocomplete(server=server_autocomplete)
    @app_commands.guild_only()
    async def logs(
        self,
        interaction: discord.Interaction,
        server: str,
        lines: app_commands.Range[int, 1, MAX_LOG_LINES] = 50,
    ) -> None:
        # Discord enforces the range in its client only; a crafted request could carry anything.
        if not 1 <= lines <= MAX_LOG_LINES:
            raise Refusal(f"lines must be between 1 and {MAX_LOG_LINES}.")
        await defer(interaction, ephemeral=True)
        found = await resolve(self.bot, server)
        backlog = (await self.bot.manager.fetch_logs(found.identifier))[-lines:]
        block = console_block(backlog)
        if block is None:
            await reply(interaction, f"{label(found)} has no console output to show.", ephemeral=True)
            return
        head = f"The last {len(backlog)} console line{'s' if len(backlog) != 1 else ''} of {label(found)}"
        await reply(
            interaction,
            f"{head}:\n{block}",
            ephemeral=True,
            file_text=console_file(backlog),
            filename=f"{found.identifier}-console.txt",
            summary=f"{head} are attached.",
        )


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(ControlCog(bot))
