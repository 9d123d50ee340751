"""End-to-end rig: the real `WingbeatBot` logged into the fake Discord, driving the panel + Wings emulator."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.app import WingbeatBot
from bot.settings import Settings
from bot.wings.connection import Timing
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord, FakeInteraction, PostedMessage

GUILD = 900000000000000001
CONSOLE = 900000000000000002
OTHER = 900000000000000003
ADMIN_ROLE = 900000000000000004
ADMIN = 900000000000000005  # holds ADMIN_ROLE
USER = 900000000000000006  # no roles
OWNER = 900000000000000007  # holds a role with the Administrator permission, not ADMIN_ROLE
MODS = 900000000000000008  # that role
GUILD_OWNER = 900000000000000009
ADMINISTRATOR = 1 << 3
# A second guild: allowed in some tests (GUILD_IDS lists it), foreign in others.
GUILD2 = 900000000000000010
GUILD2_CONSOLE = 900000000000000011
GUILD2_ADMINS = 900000000000000012  # a role with the Administrator permission there
GUILD2_ADMIN = 900000000000000013  # erin, who holds it

# Short enough that nothing in a test waits long; long enough for a loaded CI machine.
TIMING = Timing(
    auth_timeout=3.0,
    open_timeout=3.0,
    backoff_min=0.05,
    backoff_max=0.3,
    lost_grace=0.5,
    gap_first_line=0.3,
    gap_quiet=0.15,
    power_timeout=5.0,
    command_window=0.5,
    logs_quiet=0.2,
    logs_max=2.0,
)


def build_world(fake: FakeDiscord) -> None:
    guild = fake.add_guild(GUILD, "Wingbeat Test")
    guild.add_role(ADMIN_ROLE, "Server admins")
    guild.add_role(MODS, "Mods", permissions=ADMINISTRATOR)
    guild.add_channel(CONSOLE, "console")
    guild.add_channel(OTHER, "other")
    guild.add_member(ADMIN, "alice", roles=[ADMIN_ROLE])
    guild.add_member(USER, "bob")
    guild.add_member(OWNER, "carol", roles=[MODS])
    # The fake names its first member the guild's owner, and the bot is added first; an owner has every
    # permission, which would hide permission checks on the bot. Make a separate member the owner.
    guild.add_member(GUILD_OWNER, "dana")
    guild.members = {GUILD_OWNER: guild.members.pop(GUILD_OWNER), **guild.members}


def build_second_guild(fake: FakeDiscord) -> None:
    """GUILD2 with #console2 and erin, who holds the Administrator permission there."""
    guild = fake.add_guild(GUILD2, "Another Server")
    guild.add_role(GUILD2_ADMINS, "Admins", permissions=ADMINISTRATOR)
    guild.add_channel(GUILD2_CONSOLE, "console2")
    guild.add_member(GUILD2_ADMIN, "erin", roles=[GUILD2_ADMINS])
    guild.add_member(GUILD_OWNER, "dana")
    guild.members = {GUILD_OWNER: guild.members.pop(GUILD_OWNER), **guild.members}


def settings_for(
    emu: Emulator,
    fake: FakeDiscord,
    tmp_path: Path,
    *,
    panel_url: str | None = None,
    guild_ids: tuple[int, ...] = (GUILD,),
    console_input: bool = False,
) -> Settings:
    url = panel_url or emu.panel_url
    return Settings(
        discord_token=fake.token,
        panel_url=url,
        panel_api_key=emu.api_key,
        admin_role_ids=frozenset({ADMIN_ROLE}),
        guild_ids=guild_ids,
        database_url=f"sqlite:///{tmp_path / 'wingbeat.sqlite3'}",
        wings_origin=url,
        console_input=console_input,
    )


def make_bot(settings: Settings) -> WingbeatBot:
    return WingbeatBot(
        settings,
        timing=TIMING,
        relay_interval=0.2,
        catalog_refresh=30.0,
        idle_close=5.0,
        panel_timeout=3.0,
        guild_ready_timeout=0.05,
    )


@dataclass
class Rig:
    emu: Emulator
    fake: FakeDiscord
    bot: WingbeatBot

    async def run(
        self,
        command: str,
        options: dict[str, Any] | None = None,
        *,
        user: int = ADMIN,
        subcommand: str | None = None,
        channel: int = CONSOLE,
        timeout: float = 8.0,
    ) -> FakeInteraction:
        """Invoke a slash command in the test guild and wait for its final answer."""
        inter = await self.fake.invoke(GUILD, channel, user, command, options, subcommand=subcommand)
        await inter.wait_done(timeout)
        return inter

    async def connected(self, identifier: str, timeout: float = 5.0) -> None:
        """Wait until the bot's Wings socket for a server is authenticated (lines before it are not relayed)."""
        conn = self.bot.manager.peek(identifier)
        assert conn is not None, f"no connection for {identifier}"
        await conn.wait_ready(timeout)

    async def wait_for_text(self, channel_id: int, needle: str, timeout: float = 5.0) -> list[PostedMessage]:
        """Messages in a channel once one of them (content or attachment) holds `needle`."""

        def seen() -> bool:
            return any(needle in message_text(m) for m in self.fake.messages(channel_id))

        await self.fake.wait_for(seen, timeout, f"{needle!r} in channel {channel_id}")
        return self.fake.messages(channel_id)


def block_lines(content: str) -> list[str]:
    """The console lines shown in a message's code block."""
    start = content.find("```")
    if start < 0:
        return []
    body = content[content.index("\n", start) + 1 : content.rindex("```")]
    return body.rstrip("\n").split("\n") if body.strip() else []


def posted_lines(messages: list[PostedMessage]) -> list[str]:
    """Every console line a channel received: the attachment when there is one, else the block."""
    lines: list[str] = []
    for msg in messages:
        if msg.attachments:
            lines.extend(msg.attachments[0][1].decode().splitlines())
        else:
            lines.extend(block_lines(msg.content))
    return lines


def message_text(message: PostedMessage) -> str:
    parts = [message.content]
    parts.extend(data.decode("utf-8", "replace") for _, data in message.attachments)
    return "\n".join(parts)


@contextlib.asynccontextmanager
async def running_bot(
    emu: Emulator, fake: FakeDiscord, settings: Settings, *, ready_timeout: float = 8.0
) -> AsyncIterator[Rig]:
    """Start the bot from its real code and stop it cleanly at the end."""
    bot = make_bot(settings)
    async with fake.run_client(bot, ready_timeout=ready_timeout):
        yield Rig(emu, fake, bot)


def unused_port() -> int:
    """A local port with nothing listening (for a panel that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
