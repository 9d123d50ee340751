"""The `server` option every command shares: autocomplete from the cached list, and turning text into a server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.catalog import ServerCatalog
from bot.discord_access import autocomplete_scope, filter_servers
from bot.lookup import ServerLookupError, autocomplete_choices, resolve_server
from bot.panel.models import Server
from bot.panel.pacing import Priority

if TYPE_CHECKING:
    from bot.app import WingbeatBot

CATALOG_MAX_AGE = 30.0  # a lookup older than this refreshes the server list first
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

    Admin actions pass `Priority.ACTION`, so their lookup never waits behind (or is refused like) a view.
    """
    servers = await catalog.get(CATALOG_MAX_AGE, priority=priority)
    try:
        return resolve_server(text, servers)
    except ServerLookupError:
        age = catalog.age()
        if age is None or age < 2.0:
            raise
    return resolve_server(text, await catalog.refresh(priority=priority))
