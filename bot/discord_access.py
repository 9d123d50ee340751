"""The Discord-facing side of SPEC §5: read a member's admin standing from Discord objects, ask `bot.access`.

Everything is read from the data that came with the interaction or message itself (the member's own role
IDs and the permissions Discord computed for it), never from a member cache that could be stale or empty.
"""

from __future__ import annotations

from collections.abc import Collection

import discord

from bot.access import Member, Verdict, decide, is_admin, required_capability

DM_REFUSAL = "Wingbeat's commands work in servers only, not in direct messages."


def _role_ids(member: discord.Member) -> list[int]:
    # `_roles` holds exactly the role IDs of the payload; `Member.roles` would drop IDs the guild
    # cache does not know yet, which would silently demote an admin.
    return list(member._roles)


def interaction_member(interaction: discord.Interaction) -> Member | None:
    """The access facts of the member behind an interaction (None outside a guild)."""
    user = interaction.user
    if interaction.guild_id is None or not isinstance(user, discord.Member):
        return None
    return Member(
        interaction.guild_id, user.id, frozenset(_role_ids(user)), interaction.permissions.administrator
    )


def message_member(message: discord.Message) -> Member | None:
    """The access facts of a guild message's author (None for DMs, webhooks and departed members)."""
    author = message.author
    if message.guild is None or message.webhook_id is not None or not isinstance(author, discord.Member):
        return None
    return Member(
        message.guild.id, author.id, frozenset(_role_ids(author)), author.guild_permissions.administrator
    )


def member_is_admin(member: discord.Member, *, administrator: bool, admin_role_ids: Collection[int]) -> bool:
    """True when `member` holds the Administrator permission or an admin role."""
    return is_admin(administrator=administrator, role_ids=_role_ids(member), admin_role_ids=admin_role_ids)


def interaction_is_admin(interaction: discord.Interaction, admin_role_ids: Collection[int]) -> bool:
    """Admin standing from the interaction's own member data (False outside a guild)."""
    member = interaction.user
    if interaction.guild_id is None or not isinstance(member, discord.Member):
        return False
    return member_is_admin(
        member, administrator=interaction.permissions.administrator, admin_role_ids=admin_role_ids
    )


def message_author_is_admin(message: discord.Message, admin_role_ids: Collection[int]) -> bool:
    """Admin standing of a guild message's author (False for DMs, webhooks and departed members)."""
    author = message.author
    if message.guild is None or message.webhook_id is not None or not isinstance(author, discord.Member):
        return False
    administrator = author.guild_permissions.administrator
    return member_is_admin(author, administrator=administrator, admin_role_ids=admin_role_ids)


def check_interaction(
    interaction: discord.Interaction, command: str, admin_role_ids: Collection[int]
) -> Verdict:
    """May this interaction run `command` (its qualified name)? DMs are always refused."""
    member = interaction_member(interaction)
    if member is None:
        return Verdict(False, DM_REFUSAL)
    return decide(
        member,
        required_capability(command),
        None,
        grants=(),
        admin_role_ids=admin_role_ids,
        what=f"/{command}",
    )
