"""Console links' lifecycle: saved in the store, running in the relay, audited when Wingbeat changes them."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime

from bot.audit import WINGBEAT_USER, AuditAction, Auditor
from bot.panel.models import Server
from bot.relay.resume import Journal
from bot.relay.service import ConsoleRelay
from bot.store import How, Link, Shards, Store

log = logging.getLogger(__name__)


class LinkService:
    """Adds, removes and restores console links, and handles the relay or Discord taking one away."""

    def __init__(self, store: Store, relay: ConsoleRelay, auditor: Auditor) -> None:
        self._store = store
        self._relay = relay
        self._auditor = auditor
        # Channel -> guild of the saved links that restore skipped because their guild left `GUILD_IDS`: an
        # admin typing there is told why the console went quiet (cogs.console).
        self._foreign: dict[int, int] = {}

    def foreign_guild(self, channel_id: int) -> int | None:
        """The guild of a linked channel whose guild is no longer in `GUILD_IDS` (as of the start), or None."""
        return self._foreign.get(channel_id)

    async def guild_links(self, guild_id: int) -> list[Link]:
        """The guild's saved links."""
        return await self._store.links(guild_id)

    async def add(self, *, guild_id: int, channel_id: int, server: Server, created_by: int) -> bool:
        """Save and start a console link; False when that channel already mirrors that server."""
        link = Link(guild_id, channel_id, server.identifier, server.name, created_by, datetime.now(UTC))
        added = await self._store.add_link(link)
        try:
            await self._relay.link(server.identifier, channel_id, server_name=server.name)
        except BaseException:
            if added:
                await self._store.remove_link(channel_id, server.identifier)
            raise
        return added

    async def remove(self, *, channel_id: int, server_identifier: str) -> bool:
        """Stop and forget a console link; False when there was none."""
        removed = await self._store.remove_link(channel_id, server_identifier)
        relay_removed = await self._relay.unlink(server_identifier, channel_id)
        return removed or relay_removed

    async def restore(self, allowed_guilds: Collection[int], *, shards: Shards | None = None) -> None:
        """Start every saved link of the allowed guilds (at start-up); one that fails is logged, the others go on.

        Links of a guild no longer in `GUILD_IDS` are kept in the store but not started: its channels must not
        see the console, and they come back if the guild is allowed again. Links Discord refused last time
        (stopped) are tried again: the channel may be back, or the permission given. With `shards`, only the
        links of the guilds on them are read: other processes run the rest.
        """
        links = await self._store.links(shards=shards)
        journals = await self._journals(
            {link.channel_id for link in links if link.guild_id in allowed_guilds}
        )
        restored = 0
        for link in links:
            if link.guild_id not in allowed_guilds:
                self._foreign[link.channel_id] = link.guild_id
                log.warning(
                    "not restoring the link %s -> %d: guild %d is not in GUILD_IDS",
                    link.server_identifier,
                    link.channel_id,
                    link.guild_id,
                )
                continue
            try:
                if link.stopped:
                    await self._store.set_link_stopped(link.channel_id, link.server_identifier, None)
                await self._relay.link(
                    link.server_identifier,
                    link.channel_id,
                    server_name=link.server_name,
                    journal=journals.get(link.channel_id),
                )
                restored += 1
            except Exception:
                log.exception("could not restore the link %s -> %d", link.server_identifier, link.channel_id)
        if links:
            log.info("restored %d of %d console link(s)", restored, len(links))

    async def _journals(self, channel_ids: set[int]) -> dict[int, Journal]:
        """What each channel had posted before the restart (bot.relay.resume); a damaged one is left out."""
        writer = self._relay.journal
        if writer is None or not channel_ids:
            return {}
        out: dict[int, Journal] = {}
        for channel_id, text in (await writer.load(channel_ids)).items():
            try:
                out[channel_id] = Journal.from_text(text)
            except ValueError as exc:
                log.warning("ignoring the relay journal of channel %d: %s", channel_id, exc)
        return out

    async def relay_stopped(self, channel_id: int, server: str, reason: str) -> None:
        """The relay gave up on a channel (Discord refused it): keep the link as stopped, with the reason.

        It is shown so in /console list and /health, and tried again at the next start or when an admin links
        it again; only deleting the channel or unlinking removes it.
        """
        log.warning("console link %s -> %d stopped: %s", server, channel_id, reason)
        saved = await self._store.links_for_server(server)
        guild_id = next((link.guild_id for link in saved if link.channel_id == channel_id), None)
        await self._store.set_link_stopped(channel_id, server, reason)
        action = AuditAction(
            guild_id, WINGBEAT_USER, server, "link stopped", f"channel={channel_id}", How.WINGBEAT
        )
        await self._auditor.record(action, f"stopped by Wingbeat: {reason}")

    async def channel_deleted(self, guild_id: int, channel_id: int) -> None:
        """A channel was deleted: its links go, each audited."""
        self._foreign.pop(channel_id, None)
        saved = {
            link.server_identifier
            for link in await self._store.links(guild_id)
            if link.channel_id == channel_id
        }
        for server in sorted(saved | set(self._relay.servers_for_channel(channel_id))):
            await self.remove(channel_id=channel_id, server_identifier=server)
            await self._audit_removal(guild_id, channel_id, server, "the channel was deleted")

    async def _audit_removal(self, guild_id: int | None, channel_id: int, server: str, reason: str) -> None:
        action = AuditAction(guild_id, WINGBEAT_USER, server, "unlink", f"channel={channel_id}", How.WINGBEAT)
        await self._auditor.record(action, f"removed by Wingbeat: {reason}")
