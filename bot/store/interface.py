"""The store's interface: what the bot may ask of its database, whichever database it is.

`await open_store(url_or_path)` (bot.store.opening) picks the implementation from the URL (SQLite for a path or `sqlite:///…`,
PostgreSQL for `postgresql://…`). Every implementation has the same semantics, checked by one shared test
suite; every failure of the database itself is raised as `StoreError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

from bot.store.models import AuditEntry, Board, Grant, GuildSettings, How, Link, Shards, TargetKind

if TYPE_CHECKING:
    pass


def utc_now() -> datetime:
    return datetime.now(UTC)


class Store(ABC):
    """The bot's persistence: console links, boards, guild settings, grants, the audit log and metadata."""

    @property
    @abstractmethod
    def schema_version(self) -> int:
        """The schema version the open database is at."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data lives, for logs and admins: a file path, or a PostgreSQL URL without password."""

    @abstractmethod
    async def close(self) -> None:
        """Close the database; a second call does nothing."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # Links

    @abstractmethod
    async def add_link(self, link: Link) -> bool:
        """Save a link (a stopped one becomes active again); False when that channel already mirrors that server."""

    @abstractmethod
    async def remove_link(self, channel_id: int, server_identifier: str) -> bool:
        """Delete one link; False when there was none."""

    @abstractmethod
    async def set_link_stopped(self, channel_id: int, server_identifier: str, reason: str | None) -> bool:
        """Mark a link stopped with `reason` (None: active again); False when there is no such link."""

    @abstractmethod
    async def remove_channel_links(self, channel_id: int) -> int:
        """Delete every link into a channel (e.g. the channel was deleted); returns how many."""

    @abstractmethod
    async def links(self, guild_id: int | None = None, *, shards: Shards | None = None) -> list[Link]:
        """Every link, or only one guild's, or only those of the guilds on `shards`; ordered by guild, channel
        and server name (ASCII case ignored)."""

    @abstractmethod
    async def links_for_server(self, server_identifier: str) -> list[Link]:
        """Every channel a server's console is mirrored into, oldest link first."""

    # Audit log

    @abstractmethod
    async def audit(
        self,
        *,
        guild_id: int | None,
        user_id: int,
        server_identifier: str | None,
        action: str,
        arguments: str,
        outcome: str,
        how: How = How.COMMAND,
    ) -> int:
        """Record an action that is already over (its outcome known); returns the entry's id."""

    @abstractmethod
    async def audit_start(
        self,
        *,
        guild_id: int | None,
        user_id: int,
        server_identifier: str | None,
        action: str,
        arguments: str,
        how: How = How.COMMAND,
    ) -> int:
        """Record an action as it starts (outcome `started`); complete it with `audit_finish`."""

    @abstractmethod
    async def audit_finish(self, entry_id: int, outcome: str) -> None:
        """Complete a started audit entry with its outcome."""

    @abstractmethod
    async def interrupt_started_audit(self, outcome: str, *, shards: Shards | None = None) -> int:
        """Complete every entry still `started` (of the guilds on `shards`, or all) with `outcome`.

        For a process starting up: what it (or the process it replaces on these shards) had begun and not
        finished was cut short by a crash. Returns how many entries it completed.
        """

    @abstractmethod
    async def recent_audit(
        self,
        limit: int = 50,
        guild_id: int | None = None,
        *,
        server_identifier: str | None = None,
        user_id: int | None = None,
    ) -> list[AuditEntry]:
        """The newest audit entries first, optionally for one guild, one server and/or one member."""

    @abstractmethod
    async def prune_audit(self, older_than: datetime) -> int:
        """Delete audit entries written before `older_than`; returns how many went."""

    # Boards

    @abstractmethod
    async def add_board(self, board: Board) -> bool:
        """Save a board or card; False when the channel already has a board (one per channel)."""

    @abstractmethod
    async def remove_board(self, message_id: int) -> bool:
        """Forget a board or card by its message; False when there was none."""

    @abstractmethod
    async def move_board(self, old_message_id: int, new_message_id: int) -> bool:
        """The board was posted anew (Discord would not edit the old message): remember the new message."""

    @abstractmethod
    async def boards(self, guild_id: int | None = None, *, shards: Shards | None = None) -> list[Board]:
        """Every board and card, or one guild's, or those of the guilds on `shards`; oldest first."""

    @abstractmethod
    async def board_in_channel(self, channel_id: int) -> Board | None:
        """The channel's board (not its cards), or None."""

    # Guild settings

    @abstractmethod
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """The guild's settings (defaults when none were saved)."""

    @abstractmethod
    async def all_guild_settings(self, *, shards: Shards | None = None) -> list[GuildSettings]:
        """Every guild's saved settings (or those of the guilds on `shards`), by guild ID."""

    @abstractmethod
    async def set_alerts(self, guild_id: int, channel_id: int | None, role_id: int | None) -> None:
        """Send the guild's alerts to `channel_id`, mentioning `role_id` (None, None: alerts off)."""

    @abstractmethod
    async def set_audit_channel(self, guild_id: int, channel_id: int | None) -> None:
        """Post every audited action of the guild to `channel_id` too (None: stop)."""

    # Grants

    @abstractmethod
    async def add_grant(self, grant: Grant) -> bool:
        """Save a grant; an existing one (same guild, target, capability, server) gets the new patterns.

        Returns False when that grant already existed.
        """

    @abstractmethod
    async def remove_grant(
        self, guild_id: int, target_kind: TargetKind, target_id: int, capability: str, server_identifier: str
    ) -> bool:
        """Delete one grant; False when there was none."""

    @abstractmethod
    async def grants(self, guild_id: int) -> list[Grant]:
        """Every grant of a guild, ordered by target, capability and server."""

    # The console relay's journal (bot.relay.resume): opaque text per channel

    @abstractmethod
    async def relay_journals(self, channel_ids: Collection[int]) -> dict[int, str]:
        """The saved journals of these channels (those that have one)."""

    @abstractmethod
    async def save_relay_journals(self, journals: Sequence[tuple[int, str]]) -> None:
        """Save or replace the journals of several channels at once (one statement per few hundred)."""

    @abstractmethod
    async def delete_relay_journal(self, channel_id: int) -> None:
        """Forget a channel's journal."""

    # Metadata

    @abstractmethod
    async def get_meta(self, key: str) -> str | None:
        """A stored value (e.g. the hash of the last synced commands), or None."""

    @abstractmethod
    async def set_meta(self, key: str, value: str) -> None:
        """Store or replace a value."""
