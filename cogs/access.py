"""/access grant|revoke|list: who may do what, per role and per member, per server (admins only)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import discord
from discord import app_commands
from discord.ext import commands

from bot.access import (
    Capability,
    Member,
    Verdict,
    holds,
    may_grant,
    may_revoke,
    parse_patterns,
    view_is_open,
)
from bot.app import WingbeatBot
from bot.audit import AuditAction
from bot.discord_access import interaction_member
from bot.names import safe_name
from bot.panel.pacing import Priority
from bot.render import inline, name_label
from bot.replies import defer, reply
from bot.server_option import resolve, server_autocomplete
from bot.store import ALL_SERVERS, Grant, TargetKind
from bot.tree import Refusal

log = logging.getLogger(__name__)

CAPABILITY_CHOICES = [app_commands.Choice(name=c.value, value=c.value) for c in Capability]
Target = discord.Role | discord.Member | discord.User


def _capability(value: str) -> Capability:
    try:
        return Capability(value)
    except ValueError:
        names = ", ".join(f"`{c.value}`" for c in Capability)
        raise Refusal(f"There is no capability `{inline(value, 40)}`; pick one of {names}.") from None


def _kind(target: Target) -> TargetKind:
    return TargetKind.ROLE if isinstance(target, discord.Role) else TargetKind.MEMBER


def target_text(kind: TargetKind | str, target_id: int, guild_id: int, *, markdown: bool = True) -> str:
    """A grant's target as a mention (the message is sent with mentions disabled) or, for a file, as text."""
    if kind == TargetKind.ROLE and target_id == guild_id:
        return "@everyone"
    if not markdown:
        return f"{'role' if kind == TargetKind.ROLE else 'member'} {target_id}"
    return f"<@&{target_id}>" if kind == TargetKind.ROLE else f"<@{target_id}>"


def server_text(identifier: str, names: Mapping[str, str], *, markdown: bool = True) -> str:
    if identifier == ALL_SERVERS:
        return "all servers"
    name = names.get(identifier)
    if not markdown:
        return f"{safe_name(name)} ({identifier})" if name else identifier
    return name_label(name, identifier)


def _patterns_text(patterns: Sequence[str], *, markdown: bool = True) -> str:
    if markdown:
        return ", ".join(f"`{inline(p, len(p))}`" for p in patterns)
    return ", ".join(patterns)


def grant_line(grant: Grant, names: Mapping[str, str], *, markdown: bool = True) -> str:
    """One grant: who, what, where, and its command patterns."""
    who = target_text(grant.target_kind, grant.target_id, grant.guild_id, markdown=markdown)
    capability = f"`{grant.capability}`" if markdown else grant.capability
    line = f"{who} · {capability} on {server_text(grant.server_identifier, names, markdown=markdown)}"
    if grant.capability == Capability.CONSOLE:
        line += " · " + (
            f"commands: {_patterns_text(grant.commands, markdown=markdown)}"
            if grant.commands
            else "any command"
        )
    return line


def _action(interaction: discord.Interaction, action: str, server: str, arguments: str) -> AuditAction:
    # A grant on all servers is about no one server: its audit row names none (the arguments say `*`).
    return AuditAction.by(
        interaction, server=None if server == ALL_SERVERS else server, action=action, arguments=arguments
    )


def _refuse(verdict: Verdict) -> None:
    if not verdict.allowed:
        raise Refusal(verdict.reason)


class AccessCog(commands.Cog):
    """Grants: capabilities given to roles and members, on one server or all."""

    access = app_commands.Group(
        name="access", description="Who may do what: grants per role and member", guild_only=True
    )

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot

    def _names(self) -> dict[str, str]:
        return {s.identifier: s.name for s in self.bot.catalog.servers}

    async def _server(self, text: str | None, guild_id: int) -> str:
        """The identifier a grant is for: `*` when none is given; a granted server is found even if gone."""
        if text is None or text.strip() in ("", ALL_SERVERS):
            return ALL_SERVERS
        granted = {g.server_identifier for g in self.bot.grant_book.grants(guild_id)}
        if text.strip() in granted:
            return text.strip()
        return (await resolve(self.bot.catalog, text, priority=Priority.ACTION)).identifier

    @access.command(name="grant", description="Give a role or a member a capability on one server or on all")
    @app_commands.describe(
        target="A role or a member",
        capability="What they may do",
        server="One server (default: all servers)",
        patterns="control.console only: the allowed commands, comma-separated, e.g. say *, whitelist add *",
    )
    @app_commands.rename(patterns="commands")
    @app_commands.choices(capability=CAPABILITY_CHOICES)
    @app_commands.autocomplete(server=server_autocomplete)
    async def grant(
        self,
        interaction: discord.Interaction,
        target: Target,
        capability: str,
        server: str | None = None,
        patterns: str | None = None,
    ) -> None:
        guild_id = interaction.guild_id
        actor = interaction_member(interaction)
        assert guild_id is not None and actor is not None  # the tree refuses DMs
        wanted = _capability(capability)
        kind, target_id = _kind(target), target.id
        if not isinstance(target, discord.Role) and target.bot:
            raise Refusal("Bots cannot use Wingbeat's commands; grant to a person or a role.")
        _refuse(may_grant(actor, wanted, kind, target_id, admin_role_ids=self.bot.settings.admin_role_ids))
        allowed_commands: tuple[str, ...] = ()
        if patterns is not None and patterns.strip():
            if wanted is not Capability.CONSOLE:
                raise Refusal("Command patterns go with `control.console` only.")
            allowed_commands = parse_patterns(patterns)
        await defer(interaction, ephemeral=True)
        identifier = await self._server(server, guild_id)
        view_was_open = view_is_open(self.bot.grant_book.grants(guild_id))
        grant = Grant(
            guild_id, kind, target_id, wanted, identifier, allowed_commands, actor.user_id, datetime.now(UTC)
        )
        arguments = f"{kind}={target_id} capability={wanted} server={identifier}"
        if allowed_commands:
            arguments += " commands=" + ", ".join(allowed_commands)
        added = await self.bot.auditor.run(
            _action(interaction, "grant", identifier, arguments),
            self.bot.grant_book.grant(grant),
            lambda new: "granted" if new else "updated",
        )
        line = grant_line(grant, self._names())
        text = f"Granted: {line}." if added else f"Updated: {line}."
        if wanted is Capability.VIEW and view_was_open:
            text += (
                "\nThis is the first `view` grant here, so /servers, /status and boards are no longer open to "
                "everyone: only admins and members with a grant may use them now."
            )
        await reply(interaction, text, ephemeral=True)

    @access.command(name="revoke", description="Take a capability back from a role or a member")
    @app_commands.describe(
        target="A role or a member",
        capability="The capability to take back",
        server="The server it was given on (default: all servers)",
    )
    @app_commands.choices(capability=CAPABILITY_CHOICES)
    @app_commands.autocomplete(server=server_autocomplete)
    async def revoke(
        self, interaction: discord.Interaction, target: Target, capability: str, server: str | None = None
    ) -> None:
        guild_id = interaction.guild_id
        actor = interaction_member(interaction)
        assert guild_id is not None and actor is not None
        wanted = _capability(capability)
        kind, target_id = _kind(target), target.id
        _refuse(may_revoke(actor, wanted, admin_role_ids=self.bot.settings.admin_role_ids))
        await defer(interaction, ephemeral=True)
        identifier = await self._server(server, guild_id)
        arguments = f"{kind}={target_id} capability={wanted} server={identifier}"
        removed = await self.bot.auditor.run(
            _action(interaction, "revoke", identifier, arguments),
            self.bot.grant_book.revoke(guild_id, kind, target_id, wanted, identifier),
            lambda gone: "revoked" if gone else "there was no such grant",
        )
        who = target_text(kind, target_id, guild_id)
        where = server_text(identifier, self._names())
        if removed:
            text = f"Revoked: {who} no longer holds `{wanted}` on {where}."
        else:
            text = f"{who} holds no `{wanted}` grant on {where}; nothing changed."
            if identifier != ALL_SERVERS:
                text += " (A grant on all servers is revoked without the server option.)"
        await reply(interaction, text, ephemeral=True)

    @access.command(name="list", description="This server's grants, for one role, member or game server")
    @app_commands.describe(
        target="Only this role's or member's grants", server="Only grants reaching this server"
    )
    @app_commands.autocomplete(server=server_autocomplete)
    async def list_grants(
        self, interaction: discord.Interaction, target: Target | None = None, server: str | None = None
    ) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None
        grants = list(self.bot.grant_book.grants(guild_id))
        view_open = view_is_open(grants)
        scope = ""
        if target is not None:
            kind = _kind(target)
            if isinstance(target, discord.Member):
                # What this member may do: their own grants and those of their roles (and @everyone).
                member = Member(guild_id, target.id, frozenset(role.id for role in target.roles))
                grants = [g for g in grants if holds(member, g)]
                scope += f" reaching {target_text(kind, target.id, guild_id)} (theirs and their roles')"
            else:
                grants = [g for g in grants if g.target_kind is kind and g.target_id == target.id]
                scope += f" for {target_text(kind, target.id, guild_id)}"
        names = self._names()
        if server is not None:
            await defer(interaction, ephemeral=True)
            identifier = await self._server(server, guild_id)
            grants = [g for g in grants if g.server_identifier in (identifier, ALL_SERVERS)]
            scope += f" reaching {server_text(identifier, names)}"
        view_rule = (
            "`view` is open to everyone (no `view` grant exists here)."
            if view_open
            else "`view` is limited to admins and the `view` grants (and other grants, on their servers)."
        )
        if not grants:
            await reply(interaction, f"No grants{scope}. {view_rule}", ephemeral=True)
            return
        head = f"{len(grants)} grant{'s' if len(grants) != 1 else ''}{scope}:"
        text = "\n".join([head, *(f"• {grant_line(g, names)}" for g in grants), view_rule])
        plain = "\n".join(grant_line(g, names, markdown=False) for g in grants) + "\n"
        await reply(
            interaction,
            text,
            ephemeral=True,
            file_text=plain,
            filename="grants.txt",
            summary=f"{head} see the file. {view_rule}",
        )


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(AccessCog(bot))
