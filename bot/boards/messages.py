"""The boards' one edge into discord.py: post, edit and delete a board's message, errors read by their code."""

from __future__ import annotations

import aiohttp
import discord

from bot.boards import layout
from bot.boards.render import Rendered
from bot.relay.discord_poster import retry_after_header

UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
TOO_MANY_EDITS = 30046  # "maximum number of edits to messages older than 1 hour reached"


class MessageGone(Exception):
    """The message or its channel no longer exists (10008, 10003): the board must be dropped."""


class EditRefused(Exception):
    """Discord will not edit this message any more (30046): post the board anew."""


class MessageFailed(Exception):
    """A request that may work later (lost access, 5xx, network, rate limit beyond discord.py's retries)."""


class MessageThrottled(MessageFailed):
    """Discord, or a rate-limiting proxy in front of it, answered 429 and asked to wait `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.2f} s")
        self.retry_after = retry_after


class BoardMessages:
    """Posts, edits and deletes board messages through discord.py (which waits on Discord's rate-limit headers)."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    def _channel(self, channel_id: int) -> discord.PartialMessageable:
        return self._client.get_partial_messageable(channel_id)

    async def post(self, channel_id: int, rendered: Rendered) -> int:
        """Post a new message; its ID."""
        try:
            message = await self._channel(channel_id).send(
                embed=layout.embed(rendered), view=layout.view(rendered)
            )
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _translate(exc) from None
        return message.id

    async def edit(self, channel_id: int, message_id: int, rendered: Rendered) -> None:
        try:
            await (
                self._channel(channel_id)
                .get_partial_message(message_id)
                .edit(embed=layout.embed(rendered), view=layout.view(rendered))
            )
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _translate(exc) from None

    async def exists(self, channel_id: int, message_id: int) -> bool:
        """Whether the message is still there; False only when Discord says it or its channel is gone."""
        try:
            await self._channel(channel_id).fetch_message(message_id)
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            if isinstance(_translate(exc), MessageGone):
                return False
            raise _translate(exc) from None
        return True

    async def delete(self, channel_id: int, message_id: int) -> None:
        """Delete a message; one that is already gone counts as deleted."""
        try:
            await self._channel(channel_id).get_partial_message(message_id).delete()
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = _translate(exc)
            if not isinstance(error, MessageGone):
                raise error from None


def _translate(exc: BaseException) -> Exception:
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429:  # a proxy's 429, which discord.py raises instead of waiting it out
            return MessageThrottled(retry_after_header(exc))
        if exc.code == UNKNOWN_MESSAGE:
            return MessageGone("the message was deleted")
        if exc.code == UNKNOWN_CHANNEL:
            return MessageGone("the channel was deleted")
        if exc.code == TOO_MANY_EDITS:
            return EditRefused("Discord allows no more edits of this message")
        if isinstance(exc, discord.Forbidden):
            return MessageFailed(f"Discord refused access to the channel (code {exc.code})")
        return MessageFailed(f"Discord answered HTTP {exc.status} (code {exc.code})")
    return MessageFailed(f"could not reach Discord ({type(exc).__name__})")
