"""The command tree: the guard on every invocation, and errors turned into one private sentence."""

from __future__ import annotations

import logging
import math
from typing import Any

import discord
from discord import app_commands

from bot.discord_access import DM_REFUSAL
from bot.errors import WingbeatError
from bot.guard import Guarded, admit_command
from bot.redact import hide_addresses
from bot.replies import send_ephemeral

log = logging.getLogger(__name__)

UNEXPECTED_ERROR = "Something went wrong inside Wingbeat; the error was logged for the bot's operator."


class Refusal(WingbeatError):
    """A request the bot declines for a reason the user can act on; `str()` is that one sentence."""


def user_error_text(error: BaseException) -> str | None:
    """The sentence to show for an expected error, or None when it is a bug to log."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, WingbeatError):
        return str(error)
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"You are asking too often; try again in {math.ceil(error.retry_after)} s."
    if isinstance(error, app_commands.NoPrivateMessage):
        return DM_REFUSAL
    if isinstance(error, app_commands.TransformerError):
        if isinstance(error.value, app_commands.AppCommandChannel | app_commands.AppCommandThread):
            # discord.py resolves a channel option from its cache, which holds only what Wingbeat can see.
            return (
                f"Wingbeat cannot see {error.value.mention}: give it View Channel there (and add it to a "
                "private thread, or open an archived one again), then try again."
            )
        return f"That value is not usable here: {error.value!r}."
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You may not use this command here."
    return None


class WingbeatTree(app_commands.CommandTree[discord.Client]):
    """Passes every invocation through the client's guard and turns expected errors into one private sentence.

    It knows the application only through `bot.guard` (a client with a guard), never `bot.app` itself.
    """

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await admit_command(interaction)

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError, /
    ) -> None:
        text = user_error_text(error)
        if text is None:
            original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
            name = interaction.command.qualified_name if interaction.command else "?"
            log.error("unexpected error in /%s", name, exc_info=original)
            text = UNEXPECTED_ERROR
        try:
            await send_ephemeral(interaction, hide_addresses(text))
        except discord.HTTPException as exc:
            log.warning("could not tell the user about an error: %s", exc)
        finally:
            if isinstance(client := self.client, Guarded):
                client.guard.end(interaction.id)  # the invocation is over (a shutdown waits for this)
