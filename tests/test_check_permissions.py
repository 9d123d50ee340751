"""The bot's channel permissions computed from REST payloads, checked against discord.py's own resolution."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import pytest

from bot.check.channel_permissions import Overwrite, missing, resolve, timed_out

GUILD = 1000
BOT = 2000
OWNER = 3000
CHANNEL = 4000
ROLES = [5001, 5002, 5003]
VIEW, SEND, ATTACH, HISTORY = 1 << 10, 1 << 11, 1 << 15, 1 << 16
SEND_IN_THREADS = 1 << 38
ADMINISTRATOR = 1 << 3
EVERYONE = VIEW | SEND | ATTACH | HISTORY


def ours(
    role_perms: dict[int, int],
    member_roles: list[int],
    overwrites: list[dict[str, Any]],
    *,
    owner: int = OWNER,
    thread: bool = False,
    is_timed_out: bool = False,
) -> discord.Permissions:
    return resolve(
        guild_id=GUILD,
        owner_id=owner,
        member_id=BOT,
        member_roles=member_roles,
        role_permissions=role_perms,
        overwrites=[Overwrite.from_payload(o) for o in overwrites],
        thread=thread,
        is_timed_out=is_timed_out,
    )


def discord_py(
    role_perms: dict[int, int], member_roles: list[int], overwrites: list[dict[str, Any]]
) -> discord.Permissions:
    """discord.py's `TextChannel.permissions_for` on objects built from the same payloads."""
    state = _client()._connection
    payload: Any = {
        "id": str(GUILD),
        "name": "g",
        "owner_id": str(OWNER),
        "roles": [
            {"id": str(rid), "name": str(rid), "permissions": str(p), "position": i}
            for i, (rid, p) in enumerate(role_perms.items())
        ],
        "channels": [
            {
                "id": str(CHANNEL),
                "type": 0,
                "name": "c",
                "position": 0,
                "permission_overwrites": overwrites,
            }
        ],
    }
    guild = state._add_guild_from_data(payload)
    user = {"id": str(BOT), "username": "b", "discriminator": "0", "avatar": None}
    member_payload: Any = {"user": user, "roles": [str(r) for r in member_roles], "flags": 0}
    member = discord.Member(data=member_payload, guild=guild, state=state)
    channel = guild.get_channel(CHANNEL)
    assert isinstance(channel, discord.TextChannel)
    return channel.permissions_for(member)


_CLIENT: list[discord.Client] = []


def _client() -> discord.Client:
    # One client for every world: only its state is used, to build guilds from payloads (never started).
    if not _CLIENT:
        _CLIENT.append(discord.Client(intents=discord.Intents(guilds=True)))
    return _CLIENT[0]


def overwrite(target: int, allow: int = 0, deny: int = 0, *, member: bool = False) -> dict[str, Any]:
    return {"id": str(target), "type": 1 if member else 0, "allow": str(allow), "deny": str(deny)}


def test_random_worlds_agree_with_discord_py() -> None:
    rng = random.Random(20240917)
    interesting = [VIEW, SEND, ATTACH, HISTORY, ADMINISTRATOR, 1 << 13, 1 << 14]

    def bits() -> int:
        return sum(b for b in interesting if rng.random() < 0.35) & ~(
            ADMINISTRATOR if rng.random() < 0.8 else 0
        )

    for _ in range(300):
        role_perms = {GUILD: bits(), **{r: bits() for r in ROLES}}
        member_roles = [r for r in ROLES if rng.random() < 0.5]
        overwrites = []
        if rng.random() < 0.7:
            overwrites.append(overwrite(GUILD, bits(), bits()))
        for r in ROLES:
            if rng.random() < 0.4:
                overwrites.append(overwrite(r, bits(), bits()))
        if rng.random() < 0.3:
            overwrites.append(overwrite(BOT, bits(), bits(), member=True))
        expected = discord_py(role_perms, member_roles, overwrites)
        got = ours(role_perms, member_roles, overwrites)
        # discord.py also strips voice permissions from text channels; they do not matter to a console link.
        text_only = ~discord.Permissions.voice().value
        assert got.value & text_only == expected.value & text_only, (role_perms, member_roles, overwrites)
        assert missing(got) == missing(expected)


def test_the_usual_cases() -> None:
    everyone = {GUILD: EVERYONE}
    assert missing(ours(everyone, [], [])) == ()
    assert missing(ours(everyone, [], [overwrite(GUILD, deny=ATTACH)])) == ("Attach Files",)
    # A role overwrite beats the @everyone one; the member's own overwrite beats both.
    allowed = [overwrite(GUILD, deny=ATTACH), overwrite(ROLES[0], allow=ATTACH)]
    assert missing(ours(everyone, [ROLES[0]], allowed)) == ()
    assert missing(ours(everyone, [ROLES[0]], [*allowed, overwrite(BOT, deny=ATTACH, member=True)])) == (
        "Attach Files",
    )
    # No Send Messages: no Attach Files either. No View Channel: nothing at all.
    assert missing(ours(everyone, [], [overwrite(GUILD, deny=SEND)])) == ("Send Messages", "Attach Files")
    assert missing(ours(everyone, [], [overwrite(GUILD, deny=VIEW)])) == (
        "View Channel",
        "Send Messages",
        "Attach Files",
        "Read Message History",
    )
    # The owner and Administrator ignore every overwrite.
    assert missing(ours(everyone, [], [overwrite(GUILD, deny=VIEW)], owner=BOT)) == ()
    assert (
        missing(ours({**everyone, ROLES[0]: ADMINISTRATOR}, [ROLES[0]], [overwrite(GUILD, deny=VIEW)])) == ()
    )


def test_threads_need_send_messages_in_threads() -> None:
    perms = {GUILD: EVERYONE}
    assert missing(ours(perms, [], [], thread=True), thread=True) == (
        "Send Messages in Threads",
        "Attach Files",
    )
    perms = {GUILD: EVERYONE | SEND_IN_THREADS}
    assert missing(ours(perms, [], [overwrite(GUILD, deny=SEND)], thread=True), thread=True) == ()


def test_a_timed_out_bot_may_only_view_and_read() -> None:
    perms = ours({GUILD: EVERYONE}, [], [], is_timed_out=True)
    assert missing(perms) == ("Send Messages", "Attach Files")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert timed_out({"communication_disabled_until": (now + timedelta(minutes=5)).isoformat()}, now)
    assert not timed_out({"communication_disabled_until": (now - timedelta(minutes=5)).isoformat()}, now)
    assert not timed_out({"communication_disabled_until": None}, now)


@pytest.mark.parametrize("thread", [False, True])
def test_names_are_what_discord_shows(thread: bool) -> None:
    names = missing(discord.Permissions.none(), thread=thread)
    assert names[0] == "View Channel" and names[-1] == "Read Message History"
