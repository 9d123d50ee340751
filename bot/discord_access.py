"""The Discord-facing side of the access rules: read a member's admin standing from Discord objects, ask `bot.access`.

Everything is read from the data that came with the interaction or message itself (the member's own role
IDs and the permissions Discord computed for it), never from a member cache that could be stale or empty.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import discord

from bot.access import may_use, refusal_text

DM_REFUSAL = "Wingbeat's commands work in servers only, not in direct messages."


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of the access check: `allowed`, or `reason` (one sentence) for the refusal."""

    allowed: bool
    reason: str = ""


def _role_ids(member: discord.Member) -> list[int]:
    # `_roles` holds exactly the role IDs of the payload; `Member.roles` would drop IDs the guild
    # cache does not know yet, which would silently demote an admin.
    return list(member._roles)


def message_may_use(message: discord.Message, command: str, admin_role_ids: Collection[int]) -> bool:
    """May a guild message's author run `command` ("console input")? False for DMs, webhooks, departed members."""
    author = message.author
    if message.guild is None or message.webhook_id is not None or not isinstance(author, discord.Member):
        return False
    return may_use(
        command,
        administrator=author.guild_permissions.administrator,
        role_ids=_role_ids(author),
        admin_role_ids=admin_role_ids,
    )


def check_interaction(
    interaction: discord.Interaction, command: str, admin_role_ids: Collection[int]
) -> Verdict:
    """May this interaction run `command` (its qualified name)? DMs are always refused."""
    if interaction.guild_id is None or not isinstance(interaction.user, discord.Member):
        return Verdict(False, DM_REFUSAL)
    member = interaction.user
    if may_use(
        command,
        administrator=interaction.permissions.administrator,
        role_ids=_role_ids(member),
        admin_role_ids=admin_role_ids,
    ):
        return Verdict(True)
    return Verdict(False, refusal_text(command, admin_roles_configured=bool(admin_role_ids)))
