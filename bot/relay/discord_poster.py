"""The relay's one edge into discord.py: post a message (and maybe a file) to a channel by ID."""

from __future__ import annotations

import contextlib
import io

import aiohttp
import discord

from bot.relay.resume import new_nonce
from bot.relay.sender import ChannelGone, FileRefused, PostFailed, PostRejected, PostThrottled

# Discord's JSON error codes that decide what happens to a link (docs/behaviour.md, "The console mirror").
UNKNOWN_CHANNEL = 10003
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
DEFAULT_RETRY_AFTER = 1.0  # a 429 that says nothing about when to come back
MAX_RETRY_AFTER = 60.0


async def retry_after(exc: discord.HTTPException) -> float:
    """How long a 429 asks to wait: the body's `retry_after`, else the `Retry-After` header, else 1 s.

    discord.py retries a 429 itself only when it came through Discord's own edge (a `Via` header); any other
    429, such as a rate-limiting proxy's, is raised as is. The body was read already and stays cached.
    """
    seconds: float | None = None
    with contextlib.suppress(aiohttp.ClientError, ValueError, TypeError, AttributeError):
        body = await exc.response.json(content_type=None)
        if isinstance(body, dict) and body.get("retry_after") is not None:
            seconds = float(body["retry_after"])
    return retry_after_header(exc) if seconds is None else _bounded(seconds)


def retry_after_header(exc: discord.HTTPException) -> float:
    """How long a 429 asks to wait by its `Retry-After` header (1 s when it has none)."""
    seconds: float | None = None
    with contextlib.suppress(KeyError, ValueError, TypeError, AttributeError):
        seconds = float(exc.response.headers["Retry-After"])
    return _bounded(seconds)


def _bounded(seconds: float | None) -> float:
    if seconds is None or not seconds >= 0:
        return DEFAULT_RETRY_AFTER
    return min(seconds, MAX_RETRY_AFTER)


class DiscordPoster:
    """Posts through discord.py (which waits on Discord's rate-limit headers), with mentions off.

    Discord's refusals are read by their JSON code: an unknown channel or lost access stops the link
    (`ChannelGone`), a missing permission for a file only drops the file (`FileRefused`). A 429 that discord.py
    did not wait out itself (a proxy's) becomes `PostThrottled`, to be tried again later.
    """

    def __init__(self, client: discord.Client) -> None:
        self._client = client
        self._none = discord.AllowedMentions.none()

    async def post(
        self, channel_id: int, content: str, attachment: tuple[str, bytes] | None, nonce: str | None = None
    ) -> None:
        channel = self._client.get_partial_messageable(channel_id)
        # discord.py sends a nonce with `enforce_nonce`: the same nonce again within minutes returns the first
        # message instead of posting a second.
        nonce = nonce if nonce is not None else new_nonce()
        try:
            if attachment is None:
                await channel.send(content, allowed_mentions=self._none, nonce=nonce)
            else:
                name, data = attachment
                await channel.send(
                    content,
                    file=discord.File(io.BytesIO(data), filename=name),
                    allowed_mentions=self._none,
                    nonce=nonce,
                )
        except discord.Forbidden as exc:
            if exc.code == MISSING_PERMISSIONS and attachment is not None:
                raise FileRefused() from None
            if exc.code == MISSING_PERMISSIONS:
                if isinstance(self._client.get_channel(channel_id), discord.Thread):
                    raise ChannelGone(
                        "Wingbeat lacks the Send Messages in Threads permission in the thread"
                    ) from None
                raise ChannelGone("Wingbeat lacks the Send Messages permission in the channel") from None
            if exc.code == MISSING_ACCESS:
                raise ChannelGone("Wingbeat lost access to the channel (View Channel)") from None
            if not exc.code:  # not Discord's own JSON (a proxy in between): may work later
                raise PostFailed("Discord answered HTTP 403 without an error code") from None
            raise ChannelGone(f"Discord refused the channel (code {exc.code})") from None
        except discord.NotFound as exc:
            if exc.code == UNKNOWN_CHANNEL:
                raise ChannelGone("the channel no longer exists") from None
            raise PostFailed(f"Discord answered HTTP 404 (code {exc.code})") from None
        except discord.HTTPException as exc:
            if exc.status == 429:
                raise PostThrottled(await retry_after(exc)) from None
            if 400 <= exc.status < 500:
                raise PostRejected(f"HTTP {exc.status}, code {exc.code}") from None
            raise PostFailed(f"Discord answered HTTP {exc.status}") from None
        except discord.RateLimited as exc:  # a wait longer than discord.py was told to sleep through
            raise PostThrottled(min(exc.retry_after, MAX_RETRY_AFTER)) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PostFailed(f"could not reach Discord ({type(exc).__name__})") from None
