"""The Discord side: one `commands.Bot` subclass that owns the application's resources.

`setup_hook` opens the store, the panel client, the Wings connection manager and the console relay, loads the
cogs, syncs the slash commands only when they changed, and restores the saved console links. Cogs only
translate Discord input into calls on what hangs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.audit_feed import AuditFeed
from bot.audit_prune import AuditPruner
from bot.catalog import ServerCatalog
from bot.grants import GrantBook
from bot.heartbeat import Heartbeat, heartbeat_path
from bot.panel.client import PanelClient
from bot.panel.models import Server
from bot.relay.discord_poster import DiscordPoster
from bot.relay.service import ConsoleRelay
from bot.settings import Settings
from bot.store import AuditEntry, How, Link, Store, StoreError
from bot.tree import WingbeatTree
from bot.wings.connection import Timing
from bot.wings.manager import ConnectionManager

log = logging.getLogger(__name__)

INITIAL_EXTENSIONS: tuple[str, ...] = (
    "cogs.servers",
    "cogs.control",
    "cogs.console",
    "cogs.health",
    "cogs.access",
    "cogs.audit",
)
SYNC_META_PREFIX = "commands.synced:"


# -- command sync --------------------------------------------------------------------------------------------


def commands_hash(tree: app_commands.CommandTree[Any]) -> str:
    """A stable hash of the global command payloads; equal hashes mean syncing would change nothing."""
    payload = [command.to_dict(tree) for command in tree.get_commands()]
    payload.sort(key=lambda c: (int(c.get("type", 1)), str(c["name"])))
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# -- Discord endpoints --------------------------------------------------------------------------------------


def use_discord_endpoints(api_url: str | None, gateway_url: str | None) -> None:
    """Send discord.py's REST requests to `api_url` and open its gateway at `gateway_url` (None: unchanged).

    For an HTTP proxy in front of Discord's API (e.g. nirn-proxy) or a local fake. discord.py offers no option
    for either, so the two class attributes it reads are set; they apply to the whole process (one bot).
    """
    if api_url is not None:
        discord.http.Route.BASE = api_url
        log.info("Discord API requests go to %s (DISCORD_API_URL)", _host_only(api_url))
    if gateway_url is not None:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
        log.info("the Discord gateway is %s (DISCORD_GATEWAY_URL)", _host_only(gateway_url))


def _host_only(url: str) -> str:
    # Scheme, host and port only: a URL may carry credentials, which never go to the log.
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


# -- the bot -------------------------------------------------------------------------------------------------


class WingbeatBot(commands.Bot):
    """Holds settings and resources; cogs only translate Discord input into calls on these.

    Every duration can be shortened for tests: `timing` (Wings connections), `relay_interval` (seconds
    between posts to a channel), `catalog_refresh` (server list), `idle_close`, `guild_ready_timeout`.
    """

    _heartbeat: Heartbeat | None = None  # started in setup_hook; read by `wingbeat healthcheck`

    def __init__(
        self,
        settings: Settings,
        *,
        timing: Timing | None = None,
        relay_interval: float = 1.0,
        catalog_refresh: float = 60.0,
        idle_close: float = 300.0,
        panel_timeout: float = 15.0,
        guild_ready_timeout: float = 2.0,
        audit_prune_every: float = 86400.0,
        extensions: Sequence[str] = INITIAL_EXTENSIONS,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        if settings.console_input:
            intents.guild_messages = True
            intents.message_content = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            tree_cls=WingbeatTree,
            guild_ready_timeout=guild_ready_timeout,
            chunk_guilds_at_startup=False,
        )
        self.settings = settings
        self._timing = timing
        self._relay_interval = relay_interval
        self._catalog_refresh = catalog_refresh
        self._idle_close = idle_close
        self._panel_timeout = panel_timeout
        self._extensions = tuple(extensions)
        self._audit_prune_every = audit_prune_every
        self._store: Store | None = None
        self._panel: PanelClient | None = None
        self._manager: ConnectionManager | None = None
        self._relay: ConsoleRelay | None = None
        self._catalog: ServerCatalog | None = None
        self._grant_book: GrantBook | None = None
        self._audit_feed: AuditFeed | None = None
        self._audit_pruner: AuditPruner | None = None
        self._closing = False
        self.synced_scopes: list[str] = []  # what the last start-up actually pushed to Discord
        self.ready_logged = False

    # resources (set in setup_hook)

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the store is opened in setup_hook")
        return self._store

    @property
    def panel(self) -> PanelClient:
        if self._panel is None:
            raise RuntimeError("the panel client is created in setup_hook")
        return self._panel

    @property
    def manager(self) -> ConnectionManager:
        if self._manager is None:
            raise RuntimeError("the connection manager is created in setup_hook")
        return self._manager

    @property
    def relay(self) -> ConsoleRelay:
        if self._relay is None:
            raise RuntimeError("the console relay is created in setup_hook")
        return self._relay

    @property
    def catalog(self) -> ServerCatalog:
        if self._catalog is None:
            raise RuntimeError("the server catalog is created in setup_hook")
        return self._catalog

    @property
    def grant_book(self) -> GrantBook:
        if self._grant_book is None:
            raise RuntimeError("the grant book is loaded in setup_hook")
        return self._grant_book

    @property
    def audit_feed(self) -> AuditFeed:
        if self._audit_feed is None:
            raise RuntimeError("the audit feed is created in setup_hook")
        return self._audit_feed

    @property
    def audit_pruner(self) -> AuditPruner:
        if self._audit_pruner is None:
            raise RuntimeError("the audit pruner is created in setup_hook")
        return self._audit_pruner

    # start-up

    async def login(self, token: str) -> None:
        # Before the first request: login() itself calls Discord (and then setup_hook).
        use_discord_endpoints(self.settings.discord_api_url, self.settings.discord_gateway_url)
        await super().login(token)

    async def setup_hook(self) -> None:
        settings = self.settings
        self._store = await Store.open(settings.database_url)
        self._panel = PanelClient(settings.panel_url, settings.panel_api_key, timeout=self._panel_timeout)
        self._manager = ConnectionManager(
            self._panel, origin=settings.wings_origin, timing=self._timing, idle_close=self._idle_close
        )
        self._relay = ConsoleRelay(
            self._manager,
            DiscordPoster(self),
            mode=settings.console_color,
            min_interval=self._relay_interval,
            on_link_stopped=self._link_stopped,
        )
        self._catalog = ServerCatalog(self._panel, refresh_every=self._catalog_refresh)
        await self._start_access_and_audit()
        for name in self._extensions:
            await self.load_extension(name)
        await self._sync_commands()
        await self._restore_links()
        self._catalog.start()
        self._heartbeat = Heartbeat(self, heartbeat_path(settings.database_url)).start()

    async def _start_access_and_audit(self) -> None:
        settings, store, catalog = self.settings, self.store, self.catalog
        self._grant_book = GrantBook(store)
        await self._grant_book.load(settings.guild_ids)
        self._audit_feed = AuditFeed(
            self, self.relay.budget, server_names=lambda: {s.identifier: s.name for s in catalog.servers}
        )
        await self._audit_feed.load(store, settings.guild_ids)
        self._audit_feed.start()
        self._audit_pruner = AuditPruner(
            store.prune_audit, settings.audit_retention_days, every=self._audit_prune_every
        )
        self._audit_pruner.start()

    async def _sync_commands(self) -> None:
        digest = commands_hash(self.tree)
        targets: list[discord.Object | None] = [discord.Object(g) for g in self.settings.guild_ids] or [None]
        self.synced_scopes = []
        for target in targets:
            scope = "global" if target is None else f"guild:{target.id}"
            if target is not None:
                # Every start, synced or not, so the local tree mirrors what Discord has registered.
                self.tree.copy_global_to(guild=target)
            key = SYNC_META_PREFIX + scope
            if await self.store.get_meta(key) == digest:
                log.info("slash commands unchanged for %s; not syncing", scope)
                continue
            try:
                synced = await self.tree.sync(guild=target)
            except discord.HTTPException as exc:
                log.error("could not sync slash commands to %s: %s", scope, exc)
                continue
            await self.store.set_meta(key, digest)
            self.synced_scopes.append(scope)
            log.info("synced %d slash commands to %s", len(synced), scope)

    async def _restore_links(self) -> None:
        links = await self.store.links()
        restored = 0
        for link in links:
            try:
                await self.relay.link(link.server_identifier, link.channel_id, server_name=link.server_name)
                restored += 1
            except Exception:
                log.exception("could not restore the link %s -> %d", link.server_identifier, link.channel_id)
        if links:
            log.info("restored %d of %d console link(s)", restored, len(links))

    async def on_ready(self) -> None:
        if not self.ready_logged:
            self.ready_logged = True
            links = len(self.relay.link_health()) if self._relay is not None else 0
            log.info("ready as %s in %d guild(s), %d console link(s)", self.user, len(self.guilds), links)
            print(
                f"Wingbeat ready: {self.user} in {len(self.guilds)} guild(s), {links} console link(s)",
                flush=True,
            )

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: messages matter only to the console input listener (cogs.console)."""

    # links (the application calls cogs make)

    async def add_link(self, *, guild_id: int, channel_id: int, server: Server, created_by: int) -> bool:
        """Save and start a console link; False when that channel already mirrors that server."""
        link = Link(guild_id, channel_id, server.identifier, server.name, created_by, datetime.now(UTC))
        added = await self.store.add_link(link)
        try:
            await self.relay.link(server.identifier, channel_id, server_name=server.name)
        except BaseException:
            if added:
                await self.store.remove_link(channel_id, server.identifier)
            raise
        return added

    async def remove_link(self, *, channel_id: int, server_identifier: str) -> bool:
        """Stop and forget a console link; False when there was none."""
        removed = await self.store.remove_link(channel_id, server_identifier)
        relay_removed = await self.relay.unlink(server_identifier, channel_id)
        return removed or relay_removed

    async def _link_stopped(self, channel_id: int, server_identifier: str, reason: str) -> None:
        """The relay gave up on a channel (Discord answered 403/404): forget the link and say why."""
        log.warning("console link %s -> %d stopped: %s", server_identifier, channel_id, reason)
        saved = await self.store.links_for_server(server_identifier)
        guild_id = next((link.guild_id for link in saved if link.channel_id == channel_id), None)
        await self.store.remove_link(channel_id, server_identifier)
        await self.audit(
            guild_id=guild_id,
            user_id=0,
            server=server_identifier,
            action="unlink",
            arguments=f"channel={channel_id}",
            outcome=f"removed by Wingbeat: {reason}",
        )

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        saved = {
            link.server_identifier
            for link in await self.store.links(channel.guild.id)
            if link.channel_id == channel.id
        }
        for server in sorted(saved | set(self.relay.servers_for_channel(channel.id))):
            await self._unlink_gone(channel.id, server, channel.guild.id, "the channel was deleted")

    async def _unlink_gone(self, channel_id: int, server: str, guild_id: int, reason: str) -> None:
        await self.remove_link(channel_id=channel_id, server_identifier=server)
        await self.audit(
            guild_id=guild_id,
            user_id=0,
            server=server,
            action="unlink",
            arguments=f"channel={channel_id}",
            outcome=f"removed by Wingbeat: {reason}",
        )

    # audit

    async def audit(
        self,
        *,
        guild_id: int | None,
        user_id: int,
        server: str | None,
        action: str,
        arguments: str,
        outcome: str,
        how: How = How.COMMAND,
    ) -> None:
        """Write one audit entry and post it to the guild's audit channel; a failing store is logged only."""
        arguments, outcome = arguments[:1000], outcome[:1000]
        try:
            entry_id = await self.store.audit(
                guild_id=guild_id,
                user_id=user_id,
                server_identifier=server,
                action=action,
                arguments=arguments,
                outcome=outcome,
                how=how,
            )
        except Exception:
            log.exception("could not write the audit entry for %s on %s", action, server)
            entry_id = 0
        if self._audit_feed is not None:
            now = datetime.now(UTC)
            self._audit_feed.publish(
                AuditEntry(entry_id, now, guild_id, user_id, server, action, arguments, outcome, how, now)
            )

    # shutdown

    async def close(self) -> None:
        """Relay, connections, panel client, store, then Discord; a second call does nothing more."""
        if self._closing:
            return
        self._closing = True
        steps: list[tuple[str, Any]] = [
            ("heartbeat", self._heartbeat),
            ("audit pruner", self._audit_pruner),
            ("audit feed", self._audit_feed),
            ("server catalog", self._catalog),
            ("console relay", self._relay),
            ("wings connections", self._manager),
            ("panel client", self._panel),
            ("store", self._store),
        ]
        for what, resource in steps:
            if resource is None:
                continue
            try:
                await resource.close()
            except Exception:
                log.exception("error while closing the %s", what)
        await super().close()
        log.info("closed")


async def run_bot(settings: Settings) -> None:
    """Run until closed; SIGINT/SIGTERM close the bot cleanly."""
    async with WingbeatBot(settings) as bot:
        loop = asyncio.get_running_loop()
        closing: set[asyncio.Task[None]] = set()

        def on_signal() -> None:
            log.info("signal received; closing")
            task = asyncio.create_task(bot.close())
            closing.add(task)
            task.add_done_callback(closing.discard)

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, on_signal)
        try:
            await bot.start(settings.discord_token)
        except discord.LoginFailure:
            log.error("Discord rejected DISCORD_TOKEN; check the bot token in the developer portal.")
            raise SystemExit(2) from None
        except StoreError as exc:
            log.error("cannot use the database: %s", exc)
            raise SystemExit(1) from None
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(sig)
