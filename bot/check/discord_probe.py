"""The I/O half of the Discord checks: discord.py's own HTTP client, REST only, no gateway session.

Read-only: the bot user, the application, the bot's guilds, and for each linked channel the channel, its
guild (roles, owner) and the bot's member. Nothing is posted, synced or changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import discord
from discord.http import HTTPClient, Route

from bot.check import channel_permissions
from bot.check.links import SavedLink
from bot.check.timing import Timing
from bot.check.verdicts import ChannelFacts, DiscordFacts, DiscordOutcome

log = logging.getLogger(__name__)

GUILDS_PAGE = 200  # the most GET /users/@me/guilds returns at once


@contextlib.asynccontextmanager
async def discord_http(api_url: str | None) -> AsyncIterator[HTTPClient]:
    """discord.py's HTTP client, aimed at `api_url` (DISCORD_API_URL) when set, closed on exit."""
    old_base = Route.BASE
    if api_url is not None:
        # discord.py has no option for its REST base: the class attribute is it (restored on exit).
        Route.BASE = api_url
    http = HTTPClient(asyncio.get_running_loop())
    try:
        yield http
    finally:
        await http.close()
        Route.BASE = old_base


async def probe_discord(http: HTTPClient, token: str, timing: Timing) -> DiscordFacts:
    """Log in over REST, then read the application and every guild the bot is in."""
    try:
        async with asyncio.timeout(timing.discord):
            me = await http.static_login(token)
    except discord.LoginFailure:
        return DiscordFacts(DiscordOutcome.TOKEN_REJECTED)
    except discord.HTTPException as exc:
        return DiscordFacts(DiscordOutcome.ERROR, f"HTTP {exc.status}: {exc.text or exc}")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return DiscordFacts(DiscordOutcome.UNREACHABLE, _describe(exc))
    facts: dict[str, Any] = {
        "bot_name": str(me.get("username", "")),
        "bot_id": int(me["id"]),
    }
    try:
        async with asyncio.timeout(timing.discord):
            app = await http.application_info()
        facts["application_id"] = int(app["id"])
        facts["bot_public"] = bool(app.get("bot_public"))
        facts["flags"] = int(app.get("flags") or 0)
    except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError, KeyError, ValueError) as exc:
        log.warning("could not read the Discord application: %s", _describe(exc))
    try:
        async with asyncio.timeout(timing.discord):
            facts["guilds"] = await _guilds(http)
    except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError, KeyError, ValueError) as exc:
        log.warning("could not read the bot's guilds: %s", _describe(exc))
    return DiscordFacts(DiscordOutcome.OK, **facts)


async def _guilds(http: HTTPClient) -> tuple[tuple[int, str], ...]:
    found: list[tuple[int, str]] = []
    after: int | None = None
    while True:
        page = await http.get_guilds(GUILDS_PAGE, after=after, with_counts=False)
        found.extend((int(g["id"]), str(g.get("name", ""))) for g in page)
        if len(page) < GUILDS_PAGE:
            return tuple(found)
        after = max(int(g["id"]) for g in page)


async def probe_channels(
    http: HTTPClient, bot_id: int, links: Sequence[SavedLink], timing: Timing
) -> list[ChannelFacts]:
    """The bot's missing permissions in each linked channel (one entry per channel, in link order)."""
    servers: dict[int, list[str]] = {}
    for link in links:
        servers.setdefault(link.channel_id, []).append(link.server)
    cache = _GuildCache(http, bot_id)
    out: list[ChannelFacts] = []
    for channel_id, linked in servers.items():
        try:
            async with asyncio.timeout(timing.discord):
                out.append(await _channel(http, cache, channel_id, tuple(linked)))
        except (aiohttp.ClientError, OSError, TimeoutError, KeyError, ValueError) as exc:
            out.append(ChannelFacts(channel_id, tuple(linked), error=f"could not be read: {_describe(exc)}"))
    return out


async def _channel(
    http: HTTPClient, cache: _GuildCache, channel_id: int, linked: tuple[str, ...]
) -> ChannelFacts:
    try:
        channel: dict[str, Any] = dict(await http.get_channel(channel_id))
    except discord.NotFound:
        return ChannelFacts(channel_id, linked, error="the channel no longer exists")
    except discord.Forbidden:
        return ChannelFacts(channel_id, linked, error="the bot cannot see this channel (Missing Access)")
    except discord.HTTPException as exc:
        return ChannelFacts(channel_id, linked, error=f"Discord answered HTTP {exc.status}")
    name = str(channel.get("name") or "")
    guild_raw = channel.get("guild_id")
    if guild_raw is None:
        return ChannelFacts(channel_id, linked, name, error="not a server channel")
    thread = int(channel.get("type", 0)) in channel_permissions.THREAD_TYPES
    source: dict[str, Any] = dict(channel)
    if thread:
        try:
            source = dict(await http.get_channel(int(channel["parent_id"])))
        except discord.HTTPException as exc:
            return ChannelFacts(
                channel_id, linked, name, error=f"the thread's parent could not be read ({exc.status})"
            )
    guild_id = int(guild_raw)
    try:
        guild, member = await cache.get(guild_id)
    except (discord.NotFound, discord.Forbidden):
        return ChannelFacts(
            channel_id, linked, name, error="the bot is not a member of this channel's server"
        )
    except discord.HTTPException as exc:
        return ChannelFacts(channel_id, linked, name, error=f"its server could not be read ({exc.status})")
    roles = {int(r["id"]): int(r.get("permissions") or 0) for r in guild.get("roles") or ()}
    permissions = channel_permissions.resolve(
        guild_id=guild_id,
        owner_id=int(guild.get("owner_id") or 0),
        member_id=cache.bot_id,
        member_roles={int(r) for r in member.get("roles") or ()},
        role_permissions=roles,
        overwrites=[
            channel_permissions.Overwrite.from_payload(o) for o in source.get("permission_overwrites") or ()
        ],
        thread=thread,
        is_timed_out=channel_permissions.timed_out(member),
    )
    return ChannelFacts(
        channel_id, linked, name, missing=channel_permissions.missing(permissions, thread=thread)
    )


class _GuildCache:
    """Each guild (roles, owner) and the bot's member in it, fetched once."""

    def __init__(self, http: HTTPClient, bot_id: int) -> None:
        self._http = http
        self.bot_id = bot_id
        self._seen: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

    async def get(self, guild_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        if guild_id not in self._seen:
            guild = dict(await self._http.get_guild(guild_id, with_counts=False))
            if "roles" not in guild:
                guild["roles"] = await self._http.get_roles(guild_id)
            member = dict(await self._http.get_member(guild_id, self.bot_id))
            self._seen[guild_id] = (guild, member)
        return self._seen[guild_id]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
