"""Registering the slash commands with Discord: in exactly the allowed guilds, and only when they changed.

Discord's command-create budget is small, so a start-up pushes the commands only when a hash of what would be
pushed (the application ID, the guild set and the payloads) differs from the one kept in the store. Commands
registered globally by an earlier run would stay usable from every guild the bot is in: they are removed at
every start. Guilds dropped from `GUILD_IDS` since the last sync lose their commands too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from bot.store import Store

log = logging.getLogger(__name__)

META_HASH = "commands.synced"
META_GUILDS = "commands.guilds"


def command_payloads(tree: app_commands.CommandTree[Any]) -> list[dict[str, Any]]:
    """The tree's global command payloads in a stable order (what is pushed to each guild)."""
    payload = [command.to_dict(tree) for command in tree.get_commands()]
    payload.sort(key=lambda c: (int(c.get("type", 1)), str(c["name"])))
    return payload


def commands_hash(application_id: int, guild_ids: Iterable[int], payloads: list[dict[str, Any]]) -> str:
    """A stable hash of everything a sync would push; equal hashes mean syncing would change nothing."""
    document = {"application": application_id, "guilds": sorted(set(guild_ids)), "commands": payloads}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a start-up changed on Discord's side."""

    synced: tuple[int, ...]  # guilds whose commands were pushed
    cleared: tuple[int, ...]  # guilds no longer allowed whose commands were removed
    globals_removed: int  # global commands an earlier run had left


async def remove_global_commands(client: discord.Client, application_id: int) -> int:
    """Delete every global command of the application (one GET, and one PUT [] when there are any)."""
    registered = await client.http.get_global_commands(application_id)
    if registered:
        await client.http.bulk_upsert_global_commands(application_id, [])
        log.warning(
            "removed %d global slash command(s) left by an earlier run: they were usable from any guild",
            len(registered),
        )
    return len(registered)


async def sync_commands(
    client: discord.Client, tree: app_commands.CommandTree[Any], store: Store, guild_ids: tuple[int, ...]
) -> SyncResult:
    """Make Discord hold the tree's commands in exactly `guild_ids`, pushing only what changed."""
    application_id = client.application_id
    if application_id is None:  # set by login(), before setup_hook
        raise RuntimeError("the application ID is not known yet")
    try:
        globals_removed = await remove_global_commands(client, application_id)
    except discord.HTTPException as exc:
        log.error("could not remove global slash commands: %s", exc)
        globals_removed = 0
    for guild_id in guild_ids:
        # Every start, synced or not, so the local tree mirrors what Discord has registered.
        tree.copy_global_to(guild=discord.Object(guild_id))
    digest = commands_hash(application_id, guild_ids, command_payloads(tree))
    if await store.get_meta(META_HASH) == digest:
        log.info("slash commands unchanged for %d guild(s); not syncing", len(guild_ids))
        return SyncResult((), (), globals_removed)
    complete = True
    synced: list[int] = []
    for guild_id in guild_ids:
        try:
            pushed = await tree.sync(guild=discord.Object(guild_id))
        except discord.HTTPException as exc:
            log.error("could not sync slash commands to guild %d: %s", guild_id, exc)
            complete = False
            continue
        synced.append(guild_id)
        log.info("synced %d slash commands to guild %d", len(pushed), guild_id)
    cleared: list[int] = []
    for guild_id in sorted(_guilds(await store.get_meta(META_GUILDS)) - set(guild_ids)):
        try:
            await client.http.bulk_upsert_guild_commands(application_id, guild_id, [])
        except (discord.Forbidden, discord.NotFound):
            pass  # the bot left that guild: its commands went with it
        except discord.HTTPException as exc:
            log.error(
                "could not remove slash commands from guild %d (no longer in GUILD_IDS): %s", guild_id, exc
            )
            complete = False
            continue
        cleared.append(guild_id)
        log.info("removed the slash commands from guild %d (no longer in GUILD_IDS)", guild_id)
    if complete:
        await store.set_meta(META_HASH, digest)
        await store.set_meta(META_GUILDS, ",".join(str(g) for g in guild_ids))
    return SyncResult(tuple(synced), tuple(cleared), globals_removed)


def _guilds(text: str | None) -> set[int]:
    return {int(part) for part in (text or "").split(",") if part.strip().isdigit()}
