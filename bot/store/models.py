"""What the store keeps, as small frozen dataclasses and enums, and the store's one error type."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class StoreError(Exception):
    """The store cannot be opened or used; the message says why."""


@dataclass(frozen=True, slots=True)
class Link:
    """A game server's console mirrored into a Discord channel."""

    guild_id: int
    channel_id: int
    server_identifier: str
    server_name: str
    created_by: int
    created_at: datetime
    # Set when Wingbeat stopped the link because Discord refused the channel (lost access, unknown channel):
    # the link is kept, shown with this reason, and retried at the next start or when an admin links again.
    stopped_reason: str | None = None

    def __post_init__(self) -> None:
        # Naive datetimes would be read back ambiguously; insist on an explicit zone.
        if self.created_at.tzinfo is None:
            raise ValueError("Link.created_at must be timezone-aware (UTC)")

    @property
    def stopped(self) -> bool:
        return self.stopped_reason is not None


class How(StrEnum):
    """How an audited action came to the bot."""

    COMMAND = "command"
    BUTTON = "button"
    CONSOLE_INPUT = "console input"
    WINGBEAT = "wingbeat"  # the bot itself (a link stopped because its channel was deleted, a dropped board)


STARTED = "started"  # the outcome of an action that began and has not finished (or was cut short by a crash)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action: who, when, on which server, what, how it came, and the outcome.

    A row is written when the action starts (outcome `started`, `completed_at` None) and completed with its
    outcome, so an action cut short by a crash still leaves a trace.
    """

    id: int
    at: datetime
    guild_id: int | None
    user_id: int
    server_identifier: str | None
    action: str
    arguments: str
    outcome: str
    how: How = How.COMMAND
    completed_at: datetime | None = None


class BoardKind(StrEnum):
    BOARD = "board"  # every server the key sees, with a select menu
    CARD = "card"  # one server, with power buttons


@dataclass(frozen=True, slots=True)
class Board:
    """A live status message Wingbeat keeps editing: a board (one per channel) or a server's card."""

    message_id: int
    guild_id: int
    channel_id: int
    kind: BoardKind
    server_identifier: str | None  # the card's server; None for a board
    created_by: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """Per-guild settings: where alerts go (and whom they mention), and the audit channel."""

    guild_id: int
    alert_channel_id: int | None = None
    alert_role_id: int | None = None
    audit_channel_id: int | None = None


class TargetKind(StrEnum):
    ROLE = "role"
    MEMBER = "member"


ALL_SERVERS = "*"


@dataclass(frozen=True, slots=True)
class Grant:
    """A capability given to a role or a member, on one server or on all (`server_identifier` = `*`).

    `commands` (control.console only) are the allowed command patterns; empty means any command.
    """

    guild_id: int
    target_kind: TargetKind
    target_id: int
    capability: str
    server_identifier: str = ALL_SERVERS
    commands: tuple[str, ...] = ()
    created_by: int = 0
    created_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
