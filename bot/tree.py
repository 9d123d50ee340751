"""The command tree: the one access check on every invocation, and errors turned into one private sentence."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.discord_access import check_interaction
from bot.errors import WingbeatError

if TYPE_CHECKING:
    from bot.app import WingbeatBot

log = logging.getLogger(__name__)

# Qualified command name -> audit action, for the commands whose every attempt is audited (SPEC §5).
AUDITED_COMMANDS: Mapping[str, str] = {
    "power": "power",
    "command": "command",
    "console link": "link",
    "console unlink": "unlink",
}
UNEXPECTED_ERROR = "Something went wrong inside Wingbeat; the error was logged for the bot's operator."


class Refusal(WingbeatError):
    """A request the bot declines for a reason the user can act on; `str()` is that one sentence."""


def user_error_text(error: BaseException) -> str | None:
    """The sentence to show for an expected error, or None when it is a bug to log."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, WingbeatError):
        return str(error)
    if isinstance(error, app_commands.NoPrivateMessage):
        return "Wingbeat's commands work in servers only, not in direct messages."
    if isinstance(error, app_commands.TransformerError):
        return f"That value is not usable here: {error.value!r}."
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You may not use this command here."
    return None


async def send_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Answer with `text` that only the user sees, whatever state the interaction is in."""
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True)
        return
    if interaction.extras.get("public_defer") and not interaction.extras.get("answered"):
        # The first followup after a public deferral would replace the public "thinking" message and so
        # become public itself: remove that message first so the error stays private.
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
    interaction.extras["answered"] = True
    await interaction.followup.send(text, ephemeral=True)


def _option_text(options: Sequence[Mapping[str, Any]]) -> str:
    parts: list[str] = []
    for option in options:
        if "options" in option:  # a subcommand (group): its own options follow
            parts.append(_option_text(option["options"]))
        elif "value" in option:
            parts.append(f"{option['name']}={option['value']}")
    return " ".join(p for p in parts if p)


class WingbeatTree(app_commands.CommandTree["WingbeatBot"]):
    """Runs the one access check on every invocation and turns expected errors into one private sentence."""

    async def interaction_check(self, interaction: discord.Interaction[WingbeatBot], /) -> bool:
        if interaction.type is discord.InteractionType.autocomplete:
            return interaction.guild_id is not None
        command = interaction.command
        name = command.qualified_name if command is not None else ""
        verdict = check_interaction(interaction, name, self.client.settings.admin_role_ids)
        if verdict.allowed:
            return True
        # Answered before anything else (no defer), so the refusal is never public.
        await interaction.response.send_message(verdict.reason, ephemeral=True)
        log.info("refused /%s for user %d in guild %s", name, interaction.user.id, interaction.guild_id)
        action = AUDITED_COMMANDS.get(name)
        if action is not None and interaction.guild_id is not None:
            data: Mapping[str, Any] = interaction.data or {}
            await self.client.audit(
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
                server=None,
                action=action,
                arguments=_option_text(data.get("options") or []),
                outcome=f"refused: {verdict.reason}",
            )
        return False

    async def on_error(
        self, interaction: discord.Interaction[WingbeatBot], error: app_commands.AppCommandError, /
    ) -> None:
        text = user_error_text(error)
        if text is None:
            original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
            name = interaction.command.qualified_name if interaction.command else "?"
            log.error("unexpected error in /%s", name, exc_info=original)
            text = UNEXPECTED_ERROR
        try:
            await send_ephemeral(interaction, text)
        except discord.HTTPException as exc:
            log.warning("could not tell the user about an error: %s", exc)
