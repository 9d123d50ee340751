"""How servers, console output and times are shown in Discord messages: pure text, no I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

import discord

from bot.names import safe_name
from bot.panel.models import Server
from bot.relay.format import clean_line, is_blank, plain_copy, render_block
from bot.settings import ColorMode

STATE_ICONS = {"running": "🟢", "starting": "🟡", "stopping": "🟡", "offline": "🔴"}
# Discord's markup in angle brackets (<@id>, <@&id>, <#id>, </command:id>, <:emoji:id>, <a:…>, <t:…>, <id:…>) would
# render a name as a mention, a clickable command or a timestamp; a zero-width space after `<` keeps it text.
_MARKUP = re.compile(r"<(?=[@#/:]|a:|t:|id:)")
ZWSP_AFTER_LT = "<\u200b"


def state_icon(state: str) -> str:
    """The icon for a power-state word (its first word counts: "running (suspended)")."""
    return STATE_ICONS.get(state.split(" ")[0], "⚪")


def label(server: Server) -> str:
    """`**Name** (`id`)` with the name's markdown escaped."""
    return name_label(server.name, server.identifier)


def name_label(name: str | None, identifier: str) -> str:
    """`**Name** (`id`)` on one line with the name's markdown escaped, or `` `id` `` when there is no name."""
    shown = safe_name(name) if name else ""
    if not shown:
        return f"`{identifier}`"
    shown = _MARKUP.sub(ZWSP_AFTER_LT, discord.utils.escape_markdown(shown))
    return f"**{shown}** (`{identifier}`)"


def inline(text: str, limit: int = 200) -> str:
    """Text shown inside single backticks: no backtick can end the span early."""
    text = text.replace("`", "ˋ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def console_block(lines: Sequence[str]) -> str | None:
    """Console lines as one plain code block (escapes stripped, fences neutralised), or None if blank."""
    cleaned = [clean_line(line, ColorMode.PLAIN) for line in lines]
    cleaned = [line for line in cleaned if not is_blank(line)]
    return render_block(cleaned, ColorMode.PLAIN) if cleaned else None


def console_file(lines: Sequence[str]) -> str:
    """Console lines as plain text for an attachment."""
    return "\n".join(plain_copy(clean_line(line, ColorMode.PLAIN)) for line in lines) + "\n"


def relative(moment: float | None) -> str:
    """A wall-clock UNIX time as Discord's relative timestamp ("3 minutes ago", "in 5 minutes"), or "never"."""
    if moment is None:
        return "never"
    return discord.utils.format_dt(datetime.fromtimestamp(moment, UTC), "R")


def duration(seconds: float) -> str:
    """A length of time as "41 s", "3 min 12 s", "2 h 5 min" or "4 d 3 h"."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def plural(count: int, word: str) -> str:
    """ "1 server", "3 servers"."""
    return f"{count} {word}{'' if count == 1 else 's'}"
