"""The one place every audited action goes through.

An action writes its row when it starts (`Auditor.start`) and completes it with its outcome (`finish`), so an
action cut short by a crash still leaves a trace; refusals and what Wingbeat does on its own are written in
one go (`record`). Whoever wants to see completed actions (an audit channel) registers with `on_completed`.
A failing store is logged, never shown to the member as the failure of what they asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import discord

from bot.store import How, Store

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TEXT = 1000  # arguments and outcomes are cut to this many characters
WINGBEAT_USER = 0  # the user id of actions Wingbeat takes on its own


@dataclass(frozen=True, slots=True)
class AuditAction:
    """Who does what, where, on which server, and how it came to the bot."""

    guild_id: int | None
    user_id: int
    server: str | None
    action: str
    arguments: str
    how: How = How.COMMAND

    @classmethod
    def by(
        cls,
        interaction: discord.Interaction[Any],
        *,
        server: str | None,
        action: str,
        arguments: str,
        how: How = How.COMMAND,
    ) -> AuditAction:
        """The action of the member behind an interaction."""
        return cls(interaction.guild_id, interaction.user.id, server, action, arguments, how)


@dataclass(frozen=True, slots=True)
class AuditHandle:
    """A started action; `entry_id` is None when its row could not be written."""

    action: AuditAction
    entry_id: int | None


Completed = Callable[[AuditAction, str], Awaitable[None]]


class Auditor:
    """Writes audit rows through the store and tells `on_completed` callbacks about every finished action."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._completed: list[Completed] = []

    def on_completed(self, callback: Completed) -> None:
        """Call `callback(action, outcome)` after every finished or recorded action."""
        self._completed.append(callback)

    async def start(self, action: AuditAction) -> AuditHandle:
        """Write the action's row as started."""
        try:
            entry_id = await self._store.audit_start(
                guild_id=action.guild_id,
                user_id=action.user_id,
                server_identifier=action.server,
                action=action.action,
                arguments=action.arguments[:MAX_TEXT],
                how=action.how,
            )
        except Exception:
            log.exception("could not write the audit entry for %s on %s", action.action, action.server)
            entry_id = None
        return AuditHandle(action, entry_id)

    async def finish(self, handle: AuditHandle, outcome: str) -> None:
        """Complete a started action with its outcome."""
        if handle.entry_id is None:
            await self.record(handle.action, outcome)
            return
        try:
            await self._store.audit_finish(handle.entry_id, outcome[:MAX_TEXT])
        except Exception:
            log.exception("could not complete audit entry #%d (%s)", handle.entry_id, outcome[:100])
        await self._tell(handle.action, outcome)

    async def record(self, action: AuditAction, outcome: str) -> None:
        """Write an action whose outcome is already known (a refusal, something Wingbeat did itself)."""
        try:
            await self._store.audit(
                guild_id=action.guild_id,
                user_id=action.user_id,
                server_identifier=action.server,
                action=action.action,
                arguments=action.arguments[:MAX_TEXT],
                outcome=outcome[:MAX_TEXT],
                how=action.how,
            )
        except Exception:
            log.exception("could not write the audit entry for %s on %s", action.action, action.server)
        await self._tell(action, outcome)

    async def run(self, action: AuditAction, work: Awaitable[T], outcome: Callable[[T], str]) -> T:
        """Start the action's row, await `work`, and complete the row with `outcome(result)` or the failure."""
        handle = await self.start(action)
        text = "cancelled"
        try:
            result = await work
            text = outcome(result)
            return result
        except Exception as exc:
            text = f"failed: {exc}"
            raise
        finally:
            await self.finish(handle, text)

    async def _tell(self, action: AuditAction, outcome: str) -> None:
        for callback in self._completed:
            try:
                await callback(action, outcome)
            except Exception:
                log.exception("an audit listener failed for %s on %s", action.action, action.server)
