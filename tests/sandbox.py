"""Try Wingbeat like a new user, with no Discord and no panel: ``python -m tests.sandbox [--demo]``.

Starts the panel + Wings emulator and the fake Discord on 127.0.0.1 and writes a `.env`-style file
(default ``sandbox.env``) that points an unmodified bot at them, through the bot's own settings
(``DISCORD_API_URL`` and ``DISCORD_GATEWAY_URL`` among them).

- Without flags it keeps the fakes up until Ctrl-C and prints how to start the bot; once the bot connects it
  prints the commands the bot synced. Lines typed on stdin act in the fake guild, e.g.
  ``alice /power server=Survival action=start``, ``bob /servers``, ``alice /console link server=Lobby``,
  ``emit Lobby hello`` (a console line on a server); what the bot posts in #console is printed.
- ``--demo`` starts the real bot (``python -m bot`` in a temporary folder holding the file as `.env`), drives
  every slash command through the fake Discord, prints a transcript, stops the bot with SIGINT, prints the
  audit log from the bot's SQLite file, and exits non-zero when anything did not behave as expected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from tests.fakes.emulator import Emulator, FakeServer
from tests.fakes.fake_discord import FakeDiscord, FakeInteraction, PostedMessage

ROOT = Path(__file__).resolve().parents[1]

GUILD = 910000000000000001
CONSOLE = 910000000000000002
ADMIN_ROLE = 910000000000000003
ALICE = 910000000000000004  # holds ADMIN_ROLE
BOB = 910000000000000005  # no roles
OWNER = 910000000000000006  # the guild's owner, so the bot's own permissions are what roles give it
USERS = {"alice": ALICE, "bob": BOB}
# Another Discord server the bot was invited to, not in GUILD_IDS: Wingbeat refuses it and logs it once.
FOREIGN_GUILD = 910000000000000010
FOREIGN_CHANNEL = 910000000000000011
FOREVER = 365 * 24 * 3600.0  # a timeout for waits that only cancellation ends

LOBBY = "1a2b3c4d"  # running
SURVIVAL = "5e6f7a8b"  # offline
FRIENDS = "9c0d1e2f"  # running; the panel key is a subuser there without any control permission

# Every variable the bot reads (the README's settings and the endpoint overrides): scrubbed from the bot's inherited
# environment so only the sandbox's `.env` configures it.
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


# discord.py colours its log when it thinks the terminal can show it (also inside Docker): not in a transcript.
ANSI_SGR = re.compile(r"\x1b\[[0-9;]*m")


class DemoFailure(AssertionError):
    """A demo step did not behave as docs/behaviour.md says."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise DemoFailure(message)


# -- the fake world ------------------------------------------------------------------------------------------


@dataclass
class Sandbox:
    """The running fakes and the folder that holds the bot's database and working directory."""

    emu: Emulator
    fake: FakeDiscord
    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / "wingbeat.sqlite3"

    @property
    def workdir(self) -> Path:
        return self.folder / "bot"

    def settings_env(self) -> dict[str, str]:
        """Every setting the bot needs to use the fakes."""
        return {
            "DISCORD_TOKEN": self.fake.token,
            "PANEL_URL": self.emu.panel_url,
            "PANEL_API_KEY": self.emu.api_key,
            "ADMIN_ROLE_IDS": str(ADMIN_ROLE),
            "GUILD_IDS": str(GUILD),
            "DATABASE_URL": f"sqlite:///{self.database}",  # an absolute path: four slashes
            "DISCORD_API_URL": self.fake.base_url,
            "DISCORD_GATEWAY_URL": self.fake.gateway_url,
            "LOG_LEVEL": "INFO",
        }

    def write_env(self, path: Path) -> None:
        lines = [
            "# Wingbeat sandbox: the bot's settings for the local fakes started by `python -m tests.sandbox`.",
            "# Valid only while that sandbox runs (its ports change every start).",
            *(f"{name}={value}" for name, value in self.settings_env().items()),
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_servers(emu: Emulator) -> None:
    emu.add_server("Lobby", identifier=LOBBY, state="running")
    emu.add_server("Survival", identifier=SURVIVAL, state="offline")
    emu.add_server("Friends SMP", identifier=FRIENDS, state="running", permissions=["websocket.connect"])


def build_guild(fake: FakeDiscord) -> None:
    guild = fake.add_guild(GUILD, "Wingbeat Sandbox")
    guild.add_role(ADMIN_ROLE, "Server admins")
    guild.add_channel(CONSOLE, "console")
    guild.add_member(ALICE, "alice", roles=[ADMIN_ROLE])
    guild.add_member(BOB, "bob")
    # The fake makes its first member the owner, who has every permission; that would be the bot.
    guild.add_member(OWNER, "owner")
    guild.members = {OWNER: guild.members.pop(OWNER), **guild.members}
    foreign = fake.add_guild(FOREIGN_GUILD, "Someone Else's Server")
    foreign.add_channel(FOREIGN_CHANNEL, "general")


@contextlib.asynccontextmanager
async def open_sandbox(*, start_delay: float = 1.0, stats_interval: float = 1.0) -> AsyncIterator[Sandbox]:
    """Start both fakes with the sandbox world; everything is removed on exit."""
    folder = Path(tempfile.mkdtemp(prefix="wingbeat-sandbox-"))
    try:
        emu = Emulator(stats_interval=stats_interval, start_delay=start_delay, stop_delay=start_delay / 2)
        async with emu, FakeDiscord() as fake:
            build_servers(emu)
            build_guild(fake)
            sandbox = Sandbox(emu, fake, folder)
            sandbox.workdir.mkdir()
            yield sandbox
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


def synced_command_names(fake: FakeDiscord) -> list[str]:
    """The slash commands the bot synced to the sandbox guild, subcommands spelled out."""
    names: list[str] = []
    for command in fake.synced_commands.get(GUILD, []):
        subs = [o["name"] for o in command.get("options") or [] if o.get("type") == 1]
        names.extend([f"{command['name']} {sub}" for sub in subs] or [command["name"]])
    return sorted(names)


# -- the bot as a child process ------------------------------------------------------------------------------


@dataclass
class BotProcess:
    """`python -m bot` started the way the README runs it: `.env` in its working folder."""

    proc: asyncio.subprocess.Process
    log_lines: list[str] = field(default_factory=list)
    echo: Callable[[str], None] | None = None
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, sandbox: Sandbox, env_file: Path, echo: Callable[[str], None] | None) -> BotProcess:
        await asyncio.to_thread(shutil.copyfile, env_file, sandbox.workdir / ".env")
        env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
        # This checkout's code, even where another copy of the package is installed.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=sandbox.workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the sandbox, which stops the bot
        )
        bot = cls(proc, echo=echo)
        bot._reader = asyncio.create_task(bot._read())
        return bot

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = ANSI_SGR.sub("", raw.decode("utf-8", "replace").rstrip())
            self.log_lines.append(line)
            if self.echo is not None:
                self.echo(line)

    def logged(self, needle: str) -> bool:
        return any(needle in line for line in self.log_lines)

    def log_tail(self, count: int = 30) -> str:
        return "\n".join(self.log_lines[-count:])

    async def wait_ready(self, fake: FakeDiscord, timeout: float) -> None:
        """Until the bot synced its commands, joined the gateway and logged that it is ready."""

        def ready() -> bool:
            if self.proc.returncode is not None:
                raise DemoFailure(
                    f"the bot exited with status {self.proc.returncode} before it was ready:\n{self.log_tail()}"
                )
            return fake.connected and GUILD in fake.synced_commands and self.logged("ready as")

        try:
            await fake.wait_for(ready, timeout, "the bot to log in, sync its commands and be ready")
        except TimeoutError as exc:
            raise DemoFailure(f"{exc}\nbot log:\n{self.log_tail()}") from None

    async def interrupt(self, timeout: float) -> int:
        """SIGINT (Ctrl-C), then the exit status; killed when it does not exit within `timeout` s."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(timeout):
                status = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise DemoFailure(
                f"the bot did not exit within {timeout} s of SIGINT:\n{self.log_tail()}"
            ) from None
        if self._reader is not None:
            await self._reader
        return status

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


# -- talking to the bot through the fake Discord --------------------------------------------------------------


def describe_call(user: str, command: str, options: dict[str, Any] | None, subcommand: str | None) -> str:
    parts = [f"/{command}", *([subcommand] if subcommand else [])]
    parts.extend(f"{name}:{value}" for name, value in (options or {}).items())
    return f"{user}> {' '.join(parts)}"


def describe_answer(inter: FakeInteraction) -> list[str]:
    visibility = "only you can see this" if inter.ephemeral else "public"
    lines = [f"    ({visibility})"]
    lines.extend(f"    {line}" for line in inter.text.splitlines())
    for name, data in inter.files:
        preview = data.decode("utf-8", "replace").splitlines()
        lines.append(f"    [{name}: {len(preview)} lines]")
        lines.extend(f"    | {line}" for line in preview[-5:])
    return lines


def describe_message(message: PostedMessage) -> list[str]:
    lines = [f"    #console: {line}" for line in message.content.splitlines()]
    lines.extend(f"    #console: [{name}]" for name, _ in message.attachments)
    return lines


async def read_audit_log(database: Path) -> list[dict[str, Any]]:
    """Every row of the bot's `audit_log` table, oldest first (opened read-only)."""
    async with aiosqlite.connect(f"file:{database}?mode=ro", uri=True) as db:
        db.row_factory = aiosqlite.Row
        async with db.execute("SELECT * FROM audit_log ORDER BY id") as cursor:
            return [dict(row) for row in await cursor.fetchall()]


def describe_audit(rows: list[dict[str, Any]]) -> list[str]:
    names = {ALICE: "alice", BOB: "bob", 0: "wingbeat"}
    lines = [f"    {'at':<19}  {'user':<8} {'server':<8}  {'action':<7} {'arguments':<24} outcome"]
    for row in rows:
        lines.append(
            f"    {str(row['at'])[:19]:<19}  {names.get(row['user_id'], str(row['user_id'])):<8} "
            f"{row['server_identifier'] or '-':<8}  {row['action']:<7} {row['arguments']:<24} {row['outcome']}"
        )
    return lines


class Session:
    """Slash commands in the sandbox guild's #console, printed as a transcript."""

    def __init__(self, sandbox: Sandbox, say: Callable[[str], None], timeout: float = 15.0) -> None:
        self.sandbox = sandbox
        self.fake = sandbox.fake
        self.say = say
        self.timeout = timeout

    async def run(
        self,
        user: str,
        command: str,
        options: dict[str, Any] | None = None,
        *,
        subcommand: str | None = None,
    ) -> FakeInteraction:
        self.say("")
        self.say(describe_call(user, command, options, subcommand))
        inter = await self.fake.invoke(GUILD, CONSOLE, USERS[user], command, options, subcommand=subcommand)
        try:
            await inter.wait_done(self.timeout)
        except TimeoutError:
            raise DemoFailure(f"{describe_call(user, command, options, subcommand)} got no answer") from None
        for line in describe_answer(inter):
            self.say(line)
        check("Traceback" not in inter.all_text, f"/{command} showed a traceback")
        return inter

    async def complete(self, user: str, command: str, typed: str) -> list[dict[str, Any]]:
        choices = await self.fake.autocomplete(
            GUILD, CONSOLE, USERS[user], command, {"server": typed}, "server"
        )
        shown = ", ".join(f"{c['name']} -> {c['value']}" for c in choices) or "(none)"
        self.say("")
        self.say(f'{user} types /{command} server:"{typed}"  autocomplete offers: {shown}')
        return choices


# -- the scripted demo -----------------------------------------------------------------------------------------


def server_traffic(emu: Emulator, srv: FakeServer) -> tuple[int, int]:
    """Panel requests about a server and Wings frames it received, as counts."""
    return sum(srv.identifier in r.path for r in emu.requests), len(srv.received)


async def wait_authenticated(sandbox: Sandbox, srv: FakeServer, timeout: float) -> None:
    """Until the bot's Wings socket for `srv` is authenticated (console lines before that are not sent)."""

    def authenticated() -> bool:
        return any(sock.authenticated for sock in sandbox.emu.sockets(srv))

    try:
        await sandbox.fake.wait_for(authenticated, timeout, f"the bot's Wings socket for {srv.name}")
    except TimeoutError as exc:
        raise DemoFailure(str(exc)) from None


async def demo_commands(sandbox: Sandbox, s: Session) -> None:
    emu, fake = sandbox.emu, sandbox.fake
    lobby, survival, friends = emu.server(LOBBY), emu.server(SURVIVAL), emu.server(FRIENDS)

    everything = await s.complete("alice", "status", "")
    check(
        {c["value"] for c in everything} == {LOBBY, SURVIVAL, FRIENDS},
        f"autocomplete should offer every server, got {everything}",
    )
    typed = await s.complete("alice", "power", "su")
    check([c["value"] for c in typed] == [SURVIVAL], f"'su' should complete to Survival only, got {typed}")

    inter = await s.run("alice", "servers")
    check(not inter.ephemeral, "/servers should answer publicly")
    for name in ("Lobby", "Survival", "Friends SMP"):
        check(name in inter.text, f"/servers should list {name}")
    states = {line.split("**")[1]: line for line in inter.text.splitlines() if "**" in line}
    check(states.get("Survival", "").endswith("offline"), "/servers should show Survival offline")
    check(states.get("Lobby", "").endswith("running"), "/servers should show Lobby running")

    inter = await s.run("alice", "status", {"server": "Lobby"})
    check("running" in inter.text and "CPU" in inter.text, "/status Lobby should show running and CPU")

    inter = await s.run("alice", "power", {"server": "Survival", "action": "start"})
    check(inter.ephemeral, "/power should answer privately")
    check(("set state", ["start"]) in survival.received, "Wings should have received `set state start`")
    check("running" in inter.text, "/power start should report the server running")
    check(survival.state == "running", f"Survival should be running, it is {survival.state}")
    inter = await s.run("alice", "status", {"server": "Survival"})
    first_line = inter.text.splitlines()[0] if inter.text else ""
    check("running" in first_line, f"/status Survival should now say running, not {first_line!r}")

    inter = await s.run("alice", "command", {"server": "Survival", "command": "say hi"})
    check(("send command", ["say hi"]) in survival.received, "Wings should have received `send command`")
    check("[Server] hi" in inter.text, "/command should show the output `[Server] hi`")

    inter = await s.run("alice", "logs", {"server": "Survival", "lines": 5})
    check(inter.ephemeral and "[Server] hi" in inter.text, "/logs should show the last lines privately")

    inter = await s.run("alice", "console", {"server": "Lobby"}, subcommand="link")
    check("Mirroring" in inter.text and f"<#{CONSOLE}>" in inter.text, "/console link should mirror here")
    await wait_authenticated(sandbox, lobby, s.timeout)
    game_lines = [
        "[Server thread/INFO]: alice joined the game",
        "[Server thread/INFO]: <alice> hello from Discord's sandbox",
        "[Server thread/INFO]: alice left the game",
    ]
    s.say("")
    s.say("the Lobby server prints three console lines; the bot posts them in #console:")
    for line in game_lines:
        lobby.emit_console(line)

    def mirrored() -> bool:
        text = "\n".join(m.content for m in fake.messages(CONSOLE))
        return all(line in text for line in game_lines)

    try:
        await fake.wait_for(mirrored, s.timeout, "the console lines in #console")
    except TimeoutError as exc:
        raise DemoFailure(str(exc)) from None
    for message in fake.messages(CONSOLE):
        for line in describe_message(message):
            s.say(line)

    inter = await s.run("alice", "console", subcommand="list")
    check("Lobby" in inter.text and f"<#{CONSOLE}>" in inter.text, "/console list should show the link")
    inter = await s.run("alice", "health")
    check(inter.ephemeral and "Lobby" in inter.text, "/health should report Lobby's connection")
    inter = await s.run("alice", "console", {"server": "Lobby"}, subcommand="unlink")
    check("Stopped mirroring" in inter.text, "/console unlink should stop the mirror")

    before = server_traffic(emu, survival)
    inter = await s.run("bob", "power", {"server": "Survival", "action": "stop"})
    check(inter.ephemeral and "Only admins" in inter.text, "bob's /power should be refused privately")
    check([r["type"] for r in inter.responses] == [4], "the refusal should come at once, never deferred")
    check(server_traffic(emu, survival) == before, "the emulator should have seen nothing of bob's /power")
    check(survival.state == "running", "Survival should still be running after bob's refused /power")
    s.say("    (the panel and Wings saw nothing of it)")

    inter = await s.run("alice", "power", {"server": "Friends SMP", "action": "stop"})
    check(inter.ephemeral and "control.stop" in inter.text, "a missing Wings permission should be named")
    check(not any(f == "set state" for f, _ in friends.received), "no `set state` should reach Wings")
    check(friends.state == "running", "Friends SMP should still be running")


def check_audit(rows: list[dict[str, Any]]) -> None:
    entries = [(r["user_id"], r["server_identifier"], r["action"], r["outcome"]) for r in rows]

    def has(user: int, server: str | None, action: str, outcome_start: str, also: str = "") -> None:
        check(
            any(
                u == user and srv == server and a == action and o.startswith(outcome_start) and also in o
                for u, srv, a, o in entries
            ),
            f"the audit log should hold {action} on {server} by {user} with outcome {outcome_start}…; "
            f"it holds {entries}",
        )

    has(ALICE, SURVIVAL, "power", "done")
    has(ALICE, SURVIVAL, "command", "sent")
    has(ALICE, LOBBY, "link", "linked")
    has(ALICE, LOBBY, "unlink", "unlinked")
    has(BOB, SURVIVAL, "power", "refused")  # refusals name the server judged
    has(ALICE, FRIENDS, "power", "failed", "control.stop")


async def run_demo(
    sandbox: Sandbox,
    env_file: Path,
    say: Callable[[str], None] = print,
    *,
    show_bot_log: bool = False,
    ready_timeout: float = 30.0,
) -> None:
    """Start the real bot, drive every command, stop it, show the audit log; raises DemoFailure."""
    say(f"$ cd {sandbox.workdir} && cp {env_file} .env && {shlex.quote(sys.executable)} -m bot")
    echo = (lambda line: say(f"  bot| {line}")) if show_bot_log else None
    # A global command an earlier version registered: usable from every Discord server the bot is in.
    sandbox.fake.register_commands(None, [{"name": "servers", "description": "left behind", "type": 1}])
    bot = await BotProcess.start(sandbox, env_file, echo)
    try:
        await bot.wait_ready(sandbox.fake, ready_timeout)
        say(f"bot logged in (pid {bot.proc.pid}) and synced: {', '.join(synced_command_names(sandbox.fake))}")
        check(
            sandbox.fake.registered_commands(None) == [], "the global command left behind should be removed"
        )
        say("  and removed the global command an earlier version had left")
        check(
            bot.logged(f"guild {FOREIGN_GUILD} (Someone Else's Server), which is not in GUILD_IDS"),
            f"the bot should log the guild outside GUILD_IDS:\n{bot.log_tail()}",
        )
        say(f"  and logged that it is in guild {FOREIGN_GUILD}, which is not in GUILD_IDS (refused)")
        try:
            await demo_commands(sandbox, Session(sandbox, say))
        except DemoFailure as exc:
            raise DemoFailure(f"{exc}\nbot log:\n{bot.log_tail()}") from None
        say("")
        say("stopping the bot with SIGINT (Ctrl-C)")
        status = await bot.interrupt(timeout=15.0)
        for line in bot.log_lines[-3:]:
            say(f"  bot| {line}")
        check(status == 0, f"the bot should exit cleanly with status 0, not {status}:\n{bot.log_tail()}")
        check(bot.logged("closed"), "the bot should log that it closed")
        say(f"the bot exited with status {status}")
        check("Traceback" not in "\n".join(bot.log_lines), f"the bot logged a traceback:\n{bot.log_tail(80)}")
    finally:
        await bot.kill()
    rows = await read_audit_log(sandbox.database)
    say("")
    say(f"audit_log in {sandbox.database}:")
    for line in describe_audit(rows):
        say(line)
    check_audit(rows)


# -- interactive mode ----------------------------------------------------------------------------------------


async def watch_bot(fake: FakeDiscord, say: Callable[[str], None]) -> None:
    """Say when a bot connects (with its synced commands) and when it goes away."""
    while True:
        await fake.wait_for(lambda: fake.connected, FOREVER, "a bot")
        await fake.wait_for(lambda: GUILD in fake.synced_commands, 5.0, "synced commands")
        say(f"bot connected; synced commands: {', '.join(synced_command_names(fake))}")
        await fake.wait_for(lambda: not fake.connected, FOREVER, "the bot to leave")
        say("bot disconnected")


def more_messages(fake: FakeDiscord, seen: int) -> bool:
    return len(fake.messages(CONSOLE)) > seen


async def watch_console(fake: FakeDiscord, say: Callable[[str], None]) -> None:
    shown = 0
    while True:
        await fake.wait_for(functools.partial(more_messages, fake, shown), FOREVER, "a message")
        messages = fake.messages(CONSOLE)
        for message in messages[shown:]:
            for line in describe_message(message):
                say(line)
        shown = len(messages)


def parse_poke(line: str) -> tuple[str, str, dict[str, Any], str | None]:
    """`alice /console link server=Lobby` -> ("alice", "console", {"server": "Lobby"}, "link")."""
    words = shlex.split(line)
    if len(words) < 2 or words[0] not in USERS or not words[1].startswith("/"):
        raise ValueError("expected: alice|bob /command [subcommand] name=value ...")
    options: dict[str, Any] = {}
    subcommand: str | None = None
    for word in words[2:]:
        name, eq, value = word.partition("=")
        if eq:
            options[name] = value
        elif subcommand is None:
            subcommand = word
        else:
            raise ValueError(f"unexpected {word!r}: options are name=value")
    return words[0], words[1][1:], options, subcommand


async def poke(sandbox: Sandbox, line: str, say: Callable[[str], None]) -> None:
    """One line typed in interactive mode: a slash command as alice or bob, or a console line."""
    if line.startswith("emit "):
        _, server, text = [*line.split(maxsplit=2), "", ""][:3]
        try:
            target = next(s for s in sandbox.emu.servers() if server in (s.identifier, s.name))
        except StopIteration:
            say(f"  ! no server {server!r}; try Lobby, Survival or {FRIENDS} (Friends SMP)")
            return
        target.emit_console(text or "hello from the console")
        return
    try:
        user, command, options, subcommand = parse_poke(line)
        await Session(sandbox, say).run(user, command, options or None, subcommand=subcommand)
    except (ValueError, RuntimeError, DemoFailure) as exc:
        say(f"  ! {exc}")


async def read_stdin(sandbox: Sandbox, say: Callable[[str], None]) -> None:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):
        return  # stdin is not something we can read without blocking; Ctrl-C still stops us
    async for raw in reader:
        line = raw.decode("utf-8", "replace").strip()
        if line:
            await poke(sandbox, line, say)


async def run_interactive(sandbox: Sandbox, env_file: Path, say: Callable[[str], None] = print) -> None:
    say("Start the bot against the sandbox from another shell (it reads .env from its working folder):")
    say(f"    cd {sandbox.workdir} && cp {env_file} .env && {shlex.quote(sys.executable)} -m bot")
    say("Then type here, e.g.:  alice /servers   alice /power server=Survival action=start")
    say("    bob /power server=Survival action=stop   alice /console link server=Lobby   emit Lobby hello")
    say("Ctrl-C stops the sandbox.")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(watch_bot(sandbox.fake, say)),
        asyncio.create_task(watch_console(sandbox.fake, say)),
        asyncio.create_task(read_stdin(sandbox, say)),
    ]
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if sandbox.database.exists():
        say(f"audit_log in {sandbox.database}:")
        for line in describe_audit(await read_audit_log(sandbox.database)):
            say(line)
    say("sandbox stopped")


# -- entrypoint ----------------------------------------------------------------------------------------------


async def amain(args: argparse.Namespace, env_file: Path) -> int:
    async with open_sandbox(start_delay=args.start_delay) as sandbox:
        sandbox.write_env(env_file)
        print(f"panel + Wings emulator: {sandbox.emu.panel_url} (Wings {sandbox.emu.wings_url})")
        print("  servers: Lobby (running), Survival (offline), Friends SMP (running; key lacks control.*)")
        print(f"fake Discord: {sandbox.fake.http_url}  guild 'Wingbeat Sandbox' #console;")
        print("  alice has the admin role, bob has no roles")
        print(f"settings written to {env_file}")
        print("")
        if not args.demo:
            await run_interactive(sandbox, env_file)
            return 0
        try:
            await run_demo(sandbox, env_file, show_bot_log=args.show_bot_log)
        except DemoFailure as exc:
            print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
            return 1
    print("\ndemo passed: every step behaved as docs/behaviour.md says")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.sandbox", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--demo", action="store_true", help="run the real bot through a scripted session")
    parser.add_argument("--env-file", default="sandbox.env", help="where to write the settings (sandbox.env)")
    parser.add_argument("--show-bot-log", action="store_true", help="--demo: print the bot's log as it runs")
    parser.add_argument(
        "--start-delay", type=float, default=1.0, help="seconds an emulated game server takes to start"
    )
    args = parser.parse_args(argv)
    try:
        status = asyncio.run(amain(args, Path(args.env_file).resolve()))
    except KeyboardInterrupt:  # before or after the signal handlers of the interactive mode
        status = 130
    raise SystemExit(status)


if __name__ == "__main__":
    main()
