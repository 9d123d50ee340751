"""A local fake Discord (REST + gateway) that a real, unmodified discord.py 2.7.1 client logs into.

Usage::

    async with FakeDiscord() as fake:
        guild = fake.add_guild(1)
        guild.add_channel(10, "console")
        async with fake.run_client(bot):  # patches discord.py, starts the bot, waits for on_ready
            inter = await fake.invoke(1, 10, user_id, "status")
            await inter.wait_done()

Rules copied from Discord because the bot must cope with them: per-channel create-message bucket and a
global limit (429 with ``Via`` + JSON ``retry_after``), ``X-RateLimit-*`` headers on every response,
the 3 s interaction deadline (404 / 10062), 2000-character content and embed limits (400 / 50035),
autocomplete answers of at most 25 choices with names and values of 1-100 characters (400),
and message content stripped from MESSAGE_CREATE without the message_content intent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
import yarl
from aiohttp import BodyPartReader, WSMsgType, web

from tests.fakes.fake_discord_models import (
    ATTACH_FILES,
    EPHEMERAL,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    VIEW_CHANNEL,
    Answer,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeRole,
    PostedMessage,
    RecordedRequest,
    iso_now,
    snowflake,
    user_payload,
)

__all__ = [
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeRole",
    "PostedMessage",
    "RecordedRequest",
]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
ROUTE_LIMIT = 50  # generous bucket for every route except create-message
ROUTE_WINDOW = 1.0
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
APP_FLAG_MESSAGE_CONTENT = 1 << 19  # GATEWAY_MESSAGE_CONTENT: the portal's switch is on
APP_FLAG_MESSAGE_CONTENT_LIMITED = 1 << 18  # the same for a bot in under 100 servers

_ERRORS: dict[int, tuple[int, str]] = {
    400: (50035, "Invalid Form Body"),
    401: (0, "401: Unauthorized"),
    403: (50013, "Missing Permissions"),
    404: (0, "404: Not Found"),
    405: (0, "405: Method Not Allowed"),
    500: (0, "500: Internal Server Error"),
    502: (0, "502: Bad Gateway"),
}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Built by hand: discord.py parses JSON only if Content-Type is exactly "application/json", and
    # web.json_response appends "; charset=utf-8".
    resp = web.Response(body=json.dumps(data).encode(), status=status, headers=headers)
    resp.headers["Content-Type"] = "application/json"
    return resp


def _embed_too_long(embed: dict[str, Any]) -> bool:
    """Discord's per-part embed limits: title 256, description 4096, 25 fields of 256/1024, footer 2048."""
    fields = embed.get("fields") or []
    return (
        len(embed.get("title") or "") > 256
        or len(embed.get("description") or "") > 4096
        or len(fields) > 25
        or any(len(f.get("name") or "") > 256 or len(f.get("value") or "") > 1024 for f in fields)
        or len((embed.get("footer") or {}).get("text") or "") > 2048
    )


def _error(
    status: int,
    code: int | None = None,
    message: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    default_code, default_message = _ERRORS.get(status, (0, f"{status}"))
    body = {"code": default_code if code is None else code, "message": message or default_message, **extra}
    return _json(body, status, headers)


def _bad_choices(choices: Any) -> bool:
    """Discord refuses an autocomplete answer of more than 25 choices, or a name or value outside 1-100 characters."""
    if not isinstance(choices, list) or len(choices) > 25:
        return True
    return any(
        not 1 <= len(str(c.get("name", ""))) <= 100 or not 1 <= len(str(c.get("value", ""))) <= 100
        for c in choices
    )


def _no_content() -> web.Response:
    return web.Response(status=204)


def _ceil_ms(seconds: float) -> float:
    # Rounded up so a client sleeping exactly this long never arrives before the reset.
    return max(0.0, math.ceil(seconds * 1000) / 1000)


@dataclass
class _Bucket:
    limit: int
    window: float
    hash: str
    reset_at: float = 0.0
    used: int = 0

    def _roll(self, now: float) -> None:
        if now >= self.reset_at:
            self.used = 0
            self.reset_at = now + self.window

    def take(self, now: float) -> bool:
        self._roll(now)
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def headers(self, now: float) -> dict[str, str]:
        if now >= self.reset_at:
            remaining, after = self.limit, self.window
        else:
            remaining, after = self.limit - self.used, _ceil_ms(self.reset_at - now)
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Reset": f"{time.time() + after:.3f}",
            "X-RateLimit-Reset-After": f"{after:.3f}",
            "X-RateLimit-Bucket": self.hash,
        }


@dataclass
class _Failure:
    method: str
    path_contains: str
    status: int
    times: int
    retry_after: float


@dataclass(eq=False)  # hashed by identity: kept in a set
class _GatewayConn:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    session_id: str | None = None
    seq: int = 0
    intents: int = 0
    identified: bool = False
    shard: tuple[int, int] = (0, 1)  # (id, count) from IDENTIFY; (0, 1) when not sharded


class FakeDiscord:
    """Fake Discord API v10 on 127.0.0.1 (ephemeral port); see the module docstring."""

    def __init__(
        self,
        *,
        bucket_limit: int = 5,
        bucket_window: float = 5.0,
        global_limit: int = 50,
        interaction_deadline: float = 3.0,
    ) -> None:
        self.bucket_limit = bucket_limit
        self.bucket_window = bucket_window
        self.global_limit = global_limit
        self.interaction_deadline = interaction_deadline
        self.heartbeat_interval_ms = 41250

        self.token = "fake." + secrets.token_urlsafe(24)
        self.application_id = snowflake()
        self.bot_user_id = self.application_id
        self.owner_user_id = snowflake()
        self.bot_name = "Wingbeat"

        self.base_url = ""
        self.gateway_url = ""
        self.http_url = ""

        self.guilds: dict[int, FakeGuild] = {}
        self.dm_channels: dict[int, FakeChannel] = {}  # user id -> DM channel
        self.requests: list[RecordedRequest] = []
        self.count_429 = 0
        self.synced_commands: dict[int | None, list[dict[str, Any]]] = {}
        self.command_put_count = 0
        self.reactions: list[tuple[int, int, str]] = []
        self.user_messages: dict[int, dict[str, Any]] = {}  # id -> MESSAGE_CREATE payload we dispatched
        self.interactions: list[FakeInteraction] = []
        self.identify_count = 0
        self.resume_count = 0
        self.identified_shards: list[tuple[int, int]] = []  # (id, count) of every IDENTIFY, in order
        # Set to a shard id: every dispatch goes to that shard's sessions whatever its guild (a misbehaving
        # Discord), so a test can see a client refuse what is not on its shards.
        self.misroute_to: int | None = None

        self._messages: dict[int, list[PostedMessage]] = {}
        self._message_index: dict[int, PostedMessage] = {}
        self._command_ids: dict[tuple[int | None, str, int], int] = {}
        self._registered: dict[int | None, list[dict[str, Any]]] = {}  # echoed definitions with ids
        self._interactions_by_id: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._global_hits: deque[float] = deque()
        self._proxy_hits: deque[float] = deque()
        self._nonces: dict[tuple[int, str], PostedMessage] = {}  # (channel, nonce) -> the message it created
        # Cleared: a created message's answer waits until it is set again (a crash between the two, for tests).
        self.stall_creates = asyncio.Event()
        self.stall_creates.set()
        self.proxy_refusals: list[tuple[float, str, float]] = []  # (loop time, path, retry_after) of each 429
        self._failures: list[_Failure] = []
        self._conns: set[_GatewayConn] = set()
        self._sessions: dict[str, tuple[int, tuple[int, int]]] = {}  # session id -> last sequence, shard
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        # -- components, modals and message edits (boards) --
        # Edits have their own per-channel bucket (Discord publishes no numbers; these are the create bucket's).
        self.edit_bucket_limit = bucket_limit
        self.edit_bucket_window = bucket_window
        # Discord refuses further edits of a much-edited old message with 30046: after this many edits of one
        # message (None: never), and at once for the message ids in `refuse_edits`.
        self.max_edits: int | None = None
        self.refuse_edits: set[int] = set()

    # lifecycle

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=30 * 1024 * 1024)
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.http_url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.http_url}{API_PREFIX}"
        self.gateway_url = f"ws://127.0.0.1:{port}/gateway"

    async def close(self) -> None:
        for conn in list(self._conns):
            await conn.ws.close(code=1001, message=b"fake discord closing")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def patch_discord(self) -> Callable[[], None]:
        """Points discord.py's REST base and gateway at this fake; returns an undo function."""
        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.base_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

        def undo() -> None:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

        return undo

    @contextlib.asynccontextmanager
    async def run_client(self, client: discord.Client, *, ready_timeout: float = 5.0) -> AsyncIterator[None]:
        """Patches discord.py, runs `client.start(token)` in a task until ready; closes it on exit."""
        undo = self.patch_discord()
        task = asyncio.create_task(client.start(self.token))
        try:
            ready = asyncio.create_task(client.wait_until_ready())
            done, _ = await asyncio.wait({ready, task}, timeout=ready_timeout, return_when="FIRST_COMPLETED")
            if ready not in done:
                ready.cancel()
                await asyncio.gather(ready, return_exceptions=True)
                if task in done:
                    task.result()  # re-raises the start-up error
                raise TimeoutError("client did not become ready")
            yield
        finally:
            await client.close()
            try:
                await asyncio.wait_for(task, timeout=5.0)
            finally:
                undo()

    # world building

    def add_guild(self, guild_id: int, name: str = "Guild") -> FakeGuild:
        guild = FakeGuild(self, guild_id, name)
        guild.members[self.bot_user_id] = FakeMember(self.bot_user_id, self.bot_name, [], None, True)
        self.guilds[guild_id] = guild
        self._dispatch_soon("GUILD_CREATE", guild.payload())
        return guild

    # -- discord helper: commands an earlier run left registered ------------------------------------------------

    def register_commands(self, scope: int | None, payloads: list[dict[str, Any]]) -> None:
        """Registers commands as an earlier run of the bot would have (scope None: global).

        Like Discord, the fake dispatches a global command from any guild the bot is in (and from DMs),
        whatever the guild's own commands are, until the application replaces them.
        """
        self._register(scope, [dict(p) for p in payloads])

    def registered_commands(self, scope: int | None) -> list[dict[str, Any]]:
        """What Discord holds for a scope now (None: global)."""
        return list(self._registered.get(scope, []))

    # -- end of discord helper --------------------------------------------------------------------------------

    def channel(self, channel_id: int) -> FakeChannel | None:
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild.channels[channel_id]
        for dm in self.dm_channels.values():
            if dm.id == channel_id:
                return dm
        return None

    # observation

    def messages(self, channel_id: int) -> list[PostedMessage]:
        """Messages the bot created in a channel (deleted ones included, flagged `deleted`)."""
        return list(self._messages.get(channel_id, []))

    async def wait_for_messages(
        self, channel_id: int, count: int, timeout: float = 5.0
    ) -> list[PostedMessage]:
        await self._wait_until(
            lambda: len(self._messages.get(channel_id, [])) >= count,
            timeout,
            f"{count} messages in channel {channel_id} (got {len(self._messages.get(channel_id, []))})",
        )
        return self.messages(channel_id)

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Waits until `predicate()` is true; re-checked after every request or gateway frame."""
        await self._wait_until(predicate, timeout, what)

    @property
    def connected(self) -> bool:
        return any(c.identified for c in self._conns)

    # failure injection

    def fail_next(
        self, method: str, path_contains: str, status: int, *, times: int = 1, retry_after: float = 1.0
    ) -> None:
        """The next `times` requests matching method and path substring get `status` instead."""
        self._failures.append(_Failure(method.upper(), path_contains, status, times, retry_after))

    async def disconnect_gateway(self, code: int | None = None) -> None:
        """Drops the gateway: op 7 RECONNECT (client resumes at once) or a close with `code`."""
        for conn in list(self._conns):
            if code is None:
                conn.queue.put_nowait({"op": 7, "d": None})
            else:
                await conn.ws.close(code=code)

    # gateway-driven input

    async def send_user_message(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        content: str,
        *,
        bot: bool = False,
        webhook_id: int | None = None,
        message_type: int = 0,
        reference: int | None = None,
    ) -> int:
        """Dispatches MESSAGE_CREATE as if a user typed `content`; returns the message id.

        `message_type` other than 0 makes it a system message as Discord sends them (4 channel renamed, 6 pinned,
        7 member joined, 18 thread created: its content is the thread's name; 19 a reply to `reference`).
        """
        self._require_connection(guild_id)
        message_id = snowflake()
        guild = self.guilds.get(guild_id) if guild_id is not None else None
        member = guild.members.get(user_id) if guild else None
        name = member.name if member else f"user{user_id}"
        data: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "type": message_type,
            "content": content,
            "author": user_payload(user_id, name, bot=bot or (member.bot if member else False)),
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "flags": 0,
            "components": [],
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
            if member is not None and webhook_id is None:
                data["member"] = member.payload(with_user=False)
        if webhook_id is not None:
            data["webhook_id"] = str(webhook_id)
        if reference is not None:
            data["message_reference"] = {"message_id": str(reference), "channel_id": str(channel_id)}
            if guild_id is not None:
                data["message_reference"]["guild_id"] = str(guild_id)
        self.user_messages[message_id] = data
        self._dispatch_soon("MESSAGE_CREATE", data)
        return message_id

    # -- discord helper: edits ---------------------------------------------------------------------------------

    async def edit_user_message(self, message_id: int, content: str) -> None:
        """Dispatches MESSAGE_UPDATE as if the author edited a message sent with `send_user_message`."""
        data = self.user_messages[message_id]
        self._require_connection(int(data["guild_id"]) if "guild_id" in data else None)
        data.update(content=content, edited_timestamp=iso_now())
        self._dispatch_soon("MESSAGE_UPDATE", dict(data))

    # -- end of discord helper --------------------------------------------------------------------------------

    async def invoke(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        command: str,
        options: dict[str, Any] | list[dict[str, Any]] | None = None,
        *,
        subcommand: str | None = None,
        member_permissions: int | None = None,
    ) -> FakeInteraction:
        """Dispatches INTERACTION_CREATE (type 2) for a synced slash command; returns at once."""
        return self._interaction(
            2, guild_id, channel_id, user_id, command, options, subcommand, member_permissions, None
        )

    async def autocomplete(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        command: str,
        options: dict[str, Any] | list[dict[str, Any]] | None,
        focused: str,
        *,
        subcommand: str | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Dispatches an autocomplete (type 4) with `focused` being typed; returns the bot's choices."""
        inter = self._interaction(
            4, guild_id, channel_id, user_id, command, options, subcommand, None, focused
        )
        await self._wait_until(
            lambda: inter.is_done() or bool(inter.rejected),
            self.interaction_deadline + 1.0 if timeout is None else timeout,
            f"autocomplete {inter.id} answered",
        )
        choices = inter.choices
        if choices is None:
            raise AssertionError(
                f"bot answered the autocomplete with {inter.responses or inter.rejected!r}, not type 8"
            )
        return choices

    # -- components, modals and message edits (boards) ------------------------------------------------------

    async def click(
        self, guild_id: int | None, channel_id: int, user_id: int, message: dict[str, Any], custom_id: str
    ) -> FakeInteraction:
        """Dispatches a button click (type 3) on `message` (a message object) as `user_id`; returns at once."""
        return self._component(guild_id, channel_id, user_id, message, custom_id, 2, None)

    async def pick(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        message: dict[str, Any],
        custom_id: str,
        values: list[str],
    ) -> FakeInteraction:
        """Dispatches a string-select choice (type 3, component type 3) of `values` on `message`."""
        return self._component(guild_id, channel_id, user_id, message, custom_id, 3, values)

    async def submit_modal(
        self, guild_id: int | None, channel_id: int, user_id: int, custom_id: str, values: dict[str, str]
    ) -> FakeInteraction:
        """Dispatches a modal submit (type 5): `values` maps each text input's custom_id to what was typed."""
        self._require_connection()
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]} for k, v in values.items()
        ]
        return self._dispatch_interaction(
            5, guild_id, channel_id, user_id, {"custom_id": custom_id, "components": rows}, None
        )

    def delete_by_user(self, channel_id: int, message_id: int) -> None:
        """Someone deleted a bot message in Discord's client: later requests for it get 10008."""
        posted = self._message_index[message_id]
        posted.deleted = True
        self._dispatch_soon(
            "MESSAGE_DELETE",
            {"id": str(message_id), "channel_id": str(channel_id), **self._guild_of(channel_id)},
        )

    def remove_channel(self, guild_id: int, channel_id: int) -> None:
        """The channel is deleted: later requests for it get 10003."""
        channel = self.guilds[guild_id].channels.pop(channel_id)
        self._dispatch_soon("CHANNEL_DELETE", channel.payload())

    def edits(self, channel_id: int | None = None) -> list[RecordedRequest]:
        """Every message edit (PATCH) the bot made, optionally in one channel, 429s included."""
        prefix = f"/channels/{channel_id}/messages/" if channel_id is not None else "/channels/"
        return [r for r in self.requests if r.method == "PATCH" and r.path.startswith(prefix)]

    def _guild_of(self, channel_id: int) -> dict[str, str]:
        channel = self.channel(channel_id)
        return {"guild_id": str(channel.guild_id)} if channel is not None and channel.guild_id else {}

    def _component(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        message: dict[str, Any],
        custom_id: str,
        component_type: int,
        values: list[str] | None,
    ) -> FakeInteraction:
        self._require_connection()
        found = [
            c
            for row in message.get("components") or []
            for c in row.get("components") or []
            if c.get("custom_id") == custom_id
        ]
        if not found:
            raise ValueError(f"message {message.get('id')} has no component {custom_id!r}")
        if found[0].get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled; Discord's client cannot click it")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        return self._dispatch_interaction(3, guild_id, channel_id, user_id, data, message)

    def _dispatch_interaction(
        self,
        kind: int,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        data: dict[str, Any],
        message: dict[str, Any] | None,
    ) -> FakeInteraction:
        guild = self.guilds.get(guild_id) if guild_id is not None else None
        interaction_id = snowflake()
        token = "itok." + secrets.token_urlsafe(32)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": str(channel_id),
            "locale": "en-US",
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "entitlements": [],
            "app_permissions": "0",
        }
        if message is not None:
            payload["message"] = message
        channel = self.channel(channel_id)
        if guild_id is not None:
            # A board left in a guild the fake does not model (e.g. one outside GUILD_IDS) still sends its guild id.
            member = (guild.members.get(user_id) if guild else None) or FakeMember(user_id, f"user{user_id}")
            perms = guild.computed_permissions(user_id) if guild else 0
            payload.update(guild_id=str(guild_id), guild_locale="en-US", context=0)
            payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
            payload["member"] = member.payload(permissions=perms)
            payload["app_permissions"] = str(guild.computed_permissions(self.bot_user_id) if guild else 0)
            payload["authorizing_integration_owners"] = {"0": str(guild_id)}
            chan = channel.payload() if channel else {"id": str(channel_id), "type": 0, "name": "unknown"}
            chan["permissions"] = str(perms)
            payload["channel"] = chan
        else:
            payload["user"] = user_payload(user_id, f"user{user_id}")
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"0": "0"}
            payload["channel"] = {"id": str(channel_id), "type": 1, "recipients": [payload["user"]]}
        inter = FakeInteraction(self, interaction_id, token, payload, asyncio.get_running_loop().time())
        self.interactions.append(inter)
        self._interactions_by_id[interaction_id] = inter
        self._interactions_by_token[token] = inter
        self._dispatch_soon("INTERACTION_CREATE", payload)
        return inter

    def _update_component_message(self, inter: FakeInteraction, kind: int, data: dict[str, Any]) -> None:
        """Type 6/7 answer a click on a message: @original is that message, and type 7 updates it at once."""
        message = inter.payload.get("message")
        if message is None:
            return
        posted = self._message_index.get(int(message["id"]))
        target = posted.message if posted is not None else message
        inter.original = target
        if kind != 7:
            return
        for key in ("content", "embeds", "components"):
            if key in data:
                target[key] = data[key] or ("" if key == "content" else [])
        if posted is not None:
            posted.content, posted.embeds = target.get("content") or "", target.get("embeds") or []
            posted.edits.append({**data, "files": []})

    # internals: waiting

    def _bump(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    # Also polled: predicates may read the client's cache, which changes without telling us.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.01)
        except TimeoutError:
            raise TimeoutError(f"fake discord: timed out after {timeout}s waiting for {what}") from None

    def _require_connection(self, guild_id: int | None = None) -> None:
        if not self.connected:
            raise RuntimeError("no discord.py client is connected to the fake gateway")
        if self.misroute_to is None and not any(
            c.identified and self._routes_to(c, guild_id) for c in self._conns
        ):
            raise RuntimeError(f"no discord.py client holds the shard of guild {guild_id}")

    # internals: interactions

    def _find_command(self, guild_id: int | None, name: str) -> tuple[dict[str, Any], int | None]:
        scopes: list[int | None] = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for cmd in self._registered.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd, scope
        known = {str(k): [c["name"] for c in v] for k, v in self._registered.items()}
        raise ValueError(f"command {name!r} was not synced for guild {guild_id} (synced: {known})")

    def _interaction(
        self,
        kind: int,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        command: str,
        options: dict[str, Any] | list[dict[str, Any]] | None,
        subcommand: str | None,
        member_permissions: int | None,
        focused: str | None,
    ) -> FakeInteraction:
        self._require_connection(guild_id)
        cmd, scope = self._find_command(guild_id, command)
        guild = self.guilds.get(guild_id) if guild_id is not None else None
        if guild_id is not None and guild is None:
            raise ValueError(f"unknown guild {guild_id}")

        resolved: dict[str, dict[str, Any]] = {}
        definitions = cmd.get("options") or []
        path = subcommand.split() if subcommand else []
        for part in path:
            match = [o for o in definitions if o["name"] == part and o["type"] in (1, 2)]
            if not match:
                raise ValueError(f"{command!r} has no subcommand {part!r}")
            definitions = match[0].get("options") or []
        if isinstance(options, list):
            leaf = options
        else:
            leaf = self._build_options(guild, definitions, options or {}, focused, resolved)
        for part in reversed(path):
            sub_type = 2 if leaf and leaf[0].get("type") == 1 else 1
            leaf = [{"name": part, "type": sub_type, "options": leaf}]

        data: dict[str, Any] = {"id": cmd["id"], "name": command, "type": 1, "options": leaf}
        if scope is not None:
            data["guild_id"] = str(scope)
        if resolved:
            data["resolved"] = resolved

        interaction_id = snowflake()
        token = "itok." + secrets.token_urlsafe(32)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": str(channel_id),
            "locale": "en-US",
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "entitlements": [],
            "app_permissions": "0",
        }
        channel = self.channel(channel_id)
        if guild is not None:
            member = guild.members.get(user_id) or FakeMember(user_id, f"user{user_id}")
            perms = guild.computed_permissions(user_id) if member_permissions is None else member_permissions
            payload["guild_id"] = str(guild.id)
            payload["guild_locale"] = "en-US"
            payload["guild"] = {"id": str(guild.id), "locale": "en-US", "features": []}
            payload["member"] = member.payload(permissions=perms)
            payload["app_permissions"] = str(guild.computed_permissions(self.bot_user_id))
            payload["context"] = 0
            payload["authorizing_integration_owners"] = {"0": str(guild.id)}
            chan = channel.payload() if channel else {"id": str(channel_id), "type": 0, "name": "unknown"}
            chan["permissions"] = str(perms)
            payload["channel"] = chan
        else:
            payload["user"] = user_payload(user_id, f"user{user_id}")
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"0": "0"}
            payload["channel"] = {"id": str(channel_id), "type": 1, "recipients": [payload["user"]]}

        inter = FakeInteraction(self, interaction_id, token, payload, asyncio.get_running_loop().time())
        self.interactions.append(inter)
        self._interactions_by_id[interaction_id] = inter
        self._interactions_by_token[token] = inter
        self._dispatch_soon("INTERACTION_CREATE", payload)
        return inter

    def _build_options(
        self,
        guild: FakeGuild | None,
        definitions: list[dict[str, Any]],
        values: dict[str, Any],
        focused: str | None,
        resolved: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in definitions}
        out: list[dict[str, Any]] = []
        names = list(values)
        if focused is not None and focused not in values:
            names.append(focused)
        for name in names:
            definition = by_name.get(name)
            if definition is None:
                raise ValueError(f"no option {name!r}; the synced options are {sorted(by_name)}")
            opt_type = int(definition["type"])
            raw = values.get(name, "")
            option: dict[str, Any] = {"name": name, "type": opt_type}
            if name == focused:
                option["focused"] = True
                option["value"] = str(raw)  # Discord sends what is typed so far, as text
            else:
                option["value"] = self._option_value(guild, opt_type, raw, resolved)
            out.append(option)
        return out

    def _option_value(
        self, guild: FakeGuild | None, opt_type: int, raw: Any, resolved: dict[str, dict[str, Any]]
    ) -> Any:
        if opt_type == 4:
            return int(raw)
        if opt_type == 10:
            return float(raw)
        if opt_type == 5:
            return bool(raw)
        if opt_type == 3:
            return str(raw)
        ident = int(getattr(raw, "id", getattr(raw, "user_id", raw)))
        key = str(ident)
        role = guild.roles.get(ident) if guild else None
        if opt_type == 8 or (opt_type == 9 and role is not None):
            if role is None:
                raise ValueError(f"unknown role {ident}")
            resolved.setdefault("roles", {})[key] = role.payload()
        elif opt_type in (6, 9):
            member = guild.members.get(ident) if guild else None
            name = member.name if member else f"user{ident}"
            resolved.setdefault("users", {})[key] = user_payload(ident, name, bot=bool(member and member.bot))
            if member is not None and guild is not None:
                perms = guild.computed_permissions(ident)
                resolved.setdefault("members", {})[key] = member.payload(with_user=False, permissions=perms)
        elif opt_type == 7:
            channel = self.channel(ident)
            data = channel.payload() if channel else {"id": key, "type": 0, "name": f"channel{ident}"}
            data["permissions"] = str(guild.computed_permissions(self.bot_user_id) if guild else 0)
            resolved.setdefault("channels", {})[key] = data
        else:
            raise ValueError(f"option type {opt_type} is not supported by the fake")
        return key

    # internals: gateway

    def _dispatch_soon(self, event: str, data: dict[str, Any]) -> None:
        """Queues a dispatch to every identified connection of the event's shard, in call order."""
        guild_id = _event_guild(event, data)
        for conn in self._conns:
            if not conn.identified or not self._wants(conn, event, data):
                continue
            if not self._routes_to(conn, guild_id):
                continue
            conn.queue.put_nowait({"op": 0, "t": event, "d": self._filtered(conn, event, data)})

    @staticmethod
    def _wants(conn: _GatewayConn, event: str, data: dict[str, Any]) -> bool:
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
            return True
        needed = INTENT_GUILD_MESSAGES if "guild_id" in data else INTENT_DIRECT_MESSAGES
        return bool(conn.intents & needed)

    def _filtered(self, conn: _GatewayConn, event: str, data: dict[str, Any]) -> dict[str, Any]:
        # Without the privileged intent Discord blanks content of guild messages that do not mention us.
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
            return data
        if conn.intents & INTENT_MESSAGE_CONTENT or "guild_id" not in data:
            return data
        if f"<@{self.bot_user_id}>" in data.get("content", ""):
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_gateway:
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = _GatewayConn(ws)
        self._conns.add(conn)
        writer = asyncio.create_task(self._gateway_writer(conn))
        conn.queue.put_nowait({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_frame(conn, json.loads(msg.data))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._conns.discard(conn)
            if conn.session_id is not None:
                self._sessions[conn.session_id] = (conn.seq, conn.shard)
            conn.queue.put_nowait(None)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            self._bump()
        return ws

    async def _gateway_writer(self, conn: _GatewayConn) -> None:
        while (frame := await conn.queue.get()) is not None:
            if frame.get("op") == 0:
                conn.seq += 1
                frame["s"] = conn.seq
            if conn.ws.closed:
                return
            await conn.ws.send_str(json.dumps(frame))
            self._bump()

    async def _on_frame(self, conn: _GatewayConn, frame: dict[str, Any]) -> None:
        op, d = frame.get("op"), frame.get("d")
        if op == 1:
            conn.queue.put_nowait({"op": 11})
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif op == 8:
            self._members_chunk(conn, d or {})
        self._bump()

    async def _identify(self, conn: _GatewayConn, d: dict[str, Any]) -> None:
        if d.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = self._shard_of_identify(d)
        if shard is None:
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        allowed = APP_FLAG_MESSAGE_CONTENT | APP_FLAG_MESSAGE_CONTENT_LIMITED
        if int(d.get("intents") or 0) & INTENT_MESSAGE_CONTENT and not self.application_flags & allowed:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        self.identify_count += 1
        conn.intents = int(d.get("intents") or 0)
        conn.session_id = secrets.token_hex(16)
        conn.seq = 0
        conn.shard = shard
        conn.identified = True
        self.identified_shards.append(shard)
        me = user_payload(self.bot_user_id, self.bot_name, bot=True)
        me.update(verified=True, mfa_enabled=False, flags=0)
        guilds = [g for g in self.guilds.values() if self._on_shard(g.id, shard)]
        ready: dict[str, Any] = {
            "v": 10,
            "user": me,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": conn.session_id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": self.application_flags},
            "private_channels": [],
            "relationships": [],
        }
        if "shard" in d:
            ready["shard"] = list(shard)  # AutoShardedClient reads it (KeyError without)
        conn.queue.put_nowait({"op": 0, "t": "READY", "d": ready})
        for guild in guilds:
            conn.queue.put_nowait({"op": 0, "t": "GUILD_CREATE", "d": guild.payload()})

    async def _resume(self, conn: _GatewayConn, d: dict[str, Any]) -> None:
        session = str(d.get("session_id"))
        if d.get("token") != self.token or session not in self._sessions:
            conn.queue.put_nowait({"op": 9, "d": False})
            return
        self.resume_count += 1
        conn.session_id = session
        conn.seq, conn.shard = self._sessions.pop(session)
        conn.identified = True
        conn.queue.put_nowait({"op": 0, "t": "RESUMED", "d": {}})

    def _members_chunk(self, conn: _GatewayConn, d: dict[str, Any]) -> None:
        guild = self.guilds.get(int(d.get("guild_id") or 0))
        if guild is None:
            return
        members = list(guild.members.values())
        if d.get("user_ids"):
            wanted = {int(u) for u in d["user_ids"]}
            members = [m for m in members if m.user_id in wanted]
        elif d.get("query"):
            members = [m for m in members if m.name.lower().startswith(str(d["query"]).lower())]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        conn.queue.put_nowait({"op": 0, "t": "GUILD_MEMBERS_CHUNK", "d": chunk})

    # -- a shared rate-limiting proxy in front of Discord (nirn-proxy) ---------------------------------------------

    # With `proxy_limit` set, the fake answers like such a proxy shared by several bot processes: at most
    # `proxy_limit` requests per `proxy_window` seconds reach "Discord" (interaction callbacks and webhooks
    # aside, as the global limit spares them); the rest get the proxy's own 429, which is not Discord's: no
    # `Via` header (so discord.py raises it instead of retrying), not global, with `retry_after` in the body
    # and `Retry-After` (whole seconds) in the headers. Nothing of a refused request reaches the fake's state.

    proxy_limit: int | None = None
    proxy_window: float = 1.0
    proxy_429s: int = 0

    def _take_proxy(self, now: float) -> float | None:
        hits = self._proxy_hits
        while hits and hits[0] <= now - self.proxy_window:
            hits.popleft()
        assert self.proxy_limit is not None
        if len(hits) >= self.proxy_limit:
            return _ceil_ms(hits[0] + self.proxy_window - now)
        hits.append(now)
        return None

    def _proxy_rate_limited(self, retry_after: float, now: float, rel: str) -> web.Response:
        self.proxy_429s += 1
        self.proxy_refusals.append((now, rel, retry_after))
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
        resp = _json(body, 429)
        resp.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return resp

    def reached_discord_per_second(self) -> dict[int, int]:
        """Requests that got past the proxy (all of them without one), by whole second of the loop clock."""
        out: dict[int, int] = {}
        for r in self.requests:
            out[int(r.at)] = out.get(int(r.at), 0) + 1
        for at, _, _ in self.proxy_refusals:
            out[int(at)] -= 1
        return {second: n for second, n in out.items() if n}

    # -- end of the proxy ---------------------------------------------------------------------------------------

    # -- message nonces ------------------------------------------------------------------------------------------

    # Discord: a message created with `nonce` and `enforce_nonce: true` is checked against the author's messages
    # in the channel for the past few minutes; if one was created with the same nonce, that message is returned
    # (200, as if created now) and no new message is made. discord.py sends `enforce_nonce` with every nonce.

    nonce_window: float = 300.0
    nonce_hits: int = 0  # creates answered with an earlier message
    stalled: int = 0  # messages created whose answer was held back (`stall_creates` cleared)

    def _nonce_seen(self, channel_id: int, payload: dict[str, Any]) -> PostedMessage | None:
        nonce = payload.get("nonce")
        if nonce is None or not payload.get("enforce_nonce"):
            return None
        earlier = self._nonces.get((channel_id, str(nonce)))
        now = asyncio.get_running_loop().time()
        if earlier is None or now - earlier.at > self.nonce_window:
            return None
        self.nonce_hits += 1
        return earlier

    def _nonce_keep(self, channel_id: int, payload: dict[str, Any], posted: PostedMessage) -> None:
        if payload.get("nonce") is not None and payload.get("enforce_nonce"):
            self._nonces[(channel_id, str(payload["nonce"]))] = posted

    # -- end of nonces ------------------------------------------------------------------------------------------

    # -- sharding: one gateway session per shard, each sees only its guilds -------------------------------------

    # Discord's rule: a guild belongs to shard (guild_id >> 22) % shard_count. A client that IDENTIFYs with
    # `shard: [id, count]` gets READY and GUILD_CREATE for that shard's guilds only, and every event of a guild
    # (interactions, messages, channel changes) on that shard's connection; events without a guild (DMs) go to
    # shard 0. Several clients (one per bot process) may hold sessions at once, each on its own shards.

    @staticmethod
    def shard_of(guild_id: int, shard_count: int) -> int:
        """The shard Discord delivers a guild's events on."""
        return (guild_id >> 22) % shard_count

    def _on_shard(self, guild_id: int, shard: tuple[int, int]) -> bool:
        return self.shard_of(guild_id, shard[1]) == shard[0]

    @staticmethod
    def _shard_of_identify(d: dict[str, Any]) -> tuple[int, int] | None:
        raw = d.get("shard")
        if raw is None:
            return (0, 1)
        try:
            shard_id, count = int(raw[0]), int(raw[1])
        except (TypeError, ValueError, IndexError):
            return None
        return (shard_id, count) if 0 <= shard_id < count else None

    def _routes_to(self, conn: _GatewayConn, guild_id: int | None) -> bool:
        if self.misroute_to is not None:  # a deliberate misdelivery, to test a client's own defence
            return conn.shard[0] == self.misroute_to
        if guild_id is None:
            return conn.shard[0] == 0
        return self._on_shard(guild_id, conn.shard)

    def shard_connected(self, shard_id: int) -> bool:
        """Whether an identified session holds shard `shard_id` now."""
        return any(c.identified and c.shard[0] == shard_id for c in self._conns)

    def sessions(self) -> list[tuple[int, int]]:
        """The (shard id, shard count) of every identified session now."""
        return [c.shard for c in self._conns if c.identified]

    # -- end of sharding --------------------------------------------------------------------------------------

    # internals: REST plumbing

    def _add_routes(self, app: web.Application) -> None:
        p = API_PREFIX
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get(f"{p}/gateway", self._get_gateway)
        app.router.add_get(f"{p}/gateway/bot", self._get_gateway)
        app.router.add_get(f"{p}/users/@me", self._get_me)
        app.router.add_post(f"{p}/users/@me/channels", self._create_dm)
        app.router.add_get(f"{p}/oauth2/applications/@me", self._get_application)
        app.router.add_get(f"{p}/applications/@me", self._get_application)
        for path in (
            f"{p}/applications/{{app_id}}/commands",
            f"{p}/applications/{{app_id}}/guilds/{{guild_id}}/commands",
        ):
            app.router.add_put(path, self._put_commands)
            app.router.add_get(path, self._get_commands)
        app.router.add_get(f"{p}/channels/{{channel_id}}", self._get_channel)
        app.router.add_post(f"{p}/channels/{{channel_id}}/messages", self._create_message)
        app.router.add_post(f"{p}/channels/{{channel_id}}/typing", self._typing)
        msg = f"{p}/channels/{{channel_id}}/messages/{{message_id}}"
        app.router.add_get(msg, self._get_message)
        app.router.add_patch(msg, self._edit_message)
        app.router.add_delete(msg, self._delete_message)
        app.router.add_put(f"{msg}/reactions/{{emoji}}/@me", self._add_reaction)
        app.router.add_delete(f"{msg}/reactions/{{emoji}}/@me", self._remove_reaction)
        app.router.add_get(f"{p}/guilds/{{guild_id}}", self._get_guild)
        app.router.add_get(f"{p}/guilds/{{guild_id}}/channels", self._get_guild_channels)
        app.router.add_get(f"{p}/guilds/{{guild_id}}/roles", self._get_guild_roles)
        app.router.add_get(f"{p}/guilds/{{guild_id}}/members/{{user_id}}", self._get_member)
        app.router.add_post(f"{p}/interactions/{{interaction_id}}/{{token}}/callback", self._callback)
        hook = f"{p}/webhooks/{{app_id}}/{{token}}"
        app.router.add_post(hook, self._followup)
        app.router.add_get(f"{hook}/messages/{{message_id}}", self._get_webhook_message)
        app.router.add_patch(f"{hook}/messages/{{message_id}}", self._edit_webhook_message)
        app.router.add_delete(f"{hook}/messages/{{message_id}}", self._delete_webhook_message)
        self._add_operator_routes(app)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)  # type: ignore[no-any-return]
        rel = request.path[len(API_PREFIX) :]
        now = asyncio.get_running_loop().time()
        resp = await self._api(request, handler, rel, now)
        self.requests.append(RecordedRequest(request.method, rel, now, resp.status))
        if resp.status == 429:
            self.count_429 += 1
        self._bump()
        return resp

    async def _api(
        self, request: web.Request, handler: Callable[[web.Request], Any], rel: str, now: float
    ) -> web.StreamResponse:
        route = request.match_info.route.resource
        if route is None or request.match_info.http_exception is not None:
            log.warning("fake discord: no endpoint for %s %s", request.method, rel)
            exc = request.match_info.http_exception
            return _error(exc.status if exc is not None else 404)
        bucket = self._bucket(request, route.canonical)
        exempt = rel.startswith(("/interactions/", "/webhooks/"))
        if self.proxy_limit is not None and not exempt:
            retry_after = self._take_proxy(now)
            if retry_after is not None:
                return self._proxy_rate_limited(retry_after, now, rel)
        failure = self._take_failure(request.method, rel)
        if failure is not None:
            return self._failure_response(failure, bucket.headers(now))
        if not exempt:
            retry = self._take_global(now)
            if retry is not None:
                return self._rate_limited(retry, is_global=True, headers={"X-RateLimit-Global": "true"})
            if request.headers.get("Authorization") != f"Bot {self.token}":
                return _error(401, headers=bucket.headers(now))
        if not bucket.take(now):
            retry = _ceil_ms(bucket.reset_at - now)
            return self._rate_limited(retry, is_global=False, headers=bucket.headers(now))
        try:
            resp: web.StreamResponse = await handler(request)
        except _Unknown as exc:
            resp = _error(404, exc.code, exc.message)
        except web.HTTPException as exc:
            resp = _error(exc.status)
        resp.headers.update(bucket.headers(now))
        return resp

    def _bucket(self, request: web.Request, template: str) -> _Bucket:
        info = request.match_info
        major = "/".join(
            info.get(k, "") for k in ("channel_id", "guild_id", "app_id", "token", "interaction_id")
        )
        route_key = f"{request.method} {template}"
        key = (route_key, major)
        bucket = self._buckets.get(key)
        if bucket is None:
            digest = hashlib.sha1(route_key.encode()).hexdigest()[:16]
            if route_key == f"POST {API_PREFIX}/channels/{{channel_id}}/messages":
                bucket = _Bucket(self.bucket_limit, self.bucket_window, digest)
            elif route_key == f"PATCH {API_PREFIX}/channels/{{channel_id}}/messages/{{message_id}}":
                bucket = _Bucket(self.edit_bucket_limit, self.edit_bucket_window, digest)
            else:
                bucket = _Bucket(ROUTE_LIMIT, ROUTE_WINDOW, digest)
            self._buckets[key] = bucket
        return bucket

    def _take_global(self, now: float) -> float | None:
        while self._global_hits and self._global_hits[0] <= now - 1.0:
            self._global_hits.popleft()
        if len(self._global_hits) >= self.global_limit:
            return _ceil_ms(self._global_hits[0] + 1.0 - now)
        self._global_hits.append(now)
        return None

    def _take_failure(self, method: str, rel: str) -> _Failure | None:
        for failure in self._failures:
            if failure.method == method and failure.path_contains in rel:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _failure_response(self, failure: _Failure, headers: dict[str, str]) -> web.Response:
        if failure.status == 429:
            return self._rate_limited(failure.retry_after, is_global=False, headers=headers)
        return _error(failure.status, headers=headers)

    @staticmethod
    def _rate_limited(retry_after: float, *, is_global: bool, headers: dict[str, str]) -> web.Response:
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        resp = _json(body, 429, headers)
        # discord.py only retries a 429 that came through Discord's proxy (Via) with a JSON body.
        resp.headers["Via"] = "1.1 google"
        resp.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        resp.headers["X-RateLimit-Scope"] = "global" if is_global else "user"
        return resp

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
        if request.content_type.startswith("multipart/"):
            payload: dict[str, Any] = {}
            files: list[tuple[str, bytes]] = []
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                raw = bytes(await part.read())
                if part.name == "payload_json":
                    payload = json.loads(raw)
                elif part.filename is not None:
                    files.append((part.filename, raw))
            return payload, files
        raw = await request.read()
        return (json.loads(raw) if raw else {}), []

    @staticmethod
    def _invalid(
        payload: dict[str, Any], files: list[tuple[str, bytes]], *, edit: bool = False
    ) -> web.Response | None:
        content = payload.get("content") or ""
        embeds = payload.get("embeds") or []
        if not edit and not content and not embeds and not files and not payload.get("components"):
            return _error(400, 50006, "Cannot send an empty message")
        if len(content) > 2000:
            return _error(400, errors={"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}})
        if len(embeds) > 10 or any(_embed_too_long(e) for e in embeds):
            return _error(400, errors={"embeds": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}})
        if sum(len(discord.Embed.from_dict(e)) for e in embeds) > 6000:
            return _error(400, errors={"embeds": {"_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED"}]}})
        if any(len(data) > ATTACHMENT_SIZE_LIMIT for _, data in files):
            return _error(413, 40005, "Request entity too large")
        return None

    def _message_object(
        self,
        message_id: int,
        channel_id: int,
        payload: dict[str, Any],
        files: list[tuple[str, bytes]],
        *,
        msg_type: int = 0,
        flags: int = 0,
        webhook: bool = False,
    ) -> dict[str, Any]:
        channel = self.channel(channel_id)
        attachments = []
        for filename, data in files:
            aid = snowflake()
            url = f"{self.http_url}/attachments/{channel_id}/{aid}/{filename}"
            attachments.append(
                {"id": str(aid), "filename": filename, "size": len(data), "url": url, "proxy_url": url}
            )
        obj: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "type": msg_type,
            "content": payload.get("content") or "",
            "author": user_payload(self.bot_user_id, self.bot_name, bot=True),
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": payload.get("embeds") or [],
            "components": payload.get("components") or [],
            "pinned": False,
            "flags": flags,
        }
        if channel is not None and channel.guild_id is not None:
            obj["guild_id"] = str(channel.guild_id)
        if webhook:
            obj["webhook_id"] = str(self.application_id)
            obj["application_id"] = str(self.application_id)
        if payload.get("nonce") is not None:
            obj["nonce"] = payload["nonce"]
        return obj

    # REST handlers: identity

    async def _get_gateway(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _get_me(self, request: web.Request) -> web.Response:
        me = user_payload(self.bot_user_id, self.bot_name, bot=True)
        me.update(verified=True, mfa_enabled=False, flags=0)
        return _json(me)

    async def _get_application(self, request: web.Request) -> web.Response:
        return _json(
            {
                "id": str(self.application_id),
                "name": self.bot_name,
                "description": "",
                "icon": None,
                "bot_public": self.bot_public,
                "bot_require_code_grant": False,
                "owner": user_payload(self.owner_user_id, "owner"),
                "verify_key": "0" * 64,
                "team": None,
                "flags": self.application_flags,
                "bot": user_payload(self.bot_user_id, self.bot_name, bot=True),
            }
        )

    async def _create_dm(self, request: web.Request) -> web.Response:
        payload, _ = await self._read_body(request)
        user_id = int(payload["recipient_id"])
        channel = self.dm_channels.get(user_id)
        if channel is None:
            channel = self.dm_channels[user_id] = FakeChannel(snowflake(), "", 1)
        data = {"id": str(channel.id), "type": 1, "recipients": [user_payload(user_id, f"user{user_id}")]}
        data["last_message_id"] = None
        return _json(data)

    # REST handlers: commands

    async def _put_commands(self, request: web.Request) -> web.Response:
        if int(request.match_info["app_id"]) != self.application_id:
            return _error(403, 50001, "Missing Access")
        scope = int(request.match_info["guild_id"]) if "guild_id" in request.match_info else None
        if scope is not None and scope not in self.guilds:
            return _error(403, 50001, "Missing Access")
        payload = json.loads(await request.read())
        self.command_put_count += 1
        self.synced_commands[scope] = payload
        return _json(self._register(scope, payload))

    def _register(self, scope: int | None, payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
        echoed = []
        for cmd in payload:
            key = (scope, cmd["name"], int(cmd.get("type", 1)))
            cmd_id = self._command_ids.setdefault(key, snowflake())
            perms = cmd.get("default_member_permissions")
            echoed.append(
                {
                    "description": "",
                    "options": [],
                    "dm_permission": True,
                    "nsfw": False,
                    **cmd,
                    "id": str(cmd_id),
                    "application_id": str(self.application_id),
                    "version": str(snowflake()),
                    "type": int(cmd.get("type", 1)),
                    "default_member_permissions": None if perms is None else str(perms),
                    **({"guild_id": str(scope)} if scope is not None else {}),
                }
            )
        self._registered[scope] = echoed
        return echoed

    async def _get_commands(self, request: web.Request) -> web.Response:
        scope = int(request.match_info["guild_id"]) if "guild_id" in request.match_info else None
        return _json(self._registered.get(scope, []))

    # REST handlers: channels, guilds

    def _channel_or_404(self, request: web.Request) -> FakeChannel:
        channel = self.channel(int(request.match_info["channel_id"]))
        if channel is None:
            raise _Unknown(10003, "Unknown Channel")
        return channel

    def _guild_or_404(self, request: web.Request) -> FakeGuild:
        guild = self.guilds.get(int(request.match_info["guild_id"]))
        if guild is None:
            raise _Unknown(10004, "Unknown Guild")
        return guild

    async def _get_channel(self, request: web.Request) -> web.Response:
        return _json(self._channel_or_404(request).payload())

    async def _get_guild(self, request: web.Request) -> web.Response:
        data = self._guild_or_404(request).payload()
        for key in ("channels", "members", "threads", "voice_states", "presences"):
            data.pop(key, None)
        return _json(data)

    async def _get_guild_channels(self, request: web.Request) -> web.Response:
        return _json([c.payload() for c in self._guild_or_404(request).channels.values() if not c.is_thread])

    async def _get_guild_roles(self, request: web.Request) -> web.Response:
        return _json([r.payload() for r in self._guild_or_404(request).roles.values()])

    async def _get_member(self, request: web.Request) -> web.Response:
        member = self._guild_or_404(request).members.get(int(request.match_info["user_id"]))
        if member is None:
            raise _Unknown(10007, "Unknown Member")
        return _json(member.payload())

    async def _typing(self, request: web.Request) -> web.Response:
        self._channel_or_404(request)
        return _no_content()

    # REST handlers: messages

    async def _create_message(self, request: web.Request) -> web.Response:
        channel = self._channel_or_404(request)
        payload, files = await self._read_body(request)
        refused = self._refused(channel, files)
        if refused is not None:
            return refused
        invalid = self._invalid(payload, files)
        if invalid is not None:
            return invalid
        earlier = self._nonce_seen(channel.id, payload)
        if earlier is not None:
            return _json(earlier.message)
        message_id = snowflake()
        obj = self._message_object(message_id, channel.id, payload, files)
        posted = PostedMessage(
            id=message_id,
            channel_id=channel.id,
            content=obj["content"],
            allowed_mentions=payload.get("allowed_mentions"),
            attachments=files,
            at=asyncio.get_running_loop().time(),
            payload=payload,
            embeds=obj["embeds"],
            message=obj,
        )
        self._messages.setdefault(channel.id, []).append(posted)
        self._message_index[message_id] = posted
        self._nonce_keep(channel.id, payload, posted)
        if not self.stall_creates.is_set():
            # The message exists, but its answer is held back: a client killed now never learns it was made.
            self.stalled += 1
            self._bump()
            await self.stall_creates.wait()
        return _json(obj)

    # -- discord helper: what Discord answers a bot that lacks a channel permission ------------------------------

    def _refused(self, channel: FakeChannel, files: list[tuple[str, bytes]]) -> web.Response | None:
        """403 Missing Access (50001) without View Channel; 403 Missing Permissions (50013) without Send
        Messages (Send Messages in Threads in a thread), or without Attach Files for a message with a file."""
        guild = self.guilds.get(channel.guild_id) if channel.guild_id is not None else None
        if guild is None:
            return None
        perms = guild.channel_permissions(channel.id, self.bot_user_id)
        if not perms & VIEW_CHANNEL:
            return _error(403, 50001, "Missing Access")
        send = SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES
        if not perms & send or (files and not perms & ATTACH_FILES):
            return _error(403, 50013, "Missing Permissions")
        return None

    # -- end of discord helper --------------------------------------------------------------------------------

    def _posted_or_404(self, request: web.Request) -> PostedMessage:
        self._channel_or_404(request)
        posted = self._message_index.get(int(request.match_info["message_id"]))
        if posted is None or posted.deleted or posted.channel_id != int(request.match_info["channel_id"]):
            raise _Unknown(10008, "Unknown Message")
        return posted

    async def _get_message(self, request: web.Request) -> web.Response:
        return _json(self._posted_or_404(request).message)

    async def _edit_message(self, request: web.Request) -> web.Response:
        posted = self._posted_or_404(request)
        payload, files = await self._read_body(request)
        invalid = self._invalid(payload, files, edit=True)
        if invalid is not None:
            return invalid
        if posted.id in self.refuse_edits or (
            self.max_edits is not None and len(posted.edits) >= self.max_edits
        ):
            posted.refused_edits += 1
            return _error(
                400, 30046, "Maximum number of edits to messages older than 1 hour reached. Try again later"
            )
        obj = posted.message
        if "content" in payload:
            posted.content = obj["content"] = payload["content"] or ""
        if "embeds" in payload:
            posted.embeds = obj["embeds"] = payload["embeds"] or []
        if "components" in payload:
            obj["components"] = payload["components"] or []
        obj["edited_timestamp"] = iso_now()
        posted.edits.append({**payload, "files": files})
        return _json(obj)

    async def _delete_message(self, request: web.Request) -> web.Response:
        self._posted_or_404(request).deleted = True
        return _no_content()

    def _reaction_target(self, request: web.Request) -> tuple[int, int, str]:
        channel = self._channel_or_404(request)
        message_id = int(request.match_info["message_id"])
        if message_id not in self._message_index and message_id not in self.user_messages:
            raise _Unknown(10008, "Unknown Message")
        return channel.id, message_id, request.match_info["emoji"]

    async def _add_reaction(self, request: web.Request) -> web.Response:
        self.reactions.append(self._reaction_target(request))
        return _no_content()

    async def _remove_reaction(self, request: web.Request) -> web.Response:
        target = self._reaction_target(request)
        if target in self.reactions:
            self.reactions.remove(target)
        return _no_content()

    # REST handlers: interactions

    async def _callback(self, request: web.Request) -> web.Response:
        inter = self._interactions_by_id.get(int(request.match_info["interaction_id"]))
        payload, files = await self._read_body(request)
        if inter is None or inter.token != request.match_info["token"]:
            return _error(404, 10062, "Unknown interaction")
        now = asyncio.get_running_loop().time()
        if now - inter.created > self.interaction_deadline and not inter.responses:
            inter.rejected.append((404, payload))
            return _error(404, 10062, "Unknown interaction")
        if inter.responses:
            inter.rejected.append((400, payload))
            return _error(400, 40060, "Interaction has already been acknowledged.")
        kind = int(payload.get("type", 0))
        data = payload.get("data") or {}
        if kind in (4, 7):
            invalid = self._invalid(data, files)
            if invalid is not None:
                inter.rejected.append((invalid.status, payload))
                return invalid
        if kind == 8 and _bad_choices(data.get("choices")):
            inter.rejected.append((400, payload))
            return _error(400, errors={"data": {"choices": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH"}]}}})
        inter.responses.append({**payload, "files": files})
        flags = int(data.get("flags") or 0)
        body: dict[str, Any] = {
            "interaction": {
                "id": str(inter.id),
                "type": inter.type,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            },
            "resource": {"type": kind},
        }
        if kind in (4, 5):
            message_id = snowflake()
            message_flags = (flags & EPHEMERAL) | (128 if kind == 5 else 0)  # 128 = LOADING
            channel_id = int(inter.payload["channel_id"])
            content = data if kind == 4 else {}
            obj = self._message_object(
                message_id, channel_id, content, files, msg_type=20, flags=message_flags
            )
            obj["webhook_id"] = str(self.application_id)
            obj["application_id"] = str(self.application_id)
            inter.original = obj
            body["interaction"]["response_message_id"] = str(message_id)
            body["resource"]["message"] = obj
        if kind in (4, 7):
            inter.answers.append(Answer("response", data, files, now))
        if kind in (6, 7):
            self._update_component_message(inter, kind, data)
        return _json(body)

    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        inter = self._interactions_by_token.get(request.match_info["token"])
        if inter is None or int(request.match_info["app_id"]) != self.application_id or not inter.responses:
            raise _Unknown(10015, "Unknown Webhook")
        return inter

    async def _followup(self, request: web.Request) -> web.Response:
        inter = self._webhook_interaction(request)
        payload, files = await self._read_body(request)
        invalid = self._invalid(payload, files)
        if invalid is not None:
            return invalid
        record = {**payload, "files": files}
        inter.followups.append(record)
        inter.answers.append(Answer("followup", record, files, asyncio.get_running_loop().time()))
        flags = int(payload.get("flags") or 0)
        message_id = snowflake()
        obj = self._message_object(
            message_id, int(inter.payload["channel_id"]), payload, files, flags=flags, webhook=True
        )
        inter.webhook_messages[message_id] = obj
        return _json(obj)

    def _webhook_message(self, request: web.Request) -> tuple[FakeInteraction, dict[str, Any]]:
        inter = self._webhook_interaction(request)
        raw = request.match_info["message_id"]
        if raw == "@original":
            if inter.original is None or inter.original_deleted:
                raise _Unknown(10008, "Unknown Message")
            return inter, inter.original
        obj = inter.webhook_messages.get(int(raw))
        if obj is None:
            raise _Unknown(10008, "Unknown Message")
        return inter, obj

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        return _json(self._webhook_message(request)[1])

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        inter, obj = self._webhook_message(request)
        payload, files = await self._read_body(request)
        invalid = self._invalid(payload, files, edit=True)
        if invalid is not None:
            return invalid
        if "content" in payload:
            obj["content"] = payload["content"] or ""
        if "embeds" in payload:
            obj["embeds"] = payload["embeds"] or []
        if "components" in payload:
            obj["components"] = payload["components"] or []
        obj["flags"] = int(obj.get("flags") or 0) & ~128
        obj["edited_timestamp"] = iso_now()
        if request.match_info["message_id"] == "@original":
            record = {**payload, "files": files}
            inter.edits.append(record)
            inter.answers.append(Answer("edit", record, files, asyncio.get_running_loop().time()))
        return _json(obj)

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        inter, obj = self._webhook_message(request)
        if obj is inter.original:
            inter.original_deleted = True
        else:
            inter.webhook_messages.pop(int(obj["id"]), None)
        return _no_content()

    # -- the application and the bot's guilds, as `wingbeat check` and health checks read them --------------

    # Application settings from the developer portal (GET /oauth2/applications/@me): the "Public Bot" switch,
    # and flags such as GATEWAY_MESSAGE_CONTENT (1 << 19) or its _LIMITED variant (1 << 18).
    bot_public: bool = False
    # The intent enabled, as an operator who followed the README has it; 0 makes the gateway refuse a bot that
    # asks for message content (close code 4014), as Discord does.
    application_flags: int = APP_FLAG_MESSAGE_CONTENT
    # True: the gateway URL answers 503 (an outage), so discord.py keeps retrying without a session.
    refuse_gateway: bool = False

    def _add_operator_routes(self, app: web.Application) -> None:
        app.router.add_get(f"{API_PREFIX}/users/@me/guilds", self._get_my_guilds)

    async def _get_my_guilds(self, request: web.Request) -> web.Response:
        """Partial guilds the bot is in, by id, paged with `before`/`after`/`limit` (at most 200) as Discord does."""
        query = request.query
        try:
            limit = int(query.get("limit", "200"))
            before = int(query["before"]) if "before" in query else None
            after = int(query.get("after", "0"))
        except ValueError:
            return _error(400)
        if not 1 <= limit <= 200:
            return _error(400, errors={"limit": {"_errors": [{"code": "NUMBER_TYPE_MAX"}]}})
        ids = sorted(g for g in self.guilds if g > after and (before is None or g < before))
        ids = ids[-limit:] if before is not None and "after" not in query else ids[:limit]
        with_counts = query.get("with_counts", "false").lower() in ("1", "true")
        out = []
        for guild_id in ids:
            guild = self.guilds[guild_id]
            entry: dict[str, Any] = {
                "id": str(guild.id),
                "name": guild.name,
                "icon": None,
                "banner": None,
                "owner": next(iter(guild.members), None) == self.bot_user_id,
                "permissions": str(guild.computed_permissions(self.bot_user_id)),
                "features": [],
            }
            if with_counts:
                entry["approximate_member_count"] = len(guild.members)
                entry["approximate_presence_count"] = 0
            out.append(entry)
        return _json(out)


def _event_guild(event: str, data: dict[str, Any]) -> int | None:
    """The guild a dispatch belongs to (its shard delivers it), or None (DMs: shard 0)."""
    if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):
        return int(data["id"])
    raw = data.get("guild_id")
    return int(raw) if raw is not None else None


class _Unknown(Exception):
    """A Discord-style 404 with a JSON error code, raised from handlers."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
