"""The audit channel: every audited action of a guild also posted there as one line, without pinging anyone.

Publishing never waits: entries go into a bounded queue that one sender task drains, taking a slot of the
shared Discord request budget for each message. What is queued for a channel goes out as one message: its
lines, or, when they do not fit, a short summary with all of them attached as a text file, so a burst costs one
request per channel rather than one per line (Discord allows a channel about one message a second). When the
queue is full the entry is not posted (it is in the store all the same); the count of such entries is said in
the guild's next post.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import discord

from bot.audit import AuditAction
from bot.audit_text import audit_line, audit_plain
from bot.redact import hide_addresses
from bot.relay.budget import RequestBudget
from bot.relay.discord_poster import retry_after
from bot.store import AuditEntry, Store
from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
DEFAULT_CAPACITY = 500
THROTTLED_TRIES = 5  # a rate-limiting proxy that keeps refusing: give up on the message after this many


def pack(lines: Iterable[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Lines joined into as few messages of at most `limit` characters as keep them whole and in order."""
    messages: list[str] = []
    current = ""
    for line in lines:
        line = line if len(line) <= limit else line[: limit - 1] + "…"
        if current and len(current) + 1 + len(line) > limit:
            messages.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        messages.append(current)
    return messages


class AuditFeed:
    """Posts each guild's audited actions to its audit channel, if it has one."""

    def __init__(
        self,
        client: discord.Client,
        budget: RequestBudget,
        *,
        capacity: int = DEFAULT_CAPACITY,
        server_names: Callable[[], Mapping[str, str]] = dict,
        retry_after: float = 5.0,
    ) -> None:
        self._client = client
        self._budget = budget
        self._server_names = server_names
        self._retry_after = retry_after
        self._queue: asyncio.Queue[AuditEntry] = asyncio.Queue(capacity)
        self._channels: dict[int, int] = {}
        self._dropped: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._since = datetime.now(UTC)
        self.posted = 0
        self.dropped = 0
        self.last_error: str | None = None  # a failure of the sender itself (a bug), for /health
        self._errors: dict[int, str] = {}  # per guild: why its audit channel last refused a post

    # channels

    async def load(self, store: Store, guild_ids: Iterable[int]) -> None:
        """Read the audit channels of these guilds from the store (at start-up)."""
        for guild_id in guild_ids:
            settings = await store.guild_settings(guild_id)
            self.set_channel(guild_id, settings.audit_channel_id)

    def set_channel(self, guild_id: int, channel_id: int | None) -> None:
        """Post the guild's actions to `channel_id` from now on (None: stop)."""
        self._errors.pop(guild_id, None)
        if channel_id is None:
            self._channels.pop(guild_id, None)
        else:
            self._channels[guild_id] = channel_id

    def channel(self, guild_id: int) -> int | None:
        return self._channels.get(guild_id)

    def error(self, guild_id: int) -> str | None:
        """Why the guild's audit channel refused the last post (None: it took it, or nothing was posted)."""
        return self._errors.get(guild_id)

    # publishing

    def publish(self, entry: AuditEntry) -> None:
        """Queue an entry for its guild's audit channel; never waits (a full queue counts it as dropped)."""
        if entry.guild_id is None or entry.guild_id not in self._channels:
            return
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1
            self._dropped[entry.guild_id] = self._dropped.get(entry.guild_id, 0) + 1

    async def on_completed(self, action: AuditAction, outcome: str) -> None:
        """The auditor's listener: publish a finished or recorded action."""
        now = datetime.now(UTC)
        self.publish(
            AuditEntry(
                0, now, action.guild_id, action.user_id, action.server, action.action, action.arguments,
                outcome, action.how, now,
            )
        )  # fmt: skip

    # the sender

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="audit-feed")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            entries = [await self._queue.get()]
            while not self._queue.empty():
                entries.append(self._queue.get_nowait())
            try:
                await self._post(entries)
            except Exception as exc:
                # Only a bug gets here (Discord's refusals are handled per message): say so and go on.
                log.exception("the audit feed failed to post %d entr(ies)", len(entries))
                self.last_error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(self._retry_after)

    async def _post(self, entries: list[AuditEntry]) -> None:
        names = self._server_names()
        by_channel: dict[int, list[str]] = {}
        plain: dict[int, list[str]] = {}
        counts: dict[int, int] = {}
        guilds: dict[int, int] = {}
        for entry in entries:
            assert entry.guild_id is not None  # publish() lets only guild entries in
            channel_id = self._channels.get(entry.guild_id)
            if channel_id is None:
                continue  # the feed was stopped meanwhile
            guilds[channel_id] = entry.guild_id
            lines = by_channel.setdefault(channel_id, [])
            dropped = self._dropped.pop(entry.guild_id, 0)
            if dropped:
                notice = (
                    f"⚠️ {dropped} audited action{'s were' if dropped != 1 else ' was'} not posted here "
                    "(too many at once); /audit show lists them all."
                )
                lines.append(notice)
                plain.setdefault(channel_id, []).append(notice)
            # Anyone who reads the channel sees it, unlike /audit show: failures naming a node's address lose it.
            lines.append(hide_addresses(audit_line(entry, server_names=names, since=self._since)))
            counts[channel_id] = counts.get(channel_id, 0) + 1
            plain.setdefault(channel_id, []).append(
                hide_addresses(audit_plain(entry, server_names=names, since=self._since))
            )
        for channel_id, lines in by_channel.items():
            guild_id = guilds[channel_id]
            messages = pack(lines)
            if len(messages) == 1:
                await self._send(guild_id, channel_id, messages[0])
                continue
            summary = f"{counts[channel_id]} audited actions at once; they are attached."
            if not await self._send(guild_id, channel_id, summary, "\n".join(plain[channel_id]) + "\n"):
                for text in messages:  # most likely no Attach Files: the lines, then, one message at a time
                    await self._send(guild_id, channel_id, text)

    async def _send(self, guild_id: int, channel_id: int, text: str, file_text: str | None = None) -> bool:
        channel = self._client.get_partial_messageable(channel_id)
        for _ in range(THROTTLED_TRIES):
            await self._budget.acquire()
            files = [] if file_text is None else [discord.File(io.BytesIO(file_text.encode()), "audit.txt")]
            try:
                await channel.send(text, files=files, allowed_mentions=discord.AllowedMentions.none())
                break
            except discord.HTTPException as exc:
                if exc.status != 429:
                    return self._refused(guild_id, channel_id, exc)
                # A rate-limiting proxy's 429 (discord.py waits out Discord's own): wait, slow everyone, again.
                wait = await retry_after(exc)
                self._budget.throttled(wait)
                await asyncio.sleep(wait)
        else:
            log.warning(
                "audit channel of guild %d: still rate limited after %d tries", guild_id, THROTTLED_TRIES
            )
            return False
        self._errors.pop(guild_id, None)
        self.posted += 1
        return True

    def _refused(self, guild_id: int, channel_id: int, exc: discord.HTTPException) -> bool:
        # Kept, not unset: an admin fixing the channel's permissions should not have to set it again.
        error = f"Discord refused a post to <#{channel_id}>: {exc.status} {exc.text}".strip()
        self._errors[guild_id] = error
        log.warning("audit channel of guild %d: %s", guild_id, error)
        return False
