"""/power, /command and /logs: admin actions on a game server over its Wings socket."""

from __future__ import annotations

from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WingbeatBot
from bot.audit import AuditAction
from bot.panel.models import Server
from bot.panel.pacing import Priority
from bot.redact import hide_addresses
from bot.render import console_block, console_file, inline, label, plural
from bot.replies import defer, reply
from bot.server_option import resolve, server_autocomplete
from bot.tree import Refusal
from bot.wings.events import CommandResult, PowerOutcome, PowerResult
from bot.wings.frames import PowerAction

MAX_LOG_LINES = 150


def power_outcome(result: PowerResult) -> str:
    return f"{result.outcome.value}: {result.describe()}"


def command_outcome(result: CommandResult) -> str:
    return f"sent; {plural(len(result.lines), 'line')} of output"


# The replies are shared with the boards' buttons, which report exactly as the commands do.


def power_report(server: Server, result: PowerResult) -> str:
    """What /power (and a card's power button) answers after `set state`."""
    icon = "✅" if result.outcome is PowerOutcome.DONE else "⚠️"
    # Wings' own error text may name an address (its Docker daemon, a registry); members with a grant read this.
    return f"{icon} {label(server)} {hide_addresses(result.describe())}"


async def reply_command_output(
    interaction: discord.Interaction[Any], server: Server, command: str, result: CommandResult
) -> None:
    """What /command (and a card's Command… modal) answers: the output the command caused."""
    head = f"Sent `{inline(command)}` to {label(server)}"
    if result.state_unknown:
        # Wings drops a command to an offline server without a word; say so when the state was not known.
        head += " (its power state was not known yet: if it is offline, Wings ignored the command)"
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


async def reply_logs(interaction: discord.Interaction[Any], server: Server, backlog: list[str]) -> None:
    """What /logs (and a card's Logs button) answers: the latest console lines."""
    block = console_block(backlog)
    if block is None:
        await reply(interaction, f"{label(server)} has no console output to show.", ephemeral=True)
        return
    head = f"The last {plural(len(backlog), 'console line')} of {label(server)}"
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
        interaction: discord.Interaction[WingbeatBot],
        server: str,
        action: Literal["start", "stop", "restart", "kill"],
    ) -> None:
        await defer(interaction, ephemeral=True)
        found = await resolve(self.bot.catalog, server, priority=Priority.ACTION)
        self.bot.note_power_request(found.identifier, PowerAction(action))
        result = await self.bot.auditor.run(
            AuditAction.by(interaction, server=found.identifier, action="power", arguments=action),
            self.bot.manager.set_state(found.identifier, PowerAction(action)),
            power_outcome,
        )
        await reply(interaction, power_report(found, result), ephemeral=True)

    @app_commands.command(name="command", description="Send a console command and show the output it caused")
    @app_commands.describe(server="The game server", command="The console command, e.g. say hello")
    @app_commands.autocomplete(server=server_autocomplete)
    @app_commands.guild_only()
    async def command(self, interaction: discord.Interaction[WingbeatBot], server: str, command: str) -> None:
        await defer(interaction, ephemeral=True)
        found = await resolve(self.bot.catalog, server, priority=Priority.ACTION)
        result = await self.bot.auditor.run(
            AuditAction.by(interaction, server=found.identifier, action="command", arguments=command),
            self.bot.manager.send_command(found.identifier, command),
            command_outcome,
        )
        await reply_command_output(interaction, found, command, result)

    @app_commands.command(name="logs", description="Show the recent console output of a game server")
    @app_commands.describe(server="The game server", lines="How many of the latest lines (1–150, default 50)")
    @app_commands.autocomplete(server=server_autocomplete)
    @app_commands.guild_only()
    async def logs(
        self,
        interaction: discord.Interaction[WingbeatBot],
        server: str,
        lines: app_commands.Range[int, 1, MAX_LOG_LINES] = 50,
    ) -> None:
        # Discord enforces the range in its client only; a crafted request could carry anything.
        if not 1 <= lines <= MAX_LOG_LINES:
            raise Refusal(f"lines must be between 1 and {MAX_LOG_LINES}.")
        await defer(interaction, ephemeral=True)
        found = await resolve(self.bot.catalog, server, priority=Priority.ACTION)
        backlog = (await self.bot.manager.fetch_logs(found.identifier))[-lines:]
        await reply_logs(interaction, found, backlog)


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(ControlCog(bot))
