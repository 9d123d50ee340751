"""The gate every interaction passes before anything else runs: where it comes from, and who may do what.

Wingbeat holds one panel key, so only the guilds in `GUILD_IDS` may use it: anything from another guild (or a
DM) is refused with one sentence before it reaches the panel, Wings or the store, not even as an audit row
(a foreign guild could otherwise fill the audit log). See docs/behaviour.md, "Who may use Wingbeat".

`admit` answers what is refused at once, ephemerally and before any defer, so a refusal never shows publicly;
autocomplete that is refused gets no choices. Slash commands go through the tree (`bot.tree`); buttons,
selects and modals call `admit` from their own `interaction_check` (`GuardedView` does it for a view).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import discord

from bot.audit import AuditAction, Auditor
from bot.discord_access import DM_REFUSAL, check_command
from bot.settings import Settings

log = logging.getLogger(__name__)

# Qualified command name -> audit action, for the commands whose every attempt is audited (refusals too).
AUDITED_COMMANDS: Mapping[str, str] = {
    "power": "power",
    "command": "command",
    "console link": "link",
    "console unlink": "unlink",
    "access grant": "grant",
    "access revoke": "revoke",
    "audit channel": "audit channel",
}
NOT_READY = "Wingbeat is still starting; try again in a few seconds."
SHUTTING_DOWN = "Wingbeat is shutting down; try again in a minute."


def foreign_guild_refusal(guild_id: int) -> str:
    """The one sentence a guild outside `GUILD_IDS` gets, naming the fix."""
    return (
        "This Discord server is not allowed to use Wingbeat; its operator must add this server's ID "
        f"({guild_id}) to GUILD_IDS."
    )


def refuse_foreign(interaction: discord.Interaction[Any], allowed_guilds: Collection[int]) -> str | None:
    """The refusal for an interaction from outside the allowed guilds (a DM included), or None."""
    if interaction.guild_id is None:
        return DM_REFUSAL
    if interaction.guild_id not in allowed_guilds:
        return foreign_guild_refusal(interaction.guild_id)
    return None


def option_text(options: Sequence[Mapping[str, Any]]) -> str:
    """A command's options as `name=value` pairs (subcommands' options included), for the audit log."""
    parts: list[str] = []
    for option in options:
        if "options" in option:  # a subcommand (group): its own options follow
            parts.append(option_text(option["options"]))
        elif "value" in option:
            parts.append(f"{option['name']}={option['value']}")
    return " ".join(p for p in parts if p)


class Guard:
    """Decides whether an interaction may go on, and answers it when not."""

    def __init__(
        self, settings: Settings, auditor: Auditor, *, serves: Callable[[int | None], bool] | None = None
    ) -> None:
        self.allowed_guilds = frozenset(settings.guild_ids)
        # With several processes on one token, the guilds on this process's shards (bot.shards); Discord never
        # delivers the others here, and if it did, their own process answers them.
        self._serves = serves or (lambda guild_id: True)
        self._elsewhere_seen: set[int | None] = set()
        self._auditor = auditor
        self._warned: set[int] = set()
        self.closing = False
        self._inflight: set[int] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def is_allowed(self, guild_id: int | None) -> bool:
        """True for a guild in `GUILD_IDS` (never for a DM)."""
        return guild_id is not None and guild_id in self.allowed_guilds

    def note_guild(self, guild_id: int, name: str | None = None) -> None:
        """Log a guild outside `GUILD_IDS` once (WARNING), the first time the bot sees it or hears from it."""
        if guild_id in self.allowed_guilds or guild_id in self._warned:
            return
        self._warned.add(guild_id)
        called = f" ({name})" if name else ""
        log.warning(
            "the bot is in guild %d%s, which is not in GUILD_IDS: Wingbeat refuses everything from it; "
            "add its ID to GUILD_IDS to allow it, or remove the bot from it",
            guild_id,
            called,
        )

    def refusal(self, interaction: discord.Interaction[Any]) -> str | None:
        """Why this interaction may not use Wingbeat at all (whoever sent it), or None."""
        reason = refuse_foreign(interaction, self.allowed_guilds)
        if reason is not None and interaction.guild_id is not None:
            self.note_guild(interaction.guild_id)
        if reason is None and self.closing:
            return SHUTTING_DOWN
        return reason

    # -- what is in flight, for an honest shutdown -----------------------------------------------------------

    def begin(self, key: int) -> None:
        """An action (an interaction or a console-input message, by ID) started."""
        self._inflight.add(key)
        self._idle.clear()

    def end(self, key: int) -> None:
        """The action ended, whatever its outcome."""
        self._inflight.discard(key)
        if not self._inflight:
            self._idle.set()

    @contextlib.contextmanager
    def tracked(self, key: int) -> Iterator[None]:
        """`begin` and `end` around a block."""
        self.begin(key)
        try:
            yield
        finally:
            self.end(key)

    async def drain(self, timeout: float) -> int:
        """Refuse what comes from now on and wait up to `timeout` s for what runs; returns how many are left."""
        self.closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        return len(self._inflight)

    def served_elsewhere(self, guild_id: int | None) -> bool:
        """True for a guild on another process's shards: its interactions are left unanswered here."""
        if self._serves(guild_id):
            return False
        if guild_id not in self._elsewhere_seen:
            self._elsewhere_seen.add(guild_id)
            log.warning("ignoring interactions of guild %s: it is on another process's shards", guild_id)
        return True

    async def admit(self, interaction: discord.Interaction[Any]) -> bool:
        """True when the interaction may go on; otherwise it has been answered (no choices, or one sentence).

        An interaction of a guild on another process's shards is not answered at all: that process answers it.
        """
        if self.served_elsewhere(interaction.guild_id):
            return False
        reason = self.refusal(interaction)
        if reason is None:
            return True
        await refuse(interaction, reason)
        return False

    async def admit_command(self, interaction: discord.Interaction[Any]) -> bool:
        """`admit`, then the member's access to the command; audited commands' refusals are audited."""
        if not await self.admit(interaction):
            return False
        if interaction.type is discord.InteractionType.autocomplete:
            return True
        command = interaction.command
        name = command.qualified_name if command is not None else ""
        check = await check_command(interaction)
        verdict = check.verdict
        if verdict.allowed:
            # Ended by the tree: on completion (the bot's on_app_command_completion) or on any error (on_error).
            self.begin(interaction.id)
            return True
        await refuse(interaction, verdict.reason)
        log.info("refused /%s for user %d in guild %s", name, interaction.user.id, interaction.guild_id)
        action = AUDITED_COMMANDS.get(name)
        if action is not None:
            data: Mapping[str, Any] = interaction.data or {}
            arguments = option_text(data.get("options") or [])
            await self._auditor.record(
                AuditAction.by(interaction, server=check.server, action=action, arguments=arguments),
                f"refused: {verdict.reason}",
            )
        return False


@runtime_checkable
class Guarded(Protocol):
    """A client with a guard (the bot, once its `setup_hook` ran)."""

    guard: Guard


async def admit(interaction: discord.Interaction[Any]) -> bool:
    """The guard's verdict for a component or modal interaction; call it from `interaction_check`."""
    client = interaction.client
    if not isinstance(client, Guarded):
        await refuse(interaction, NOT_READY)
        return False
    return await client.guard.admit(interaction)


async def admit_command(interaction: discord.Interaction[Any]) -> bool:
    """The guard's verdict for a slash command or its autocomplete (the command tree's check)."""
    client = interaction.client
    if not isinstance(client, Guarded):
        await refuse(interaction, NOT_READY)
        return False
    return await client.guard.admit_command(interaction)


class GuardedView(discord.ui.View):
    """A view whose every item passes the guard first (buttons, selects)."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await admit(interaction)


async def refuse(interaction: discord.Interaction[Any], reason: str) -> None:
    """Answer at once with `reason`, only for the member (autocomplete: no choices)."""
    if interaction.response.is_done():
        return
    if interaction.type is discord.InteractionType.autocomplete:
        await interaction.response.autocomplete([])
    else:
        await interaction.response.send_message(reason, ephemeral=True)
