"""`wingbeat check` end to end: the real command against the panel + Wings emulator and the fake Discord.

The all-good case and several failures run `python -m bot check` as a subprocess, exactly as an operator
would; the other failures call the same async entry (`bot.check.run_check`) in-process with captured
output, which is the same code minus the process start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.check import run_check
from bot.check.timing import Timing
from bot.settings import load_settings
from bot.store import Link, open_store
from tests.e2e_helpers import ADMIN, CONSOLE, GUILD, OTHER, build_world, unused_port
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord

MESSAGE_CONTENT = 1 << 19
ATTACH_FILES = 1 << 15
FOREIGN_GUILD = 900000000000000077
MISSING_GUILD = 900000000000000088
FAST = Timing(panel=3.0, socket_open=3.0, auth=3.0, node_clock=2.0, discord=5.0)
SETTING_NAMES = (
    "DISCORD_TOKEN",
    "PANEL_URL",
    "PANEL_API_KEY",
    "ADMIN_ROLE_IDS",
    "GUILD_IDS",
    "DATABASE_URL",
    "WINGS_ORIGIN",
    "CONSOLE_INPUT",
    "CONSOLE_COLOR",
    "LOG_LEVEL",
    "STATUS_INTERVAL",
    "AUDIT_RETENTION_DAYS",
    "DISCORD_API_URL",
    "DISCORD_GATEWAY_URL",
    "SHARD_COUNT",
    "SHARD_IDS",
)
JWT = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")


@dataclass
class World:
    emu: Emulator
    fake: FakeDiscord
    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / "wingbeat.sqlite3"

    def env(self, **overrides: str) -> dict[str, str]:
        """The settings an operator would write for this world: everything right, CONSOLE_INPUT on."""
        env = {
            "DISCORD_TOKEN": self.fake.token,
            "PANEL_URL": self.emu.panel_url,
            "PANEL_API_KEY": self.emu.api_key,
            "GUILD_IDS": str(GUILD),
            "DATABASE_URL": f"sqlite:///{self.database}",
            "DISCORD_API_URL": self.fake.base_url,
            "CONSOLE_INPUT": "true",
        }
        env.update(overrides)
        return env

    async def link(self, channel_id: int = CONSOLE, server: str = "a1b2c3d4") -> None:
        async with await open_store(f"sqlite:///{self.database}") as store:
            await store.add_link(Link(GUILD, channel_id, server, "Lobby", ADMIN, datetime.now(UTC)))

    async def check(self, **overrides: str) -> tuple[int, str]:
        """The check in-process, output captured."""
        out = io.StringIO()
        code = await run_check(load_settings(self.env(**overrides), dotenv=None), out, timing=FAST)
        return code, out.getvalue()

    async def check_process(self, **overrides: str) -> tuple[int, str, str]:
        """`python -m bot check` as a child process in an empty folder (no .env), stdout piped."""
        env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
        env.update(self.env(**overrides))
        workdir = self.folder / "cwd"
        workdir.mkdir(exist_ok=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "check",
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return proc.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
async def world(tmp_path: Path) -> World:  # type: ignore[misc]
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Lobby", identifier="a1b2c3d4", state="running")
        emu.add_server("Survival", identifier="e5f6a7b8")
        build_world(fake)
        fake.application_flags = MESSAGE_CONTENT
        yield World(emu, fake, tmp_path)


def lines(output: str) -> dict[str, str]:
    """Each check's title -> its whole line (mark and text), from the printed report."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        match = re.match(r"^([✓✗–]) (.+?): ", line)
        if match:
            found[match.group(2)] = line
    return found


def marks(output: str) -> dict[str, str]:
    return {title: line[0] for title, line in lines(output).items()}


def fix_after(output: str, title: str) -> str:
    """The indented lines (details and → fix) under one check's line."""
    out = output.splitlines()
    start = next(i for i, line in enumerate(out) if re.match(rf"^[✓✗–] {re.escape(title)}: ", line))
    block = []
    for line in out[start + 1 :]:
        if not line.startswith("    "):
            break
        block.append(line.strip())
    return "\n".join(block)


def assert_no_secrets(world: World, *texts: str) -> None:
    for text in texts:
        assert world.fake.token not in text
        assert world.emu.api_key not in text
        assert world.emu.api_key[:16] not in text  # not even the key's identifier part
        assert not JWT.search(text)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


ALL_CHECKS = [
    "Settings",
    "Panel answers",
    "Panel key",
    "Servers",
    "Wings on node 'node-1'",
    "Discord token",
    "Public bot",
    "Guilds in GUILD_IDS",
    "Other guilds",
    "Message content intent",
    "Store",
    "Linked channels",
]


def titles(output: str) -> list[str]:
    return [re.sub(r" \(127\.0\.0\.1:\d+\)$", "", title) for title in lines(output)]


# -- subprocesses ---------------------------------------------------------------------------------------------


async def test_all_good_every_line_passes_and_nothing_changes(world: World) -> None:
    await world.link()
    before = digest(world.database)
    code, out, err = await world.check_process()
    assert code == 0, out + err
    assert titles(out) == ALL_CHECKS, out
    assert set(marks(out).values()) == {"✓"}, out
    assert "#console" in lines(out)["Linked channels"]
    assert out.rstrip().endswith("All checks passed.")
    assert "\x1b" not in out  # piped: no spinner, no escape codes
    assert_no_secrets(world, out, err)
    # It changed nothing: the store, Discord (only reads), the servers (no command, no power action).
    assert digest(world.database) == before
    assert {r.method for r in world.fake.requests} == {"GET"}
    assert world.fake.command_put_count == 0 and not world.fake.synced_commands
    assert all(r.method == "GET" for r in world.emu.requests)
    assert [event for event, _ in world.emu.server("a1b2c3d4").received] == ["auth"]


async def test_an_application_key_is_named_as_the_wrong_kind(world: World) -> None:
    code, out, err = await world.check_process(PANEL_API_KEY="ptla_" + "A" * 11 + "s" * 32)
    assert code == 1
    key = lines(out)["Panel key"]
    assert key.startswith("✗") and "application key (ptla_…)" in key and "client key" in key
    assert "Account → API Credentials" in fix_after(out, "Panel key")
    assert marks(out)["Panel answers"] == "✓"  # the panel did answer: with its 403
    assert marks(out)["Servers"] == "–" and marks(out)["Wings"] == "–"
    assert "A" * 11 not in out + err


async def test_clock_skew_is_named_with_the_measured_offset(tmp_path: Path) -> None:
    # The node's clock runs 15 minutes ahead of the panel's: every 10-minute token is expired on arrival.
    async with Emulator(clock_offset=900.0) as emu, FakeDiscord() as fake:
        emu.add_server("Lobby", identifier="a1b2c3d4", state="running")
        build_world(fake)
        fake.application_flags = MESSAGE_CONTENT
        world = World(emu, fake, tmp_path)
        code, out, err = await world.check_process()
    assert code == 1
    [wings] = [line for title, line in lines(out).items() if title.startswith("Wings")]
    assert wings.startswith("✗") and "exp claim is invalid" in wings and "clock skew" in wings
    offset = re.search(r"the node's clock is (\d+) s ahead of the panel's", wings)
    assert offset is not None and 898 <= int(offset.group(1)) <= 902, wings
    assert "NTP" in fix_after(out, wings.split(": ")[0][2:])
    assert_no_secrets(world, out, err)


async def test_settings_error_is_one_line_and_exit_2(world: World) -> None:
    code, out, _ = await world.check_process(DISCORD_TOKEN="", PANEL_API_KEY="")
    assert code == 2  # as the bot itself exits on a bad setting
    assert out.splitlines()[0] == "✗ Settings: DISCORD_TOKEN is required but not set"
    assert list(lines(out)) == ["Settings"]
    assert ".env.example" in fix_after(out, "Settings")


async def test_a_panel_that_is_down_is_said_once_in_the_report_not_in_warnings_too(world: World) -> None:
    code, out, err = await world.check_process(PANEL_URL=f"http://127.0.0.1:{unused_port()}")
    assert code == 1 and "connection refused" in lines(out)["Panel answers"]
    assert err == ""  # the panel client's own warning would interleave with the report on a terminal


async def test_piped_into_head_it_stops_without_a_traceback(world: World) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env.update(world.env())
    proc = await asyncio.create_subprocess_shell(
        f"{sys.executable} -m bot check | head -n 1",
        cwd=world.folder,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert stdout.decode().startswith("✓ Settings: complete")
    assert "Traceback" not in stderr.decode() and "BrokenPipeError" not in stderr.decode()


# -- in-process ---------------------------------------------------------------------------------------------


async def test_panel_down(world: World) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    code, out = await world.check(PANEL_URL=url)
    assert code == 1
    assert lines(out)["Panel answers"] == (
        f"✗ Panel answers: no. Nothing accepts connections at 127.0.0.1:{url.rsplit(':', 1)[1]} (connection refused)."
    )
    assert url in fix_after(out, "Panel answers")
    assert marks(out)["Panel key"] == "–" and marks(out)["Wings"] == "–"
    # Discord is checked all the same.
    assert marks(out)["Discord token"] == "✓"


async def test_an_https_panel_url_on_a_plain_http_port_says_tls_failed(world: World) -> None:
    url = world.emu.panel_url.replace("http://", "https://")
    code, out = await world.check(PANEL_URL=url)
    assert code == 1
    assert lines(out)["Panel answers"].startswith("✗ Panel answers: no. The TLS handshake failed ("), out
    assert "scheme (http/https)" in lines(out)["Panel answers"]


async def test_a_pelican_application_key_is_refused_by_the_panel_and_named(world: World) -> None:
    code, out = await world.check(PANEL_API_KEY="papp_" + "B" * 43)
    assert code == 1 and "application key (papp_…)" in lines(out)["Panel key"]
    assert any(r.path == "/api/client/account" for r in world.emu.requests)


async def test_origin_refused_names_wings_origin_and_remote(world: World) -> None:
    code, out = await world.check(WINGS_ORIGIN="https://panel.example.com")
    assert code == 1
    [(title, wings)] = [(t, line) for t, line in lines(out).items() if t.startswith("Wings on node")]
    assert wings.startswith("✗") and "HTTP 403" in wings and "https://panel.example.com" in wings
    fix = fix_after(out, title)
    assert "WINGS_ORIGIN" in fix and "`remote:`" in fix
    assert f"The panel calls itself {world.emu.panel_url}" in fix  # the token's issuer: the likely value


async def test_a_missing_permission_on_a_server_is_named(world: World) -> None:
    world.emu.add_server(
        "Friends SMP", identifier="9c0d1e2f", permissions=["websocket.connect", "control.console"]
    )
    code, out = await world.check()
    assert code == 1
    assert lines(out)["Servers"].startswith("✗ Servers: the key sees 3 servers; 1 of them lacks")
    assert "Friends SMP (9c0d1e2f): lacks control.start, control.stop, control.restart" in fix_after(
        out, "Servers"
    )
    assert [t for t, m in marks(out).items() if m == "✗"] == ["Servers"]


async def test_bot_missing_from_a_guild_gets_an_invite_link(world: World) -> None:
    code, out = await world.check(GUILD_IDS=f"{GUILD},{MISSING_GUILD}")
    assert code == 1
    assert lines(out)["Guilds in GUILD_IDS"].startswith("✗ Guilds in GUILD_IDS: the bot is not in 1 of the 2")
    invite = fix_after(out, "Guilds in GUILD_IDS")
    assert (
        f"{MISSING_GUILD}: https://discord.com/oauth2/authorize?client_id={world.fake.application_id}"
        in invite
    )
    assert f"guild_id={MISSING_GUILD}" in invite and "scope=bot+applications.commands" in invite
    assert marks(out)["Other guilds"] == "✓"


async def test_bot_in_a_foreign_guild(world: World) -> None:
    world.fake.add_guild(FOREIGN_GUILD, "Somebody Else's Server")
    code, out = await world.check()
    assert code == 1
    assert marks(out)["Guilds in GUILD_IDS"] == "✓"
    assert lines(out)["Other guilds"].startswith(
        "✗ Other guilds: the bot is also in 1 guild outside GUILD_IDS"
    )
    assert f"Somebody Else's Server ({FOREIGN_GUILD})" in fix_after(out, "Other guilds")


async def test_public_bot(world: World) -> None:
    world.fake.bot_public = True
    code, out = await world.check()
    assert code == 1
    public = lines(out)["Public bot"]
    assert public.startswith("✗") and "anyone with the invite link" in public
    assert "turn off Public Bot" in fix_after(out, "Public bot")


async def test_missing_message_content_intent_only_matters_with_console_input(world: World) -> None:
    world.fake.application_flags = 0
    code, out = await world.check()
    assert code == 1 and marks(out)["Message content intent"] == "✗"
    assert "Message Content Intent" in fix_after(out, "Message content intent")
    code, out = await world.check(CONSOLE_INPUT="false")
    assert code == 0, out
    assert "not needed" in lines(out)["Message content intent"]
    world.fake.application_flags = 1 << 18  # GATEWAY_MESSAGE_CONTENT_LIMITED: under 100 servers
    code, out = await world.check()
    assert code == 0, out


async def test_missing_channel_permission_is_named(world: World) -> None:
    await world.link(CONSOLE)
    await world.link(OTHER, server="e5f6a7b8")
    world.fake.guilds[GUILD].set_overwrite(CONSOLE, GUILD, deny=ATTACH_FILES)  # @everyone may not attach
    code, out = await world.check()
    assert code == 1
    assert lines(out)["Linked channels"].startswith(
        "✗ Linked channels: the bot cannot work in 1 of 2 channels"
    )
    detail = fix_after(out, "Linked channels")
    assert f"#console ({CONSOLE}), linked to a1b2c3d4: the bot lacks Attach Files" in detail
    assert "#other" not in detail


async def test_a_deleted_linked_channel_is_named(world: World) -> None:
    await world.link(CONSOLE)
    del world.fake.guilds[GUILD].channels[CONSOLE]
    code, out = await world.check()
    assert code == 1
    assert "the channel no longer exists" in fix_after(out, "Linked channels")


async def test_an_invalid_discord_token(world: World) -> None:
    await world.link(CONSOLE)
    code, out = await world.check(DISCORD_TOKEN="not.the.token")
    assert code == 1
    assert lines(out)["Discord token"].startswith("✗ Discord token: Discord rejected DISCORD_TOKEN")
    for title in (
        "Public bot",
        "Guilds in GUILD_IDS",
        "Other guilds",
        "Message content intent",
        "Linked channels",
    ):
        assert marks(out)[title] == "–", out


async def test_an_unreachable_postgresql_store_fails_without_showing_its_password(world: World) -> None:
    url = f"postgresql://wingbeat:s3cretpw@127.0.0.1:{unused_port()}/wingbeat"
    code, out = await world.check(DATABASE_URL=url)
    assert code == 1
    store = lines(out)["Store"]
    assert store.startswith("✗ Store: cannot connect to PostgreSQL at postgresql://wingbeat@127.0.0.1:"), out
    assert "DATABASE_URL" in fix_after(out, "Store")
    assert marks(out)["Linked channels"] == "–"
    assert "s3cretpw" not in out


async def test_a_postgresql_store_is_read_without_changing_it(world: World, postgres_dsn: str) -> None:
    import asyncpg

    code, out = await world.check(DATABASE_URL=postgres_dsn)
    assert code == 0, out
    assert "the bot creates its tables at its first start" in lines(out)["Store"]
    conn = await asyncpg.connect(postgres_dsn)
    try:  # read-only: not even the schema table was created
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        await conn.close()
    async with await open_store(postgres_dsn) as store:
        await store.add_link(Link(GUILD, CONSOLE, "a1b2c3d4", "Lobby", ADMIN, datetime.now(UTC)))
    world.fake.guilds[GUILD].set_overwrite(CONSOLE, GUILD, deny=ATTACH_FILES)
    code, out = await world.check(DATABASE_URL=postgres_dsn)
    assert code == 1
    assert marks(out)["Store"] == "✓" and marks(out)["Linked channels"] == "✗", out
    assert "the bot lacks Attach Files" in fix_after(out, "Linked channels")
