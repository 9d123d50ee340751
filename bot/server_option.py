"""The `server` option every command shares: autocomplete from the cached list, and turning text into a server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.catalog import ServerCatalog
from bot.discord_access import autocomplete_scope, filter_servers
from bot.errors import WingbeatError
from bot.lookup import ServerLookupError, autocomplete_choices, resolve_server
from bot.panel.models import Server
from bot.panel.pacing import Priority
from bot.server_view import NO_ANSWER

if TYPE_CHECKING:
    from bot.app import WingbeatBot

log = logging.getLogger(__name__)

CATALOG_MAX_AGE = 30.0  # a lookup older than this refreshes the server list first
VIEW_WAIT = 1.5  # how long a view waits for that refresh: with its PANEL_WAIT for the figures, within 5 s
ACTION_WAIT = 5.0  # ...and an admin action, when it has an older list to go on with
AUTOCOMPLETE_WAIT = 1.5  # Discord gives autocomplete 3 s and no defer


async def server_autocomplete(
    interaction: discord.Interaction[WingbeatBot], current: str
) -> list[app_commands.Choice[str]]:
    """Up to 25 servers matching what is typed, from the cached list (name shown, identifier as value).

    Only the servers the member may use the command on are offered (all of them to admins).
    """
    servers = filter_servers(
        await interaction.client.catalog.cached(AUTOCOMPLETE_WAIT), autocomplete_scope(interaction)
    )
    return [
        app_commands.Choice(name=label, value=ident)
        for label, ident in autocomplete_choices(current, servers)
    ]


async def resolve(catalog: ServerCatalog, text: str, *, priority: Priority = Priority.VIEW) -> Server:
    """The server typed or picked; a miss on an older list is retried once on a fresh one.

    Admin actions pass `Priority.ACTION`, so their lookup never waits behind (or is refused like) a view. An out
    of date list is refreshed first, but a panel that fails or takes more than a few seconds does not hold the
    command up: the list at hand is used (the server's open socket may well answer without the panel).
    """
    servers = await current_servers(catalog, priority)
    try:
        return resolve_server(text, servers)
    except ServerLookupError:
        age = catalog.age()
        if age is None or age < 2.0:
            raise
    return resolve_server(text, await _refreshed(catalog, priority))


async def current_servers(catalog: ServerCatalog, priority: Priority) -> Sequence[Server]:
    """The list, refreshed when older than `CATALOG_MAX_AGE`; the older one when the refresh fails or is slow."""
    age = catalog.age()
    if age is not None and age <= CATALOG_MAX_AGE:
        return catalog.servers
    try:
        return await _refreshed(catalog, priority)
    except WingbeatError as exc:
        if catalog.age() is None:
            raise
        log.info("using the server list from %.0f s ago: %s", catalog.age() or 0.0, exc)
        return catalog.servers


async def _refreshed(catalog: ServerCatalog, priority: Priority) -> Sequence[Server]:
    """A fresh list; a view waits `VIEW_WAIT` s at most, an action `ACTION_WAIT` s when it has a list to fall
    back on (the refresh goes on in the background either way). Raises PanelError or WingbeatError."""
    if priority is Priority.VIEW:
        wait: float | None = VIEW_WAIT
    else:
        wait = ACTION_WAIT if catalog.age() is not None else None
    try:
        async with asyncio.timeout(wait):
            return await catalog.refresh(priority=priority)
    except TimeoutError:
        raise WingbeatError(NO_ANSWER) from None
