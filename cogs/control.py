"""/power, /command and /logs: admin actions on a game server over its Wings socket."""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WingbeatBot
from bot.panel.models import Server
from bot.tree import Refusal
from bot.wings.events import CommandResult, PowerOutcome, PowerResult
from bot.wings.protocol import PowerAction
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


# The replies are shared with the boards' buttons, which report exactly as the commands do.


def power_report(server: Server, result: PowerResult) -> str:
    """What /power (and a card's power button) answers after `set state`."""
    icon = "✅" if result.outcome is PowerOutcome.DONE else "⚠️"
    return f"{icon} {label(server)} {result.describe()}"


async def reply_command_output(
    interaction: discord.Interaction, server: Server, command: str, result: CommandResult
) -> None:
    """What /command (and a card's Command… modal) answers: the output the command caused."""
    head = f"Sent `{inline(command)}` to {label(server)}"
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


async def reply_logs(interaction: discord.Interaction, server: Server, backlog: list[str]) -> None:
    """What /logs (and a card's Logs button) answers: the latest console lines."""
    block = console_block(backlog)
    if block is None:
        await reply(interaction, f"{label(server)} has no console output to show.", ephemeral=True)
        return
    head = f"The last {len(backlog)} console line{'s' if len(backlog) != 1 else ''} of {label(server)}"
    await reply(
        interaction,
        f"{head}:\n{block}",
        ephemeral=True,
        file_text=console_file(backlog),
        filename=f"{server.identifier}-console.txt",
        summary=f"{head} are attached.",
    )


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
        self.bot.note_power_request(found.identifier, PowerAction(action))
        result = await audited(
            interaction,
            server=found,
            action="power",
            arguments=action,
            work=self.bot.manager.set_state(found.identifier, PowerAction(action)),
            outcome=power_outcome,
        )
        await reply(interaction, power_report(found, result), ephemeral=True)

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
        await reply_command_output(interaction, found, command, result)

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
        await reply_logs(interaction, found, backlog)


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(ControlCog(bot))
