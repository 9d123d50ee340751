"""The bot's permissions in one channel, resolved from REST payloads the way Discord (and discord.py) does.

discord.py resolves permissions only on cached objects from a gateway session; `wingbeat check` has no
gateway, so the same steps run here on the raw payloads, with discord.py's own `Permissions` arithmetic:
owner → everything; @everyone plus the member's roles; Administrator → everything; the channel's
@everyone overwrite, then the member's role overwrites together, then the member's own overwrite; then
the implicit rules (no View Channel means nothing; no Send Messages means no Attach Files). A thread
takes its parent's overwrites and needs Send Messages in Threads instead of Send Messages.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import discord

THREAD_TYPES = frozenset({10, 11, 12})  # announcement, public and private threads

# (discord.py attribute, the name Discord's UI shows)
_NEEDED = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("attach_files", "Attach Files"),
    ("read_message_history", "Read Message History"),
)
_NEEDED_IN_THREADS = (
    ("view_channel", "View Channel"),
    ("send_messages_in_threads", "Send Messages in Threads"),
    ("attach_files", "Attach Files"),
    ("read_message_history", "Read Message History"),
)


@dataclass(frozen=True, slots=True)
class Overwrite:
    """One `permission_overwrites` entry: a role's (`member` False) or a member's allow and deny bits."""

    id: int
    member: bool
    allow: int
    deny: int

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Overwrite:
        return cls(
            id=int(data["id"]),
            member=int(data.get("type", 0)) == 1,
            allow=int(data.get("allow") or 0),
            deny=int(data.get("deny") or 0),
        )


def timed_out(member: Mapping[str, Any], now: datetime | None = None) -> bool:
    """True while the member payload's `communication_disabled_until` lies in the future."""
    raw = member.get("communication_disabled_until")
    if not raw:
        return False
    try:
        until = datetime.fromisoformat(str(raw))
    except ValueError:
        return False
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return until > (now or datetime.now(UTC))


def resolve(
    *,
    guild_id: int,
    owner_id: int,
    member_id: int,
    member_roles: Collection[int],
    role_permissions: Mapping[int, int],
    overwrites: Sequence[Overwrite],
    thread: bool = False,
    is_timed_out: bool = False,
) -> discord.Permissions:
    """The member's permissions in a channel (for a thread: `overwrites` are its parent's)."""
    if member_id == owner_id:
        return discord.Permissions.all()
    base = discord.Permissions(role_permissions.get(guild_id, 0))
    for role_id in member_roles:
        base.value |= role_permissions.get(role_id, 0)
    if base.administrator:
        return discord.Permissions.all()
    everyone = next((o for o in overwrites if not o.member and o.id == guild_id), None)
    if everyone is not None:
        base.handle_overwrite(allow=everyone.allow, deny=everyone.deny)
    allow = deny = 0
    for o in overwrites:
        if not o.member and o.id != guild_id and o.id in member_roles:
            allow |= o.allow
            deny |= o.deny
    base.handle_overwrite(allow=allow, deny=deny)
    mine = next((o for o in overwrites if o.member and o.id == member_id), None)
    if mine is not None:
        base.handle_overwrite(allow=mine.allow, deny=mine.deny)
    if is_timed_out:
        base.value &= discord.Permissions(view_channel=True, read_message_history=True).value
    # The implicit rules: what one cannot do without sending, and nothing without seeing the channel.
    if not (base.send_messages_in_threads if thread else base.send_messages):
        base.send_tts_messages = base.mention_everyone = base.embed_links = base.attach_files = False
    if not base.view_channel:
        base.value &= ~discord.Permissions.all_channel().value
    return base


def missing(permissions: discord.Permissions, *, thread: bool = False) -> tuple[str, ...]:
    """The permissions Wingbeat needs in a linked channel (or thread) that `permissions` lacks, by UI name."""
    needed = _NEEDED_IN_THREADS if thread else _NEEDED
    return tuple(label for attribute, label in needed if not getattr(permissions, attribute))
