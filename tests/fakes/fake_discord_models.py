"""World state and payload builders for the fake Discord (see fake_discord.py).

Payload shapes: only what discord.py 2.7.1 indexes
with ``[...]`` is required; a little more is sent so cached objects look realistic.
"""

from __future__ import annotations

import datetime
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
EPHEMERAL = 1 << 6
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS = (1 << 53) - 1

# What a new guild's @everyone gets on real Discord (text and voice basics), so `channel.permissions_for(me)`
# in the bot sees a usable channel unless a test takes permissions away.
EVERYONE_DEFAULT_PERMISSIONS = (
    (1 << 0)  # create_instant_invite
    | (1 << 6)  # add_reactions
    | (1 << 10)  # view_channel
    | (1 << 11)  # send_messages
    | (1 << 14)  # embed_links
    | (1 << 15)  # attach_files
    | (1 << 16)  # read_message_history
    | (1 << 18)  # use_external_emojis
    | (1 << 20)  # connect
    | (1 << 21)  # speak
    | (1 << 26)  # change_nickname
    | (1 << 31)  # use_application_commands
    | (1 << 38)  # send_messages_in_threads
)

_counter = itertools.count(1)


def snowflake() -> int:
    """A fresh, time-ordered snowflake so `created_at` on cached objects is plausible."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (next(_counter) & 0x3FFFFF)


def iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def user_payload(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int = 0
    position: int = 1

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
ATTACH_FILES = 1 << 15
SEND_MESSAGES_IN_THREADS = 1 << 38
THREAD_TYPES = (10, 11, 12)  # announcement, public and private threads


@dataclass
class FakeOverwrite:
    """A channel permission overwrite: `kind` 0 for a role (the guild id is @everyone), 1 for a member."""

    id: int
    kind: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "type": self.kind, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass
class FakeChannel:
    id: int
    name: str
    type: int = 0
    guild_id: int | None = None
    position: int = 0
    overwrites: list[FakeOverwrite] = field(default_factory=list)
    parent_id: int | None = None  # a thread's channel

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    def payload(self) -> dict[str, Any]:
        if self.is_thread:
            return self._thread_payload()
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.payload() for o in self.overwrites],
            "parent_id": None,
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.type in (2, 13):  # voice / stage
            data.update(bitrate=64000, user_limit=0, rtc_region=None)
        return data

    def _thread_payload(self) -> dict[str, Any]:
        # A thread has no overwrites of its own: Discord applies its channel's (FakeGuild.channel_permissions).
        return {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "guild_id": str(self.guild_id),
            "parent_id": str(self.parent_id),
            "owner_id": "1",
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": iso_now(),
                "locked": False,
            },
        }


@dataclass
class FakeMember:
    user_id: int
    name: str
    roles: list[int] = field(default_factory=list)
    permissions: int | None = None  # overrides the permissions computed from roles in interactions
    bot: bool = False

    def user(self) -> dict[str, Any]:
        return user_payload(self.user_id, self.name, bot=self.bot)

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "flags": 0,
            "joined_at": iso_now(),
            "nick": None,
            "deaf": False,
            "mute": False,
            "pending": False,
        }
        if with_user:
            data["user"] = self.user()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


class FakeGuild:
    """A guild in the fake world. Changes made after the client connected are dispatched to it."""

    def __init__(self, owner: Any, guild_id: int, name: str) -> None:
        self._owner = owner  # the FakeDiscord, for dispatching updates
        self.id = guild_id
        self.name = name
        self.roles: dict[int, FakeRole] = {
            guild_id: FakeRole(guild_id, "@everyone", EVERYONE_DEFAULT_PERMISSIONS, position=0)
        }
        self.channels: dict[int, FakeChannel] = {}
        self.members: dict[int, FakeMember] = {}

    # world building

    def add_role(self, role_id: int, name: str, permissions: int = 0) -> FakeRole:
        """Adds (or replaces, e.g. @everyone = the guild id) a role."""
        existed = role_id in self.roles
        position = 0 if role_id == self.id else len(self.roles)
        role = FakeRole(role_id, name, permissions, position)
        self.roles[role_id] = role
        event = "GUILD_ROLE_UPDATE" if existed else "GUILD_ROLE_CREATE"
        self._owner._dispatch_soon(event, {"guild_id": str(self.id), "role": role.payload()})
        return role

    def add_channel(self, channel_id: int, name: str = "console", type: int = 0) -> FakeChannel:
        channel = FakeChannel(channel_id, name, type, self.id, position=len(self.channels))
        self.channels[channel_id] = channel
        self._owner._dispatch_soon("CHANNEL_CREATE", channel.payload())
        return channel

    def add_thread(self, thread_id: int, name: str, parent_id: int, *, private: bool = False) -> FakeChannel:
        """A thread in one of the guild's channels (THREAD_CREATE), with that channel's permissions."""
        thread = FakeChannel(thread_id, name, 12 if private else 11, self.id, parent_id=parent_id)
        self.channels[thread_id] = thread
        self._owner._dispatch_soon("THREAD_CREATE", {**thread.payload(), "newly_created": True})
        return thread

    def add_member(
        self,
        user_id: int,
        name: str,
        roles: list[int] | None = None,
        permissions: int | None = None,
        bot: bool = False,
    ) -> FakeMember:
        """Adds or replaces a member; `roles` are role ids (no need to list @everyone)."""
        existed = user_id in self.members
        member = FakeMember(user_id, name, list(roles or []), permissions, bot)
        self.members[user_id] = member
        data = member.payload()
        data["guild_id"] = str(self.id)
        self._owner._dispatch_soon("GUILD_MEMBER_UPDATE" if existed else "GUILD_MEMBER_ADD", data)
        return member

    # -- discord helper: channel permissions and deletion --------------------------------------------------------

    def set_overwrite(
        self, channel_id: int, target_id: int, *, allow: int = 0, deny: int = 0, member: bool = False
    ) -> None:
        """Sets a permission overwrite on a channel (a role, @everyone = the guild id, or a member)."""
        channel = self.channels[channel_id]
        channel.overwrites = [o for o in channel.overwrites if o.id != target_id]
        channel.overwrites.append(FakeOverwrite(target_id, 1 if member else 0, allow, deny))
        self._owner._dispatch_soon("CHANNEL_UPDATE", channel.payload())

    def delete_channel(self, channel_id: int) -> None:
        """Deletes a channel: later requests for it get 404 Unknown Channel (10003)."""
        channel = self.channels.pop(channel_id)
        if channel.is_thread:
            thread = {"id": str(channel.id), "guild_id": str(self.id), "parent_id": str(channel.parent_id)}
            self._owner._dispatch_soon("THREAD_DELETE", {**thread, "type": channel.type})
            return
        self._owner._dispatch_soon("CHANNEL_DELETE", channel.payload())

    def channel_permissions(self, channel_id: int, user_id: int) -> int:
        """A member's permissions in a channel, overwrites applied in Discord's order."""
        perms = self.computed_permissions(user_id)
        channel = self.channels.get(channel_id)
        if channel is not None and channel.is_thread and channel.parent_id is not None:
            channel = self.channels.get(channel.parent_id)
        if channel is None or perms == ALL_PERMISSIONS:
            return perms
        member = self.members.get(user_id)
        roles = set(member.roles) if member else set()
        by_id = {o.id: o for o in channel.overwrites}
        everyone = by_id.get(self.id)
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for o in channel.overwrites:
            if o.kind == 0 and o.id in roles:
                allow, deny = allow | o.allow, deny | o.deny
        perms = (perms & ~deny) | allow
        own = by_id.get(user_id)
        if own is not None and own.kind == 1:
            perms = (perms & ~own.deny) | own.allow
        return perms

    # -- end of discord helper --------------------------------------------------------------------------------

    # derived data

    def computed_permissions(self, user_id: int) -> int:
        """Guild-level permissions: @everyone OR the member's roles; ADMINISTRATOR means all."""
        member = self.members.get(user_id)
        if member is not None and member.permissions is not None:
            return member.permissions
        perms = self.roles[self.id].permissions
        for role_id in member.roles if member else []:
            role = self.roles.get(role_id)
            if role is not None:
                perms |= role.permissions
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def payload(self) -> dict[str, Any]:
        """The GUILD_CREATE body."""
        return {
            "id": str(self.id),
            "name": self.name,
            "unavailable": False,
            "icon": None,
            "owner_id": str(next(iter(self.members), self._owner.bot_user_id)),
            "features": [],
            "member_count": len(self.members),
            "large": False,
            "roles": [r.payload() for r in self.roles.values()],
            "channels": [c.payload() for c in self.channels.values() if not c.is_thread],
            "members": [m.payload() for m in self.members.values()],
            "threads": [c.payload() for c in self.channels.values() if c.is_thread],
            "emojis": [],
            "stickers": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "preferred_locale": "en-US",
            "premium_tier": 0,
            "joined_at": iso_now(),
        }


@dataclass
class PostedMessage:
    """A message the bot created through REST (channel.send); edits update `content`."""

    id: int
    channel_id: int
    content: str
    allowed_mentions: dict[str, Any] | None
    attachments: list[tuple[str, bytes]]
    at: float
    payload: dict[str, Any]
    embeds: list[dict[str, Any]] = field(default_factory=list)
    message: dict[str, Any] = field(default_factory=dict)  # the message object returned to the bot
    edits: list[dict[str, Any]] = field(default_factory=list)  # PATCH payloads (files under "files")
    deleted: bool = False
    refused_edits: int = 0  # edits answered with 30046 (components, modals and message edits)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the /api/v10 prefix, e.g. "/channels/1/messages"
    at: float
    status: int


@dataclass
class Answer:
    """One message-producing payload sent for an interaction (response, followup or edit)."""

    kind: str  # "response" | "followup" | "edit"
    payload: dict[str, Any]
    files: list[tuple[str, bytes]]
    at: float


def answer_text(payload: dict[str, Any], files: list[tuple[str, bytes]]) -> str:
    parts: list[str] = []
    if payload.get("content"):
        parts.append(str(payload["content"]))
    for embed in payload.get("embeds") or []:
        for key in ("title", "description"):
            if embed.get(key):
                parts.append(str(embed[key]))
        for fld in embed.get("fields") or []:
            parts.append(f"{fld.get('name', '')}: {fld.get('value', '')}")
        footer = embed.get("footer") or {}
        if footer.get("text"):
            parts.append(str(footer["text"]))
    parts.extend(name for name, _ in files)
    return "\n".join(parts)


class FakeInteraction:
    """An interaction the fake sent, with everything the bot answered to it."""

    def __init__(self, owner: Any, interaction_id: int, token: str, payload: dict[str, Any], created: float):
        self._owner = owner
        self.id = interaction_id
        self.token = token
        self.payload = payload
        self.created = created
        self.responses: list[dict[str, Any]] = []  # callback bodies: {"type": 4, "data": {...}}
        # Webhook POST / PATCH @original payloads; uploaded files are added under "files" as (name, bytes).
        self.followups: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self.rejected: list[tuple[int, dict[str, Any]]] = []  # (status, body) of refused callbacks
        self.answers: list[Answer] = []  # every response/followup/edit, in order
        self.original: dict[str, Any] | None = None  # the @original message object
        self.original_deleted = False
        self.webhook_messages: dict[int, dict[str, Any]] = {}

    @property
    def type(self) -> int:
        return int(self.payload["type"])

    def _defer_flags(self) -> int:
        for r in self.responses:
            if r.get("type") in (5, 6):
                return int((r.get("data") or {}).get("flags") or 0)
        return 0

    def is_done(self) -> bool:
        """True once a final answer exists (see wait_done)."""
        types = {r.get("type") for r in self.responses}
        if types & {4, 7, 8, 9}:
            return True
        return bool(types & {5, 6}) and bool(self.followups or self.edits)

    async def wait_done(self, timeout: float = 10.0) -> None:
        """Waits for a type-4 response, or a followup / edit after a deferral."""
        await self._owner._wait_until(self.is_done, timeout, f"interaction {self.id} answered")

    def _final(self) -> Answer | None:
        return self.answers[-1] if self.answers else None

    @property
    def ephemeral(self) -> bool:
        """Whether the final answer is only visible to the user (flags & 64)."""
        first = int((self.responses[0].get("data") or {}).get("flags") or 0) if self.responses else 0
        final = self._final()
        if final is None or final.kind == "edit":
            # Edits cannot change visibility; it is fixed by the first response (message or deferral).
            return bool(first & EPHEMERAL)
        flags = int(final.payload.get("flags") or 0)
        if final.kind == "followup" and self.followups and final.payload is self.followups[0]:
            # The first followup after a deferral replaces the "thinking" message, keeping its visibility.
            flags |= self._defer_flags()
        return bool(flags & EPHEMERAL)

    @property
    def text(self) -> str:
        """Content of the final answer, plus embed texts and attachment names."""
        final = self._final()
        return "" if final is None else answer_text(final.payload, final.files)

    @property
    def all_text(self) -> str:
        """Text of every answer, joined by newlines."""
        return "\n".join(answer_text(a.payload, a.files) for a in self.answers)

    @property
    def files(self) -> list[tuple[str, bytes]]:
        """Files attached to any answer."""
        return [f for a in self.answers for f in a.files]

    # -- components, modals and message edits (boards) --

    @property
    def modal(self) -> dict[str, Any] | None:
        """The modal the bot opened (type-9 response data: custom_id, title, components), if any."""
        for r in self.responses:
            if r.get("type") == 9:
                return dict(r.get("data") or {})
        return None

    @property
    def message(self) -> dict[str, Any] | None:
        """The message object of the latest answer (@original or the last followup), for clicking on it."""
        final = self._final()
        if final is not None and final.kind == "followup" and self.webhook_messages:
            return list(self.webhook_messages.values())[-1]
        return self.original

    def components(self) -> list[dict[str, Any]]:
        """Every component (buttons, selects) of the latest answer's message, flattened out of their rows."""
        message = self.message or {}
        return [c for row in message.get("components") or [] for c in row.get("components") or []]

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        """Autocomplete choices (type-8 response), if any."""
        for r in self.responses:
            if r.get("type") == 8:
                return list((r.get("data") or {}).get("choices") or [])
        return None
