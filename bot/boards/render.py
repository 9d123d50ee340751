"""Server snapshots to the text of a board or a card (no I/O).

Equal inputs give equal `Rendered` values, and the service edits a message only when its `Rendered` changed,
so everything here is coarse on purpose: rounded figures (see `snapshot`), uptime in steps, and the time of
the last state change as a Discord timestamp (`<t:…:R>`), which each client keeps current by itself.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import discord

from bot.boards.snapshot import ServerSnapshot, Shown
from bot.names import safe_name

BOARD_LIMIT = 25  # servers listed on a board (also Discord's limit of options in one select menu)
NAME_LIMIT = 40  # characters of a server name on a board line
ICONS = {
    Shown.RUNNING: "🟢",
    Shown.STARTING: "🟡",
    Shown.STOPPING: "🟡",
    Shown.OFFLINE: "🔴",
    Shown.UNKNOWN: "⚪",
}
COLORS = {
    Shown.RUNNING: 0x2ECC71,
    Shown.STARTING: 0xF1C40F,
    Shown.STOPPING: 0xF1C40F,
    Shown.OFFLINE: 0xE74C3C,
    Shown.UNKNOWN: 0x95A5A6,
}
BOARD_COLOR = 0x5865F2


class Kind(StrEnum):
    BOARD = "board"
    CARD = "card"


@dataclass(frozen=True, slots=True)
class Option:
    """One entry of a board's *Manage a server…* menu."""

    label: str
    value: str
    description: str
    emoji: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A board's or card's message: an embed, plus its menu (board) or its buttons' state (card)."""

    kind: Kind
    title: str
    description: str
    color: int
    fields: tuple[tuple[str, str], ...] = ()
    footer: str = ""
    options: tuple[Option, ...] = ()  # board only
    server: str | None = None  # card only: the server its buttons act on
    kill_enabled: bool = False  # card only: Kill is offered while the server is stopping


# -- names and figures --------------------------------------------------------------------------------------


def plain_name(name: str, limit: int = NAME_LIMIT) -> str:
    """A server name on one line (see `bot.names`), without invisible format characters, shortened."""
    # Format characters (zero-width spaces and the like) could make two names look the same; the joiner that
    # builds emoji sequences stays.
    text = "".join(ch for ch in safe_name(name) if ch == "\u200d" or unicodedata.category(ch) != "Cf")
    text = " ".join(text.split()) or "?"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escaped(text: str) -> str:
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def markdown_name(name: str, limit: int = NAME_LIMIT) -> str:
    """`plain_name` safe inside Discord markdown (formatting characters and mentions escaped), at most `limit`
    characters with its escapes: a name full of `_` or `*` must not push a card's title or a board past
    Discord's limits, which refuse the whole message."""
    size = limit
    text = _escaped(plain_name(name, size))
    while len(text) > limit and size > 1:
        # Shorten the name itself, never the escaped text: a cut could leave a lone backslash behind.
        size -= max(1, (len(text) - limit) // 2)
        text = _escaped(plain_name(name, size))
    return text


def cpu_text(cpu: int | None) -> str:
    if cpu is None:
        return "—"
    return "< 5 %" if cpu <= 0 else f"{cpu} %"


def memory_text(used_tenths: int | None, limit_tenths: int | None) -> str:
    used = "—" if used_tenths is None else f"{used_tenths / 10:.1f}"
    if not limit_tenths:
        return "—" if used_tenths is None else f"{used} GiB"
    return f"{used} / {limit_tenths / 10:.1f} GiB"


def uptime_text(started_at: int | None, now: float) -> str | None:
    """Uptime in steps (10 minutes, then hours), so it changes the text a few times an hour at most."""
    if started_at is None:
        return None
    seconds = max(0.0, now - started_at)
    if seconds < 600:
        return "< 10 min"
    if seconds < 3600:
        return f"{int(seconds // 600) * 10} min"
    hours = int(seconds // 3600)
    if hours < 24:
        return f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def since_text(moment: int | None) -> str | None:
    return None if moment is None else f"<t:{moment}:R>"


# -- boards and cards ---------------------------------------------------------------------------------------


def board_line(snap: ServerSnapshot, now: float) -> str:
    parts = [f"{ICONS[snap.state]} **{markdown_name(snap.name)}** — {snap.state.value}"]
    if snap.state in (Shown.RUNNING, Shown.STARTING, Shown.STOPPING):
        parts.append(f"CPU {cpu_text(snap.cpu)}")
        parts.append(memory_text(snap.memory_tenths, snap.memory_limit_tenths))
        uptime = uptime_text(snap.started_at, now) if snap.state is Shown.RUNNING else None
        if uptime is not None:
            parts.append(f"up {uptime}")
    since = since_text(snap.since)
    if since is not None:
        parts.append(f"since {since}")
    return " · ".join(parts)


def render_board(snapshots: Sequence[ServerSnapshot], now: float, *, total: int | None = None) -> Rendered:
    """A board: the first BOARD_LIMIT servers (by name), each on one line; `total` counts every server."""
    shown = list(snapshots[:BOARD_LIMIT])
    total = len(snapshots) if total is None else total
    if not shown:
        description = "The panel key can't see any servers."
    else:
        lines = [board_line(snap, now) for snap in shown]
        if total > len(shown):
            more = total - len(shown)
            lines.append(f"…and {more} more server{'s' if more != 1 else ''}; `/servers` lists them all.")
        description = "\n".join(lines)
    options = tuple(
        Option(
            label=plain_name(snap.name, 100),
            value=snap.identifier,
            description=f"{snap.state.value} · {snap.identifier}",
            emoji=ICONS[snap.state],
        )
        for snap in shown
    )
    footer = f"{total} server{'s' if total != 1 else ''} · live from Wings"
    return Rendered(Kind.BOARD, "Game servers", description, BOARD_COLOR, footer=footer, options=options)


def render_card(snap: ServerSnapshot, now: float) -> Rendered:
    """One server's card: its state, CPU, memory and uptime; Kill is offered only while it is stopping."""
    title = f"{ICONS[snap.state]} {markdown_name(snap.name, 200)}"
    if snap.gone:
        return Rendered(
            Kind.CARD,
            title,
            "The panel no longer lists this server; remove this card with `/board remove`.",
            COLORS[Shown.UNKNOWN],
            footer=snap.identifier,
            server=snap.identifier,
        )
    since = since_text(snap.since)
    description = f"**{snap.state.value}**" + (f" since {since}" if since else "")
    active = snap.state in (Shown.RUNNING, Shown.STARTING, Shown.STOPPING)
    uptime = uptime_text(snap.started_at, now) if snap.state is Shown.RUNNING else None
    fields = (
        ("CPU", cpu_text(snap.cpu) if active else "—"),
        ("Memory", memory_text(snap.memory_tenths if active else None, snap.memory_limit_tenths)),
        ("Uptime", uptime or "—"),
    )
    return Rendered(
        Kind.CARD,
        title,
        description,
        COLORS[snap.state],
        fields=fields,
        footer=snap.identifier,
        server=snap.identifier,
        kill_enabled=snap.state is Shown.STOPPING,
    )
