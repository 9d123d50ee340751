"""Answering an interaction: defer, reply (with a file when long), and private sentences in any state."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import discord

MESSAGE_LIMIT = 2000


async def defer(interaction: discord.Interaction[Any], *, ephemeral: bool) -> None:
    """Acknowledge now (Discord's 3 s limit), showing "thinking" to whoever will see the answer."""
    if not ephemeral:
        interaction.extras["public_defer"] = True
    await interaction.response.defer(ephemeral=ephemeral, thinking=True)


async def reply(
    interaction: discord.Interaction[Any],
    text: str,
    *,
    ephemeral: bool,
    file_text: str | None = None,
    filename: str = "output.txt",
    summary: str | None = None,
) -> None:
    """Send `text`; when it does not fit one message, send `summary` with `file_text` (or `text`) attached."""
    file: discord.File | None = None
    if len(text) > MESSAGE_LIMIT:
        data = (file_text if file_text is not None else text).encode("utf-8")
        file = discord.File(io.BytesIO(data), filename=filename)
        text = summary or "The answer is too long for one message; it is attached."
    if interaction.response.is_done():
        interaction.extras["answered"] = True
        if file is None:
            await interaction.followup.send(text, ephemeral=ephemeral)
        else:
            await interaction.followup.send(text, ephemeral=ephemeral, file=file)
    elif file is None:
        await interaction.response.send_message(text, ephemeral=ephemeral)
    else:
        await interaction.response.send_message(text, ephemeral=ephemeral, file=file)


async def send_ephemeral(interaction: discord.Interaction[Any], text: str) -> None:
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
