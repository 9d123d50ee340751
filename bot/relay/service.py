"""Console links: every mirrored line of a server into every channel linked to it, in order, paced.

With a journal (bot.relay.journal) a restarted relay picks up where it left off: a link restored with its
channel's journal asks Wings to replay the console once (`resume`), the replay is held until it is complete,
and each channel keeps only what it had not posted (bot.relay.resume).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.names import safe_name
from bot.relay.budget import RequestBudget
from bot.relay.format import clean_line, is_blank
from bot.relay.journal import JournalWriter
from bot.relay.notices import MIRRORED, event_line, status_line
from bot.relay.resume import Journal
from bot.relay.sender import RESUME_TIMEOUT, ChannelSender, Poster
from bot.settings import ColorMode
from bot.wings.events import Notice, NoticeKind, WingsEvent
from bot.wings.frames import Event
from bot.wings.manager import ConnectionManager, Subscription
from bot.wings.session import is_daemon_line

log = logging.getLogger(__name__)

LinkStopped = Callable[[int, str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LinkHealth:
    """One link's relay figures. `stopped` holds the reason when Discord refused the channel."""

    server: str
    channel_id: int
    server_name: str
    pending_lines: int
    pending_bytes: int
    dropped: int
    messages: int
    last_post_at: float | None
    last_error: str | None
    stopped: str | None


def _blank(line: str) -> bool:
    """True when a raw console line shows nothing once cleaned (spaces, escape sequences, control characters)."""
    if not line.strip():
        return True
    return not line.isprintable() and is_blank(clean_line(line, ColorMode.PLAIN))


class _ServerFeed:
    """The relay's subscriber on one server: hands each event to the relay at once (never blocks)."""

    def __init__(self, relay: ConsoleRelay, server: str) -> None:
        self._relay = relay
        self._server = server

    def deliver(self, event: WingsEvent) -> None:
        self._relay._on_event(self._server, event)

    def notice(self, notice: Notice) -> None:
        self._relay._on_notice(self._server, notice)

    def gap_filled(self, server: str) -> None:
        self._relay._on_gap_filled(server)


class ConsoleRelay:
    """Owns the channel senders and one subscription per linked server."""

    def __init__(
        self,
        manager: ConnectionManager,
        poster: Poster,
        *,
        mode: ColorMode = ColorMode.PLAIN,
        min_interval: float = 1.0,
        max_pending_bytes: int = 4 * 1024 * 1024,
        budget: RequestBudget | None = None,
        on_link_stopped: LinkStopped | None = None,
        journal: JournalWriter | None = None,
        resume_timeout: float = RESUME_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._manager = manager
        self._poster = poster
        self._mode = mode
        self._min_interval = min_interval
        self._max_pending_bytes = max_pending_bytes
        self.budget = budget or RequestBudget()
        self._on_link_stopped = on_link_stopped
        self.journal = journal
        self._resume_timeout = resume_timeout
        self._clock = clock
        self._replays: dict[str, list[str]] = {}  # server -> its resume replay so far, until `gap_filled`
        self._links: dict[str, dict[int, str]] = {}  # server -> channel -> server name
        self._channel_servers: dict[int, set[str]] = {}
        self._senders: dict[int, ChannelSender] = {}
        self._subs: dict[str, Subscription] = {}
        self._power: dict[str, str] = {}
        self._target_cache: dict[str, tuple[tuple[ChannelSender, str], ...]] = {}

    # -- links ---------------------------------------------------------------------------------------------

    async def link(
        self, server: str, channel_id: int, *, server_name: str, journal: Journal | None = None
    ) -> bool:
        """Start mirroring `server` into `channel_id`. False when that link already existed.

        `journal`: the channel's journal from the store (at start-up), to pick up where it left off.
        """
        channels = self._links.setdefault(server, {})
        if channel_id in channels:
            return False
        channels[channel_id] = server_name
        self._target_cache.clear()
        self._channel_servers.setdefault(channel_id, set()).add(server)
        sender = self._senders.get(channel_id)
        if sender is None or sender.stopped is not None:
            sender = ChannelSender(
                channel_id,
                self._poster,
                self.budget,
                mode=self._mode,
                min_interval=self._min_interval,
                max_pending_bytes=self._max_pending_bytes,
                on_gone=self._channel_gone,
                journal=self.journal,
                resume_from=journal if self.journal is not None else None,
                resume_timeout=self._resume_timeout,
                clock=self._clock,
            )
            self._senders[channel_id] = sender
            sender.start()
        resume = sender.knows(server) and server not in self._replays
        if resume:
            self._replays[server] = []
        if server not in self._subs:
            self._subs[server] = self._manager.subscribe(
                server, _ServerFeed(self, server), console=True, resume=resume
            )
        else:
            if resume:
                self._manager.connection(server).request_resume()
            outage = self._manager.outage(server)
            if (
                outage is not None
            ):  # the server's other channels heard it already; this one would hear nothing
                for target, prefix in self._targets(server):
                    if target is sender:
                        target.push_notice(f"{prefix}⚠️ {outage.text}")
        log.info("console of %s linked to channel %d", server, channel_id)
        return True

    async def unlink(self, server: str, channel_id: int) -> bool:
        """Stop mirroring `server` into `channel_id`. False when there was no such link."""
        channels = self._links.get(server, {})
        if channels.pop(channel_id, None) is None:
            return False
        self._target_cache.clear()
        if not channels:
            self._links.pop(server, None)
            self._power.pop(server, None)
            self._replays.pop(server, None)
            sub = self._subs.pop(server, None)
            if sub is not None:
                self._manager.unsubscribe(sub)
        servers = self._channel_servers.get(channel_id, set())
        servers.discard(server)
        if servers:
            sender = self._senders.get(channel_id)
            if sender is not None:
                sender.forget_server(server)
        else:
            self._channel_servers.pop(channel_id, None)
            sender = self._senders.pop(channel_id, None)
            if sender is not None:
                await sender.close()
            if self.journal is not None:
                self.journal.forget(channel_id)
        log.info("console of %s unlinked from channel %d", server, channel_id)
        return True

    def is_linked(self, server: str, channel_id: int) -> bool:
        return channel_id in self._links.get(server, {})

    def servers_for_channel(self, channel_id: int) -> list[str]:
        return sorted(self._channel_servers.get(channel_id, ()))

    async def _channel_gone(self, channel_id: int, reason: str) -> None:
        for server in sorted(self._channel_servers.get(channel_id, ())):
            await self.unlink(server, channel_id)
            if self._on_link_stopped is not None:
                await self._on_link_stopped(channel_id, server, reason)

    # -- events --------------------------------------------------------------------------------------------

    def _targets(self, server: str) -> tuple[tuple[ChannelSender, str], ...]:
        """The senders of `server`'s channels, each with the prefix its lines need there (cached: hot path)."""
        targets = self._target_cache.get(server)
        if targets is None:
            out = []
            for channel_id, name in self._links.get(server, {}).items():
                sender = self._senders.get(channel_id)
                if sender is not None:
                    shared = len(self._channel_servers.get(channel_id, ())) > 1
                    out.append((sender, f"[{safe_name(name)}] " if shared else ""))
            targets = self._target_cache[server] = tuple(out)
        return targets

    def _on_event(self, server: str, event: WingsEvent) -> None:
        kind = event.frame.known
        if kind in MIRRORED:
            raw = event.frame.arg
            # Wings turns " \r" inside a line into "\r\n": those are separate lines.
            lines = [part.rstrip("\r") for part in raw.split("\n")] if "\n" in raw else (raw,)
            # Console lines (not Wings' own) are what a replay holds: the journal follows those.
            followed = kind is Event.CONSOLE_OUTPUT and not is_daemon_line(raw)
            replay = self._replays.get(server) if followed and event.recovered else None
            if replay is not None:
                replay.extend(lines)  # a resume replay: held until complete, then each channel picks
                return
            for sender, prefix in self._targets(server):
                for line in lines:
                    # A blank line stays blank: a block trims it at its ends, and a batch of only those posts nothing.
                    shown = prefix + line if prefix and not _blank(line) else line
                    sender.push_line(shown, (server, line) if followed else None)
            return
        if kind is Event.STATUS:
            state = event.frame.arg
            previous = self._power.get(server)
            self._power[server] = state
            # The first status after (re)connecting only says where things stand: post changes only.
            text = status_line(state) if previous is not None and previous != state else None
        else:
            text = event_line(event.frame)
        if text:
            for sender, prefix in self._targets(server):
                sender.push_notice(prefix + text)

    def _on_gap_filled(self, server: str) -> None:
        replay = self._replays.pop(server, None)
        if replay is None:
            return
        for sender, prefix in self._targets(server):
            if sender.knows(server):
                sender.replayed(server, replay, prefix)

    def _on_notice(self, server: str, notice: Notice) -> None:
        icon = "✅" if notice.kind is NoticeKind.CONNECTION_RESTORED else "⚠️"
        for sender, prefix in self._targets(server):
            sender.push_notice(f"{prefix}{icon} {notice.text}")

    # -- health and shutdown -------------------------------------------------------------------------------

    def link_health(self) -> list[LinkHealth]:
        out = []
        for server, channels in sorted(self._links.items()):
            for channel_id, name in sorted(channels.items()):
                sender = self._senders.get(channel_id)
                if sender is None:
                    continue
                out.append(
                    LinkHealth(
                        server=server,
                        channel_id=channel_id,
                        server_name=name,
                        pending_lines=sender.batcher.pending_lines,
                        pending_bytes=sender.batcher.pending_bytes,
                        dropped=sender.batcher.dropped_total,
                        messages=sender.messages,
                        last_post_at=sender.last_post_at,
                        last_error=sender.last_error,
                        stopped=sender.stopped,
                    )
                )
        return out

    def senders(self) -> list[ChannelSender]:
        return list(self._senders.values())

    async def flush(self, timeout: float) -> bool:
        """At shutdown: take no more lines, and post what is pending for up to `timeout` s; True when all went."""
        for sub in self._subs.values():
            self._manager.unsubscribe(sub)
        self._subs.clear()
        deadline = self._clock() + timeout
        # Shutdown only, and senders say nothing when they are done: look every 50 ms.
        while any(sender.busy for sender in self._senders.values()):
            if self._clock() >= deadline:
                log.warning("shutting down with console lines not yet posted")
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        for sub in self._subs.values():
            self._manager.unsubscribe(sub)
        self._subs.clear()
        for sender in self._senders.values():
            await sender.close()
        self._senders.clear()
        self._links.clear()
        self._channel_servers.clear()
        self._target_cache.clear()
