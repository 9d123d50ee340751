"""Boards and cards kept live from the Wings sockets, each message edited only when its text changed.

One tracker per shown server follows its `status` and `stats` frames (shared connections, no panel polling).
One task per message re-renders it when poked and edits it when the result differs from what Discord shows,
at most once per `interval`, each edit waiting for a slot in the bot's shared Discord request budget.
A message that is gone (10008, 10003) is dropped and audited; one Discord will not edit any more (30046) is
posted anew and the old one deleted, so no stale copy with live-looking buttons stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from bot.audit import WINGBEAT_USER, AuditAction, Auditor
from bot.boards.messages import BoardMessages, EditRefused, MessageFailed, MessageGone, MessageThrottled
from bot.boards.render import BOARD_LIMIT, Rendered, render_board, render_card
from bot.boards.snapshot import ServerSnapshot, ServerTracker, Shown
from bot.catalog import ServerCatalog
from bot.errors import WingbeatError
from bot.panel.models import Server
from bot.panel.pacing import Priority
from bot.relay.budget import RequestBudget
from bot.render import plural
from bot.store import Board, BoardKind, How, Shards, Store
from bot.wings.events import ConnectionState, Notice, WingsEvent
from bot.wings.frames import Event, FrameError, PowerState, parse_stats
from bot.wings.manager import ConnectionManager, Subscription

log = logging.getLogger(__name__)

SEED_STATS_MAX_AGE = 30.0  # stats older than this say nothing about now: wait for the next ones instead

TICK = 2.0  # seconds between looks at the server list and the sockets' health
SETTLE = 2.0  # seconds a new board waits for its servers' first `status` before it is posted


class BoardError(WingbeatError):
    """A board request that cannot be carried out; `str()` says why."""


@dataclass(eq=False, slots=True)
class _Live:
    """A board or card being kept up to date."""

    board: Board
    servers: tuple[str, ...]
    shown: Rendered | None
    last_edit: float
    poked: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    edits: int = 0
    reposts: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class BoardHealth:
    message_id: int
    guild_id: int
    channel_id: int
    kind: BoardKind
    server: str | None
    edits: int
    reposts: int
    last_error: str | None


def _settled(snap: ServerSnapshot) -> bool:
    if snap.state is Shown.UNKNOWN:
        return False
    return snap.state is Shown.OFFLINE or snap.cpu is not None


class _Feed:
    """The boards' subscriber on one server: hands `status` and `stats` to its tracker at once."""

    def __init__(self, service: BoardService, server: str) -> None:
        self._service = service
        self._server = server

    def deliver(self, event: WingsEvent) -> None:
        self._service._on_event(self._server, event)

    def notice(self, notice: Notice) -> None:
        """Connection changes are read from the manager's health on each tick instead."""


class BoardService:
    """Owns every live board and card of this process, their trackers and their socket subscriptions."""

    def __init__(
        self,
        *,
        store: Store,
        auditor: Auditor,
        catalog: ServerCatalog,
        manager: ConnectionManager,
        messages: BoardMessages,
        budget: RequestBudget,
        interval: float,
        allowed_guilds: Collection[int],
        shards: Shards | None = None,
        tick: float = TICK,
        settle: float = SETTLE,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._auditor = auditor
        self._catalog = catalog
        self._manager = manager
        self._messages = messages
        self._budget = budget
        self._interval = interval
        self._allowed = frozenset(allowed_guilds)
        self._shards = shards  # several processes on one token: this one's guilds (bot.shards)
        self._tick_every = tick
        self._settle_for = settle
        self._clock = clock
        self._wall = wall
        self._live: dict[int, _Live] = {}  # message id -> board
        self._trackers: dict[str, ServerTracker] = {}
        self._subs: dict[str, Subscription] = {}
        self._showing: dict[str, set[int]] = {}  # server -> message ids of the boards showing it
        self._posting: list[tuple[str, ...]] = []  # servers of the boards being posted right now
        self._listed: tuple[Server, ...] = ()  # the panel's servers, by name
        self._catalog_seen: tuple[Server, ...] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore the saved boards of the allowed guilds and start following their servers."""
        self._apply_catalog()
        restored = 0
        for board in await self._store.boards(shards=self._shards):
            if board.guild_id not in self._allowed:
                log.info(
                    "not restoring board %d: guild %d is not in GUILD_IDS", board.message_id, board.guild_id
                )
                continue
            # Treated as just edited: the sockets get a full interval to report before the first edit.
            self._add(board, shown=None)
            restored += 1
        self._resubscribe()
        if restored:
            log.info("restored %d board(s) and card(s)", restored)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_loop(), name="boards-tick")

    async def close(self) -> None:
        tasks = [t for t in (self._ticker, *(live.task for live in self._live.values())) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._ticker = None
        for sub in self._subs.values():
            self._manager.unsubscribe(sub)
        self._subs.clear()
        self._live.clear()

    # -- what the cogs call --------------------------------------------------------------------------------

    async def post_board(self, *, guild_id: int, channel_id: int, created_by: int) -> Board:
        """Post a live board in the channel and remember it; BoardError when the channel already has one."""
        existing = await self._store.board_in_channel(channel_id)
        if existing is not None and await self._still_posted(existing):
            raise BoardError(
                f"<#{channel_id}> already has a status board; remove it first with `/board remove`."
            )
        await self._catalog.get(30.0, priority=Priority.ACTION)
        self._apply_catalog()
        servers = self._board_servers()
        return await self._post(guild_id, channel_id, BoardKind.BOARD, None, servers, created_by)

    async def post_card(self, *, guild_id: int, channel_id: int, server: Server, created_by: int) -> Board:
        """Post a live card for one server in the channel; BoardError when the channel has one already."""
        for board in await self._store.boards(guild_id):
            same = board.channel_id == channel_id and board.server_identifier == server.identifier
            if same and await self._still_posted(board):
                raise BoardError(f"<#{channel_id}> already has a card for that server.")
        return await self._post(
            guild_id, channel_id, BoardKind.CARD, server.identifier, (server.identifier,), created_by
        )

    async def _still_posted(self, board: Board) -> bool:
        """Whether the board's message is still in Discord; one deleted by hand is dropped (and audited) here,
        since without the message-events intent Wingbeat only learns of it when it next edits the board."""
        await self._budget.acquire()
        try:
            if await self._messages.exists(board.channel_id, board.message_id):
                return True
        except MessageFailed as exc:
            log.warning("could not check board %d: %s", board.message_id, exc)
            return True  # unknown: keep it, and refuse a second board as before
        live = self._live.get(board.message_id)
        await self._drop(live or _Live(board, (), None, self._clock()), "the message was deleted")
        return False

    async def remove(self, *, guild_id: int, channel_id: int, server: str | None = None) -> list[Board]:
        """Forget and delete the channel's board and cards (only that server's card when `server` is given)."""
        removed = []
        for board in await self._store.boards(guild_id):
            if board.channel_id != channel_id:
                continue
            if server is not None and board.server_identifier != server:
                continue
            await self._store.remove_board(board.message_id)
            self._discard(board.message_id)
            removed.append(board)
            with contextlib.suppress(MessageGone, MessageFailed):
                await self._budget.acquire()
                await self._messages.delete(board.channel_id, board.message_id)
        if removed:
            self._resubscribe()
        return removed

    async def channel_deleted(self, channel_id: int) -> None:
        """The channel is gone: forget its boards (nothing to delete)."""
        for live in [live for live in self._live.values() if live.board.channel_id == channel_id]:
            await self._drop(live, "the channel was deleted")

    async def card(self, server: Server) -> Rendered:
        """One server's card as it stands (for an ephemeral answer); asks Wings when the server is not followed."""
        tracker = self._trackers.get(server.identifier)
        if tracker is None:
            tracker = ServerTracker(server.identifier, server.name)
            self._seed(tracker)
            if tracker.snapshot.state is Shown.UNKNOWN:
                with contextlib.suppress(WingbeatError, OSError, TimeoutError):
                    stats = await self._manager.fetch_stats(server.identifier, wait=self._settle_for)
                    if stats.state is not None:
                        tracker.status(stats.state, self._wall())
                    tracker.stats(stats, self._wall())
        return render_card(tracker.snapshot, self._wall())

    def health(self) -> list[BoardHealth]:
        return [
            BoardHealth(
                live.board.message_id,
                live.board.guild_id,
                live.board.channel_id,
                live.board.kind,
                live.board.server_identifier,
                live.edits,
                live.reposts,
                live.last_error,
            )
            for live in self._live.values()
        ]

    def summary(self, guild_id: int) -> str:
        """One line for the guild's /health: its live boards and cards, and the latest trouble."""
        mine = [live for live in self._live.values() if live.board.guild_id == guild_id]
        boards = sum(live.board.kind is BoardKind.BOARD for live in mine)
        text = f"Boards: {plural(boards, 'board')}, {plural(len(mine) - boards, 'card')}"
        failing = [live for live in mine if live.last_error]
        if failing:
            text += f" · ⚠️ {len(failing)} failing, e.g. {failing[0].last_error}"
        if self.last_error:
            text += f" · ⚠️ last error: {self.last_error}"
        return text

    # -- posting -------------------------------------------------------------------------------------------

    async def _post(
        self,
        guild_id: int,
        channel_id: int,
        kind: BoardKind,
        server: str | None,
        servers: tuple[str, ...],
        created_by: int,
    ) -> Board:
        self._posting.append(servers)  # followed while the message is being posted
        try:
            self._follow(servers)
            await self._settle(servers)
            rendered = self._render_for(kind, server, servers)
            await self._budget.acquire()
            try:
                message_id = await self._messages.post(channel_id, rendered)
            except (MessageGone, MessageFailed) as exc:
                raise BoardError(f"Discord did not take the message in <#{channel_id}>: {exc}.") from None
            board = Board(message_id, guild_id, channel_id, kind, server, created_by, datetime.now(UTC))
            if not await self._store.add_board(board):
                # Another /board post won the race for this channel: take ours back.
                with contextlib.suppress(MessageGone, MessageFailed):
                    await self._messages.delete(channel_id, message_id)
                raise BoardError(
                    f"<#{channel_id}> already has a status board; remove it first with `/board remove`."
                )
            self._add(board, shown=rendered, servers=servers)
        finally:
            self._posting.remove(servers)
            self._resubscribe()
        log.info("posted %s %d in channel %d", kind.value, message_id, channel_id)
        return board

    async def _settle(self, servers: Iterable[str]) -> None:
        """Wait briefly for fresh subscriptions' first `status` (and a running server's first `stats`), so a new
        board starts with real figures rather than spending its first edit on them."""
        deadline = self._clock() + self._settle_for
        wanted = [s for s in servers if s in self._trackers]
        while self._clock() < deadline:
            if all(_settled(self._trackers[s].snapshot) for s in wanted):
                return
            await asyncio.sleep(0.05)

    # -- the live set --------------------------------------------------------------------------------------

    def _add(self, board: Board, *, shown: Rendered | None, servers: tuple[str, ...] | None = None) -> None:
        if servers is None:
            servers = (
                self._board_servers() if board.kind is BoardKind.BOARD else (board.server_identifier or "",)
            )
        live = _Live(board, servers, shown, self._clock())
        self._live[board.message_id] = live
        live.task = asyncio.create_task(self._run(live), name=f"board:{board.message_id}")

    def _discard(self, message_id: int) -> None:
        live = self._live.pop(message_id, None)
        if live is not None and live.task is not None and live.task is not asyncio.current_task():
            live.task.cancel()

    def _board_servers(self) -> tuple[str, ...]:
        return tuple(s.identifier for s in self._listed[:BOARD_LIMIT])

    def _apply_catalog(self) -> None:
        servers = self._catalog.servers
        self._catalog_seen = servers
        self._listed = tuple(sorted(servers, key=lambda s: (s.name.casefold(), s.identifier)))
        names = {s.identifier: s.name for s in servers}
        known = self._catalog.age() is not None
        for ident, tracker in self._trackers.items():
            name = names.get(ident)
            tracker.rename(name or tracker.snapshot.name, gone=known and name is None)
        board_servers = self._board_servers()
        for live in self._live.values():
            if live.board.kind is BoardKind.BOARD:
                live.servers = board_servers
        self._resubscribe()

    def _follow(self, servers: Iterable[str]) -> None:
        """Start tracking (and subscribing to) servers a board about to be posted will show."""
        names = {s.identifier: s.name for s in self._catalog.servers}
        for server in servers:
            if server not in self._trackers:
                tracker = ServerTracker(server, names.get(server, server))
                self._seed(tracker)
                self._trackers[server] = tracker
            if server not in self._subs:
                self._subs[server] = self._manager.subscribe(server, _Feed(self, server), console=False)

    def _seed(self, tracker: ServerTracker) -> None:
        # A connection already open for the relay or alerts knows the state; its first `status` came before us.
        conn = self._manager.peek(tracker.snapshot.identifier)
        if conn is None or conn.state is not ConnectionState.CONNECTED:
            return
        if conn.power is not None:
            tracker.status(conn.power, self._wall())
        stats = conn.fresh_stats(SEED_STATS_MAX_AGE)
        if stats is not None:
            tracker.stats(stats, self._wall())

    def _resubscribe(self) -> None:
        """Follow exactly the servers some live board shows."""
        showing: dict[str, set[int]] = {}
        for message_id, live in self._live.items():
            for server in live.servers:
                showing.setdefault(server, set()).add(message_id)
        self._showing = showing
        wanted = set(showing).union(*self._posting)
        self._follow(wanted)
        for server in [s for s in self._subs if s not in wanted]:
            self._manager.unsubscribe(self._subs.pop(server))
            self._trackers.pop(server, None)

    # -- events and ticks ----------------------------------------------------------------------------------

    def _on_event(self, server: str, event: WingsEvent) -> None:
        tracker = self._trackers.get(server)
        if tracker is None:
            return
        kind = event.frame.known
        if kind is Event.STATUS:
            state = PowerState.parse(event.frame.arg)
            changed = state is not None and tracker.status(state, self._wall())
        elif kind is Event.STATS:
            try:
                stats = parse_stats(event.frame.arg)
            except FrameError:
                return
            changed = tracker.stats(stats, self._wall())
        else:
            return
        if changed:
            for message_id in self._showing.get(server, ()):
                live = self._live.get(message_id)
                if live is not None:
                    live.poked.set()

    async def _tick_loop(self) -> None:
        while True:
            try:
                self._tick()
                self.last_error = None
            except Exception as exc:
                log.exception("board tick failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(self._tick_every)

    def _tick(self) -> None:
        if self._catalog.servers != self._catalog_seen:
            self._apply_catalog()
        up = {h.server for h in self._manager.health() if h.state is ConnectionState.CONNECTED}
        now = self._clock()
        for server, tracker in self._trackers.items():
            tracker.connection(server in up, now)
        # Every board re-renders (cheap) and compares: uptime steps and names move without any frame.
        for live in self._live.values():
            live.poked.set()

    # -- one message -----------------------------------------------------------------------------------------

    def _render_for(self, kind: BoardKind, server: str | None, servers: tuple[str, ...]) -> Rendered:
        now = self._wall()
        if kind is BoardKind.CARD:
            ident = server or ""
            tracker = self._trackers.get(ident)
            return render_card(tracker.snapshot if tracker else ServerSnapshot(ident, ident), now)
        snaps = [self._trackers[s].snapshot if s in self._trackers else ServerSnapshot(s, s) for s in servers]
        return render_board(snaps, now, total=len(self._listed))

    def _render(self, live: _Live) -> Rendered | None:
        if self._catalog.age() is None:
            return None  # the server list is not known yet: do not replace a good board with an empty one
        return self._render_for(live.board.kind, live.board.server_identifier, live.servers)

    async def _run(self, live: _Live) -> None:
        while True:
            try:
                await live.poked.wait()
                delay = live.last_edit + self._interval - self._clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                live.poked.clear()
                if not await self._refresh(live):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("board %d failed", live.board.message_id)
                live.last_error = f"internal error: {type(exc).__name__}"
                live.last_edit = self._clock()
                live.poked.set()

    async def _refresh(self, live: _Live) -> bool:
        """Edit the message if its text changed; False once the board is gone."""
        rendered = self._render(live)
        if rendered is None or rendered == live.shown:
            return True
        await self._budget.acquire()
        rendered = self._render(live) or rendered  # the freshest, after waiting for the slot
        board = live.board
        live.last_edit = self._clock()
        try:
            await self._messages.edit(board.channel_id, board.message_id, rendered)
        except MessageGone as gone:
            await self._drop(live, str(gone))
            return False
        except EditRefused:
            return await self._repost(live, rendered)
        except MessageFailed as exc:
            live.last_error = str(exc)
            if isinstance(exc, MessageThrottled):  # the shared budget slows down; no retry before it says
                self._budget.throttled(exc.retry_after)
                live.last_edit = max(live.last_edit, self._clock() + exc.retry_after - self._interval)
            live.poked.set()  # try again after the interval
            log.warning("could not edit board %d: %s", board.message_id, exc)
            return True
        live.shown = rendered
        live.edits += 1
        live.last_error = None
        return True

    async def _repost(self, live: _Live, rendered: Rendered) -> bool:
        old = live.board
        await self._budget.acquire()
        try:
            message_id = await self._messages.post(old.channel_id, rendered)
        except MessageGone as gone:
            await self._drop(live, str(gone))
            return False
        except MessageFailed as exc:
            live.last_error = f"could not post the board anew: {exc}"
            live.poked.set()
            return True
        await self._store.move_board(old.message_id, message_id)
        live.board = replace(old, message_id=message_id)
        self._live.pop(old.message_id, None)
        self._live[message_id] = live
        self._resubscribe()
        live.shown = rendered
        live.reposts += 1
        log.info("board %d could not be edited any more; posted anew as %d", old.message_id, message_id)
        await self._budget.acquire()
        try:
            await self._messages.delete(old.channel_id, old.message_id)
        except MessageFailed as exc:
            log.warning("could not delete the old board %d: %s", old.message_id, exc)
        return True

    async def _drop(self, live: _Live, reason: str) -> None:
        board = live.board
        log.warning(
            "dropping %s %d in channel %d: %s", board.kind.value, board.message_id, board.channel_id, reason
        )
        self._discard(board.message_id)
        self._resubscribe()
        try:
            await self._store.remove_board(board.message_id)
        except Exception:
            log.exception("could not forget the board %d", board.message_id)
        arguments = f"remove {board.kind.value} channel={board.channel_id} message={board.message_id}"
        action = AuditAction(
            board.guild_id, WINGBEAT_USER, board.server_identifier, "board", arguments, How.WINGBEAT
        )
        await self._auditor.record(action, f"removed by Wingbeat: {reason}")
