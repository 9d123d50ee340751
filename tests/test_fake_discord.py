"""A real discord.py client against the fake Discord: proves the fake is faithful enough to test with."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_discord_models import ATTACH_FILES, VIEW_CHANNEL

GUILD = 810000000000000001
CONSOLE = 810000000000000002
OTHER = 810000000000000003
ADMIN_ROLE = 810000000000000004
ADMIN = 810000000000000005
USER = 810000000000000006
MANAGE_GUILD = 1 << 5


class _Bot(commands.Bot):
    """A small bot exercising what Wingbeat's cogs use: replies, deferrals, files, autocomplete."""

    def __init__(self, *, sync_guild: int | None = GUILD, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.members = True
        intents.message_content = message_content
        super().__init__(
            command_prefix="!",
            intents=intents,
            guild_ready_timeout=0.05,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.sync_guild = sync_guild
        self.errors: list[BaseException] = []
        self.seen: list[discord.Message] = []
        self.slow_delay = 0.0
        self.resumed = asyncio.Event()
        self._add_commands()

    async def setup_hook(self) -> None:
        if self.sync_guild is None:
            await self.tree.sync()
        else:
            guild = discord.Object(self.sync_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)

    async def on_resumed(self) -> None:
        self.resumed.set()

    def _add_commands(self) -> None:
        tree = self.tree

        @tree.error
        async def on_error(inter: discord.Interaction, error: app_commands.AppCommandError) -> None:
            self.errors.append(getattr(error, "original", error))

        @tree.command(name="ping", description="Replies pong")
        async def ping(inter: discord.Interaction) -> None:
            await inter.response.send_message("pong")

        @tree.command(name="logs", description="Uploads the console log")
        @app_commands.default_permissions(manage_guild=True)
        async def logs(inter: discord.Interaction) -> None:
            await inter.response.defer(ephemeral=True, thinking=True)
            data = io.BytesIO(b"[12:00] Server started\n")
            await inter.followup.send("here you go", file=discord.File(data, "console.log"), ephemeral=True)

        async def server_names(inter: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            if current == "too many":
                return [app_commands.Choice(name=f"s{i}", value=f"s{i}") for i in range(26)]
            if current == "too long":
                return [app_commands.Choice(name="n" * 101, value="v")]
            names = ["alpha", "beta", "alpine"]
            return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

        @tree.command(name="power", description="Power action")
        @app_commands.autocomplete(server=server_names)
        async def power(inter: discord.Interaction, server: str, times: int = 1) -> None:
            await inter.response.send_message(f"{server} x{times}", ephemeral=True)

        relay = app_commands.Group(name="relay", description="Console relay")

        @relay.command(name="set", description="Choose the console channel")
        async def relay_set(
            inter: discord.Interaction, channel: discord.TextChannel, owner: discord.Member, lines: int = 10
        ) -> None:
            await inter.response.defer()
            await inter.edit_original_response(
                content=f"{channel.name} {owner.display_name} {lines}",
                embed=discord.Embed(description="saved"),
            )

        filters = app_commands.Group(name="filter", description="Line filters", parent=relay)

        @filters.command(name="add", description="Hide matching lines")
        async def filter_add(inter: discord.Interaction, pattern: str) -> None:
            await inter.response.send_message(f"hiding {pattern}", ephemeral=True)
            await inter.edit_original_response(content=f"hiding {pattern}!")

        tree.add_command(relay)

        @tree.command(name="whoami", description="Shows the caller's permissions")
        async def whoami(inter: discord.Interaction) -> None:
            perms = inter.permissions
            where = "dm" if inter.guild is None else inter.guild.name
            await inter.response.send_message(f"{inter.user.id} manage_guild={perms.manage_guild} in {where}")

        @tree.command(name="slow", description="Answers too late")
        async def slow(inter: discord.Interaction) -> None:
            await asyncio.sleep(self.slow_delay)
            await inter.response.send_message("late")


def _world(fake: FakeDiscord) -> None:
    guild = fake.add_guild(GUILD, "Wingbeat Test")
    guild.add_role(ADMIN_ROLE, "Server Admin", permissions=MANAGE_GUILD)
    guild.add_channel(CONSOLE, "console")
    guild.add_channel(OTHER, "general")
    guild.add_member(ADMIN, "alice", roles=[ADMIN_ROLE])
    guild.add_member(USER, "bob", roles=[])


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(bucket_window=0.5) as f:
        _world(f)
        yield f


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[_Bot]:
    client = _Bot()
    async with fake.run_client(client):
        yield client


def _paths(fake: FakeDiscord) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests]


# login, ready, cache, sync


async def test_login_ready_and_guild_cache(fake: FakeDiscord, bot: _Bot) -> None:
    assert bot.user is not None and bot.user.id == fake.bot_user_id
    assert bot.application_id == fake.application_id
    guild = bot.get_guild(GUILD)
    assert guild is not None and guild.name == "Wingbeat Test"
    assert guild.default_role.id == GUILD
    assert guild.get_role(ADMIN_ROLE) is not None
    console = guild.get_channel(CONSOLE)
    assert isinstance(console, discord.TextChannel) and console.name == "console"
    alice = guild.get_member(ADMIN)  # cached through GUILD_CREATE and the op 8 member chunk
    assert alice is not None and [r.id for r in alice.roles] == [GUILD, ADMIN_ROLE]
    assert console.permissions_for(guild.me).send_messages
    assert _paths(fake)[:3] == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
        f"PUT /applications/{fake.application_id}/guilds/{GUILD}/commands",
    ]


async def test_wrong_token_is_a_login_failure(fake: FakeDiscord) -> None:
    client = _Bot()
    undo = fake.patch_discord()
    try:
        with pytest.raises(discord.LoginFailure):
            await client.start("not-the-token")
    finally:
        await client.close()
        undo()
    assert fake.requests[-1].status == 401


async def test_patch_discord_undo_restores_urls(fake: FakeDiscord) -> None:
    before = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    undo = fake.patch_discord()
    assert fake.base_url == discord.http.Route.BASE
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == fake.gateway_url
    undo()
    assert before == (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


async def test_guild_sync_records_the_payload(fake: FakeDiscord, bot: _Bot) -> None:
    assert fake.command_put_count == 1
    synced = {c["name"]: c for c in fake.synced_commands[GUILD]}
    assert set(synced) == {"ping", "logs", "power", "relay", "whoami", "slow"}
    assert synced["logs"]["default_member_permissions"] == MANAGE_GUILD
    assert [o["name"] for o in synced["relay"]["options"][0]["options"]] == ["channel", "owner", "lines"]
    assert None not in fake.synced_commands


async def test_responses_have_exact_json_content_type_and_rate_headers(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bot {fake.token}"}
        async with session.get(f"{fake.base_url}/users/@me", headers=auth) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers["X-RateLimit-Remaining"] == "49"
            assert {
                "X-RateLimit-Limit",
                "X-RateLimit-Reset",
                "X-RateLimit-Reset-After",
                "X-RateLimit-Bucket",
            } <= set(resp.headers)
        async with session.get(f"{fake.base_url}/users/@me") as resp:
            assert resp.status == 401
        async with session.get(f"{fake.base_url}/nope", headers=auth) as resp:
            assert resp.status == 404
            assert resp.headers["Content-Type"] == "application/json"


# interactions


async def test_plain_response(fake: FakeDiscord, bot: _Bot) -> None:
    inter = await fake.invoke(GUILD, CONSOLE, USER, "ping")
    await inter.wait_done(timeout=2)
    assert inter.text == "pong"
    assert not inter.ephemeral
    assert [r["type"] for r in inter.responses] == [4]
    assert inter.payload["data"]["guild_id"] == str(GUILD)
    assert not bot.errors


async def test_deferred_ephemeral_followup_with_file(fake: FakeDiscord, bot: _Bot) -> None:
    inter = await fake.invoke(GUILD, CONSOLE, ADMIN, "logs")
    await inter.wait_done(timeout=2)
    assert [r["type"] for r in inter.responses] == [5]
    assert inter.ephemeral
    assert inter.files == [("console.log", b"[12:00] Server started\n")]
    assert inter.text == "here you go\nconsole.log"
    assert len(inter.followups) == 1 and inter.followups[0]["flags"] & 64


async def test_autocomplete_returns_the_bots_choices(fake: FakeDiscord, bot: _Bot) -> None:
    choices = await fake.autocomplete(GUILD, CONSOLE, USER, "power", {"server": "al"}, "server")
    assert [c["value"] for c in choices] == ["alpha", "alpine"]


@pytest.mark.parametrize("typed", ["too many", "too long"])
async def test_autocomplete_answers_past_discord_s_limits_are_refused(
    fake: FakeDiscord, bot: _Bot, typed: str
) -> None:
    with pytest.raises(AssertionError, match="not type 8"):
        await fake.autocomplete(GUILD, CONSOLE, USER, "power", {"server": typed}, "server", timeout=2)


async def test_options_are_typed_from_the_synced_definition(fake: FakeDiscord, bot: _Bot) -> None:
    inter = await fake.invoke(GUILD, CONSOLE, USER, "power", {"server": "alpha", "times": "3"})
    await inter.wait_done(timeout=2)
    assert inter.text == "alpha x3" and inter.ephemeral


async def test_subcommand_with_channel_and_member_options(fake: FakeDiscord, bot: _Bot) -> None:
    inter = await fake.invoke(
        GUILD, CONSOLE, ADMIN, "relay", {"channel": OTHER, "owner": ADMIN}, subcommand="set"
    )
    await inter.wait_done(timeout=2)
    assert not bot.errors
    assert inter.text == "general alice 10\nsaved"
    assert len(inter.edits) == 1
    assert set(inter.payload["data"]["resolved"]) == {"channels", "users", "members"}


async def test_subcommand_group_and_edit_of_an_ephemeral_response(fake: FakeDiscord, bot: _Bot) -> None:
    inter = await fake.invoke(GUILD, CONSOLE, ADMIN, "relay", {"pattern": "DEBUG"}, subcommand="filter add")
    await fake.wait_for(lambda: bool(inter.edits), timeout=2, what="edit of @original")
    [group] = inter.payload["data"]["options"]
    assert (group["type"], group["name"], group["options"][0]["type"]) == (2, "filter", 1)
    assert [a.kind for a in inter.answers] == ["response", "edit"]
    assert inter.text == "hiding DEBUG!" and inter.ephemeral
    assert inter.all_text == "hiding DEBUG\nhiding DEBUG!"
    assert not bot.errors


async def test_member_permissions_come_from_roles_or_override(fake: FakeDiscord, bot: _Bot) -> None:
    admin = await fake.invoke(GUILD, CONSOLE, ADMIN, "whoami")
    user = await fake.invoke(GUILD, CONSOLE, USER, "whoami")
    forced = await fake.invoke(GUILD, CONSOLE, USER, "whoami", member_permissions=MANAGE_GUILD)
    for inter in (admin, user, forced):
        await inter.wait_done(timeout=2)
    assert admin.text == f"{ADMIN} manage_guild=True in Wingbeat Test"
    assert user.text == f"{USER} manage_guild=False in Wingbeat Test"
    assert forced.text == f"{USER} manage_guild=True in Wingbeat Test"


async def test_dm_invocation_of_a_global_command(fake: FakeDiscord) -> None:
    client = _Bot(sync_guild=None)
    async with fake.run_client(client):
        assert fake.command_put_count == 1 and None in fake.synced_commands
        inter = await fake.invoke(None, 999, USER, "whoami")
        await inter.wait_done(timeout=2)
    assert inter.text == f"{USER} manage_guild=False in dm"
    assert "member" not in inter.payload and "guild_id" not in inter.payload
    assert "guild_id" not in inter.payload["data"]


async def test_unsynced_command_is_a_clear_error(fake: FakeDiscord, bot: _Bot) -> None:
    with pytest.raises(ValueError, match="not synced"):
        await fake.invoke(GUILD, CONSOLE, USER, "nope")


async def test_late_answer_gets_unknown_interaction() -> None:
    async with FakeDiscord(interaction_deadline=0.2) as fake:
        _world(fake)
        client = _Bot()
        client.slow_delay = 0.4
        async with fake.run_client(client):
            inter = await fake.invoke(GUILD, CONSOLE, USER, "slow")
            await fake.wait_for(lambda: bool(client.errors), timeout=2, what="tree error")
    assert isinstance(client.errors[0], discord.NotFound) and client.errors[0].code == 10062
    assert inter.responses == [] and inter.rejected[0][0] == 404


# channel messages and rate limits


async def test_sends_into_a_small_bucket_wait_instead_of_getting_429(fake: FakeDiscord, bot: _Bot) -> None:
    channel = bot.get_channel(CONSOLE)
    assert isinstance(channel, discord.TextChannel)
    start = asyncio.get_running_loop().time()
    for i in range(12):
        await channel.send(f"line {i}")
    elapsed = asyncio.get_running_loop().time() - start
    assert fake.count_429 == 0
    assert [m.content for m in fake.messages(CONSOLE)] == [f"line {i}" for i in range(12)]
    assert elapsed >= 2 * fake.bucket_window * 0.9  # 5 + 5 + 2: two waits for the bucket to reset
    assert fake.messages(CONSOLE)[0].allowed_mentions == {"parse": []}


async def test_global_limit_gives_a_global_429_that_discord_py_retries() -> None:
    async with FakeDiscord(global_limit=3) as fake:
        _world(fake)
        client = _Bot()
        async with fake.run_client(client):
            channels = [client.get_partial_messageable(c) for c in (CONSOLE, OTHER)]
            await asyncio.gather(*(channels[i % 2].send(f"m{i}") for i in range(6)))
    assert fake.count_429 >= 1
    assert len(fake.messages(CONSOLE)) + len(fake.messages(OTHER)) == 6


async def test_multipart_file_upload_is_captured(fake: FakeDiscord, bot: _Bot) -> None:
    channel = bot.get_partial_messageable(CONSOLE)
    sent = await channel.send("log attached", file=discord.File(io.BytesIO(b"a\nb\n"), "tail.log"))
    assert sent.attachments[0].filename == "tail.log" and sent.attachments[0].size == 4
    [posted] = fake.messages(CONSOLE)
    assert posted.content == "log attached"
    assert posted.attachments == [("tail.log", b"a\nb\n")]


async def test_injected_429_is_retried(fake: FakeDiscord, bot: _Bot) -> None:
    fake.fail_next("POST", f"/channels/{CONSOLE}/messages", 429, retry_after=0.1)
    await bot.get_partial_messageable(CONSOLE).send("after a 429")
    assert fake.count_429 == 1
    assert [r.status for r in fake.requests if r.path == f"/channels/{CONSOLE}/messages"] == [429, 200]
    assert [m.content for m in fake.messages(CONSOLE)] == ["after a 429"]


async def test_injected_403_raises_forbidden(fake: FakeDiscord, bot: _Bot) -> None:
    fake.fail_next("POST", "/messages", 403)
    with pytest.raises(discord.Forbidden):
        await bot.get_partial_messageable(CONSOLE).send("denied")
    await bot.get_partial_messageable(CONSOLE).send("allowed again")
    assert [m.content for m in fake.messages(CONSOLE)] == ["allowed again"]


async def test_unknown_channel_and_oversized_content_are_refused(fake: FakeDiscord, bot: _Bot) -> None:
    with pytest.raises(discord.NotFound) as unknown:
        await bot.get_partial_messageable(424242).send("hi")
    assert unknown.value.code == 10003
    with pytest.raises(discord.HTTPException) as too_long:
        await bot.get_partial_messageable(CONSOLE).send("x" * 2001)
    assert too_long.value.status == 400 and too_long.value.code == 50035


async def test_channel_overwrites_decide_discords_refusal_codes(fake: FakeDiscord, bot: _Bot) -> None:
    guild = fake.guilds[GUILD]
    channel = bot.get_partial_messageable(OTHER)
    guild.set_overwrite(OTHER, fake.bot_user_id, deny=ATTACH_FILES, member=True)
    with pytest.raises(discord.Forbidden) as no_files:
        await channel.send("with a file", file=discord.File(io.BytesIO(b"x"), filename="x.txt"))
    assert no_files.value.code == 50013
    await channel.send("text still goes")
    guild.set_overwrite(OTHER, GUILD, deny=VIEW_CHANNEL)  # @everyone
    with pytest.raises(discord.Forbidden) as hidden:
        await channel.send("unseen")
    assert hidden.value.code == 50001
    guild.set_overwrite(OTHER, fake.bot_user_id, allow=VIEW_CHANNEL, member=True)  # the member's own wins
    await channel.send("seen again")
    await fake.wait_for(
        lambda: len(bot.get_channel(OTHER).overwrites) == 2,  # type: ignore[union-attr]
        2,
        "the overwrites in the client's cache (CHANNEL_UPDATE)",
    )
    guild.delete_channel(OTHER)
    with pytest.raises(discord.NotFound) as gone:
        await channel.send("gone")
    assert gone.value.code == 10003
    assert [m.content for m in fake.messages(OTHER)] == ["text still goes", "seen again"]


async def test_edit_delete_and_reaction(fake: FakeDiscord, bot: _Bot) -> None:
    sent = await bot.get_partial_messageable(CONSOLE).send("tail v1")
    await sent.edit(content="tail v2")
    await sent.add_reaction("✅")
    [posted] = fake.messages(CONSOLE)
    assert posted.content == "tail v2" and len(posted.edits) == 1
    assert fake.reactions == [(CONSOLE, sent.id, "✅")]
    await sent.delete()
    assert fake.messages(CONSOLE)[0].deleted


# gateway events


async def test_message_create_reaches_on_message(fake: FakeDiscord, bot: _Bot) -> None:
    message_id = await fake.send_user_message(GUILD, CONSOLE, ADMIN, "say hello")
    await fake.wait_for(lambda: bool(bot.seen), timeout=2, what="on_message")
    [message] = bot.seen
    assert message.id == message_id and message.content == "say hello"
    assert isinstance(message.author, discord.Member) and message.author.name == "alice"
    assert message.channel.id == CONSOLE
    await message.add_reaction("👍")
    assert fake.reactions == [(CONSOLE, message_id, "👍")]


async def test_message_content_is_blank_without_the_intent(fake: FakeDiscord) -> None:
    client = _Bot(message_content=False)
    async with fake.run_client(client):
        await fake.send_user_message(GUILD, CONSOLE, ADMIN, "secret", webhook_id=77)
        await fake.wait_for(lambda: bool(client.seen), timeout=2, what="on_message")
    assert client.seen[0].content == "" and client.seen[0].webhook_id == 77


async def test_world_changes_after_connect_are_dispatched(fake: FakeDiscord, bot: _Bot) -> None:
    guild = fake.guilds[GUILD]
    guild.add_channel(CONSOLE + 100, "late-console")
    guild.add_role(ADMIN_ROLE + 100, "Late Role")
    fake.add_guild(GUILD + 100, "Second")

    def seen() -> bool:
        cached = bot.get_guild(GUILD)
        return (
            cached is not None
            and cached.get_channel(CONSOLE + 100) is not None
            and cached.get_role(ADMIN_ROLE + 100) is not None
            and bot.get_guild(GUILD + 100) is not None
        )

    await fake.wait_for(seen, timeout=2, what="updates in the client cache")


async def test_reconnect_resumes_the_session(fake: FakeDiscord, bot: _Bot) -> None:
    await fake.disconnect_gateway()
    await asyncio.wait_for(bot.resumed.wait(), timeout=3)
    assert fake.resume_count == 1 and fake.identify_count == 1
    inter = await fake.invoke(GUILD, CONSOLE, USER, "ping")
    await inter.wait_done(timeout=2)
    assert inter.text == "pong"
