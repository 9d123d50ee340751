"""The Discord side: one `commands.Bot` subclass that owns the application's resources.

`setup_hook` opens the store, the panel client, the Wings connection manager and the console relay, builds the
services cogs call (links, audit, server views, health reports, the guard, boards, alerts), loads the cogs, syncs the slash
commands to the allowed guilds only when they changed (bot.command_sync), and restores the saved console
links of the allowed guilds. Cogs only translate Discord input
into calls on what hangs here.

With `SHARD_COUNT`/`SHARD_IDS` the bot runs discord.py's own sharding (`create_bot` picks the
`AutoShardedBot` flavour) and serves only the guilds on its shards (bot.shards); the process running shard 0
also does what belongs to the whole bot, such as syncing the slash commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import discord
import yarl
from discord.ext import commands

from bot.alerts.service import AlertService, AlertTiming
from bot.audit import Auditor
from bot.audit_feed import AuditFeed
from bot.audit_prune import AuditPruner
from bot.boards.messages import BoardMessages
from bot.boards.service import BoardService
from bot.catalog import ServerCatalog
from bot.command_sync import SyncResult, sync_commands
from bot.grants import GrantBook
from bot.guard import Guard
from bot.health_report import HealthReports
from bot.heartbeat import Heartbeat, heartbeat_path
from bot.links import LinkService
from bot.panel.client import PanelClient
from bot.relay.budget import RequestBudget
from bot.relay.discord_poster import DiscordPoster
from bot.relay.journal import JournalWriter
from bot.relay.service import ConsoleRelay
from bot.server_view import ServerViews
from bot.settings import Settings
from bot.shards import ShardPlan, budget_share
from bot.store import INTERRUPTED, Store, StoreError, open_store
from bot.tree import WingbeatTree
from bot.wings.connection import Timing
from bot.wings.frames import PowerAction
from bot.wings.manager import ConnectionManager

log = logging.getLogger(__name__)

INITIAL_EXTENSIONS: tuple[str, ...] = (
    "cogs.servers",
    "cogs.control",
    "cogs.console",
    "cogs.health",
    "cogs.access",
    "cogs.audit",
    "cogs.boards",
    "cogs.alerts",
)


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
    """Holds settings and the application's services; cogs only translate Discord input into calls on these.

    Every duration can be shortened for tests: `timing` (Wings connections), `relay_interval` (seconds
    between posts to a channel), `catalog_refresh` (server list), `idle_close`, `guild_ready_timeout`,
    `audit_prune_every` (seconds between audit pruning passes),
    `board_tick` (boards' look at the server list and sockets), `alert_timing`, `resume_timeout` (how long a
    restarted channel waits for its servers' replays).
    """

    # Set in setup_hook, in this order; closed in the reverse order.
    store: Store
    auditor: Auditor
    grant_book: GrantBook  # every allowed guild's grants, in memory for the access check
    panel: PanelClient
    manager: ConnectionManager
    relay: ConsoleRelay
    links: LinkService
    catalog: ServerCatalog
    views: ServerViews
    reports: HealthReports
    guard: Guard
    audit_feed: AuditFeed  # every audited action also posted to its guild's audit channel
    audit_pruner: AuditPruner
    boards: BoardService
    alerts: AlertService
    heartbeat: Heartbeat  # touched while the gateway and loop are alive; read by `wingbeat healthcheck`

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
        drain_timeout: float = 5.0,
        flush_timeout: float = 3.0,
        audit_prune_every: float = 86400.0,
        board_tick: float = 2.0,
        alert_timing: AlertTiming | None = None,
        resume_timeout: float = 30.0,
        extensions: Sequence[str] = INITIAL_EXTENSIONS,
    ) -> None:
        # No voice here: discord.py's start-up warnings about missing voice libraries would only alarm.
        for warning in ("warn_nacl", "warn_dave"):
            if hasattr(discord.VoiceClient, warning):
                setattr(discord.VoiceClient, warning, False)
        intents = discord.Intents.none()
        intents.guilds = True
        if settings.console_input:
            intents.guild_messages = True
            intents.message_content = True
        shards = ShardPlan.from_settings(settings)
        sharding: dict[str, Any] = {}
        if shards.sharded:
            sharding = {"shard_count": shards.count, "shard_ids": list(shards.ids)}
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            tree_cls=WingbeatTree,
            guild_ready_timeout=guild_ready_timeout,
            chunk_guilds_at_startup=False,
            **sharding,
        )
        self.settings = settings
        self.shard_plan = shards
        self._timing = timing
        self._relay_interval = relay_interval
        self._catalog_refresh = catalog_refresh
        self._idle_close = idle_close
        self._panel_timeout = panel_timeout
        self._drain_timeout = drain_timeout
        self._flush_timeout = flush_timeout
        self._audit_prune_every = audit_prune_every
        self._extensions = tuple(extensions)
        self._board_tick = board_tick
        self._alert_timing = alert_timing
        self._resume_timeout = resume_timeout
        # One pace for every message the bot posts or edits (relay, boards, alerts, the audit channel), under
        # Discord's global limit: this process's share of it, or all of it behind a shared proxy (bot.shards).
        self.budget_share = budget_share(shards, settings.discord_api_url)
        self.discord_budget = RequestBudget(self.budget_share.rate, self.budget_share.burst)
        self._resources = contextlib.AsyncExitStack()
        self._closing = False
        self.command_sync = SyncResult((), (), 0)  # what the last start-up changed on Discord's side
        self.ready_logged = False
        self._setting_up = False  # login() got as far as setup_hook

    # start-up

    async def login(self, token: str) -> None:
        # Before the first request: login() itself calls Discord (and then setup_hook).
        use_discord_endpoints(self.settings.discord_api_url, self.settings.discord_gateway_url)
        try:
            await super().login(token)
        except (OSError, aiohttp.ClientError, discord.DiscordServerError) as exc:
            if self._setting_up:  # raised by setup_hook, which login() runs last: not about reaching Discord
                raise
            # Only the login request: once connected, discord.py reconnects by itself.
            raise DiscordUnreachable(f"{type(exc).__name__}: {exc}") from exc

    async def open_store(self) -> None:
        """Open the store once. `run_bot` calls this before logging in, so a database that cannot be used
        (locked by another process, unreachable) stops start-up before anything reaches Discord."""
        if getattr(self, "store", None) is None:
            self.store = await open_store(self.settings.database_url)
            self._closes("store", self.store.close)

    async def setup_hook(self) -> None:
        self._setting_up = True
        settings = self.settings
        await self.open_store()
        # Actions still `started` in this process's guilds were cut short when it (or the process it replaces
        # on these shards) died: say so in the audit log.
        await self.store.interrupt_started_audit(INTERRUPTED, shards=self.shard_plan.store_filter())
        self.auditor = Auditor(self.store)
        self.grant_book = GrantBook(self.store)
        await self.grant_book.load(self.shard_plan.guilds(settings.guild_ids))
        self.panel = PanelClient(settings.panel_url, settings.panel_api_key, timeout=self._panel_timeout)
        self._closes("panel client", self.panel.close)
        self.manager = ConnectionManager(
            self.panel, origin=settings.wings_origin, timing=self._timing, idle_close=self._idle_close
        )
        self._closes("wings connections", self.manager.close)
        share = self.budget_share
        log.info(
            "Discord budget: %g requests/s, bursts of %d (%s; %s)",
            share.rate,
            share.burst,
            self.shard_plan.describe(),
            "behind a shared proxy" if share.proxied else f"1/{self.shard_plan.process_count} of the token's",
        )
        # What each channel has posted, so a restart neither loses nor repeats a line; closed after the relay.
        journal = JournalWriter(self.store)
        self._closes("relay journal", journal.close)
        self.relay = ConsoleRelay(
            self.manager,
            DiscordPoster(self),
            mode=settings.console_color,
            min_interval=self._relay_interval,
            budget=self.discord_budget,
            on_link_stopped=self._link_stopped,
            journal=journal,
            resume_timeout=self._resume_timeout,
        )
        self._closes("console relay", self.relay.close)
        self.links = LinkService(self.store, self.relay, self.auditor)
        self.catalog = ServerCatalog(self.panel, refresh_every=self._catalog_refresh)
        self._closes("server catalog", self.catalog.close)
        self.views = ServerViews(self.catalog, self.manager, self.panel)
        self.reports = HealthReports(self.store, self.relay, self.manager, self.catalog)
        self.guard = Guard(settings, self.auditor, serves=self.shard_plan.serves)
        await self._start_audit_services()
        self.boards = BoardService(
            store=self.store,
            auditor=self.auditor,
            catalog=self.catalog,
            manager=self.manager,
            messages=BoardMessages(self),
            budget=self.discord_budget,
            interval=settings.status_interval,
            allowed_guilds=self.guard.allowed_guilds,
            shards=self.shard_plan.store_filter(),
            tick=self._board_tick,
        )
        self.alerts = AlertService(
            store=self.store,
            catalog=self.catalog,
            manager=self.manager,
            client=self,
            budget=self.discord_budget,
            allowed_guilds=self.guard.allowed_guilds,
            shards=self.shard_plan.store_filter(),
            timing=self._alert_timing,
        )
        for name in self._extensions:
            await self.load_extension(name)
        if self.shard_plan.runs_shared_duties:
            self.command_sync = await sync_commands(self, self.tree, self.store, settings.guild_ids)
        else:
            # The process with shard 0 registers the commands; this one only needs the tree to know them.
            for guild_id in settings.guild_ids:
                self.tree.copy_global_to(guild=discord.Object(guild_id))
        await self.links.restore(self.guard.allowed_guilds, shards=self.shard_plan.store_filter())
        self.catalog.start()
        await self.boards.start()
        self._closes("boards", self.boards.close)
        await self.alerts.start()
        self._closes("alerts", self.alerts.close)
        self.heartbeat = Heartbeat(self, heartbeat_path(settings.database_url)).start()
        self._closes("heartbeat", self.heartbeat.close)

    async def _start_audit_services(self) -> None:
        catalog = self.catalog
        self.audit_feed = AuditFeed(
            self, self.discord_budget, server_names=lambda: {s.identifier: s.name for s in catalog.servers}
        )
        await self.audit_feed.load(self.store, self.shard_plan.guilds(self.settings.guild_ids))
        self.auditor.on_completed(self.audit_feed.on_completed)
        self.audit_feed.start()
        self._closes("audit feed", self.audit_feed.close)
        self.audit_pruner = AuditPruner(
            self.store.prune_audit, self.settings.audit_retention_days, every=self._audit_prune_every
        )
        if self.shard_plan.runs_shared_duties:  # one process prunes for all of them
            self.audit_pruner.start()
            self._closes("audit pruner", self.audit_pruner.close)

    def _closes(self, what: str, close: Callable[[], Awaitable[None]]) -> None:
        """Close `close`'s resource at shutdown (last opened, first closed); a failure is logged, not raised."""

        async def closing() -> None:
            try:
                await close()
            except Exception:
                log.exception("error while closing the %s", what)

        self._resources.push_async_callback(closing)

    async def on_ready(self) -> None:
        if not self.ready_logged:
            self.ready_logged = True
            links = len(self.relay.link_health())
            shards = f", {self.shard_plan.describe()}" if self.shard_plan.sharded else ""
            log.info(
                "ready as %s in %d guild(s), %d console link(s)%s", self.user, len(self.guilds), links, shards
            )
            print(
                f"Wingbeat ready: {self.user} in {len(self.guilds)} guild(s), {links} console link(s){shards}",
                flush=True,
            )

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: messages matter only to the console input listener (cogs.console)."""

    def note_power_request(self, server: str, action: PowerAction) -> None:
        """A power action is about to go out through Wingbeat: a stop it causes is no alert."""
        alerts: AlertService | None = getattr(self, "alerts", None)
        if alerts is not None:
            alerts.power_requested(server, action)

    async def on_app_command_completion(
        self, interaction: discord.Interaction[WingbeatBot], command: object
    ) -> None:
        self.guard.end(interaction.id)  # the invocation is over (errors end in the tree's on_error)

    async def on_guild_available(self, guild: discord.Guild) -> None:
        self.guard.note_guild(guild.id, guild.name)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        self.guard.note_guild(guild.id, guild.name)

    # events the link service handles

    async def _link_stopped(self, channel_id: int, server: str, reason: str) -> None:
        await self.links.relay_stopped(channel_id, server, reason)

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self.links.channel_deleted(channel.guild.id, channel.id)
        await self.boards.channel_deleted(channel.id)

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        # A linked thread is a channel like any other; discord.py reports its deletion apart (raw: even uncached).
        await self.links.channel_deleted(payload.guild_id, payload.thread_id)
        await self.boards.channel_deleted(payload.thread_id)

    # shutdown

    async def close(self) -> None:
        """Shut down in order; a second call does nothing more.

        New interactions are refused from the first moment ("Wingbeat is shutting down"), actions in flight get
        `drain_timeout` seconds to finish (their audit rows completed), the relay posts what it can within
        `flush_timeout`, then heartbeat, catalog, relay, Wings connections, panel client and the store close
        (the store last), and the Discord connection after them.
        """
        if self._closing:
            return
        self._closing = True
        guard: Guard | None = getattr(self, "guard", None)
        if guard is not None:
            left = await guard.drain(self._drain_timeout)
            if left:
                log.warning(
                    "%d action(s) still running after %g s; closing anyway", left, self._drain_timeout
                )
        relay: ConsoleRelay | None = getattr(self, "relay", None)
        if relay is not None:
            await relay.flush(self._flush_timeout)
        await self._resources.aclose()
        await super().close()
        log.info("closed")


class DiscordUnreachable(Exception):
    """Discord's API did not answer the login request (network, DNS, TLS, a proxy, or Discord's own 5xx)."""


class ShardedWingbeatBot(WingbeatBot, commands.AutoShardedBot):
    """The bot on some of the token's shards (`SHARD_COUNT`, `SHARD_IDS`), one gateway session per shard."""


def create_bot(settings: Settings, **options: Any) -> WingbeatBot:
    """The bot for these settings: sharded when `SHARD_COUNT` is set, else exactly the one-process bot."""
    if settings.shard_count is not None:
        return ShardedWingbeatBot(settings, **options)
    return WingbeatBot(settings, **options)


async def run_bot(settings: Settings) -> None:
    """Run until closed; SIGINT/SIGTERM close the bot cleanly."""
    async with create_bot(settings) as bot:
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
            await bot.open_store()
            await bot.start(settings.discord_token)
        except discord.LoginFailure:
            log.error("Discord rejected DISCORD_TOKEN; check the bot token in the developer portal.")
            raise SystemExit(2) from None
        except discord.PrivilegedIntentsRequired:
            log.error(
                "Discord refused the gateway connection: CONSOLE_INPUT=true needs the Message Content Intent. "
                "Turn it on in the developer portal (your application → Bot), or set CONSOLE_INPUT=false."
            )
            raise SystemExit(2) from None
        except DiscordUnreachable as exc:
            where = settings.discord_api_url or "https://discord.com/api/v10"
            log.error(
                "could not reach Discord at %s (%s); check this machine's network, DNS and firewall%s. Exiting.",
                _host_only(where),
                exc,
                ", and DISCORD_API_URL" if settings.discord_api_url else "",
            )
            raise SystemExit(1) from None
        except StoreError as exc:
            log.error("cannot use the database: %s", exc)
            raise SystemExit(1) from None
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(sig)
