"""The relay's one edge into discord.py: post a message (and maybe a file) to a channel by ID."""

from __future__ import annotations

import io

import aiohttp
import discord

from bot.relay.sender import ChannelGone, FileRefused, PostFailed, PostRejected

# Discord's JSON error codes that decide what happens to a link (docs/behaviour.md, "The console mirror").
UNKNOWN_CHANNEL = 10003
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013


class DiscordPoster:
    """Posts through discord.py (which waits on Discord's rate-limit headers), with mentions off.

    Discord's refusals are read by their JSON code: an unknown channel or lost access stops the link
    (`ChannelGone`), a missing permission for a file only drops the file (`FileRefused`).
    """

    def __init__(self, client: discord.Client) -> None:
        self._client = client
        self._none = discord.AllowedMentions.none()

    async def post(self, channel_id: int, content: str, attachment: tuple[str, bytes] | None) -> None:
        channel = self._client.get_partial_messageable(channel_id)
        try:
            if attachment is None:
                await channel.send(content, allowed_mentions=self._none)
            else:
                name, data = attachment
                await channel.send(
                    content, file=discord.File(io.BytesIO(data), filename=name), allowed_mentions=self._none
                )
        except discord.Forbidden as exc:
            if exc.code == MISSING_PERMISSIONS and attachment is not None:
                raise FileRefused() from None
            if exc.code == MISSING_PERMISSIONS:
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
            if 400 <= exc.status < 500 and exc.status != 429:
                raise PostRejected(f"HTTP {exc.status}, code {exc.code}") from None
            raise PostFailed(f"Discord answered HTTP {exc.status}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PostFailed(f"could not reach Discord ({type(exc).__name__})") from None
