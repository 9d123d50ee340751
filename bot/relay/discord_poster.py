"""The relay's one edge into discord.py: post a message (and maybe a file) to a channel by ID."""

from __future__ import annotations

import io

import aiohttp
import discord

from bot.relay.sender import ChannelGone, PostFailed, PostRejected


class DiscordPoster:
    """Posts through discord.py (which waits on Discord's rate-limit headers), with mentions off."""

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
            raise ChannelGone(f"Discord refused the channel (missing permissions, code {exc.code})") from None
        except discord.NotFound as exc:
            raise ChannelGone(f"the channel no longer exists (code {exc.code})") from None
        except discord.HTTPException as exc:
            if 400 <= exc.status < 500 and exc.status != 429:
                raise PostRejected(f"HTTP {exc.status}, code {exc.code}") from None
            raise PostFailed(f"Discord answered HTTP {exc.status}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PostFailed(f"could not reach Discord ({type(exc).__name__})") from None
