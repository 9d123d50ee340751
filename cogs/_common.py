"""What every cog shares: the `server` option (autocomplete and lookup), deferring, replying, auditing."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import discord
from discord import app_commands

from bot.app import WingbeatBot
from bot.lookup import ServerLookupError, autocomplete_choices, resolve_server
from bot.panel.models import Server
from bot.relay.format import clean_line, is_blank, plain_copy, render_block
from bot.settings import ColorMode

log = logging.getLogger(__name__)

T = TypeVar("T")

MESSAGE_LIMIT = 2000
CATALOG_MAX_AGE = 30.0  # a lookup older than this refreshes the server list first
AUTOCOMPLETE_WAIT = 1.5  # Discord gives autocomplete 3 s and no defer


def app_of(interaction: discord.Interaction) -> WingbeatBot:
    client = interaction.client
    assert isinstance(client, WingbeatBot)
    return client


# -- the server option ------------------------------------------------------------------------------------


async def server_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Up to 25 servers matching what is typed, from the cached list (name shown, identifier as value)."""
    bot = app_of(interaction)
    servers = await bot.catalog.cached(AUTOCOMPLETE_WAIT)
    return [
        app_commands.Choice(name=label, value=ident)
        for label, ident in autocomplete_choices(current, servers)
    ]


async def resolve(bot: WingbeatBot, text: str) -> Server:
    """The server typed or picked; a miss on an older list is retried once on a fresh one."""
    catalog = bot.catalog
    servers = await catalog.get(CATALOG_MAX_AGE)
    try:
        return resolve_server(text, servers)
    except ServerLookupError:
        age = catalog.age()
        if age is None or age < 2.0:
            raise
    return resolve_server(text, await catalog.refresh())


# -- replies ---------------------------------------------------------------------------------------------


async def defer(interaction: discord.Interaction, *, ephemeral: bool) -> None:
    """Acknowledge now (Discord's 3 s limit), showing "thinking" to whoever will see the answer."""
    if not ephemeral:
        interaction.extras["public_defer"] = True
    await interaction.response.defer(ephemeral=ephemeral, thinking=True)


async def reply(
    interaction: discord.Interaction,
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


def console_block(lines: Sequence[str]) -> str | None:
    """Console lines as one plain code block (escapes stripped, fences neutralised), or None if blank."""
    cleaned = [clean_line(line, ColorMode.PLAIN) for line in lines]
    cleaned = [line for line in cleaned if not is_blank(line)]
    return render_block(cleaned, ColorMode.PLAIN) if cleaned else None


def console_file(lines: Sequence[str]) -> str:
    """Console lines as plain text for an attachment."""
    return "\n".join(plain_copy(clean_line(line, ColorMode.PLAIN)) for line in lines) + "\n"


def label(server: Server) -> str:
    """`**Name** (`id`)` with the name's markdown escaped."""
    return f"**{discord.utils.escape_markdown(server.name)}** (`{server.identifier}`)"


def ago(moment: float | None, *, now: float | None = None) -> str:
    """A wall-clock UNIX time as "12 s ago" / "never"."""
    if moment is None:
        return "never"
    seconds = max(0.0, (time.time() if now is None else now) - moment)
    return f"{duration(seconds)} ago"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


# -- audit -----------------------------------------------------------------------------------------------


async def audited(
    interaction: discord.Interaction,
    *,
    server: Server,
    action: str,
    arguments: str,
    work: Awaitable[T],
    outcome: Callable[[T], str],
) -> T:
    """Run an admin action and write who, when, which server, what and the outcome to the audit log."""
    text = "cancelled"
    try:
        result = await work
        text = outcome(result)
        return result
    except Exception as exc:
        text = f"failed: {exc}"
        raise
    finally:
        await app_of(interaction).audit(
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            server=server.identifier,
            action=action,
            arguments=arguments,
            outcome=text,
        )
