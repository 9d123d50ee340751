"""/board post|card|remove, and the persistent buttons, menu and modal on boards and cards.

The components are `DynamicItem`s: their custom IDs carry the server and the action, so a click on any board
or card, however old and whatever restarts happened since, lands here. Every click passes the allowed-guilds
guard and then the access check of the command it stands for, before anything reaches the panel or Wings.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.access import POWER_CAPABILITY, Capability
from bot.app import WingbeatBot
from bot.audit import AuditAction
from bot.boards import layout
from bot.boards.custom_ids import (
    BOARD_SELECT,
    BOARD_SELECT_TEMPLATE,
    COMMAND_FIELD,
    COMMAND_FORM_TEMPLATE,
    COMMAND_TEMPLATE,
    CONFIRM_TEMPLATE,
    LOGS_TEMPLATE,
    POWER_TEMPLATE,
    Power,
    command_form_id,
    command_id,
    confirm_id,
    logs_id,
    power_id,
)
from bot.boards.render import plain_name
from bot.discord_access import check_action
from bot.guard import refuse
from bot.panel.models import Server
from bot.panel.pacing import Priority
from bot.redact import hide_addresses
from bot.render import label
from bot.replies import defer, reply, send_ephemeral
from bot.server_option import current_servers, resolve, server_autocomplete
from bot.store import How
from bot.tree import UNEXPECTED_ERROR, Refusal, user_error_text
from bot.wings.frames import PowerAction
from cogs.control import command_outcome, power_outcome, power_report, reply_command_output, reply_logs

log = logging.getLogger(__name__)

T = TypeVar("T")

LOG_LINES = 50  # what a card's Logs button shows, as /logs does by default
SERVER_GONE = (
    "That server is no longer on the panel (it was deleted, or the panel key lost access to it); "
    "an admin can remove this card with `/board remove`."
)
NEEDED = ("view_channel", "send_messages", "embed_links")
CONFIRM_TEXT = {
    Power.STOP: "Stop {server}? Its players are disconnected while it saves and shuts down.",
    Power.KILL: "Kill {server}? Its process is ended at once, without saving.",
}
PROGRESS = {Power.STOP: "Stopping", Power.KILL: "Killing"}
# A board's menu is a view, like /servers and /status: the same per-member pace (4 per 20 s).
MENU_COOLDOWN: commands.CooldownMapping[discord.Interaction[Any]] = commands.CooldownMapping.from_cooldown(
    4, 20.0, lambda interaction: (interaction.guild_id, interaction.user.id)
)


# -- the checks every component runs ------------------------------------------------------------------------


def app_of(interaction: discord.Interaction[Any]) -> WingbeatBot:
    client = interaction.client
    assert isinstance(client, WingbeatBot)
    return client


async def admitted(
    interaction: discord.Interaction[Any],
    capability: Capability,
    server: str,
    *,
    what: str,
    command: str | None = None,
    audit_action: str | None = None,
) -> bool:
    """The guard (allowed guilds, shutdown), then the access check of the matching command (`capability` on
    `server`, `command` against the member's patterns); a refusal is answered at once, privately, before
    anything reaches the panel or Wings."""
    bot = app_of(interaction)
    if not await bot.guard.admit(interaction):
        return False
    verdict = check_action(interaction, capability, cached_server(bot, server), command, what=what)
    if verdict.allowed:
        return True
    await refuse(interaction, verdict.reason)
    log.info("refused %s for user %d in guild %s", what, interaction.user.id, interaction.guild_id)
    if audit_action is not None:
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        action = AuditAction.by(
            interaction,
            server=server,
            action=audit_action,
            arguments=custom_id if command is None else command,
            how=How.BUTTON,
        )
        await bot.auditor.record(action, f"refused: {verdict.reason}")
    return False


async def audited(
    interaction: discord.Interaction[Any],
    *,
    server: str | None,
    action: str,
    arguments: str,
    how: How,
    work: Awaitable[T],
    outcome: Callable[[T], str],
) -> T:
    """Run an action through the auditor: its row is written as it starts and completed with its outcome."""
    audit = AuditAction.by(interaction, server=server, action=action, arguments=arguments, how=how)
    return await app_of(interaction).auditor.run(audit, work, outcome)


async def answering_errors(interaction: discord.Interaction[Any], work: Awaitable[object]) -> None:
    """Run a component's work (a shutdown waits for it); an expected error becomes its one sentence, anything
    else a logged bug."""
    with app_of(interaction).guard.tracked(interaction.id):
        try:
            await work
        except Exception as exc:
            text = user_error_text(exc)
            if text is None:
                log.error("unexpected error in a board component", exc_info=exc)
                text = UNEXPECTED_ERROR
            try:
                await send_ephemeral(interaction, hide_addresses(text))
            except discord.HTTPException as http:
                log.warning("could not tell the user about an error: %s", http)


async def server_by_id(bot: WingbeatBot, identifier: str, priority: Priority = Priority.ACTION) -> Server:
    """The panel's server with this identifier; a clear sentence when the panel no longer lists it."""
    servers = await current_servers(bot.catalog, priority)
    found = next((s for s in servers if s.identifier == identifier), None)
    if found is None and (bot.catalog.age() or 0.0) >= 2.0:
        found = next(
            (s for s in await bot.catalog.refresh(priority=priority) if s.identifier == identifier), None
        )
    if found is None:
        raise Refusal(SERVER_GONE)
    return found


def cached_server(bot: WingbeatBot, identifier: str) -> Server:
    """The server from the cached list, without asking the panel (for what must answer within 3 s)."""
    found = next((s for s in bot.catalog.servers if s.identifier == identifier), None)
    return found or Server(identifier, "", identifier)


async def run_power(interaction: discord.Interaction, server: Server, action: Power) -> None:
    bot = app_of(interaction)
    power = PowerAction(action.value)
    bot.note_power_request(server.identifier, power)
    result = await audited(
        interaction,
        server=server.identifier,
        action="power",
        arguments=action.value,
        how=How.BUTTON,
        work=bot.manager.set_state(server.identifier, power),
        outcome=power_outcome,
    )
    await reply(interaction, power_report(server, result), ephemeral=True)


# -- the components -----------------------------------------------------------------------------------------


class _PowerClick:
    """What a power button and its confirmation share: the check of the matching `/power`, errors answered
    privately. The subclasses set `server` and `action` from their custom ID."""

    server: str
    action: Power

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await admitted(
            interaction,
            POWER_CAPABILITY[self.action.value],
            self.server,
            what=f"the {self.action.value.capitalize()} button",
            audit_action="power",
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        await answering_errors(interaction, self._act(interaction))

    async def _act(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


class PowerButton(_PowerClick, discord.ui.DynamicItem[discord.ui.Button[Any]], template=POWER_TEMPLATE):
    """Start, Stop, Restart, Kill on a card; Stop and Kill ask for confirmation first."""

    def __init__(self, server: str, action: Power) -> None:
        super().__init__(
            discord.ui.Button(label=action.value.capitalize(), custom_id=power_id(server, action))
        )
        self.server = server
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["server"], Power(match["action"]))

    async def _act(self, interaction: discord.Interaction) -> None:
        bot = app_of(interaction)
        if self.action in CONFIRM_TEXT:
            server = cached_server(bot, self.server)
            confirm = layout.Components(timeout=None)
            confirm.add_item(
                discord.ui.Button(
                    label=f"{self.action.value.capitalize()} it",
                    style=discord.ButtonStyle.danger,
                    custom_id=confirm_id(self.server, self.action),
                )
            )
            text = CONFIRM_TEXT[self.action].format(server=label(server))
            await interaction.response.send_message(text, view=confirm, ephemeral=True)
            return
        await defer(interaction, ephemeral=True)
        await run_power(interaction, await server_by_id(bot, self.server), self.action)


class ConfirmButton(_PowerClick, discord.ui.DynamicItem[discord.ui.Button[Any]], template=CONFIRM_TEMPLATE):
    """The confirmation of a Stop or Kill: checked again, then carried out."""

    def __init__(self, server: str, action: Power) -> None:
        super().__init__(discord.ui.Button(label="Confirm", custom_id=confirm_id(server, action)))
        self.server = server
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["server"], Power(match["action"]))

    async def _act(self, interaction: discord.Interaction) -> None:
        bot = app_of(interaction)
        known = cached_server(bot, self.server)
        # The question becomes the progress line and loses its button: a second click cannot repeat the action.
        await interaction.response.edit_message(
            content=f"⏳ {PROGRESS[self.action]} {label(known)}…", view=None
        )
        await run_power(interaction, await server_by_id(bot, self.server), self.action)


class LogsButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=LOGS_TEMPLATE):
    """The latest console lines, privately, as /logs shows them."""

    def __init__(self, server: str) -> None:
        super().__init__(discord.ui.Button(label="Logs", custom_id=logs_id(server)))
        self.server = server

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> LogsButton:
        return cls(match["server"])

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await admitted(interaction, Capability.LOGS, self.server, what="the Logs button")

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        await answering_errors(interaction, self._act(interaction))

    async def _act(self, interaction: discord.Interaction) -> None:
        bot = app_of(interaction)
        await defer(interaction, ephemeral=True)
        server = await server_by_id(bot, self.server)
        backlog = (await bot.manager.fetch_logs(server.identifier))[-LOG_LINES:]
        await reply_logs(interaction, server, backlog)


class CommandModal(discord.ui.Modal):
    """The form for one console command on one server.

    Only the form: its submission is handled by `on_command_form` from its custom ID, like the buttons, so a
    form opened before a restart (or left open for long) still works when it is sent.
    """

    command: discord.ui.TextInput[CommandModal] = discord.ui.TextInput(
        label="Console command", placeholder="e.g. say hello", max_length=2000, custom_id=COMMAND_FIELD
    )

    def __init__(self, server: Server) -> None:
        super().__init__(
            title=f"Command for {plain_name(server.name, 32)}",
            timeout=None,
            custom_id=command_form_id(server.identifier),
        )
        self.stop()  # finished before it is sent: discord.py keeps no copy waiting for its submission


def _form_value(components: object, custom_id: str) -> str | None:
    """The value of the text input `custom_id` in a modal submission's components (rows or labels)."""
    if not isinstance(components, list):
        return None
    for component in components:
        if not isinstance(component, dict):
            continue
        if component.get("custom_id") == custom_id and isinstance(component.get("value"), str):
            return str(component["value"])
        inner = component.get("components") or ([component["component"]] if "component" in component else [])
        found = _form_value(inner, custom_id)
        if found is not None:
            return found
    return None


async def on_command_form(interaction: discord.Interaction, server_id: str) -> None:
    """A submitted command form: checked like /command (the text as sent against the member's patterns),
    then sent and answered as /command answers."""
    data: dict[str, Any] = dict(interaction.data or {})
    text = _form_value(data.get("components"), COMMAND_FIELD) or ""
    if not await admitted(
        interaction,
        Capability.CONSOLE,
        server_id,
        what="the Command button",
        command=text,
        audit_action="command",
    ):
        return
    await answering_errors(interaction, _send_form_command(interaction, server_id, text))


async def _send_form_command(interaction: discord.Interaction, server_id: str, text: str) -> None:
    bot = app_of(interaction)
    await defer(interaction, ephemeral=True)
    server = await server_by_id(bot, server_id)
    result = await audited(
        interaction,
        server=server.identifier,
        action="command",
        arguments=text,
        how=How.BUTTON,
        work=bot.manager.send_command(server.identifier, text),
        outcome=command_outcome,
    )
    await reply_command_output(interaction, server, text, result)


class CommandButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=COMMAND_TEMPLATE):
    """Opens the command modal (the access check runs on the click and again on the submit)."""

    def __init__(self, server: str) -> None:
        super().__init__(discord.ui.Button(label="Command…", custom_id=command_id(server)))
        self.server = server

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CommandButton:
        return cls(match["server"])

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await admitted(
            interaction, Capability.CONSOLE, self.server, what="the Command button", audit_action="command"
        )

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        await answering_errors(
            interaction,
            interaction.response.send_modal(CommandModal(cached_server(app_of(interaction), self.server))),
        )


class BoardSelect(discord.ui.DynamicItem[discord.ui.Select[Any]], template=BOARD_SELECT_TEMPLATE):
    """A board's *Manage a server…* menu: answers with the picked server's card, privately."""

    def __init__(self) -> None:
        super().__init__(discord.ui.Select(custom_id=BOARD_SELECT))

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> BoardSelect:
        return cls()

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        picked = self.item.values[0] if self.item.values else ""
        return await admitted(interaction, Capability.VIEW, picked, what="this menu")

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        await answering_errors(interaction, self._act(interaction))

    async def _act(self, interaction: discord.Interaction) -> None:
        bot = app_of(interaction)
        values = self.item.values
        if not values:
            raise Refusal("Pick a server in the menu.")
        retry = MENU_COOLDOWN.update_rate_limit(interaction)
        if retry:
            raise Refusal(f"You are asking too often; try again in {math.ceil(retry)} s.")
        await defer(interaction, ephemeral=True)
        server = await server_by_id(bot, values[0], Priority.VIEW)
        card = await bot.boards.card(server)
        await interaction.followup.send(embed=layout.embed(card), view=layout.view(card), ephemeral=True)


COMPONENTS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    PowerButton,
    ConfirmButton,
    LogsButton,
    CommandButton,
    BoardSelect,
)


# -- the commands -------------------------------------------------------------------------------------------


def _channel_id(
    interaction: discord.Interaction, channel: discord.TextChannel | discord.Thread | None
) -> int:
    if channel is not None:
        return channel.id
    if interaction.channel_id is None:
        raise Refusal("Choose a channel.")
    return interaction.channel_id


def _check_bot_can_post(interaction: discord.Interaction, channel_id: int) -> None:
    guild = interaction.guild
    target = guild.get_channel_or_thread(channel_id) if guild is not None else None
    me = guild.me if guild is not None else None
    if target is None or me is None:
        return  # not cached: Discord's answer to the post says what is wrong
    if not isinstance(target, discord.abc.Messageable):
        raise Refusal(f"{target.mention} is not a channel Wingbeat can post messages in.")
    perms = target.permissions_for(me)
    needed = (
        ("view_channel", "send_messages_in_threads", "embed_links")
        if isinstance(target, discord.Thread)
        else NEEDED
    )
    missing = [name for name in needed if not getattr(perms, name)]
    if missing:
        names = " and ".join(n.replace("_", " ").title() for n in missing)
        raise Refusal(f"Wingbeat lacks {names} in {target.mention}; grant it there and try again.")


def _guild(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:
        raise Refusal("Wingbeat's commands work in servers only, not in direct messages.")
    return interaction.guild_id


class BoardsCog(commands.Cog):
    """Live status boards and server cards with buttons."""

    board = app_commands.Group(
        name="board", description="Live status boards and server cards with buttons", guild_only=True
    )

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(*COMPONENTS)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*COMPONENTS)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Command forms, by their custom ID (discord.py dispatches only the modals it still holds)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: dict[str, Any] = dict(interaction.data or {})
        match = re.fullmatch(COMMAND_FORM_TEMPLATE, str(data.get("custom_id", "")))
        if match is not None:
            await on_command_form(interaction, match["server"])

    @board.command(name="post", description="Post a live status board of every game server in a channel")
    @app_commands.describe(channel="Where to post it (default: this channel)")
    async def post(
        self, interaction: discord.Interaction, channel: discord.TextChannel | discord.Thread | None = None
    ) -> None:
        guild_id = _guild(interaction)
        channel_id = _channel_id(interaction, channel)
        _check_bot_can_post(interaction, channel_id)
        await defer(interaction, ephemeral=True)
        await audited(
            interaction,
            server=None,
            action="board",
            arguments=f"post channel={channel_id}",
            how=How.COMMAND,
            work=self.bot.boards.post_board(
                guild_id=guild_id, channel_id=channel_id, created_by=interaction.user.id
            ),
            outcome=lambda board: f"posted message {board.message_id}",
        )
        await reply(interaction, f"Posted a live status board in <#{channel_id}>.", ephemeral=True)

    @board.command(name="card", description="Post a live card with power buttons for one game server")
    @app_commands.describe(server="The game server", channel="Where to post it (default: this channel)")
    @app_commands.autocomplete(server=server_autocomplete)
    async def card(
        self,
        interaction: discord.Interaction,
        server: str,
        channel: discord.TextChannel | discord.Thread | None = None,
    ) -> None:
        guild_id = _guild(interaction)
        channel_id = _channel_id(interaction, channel)
        _check_bot_can_post(interaction, channel_id)
        await defer(interaction, ephemeral=True)
        found = await resolve(self.bot.catalog, server, priority=Priority.ACTION)
        await audited(
            interaction,
            server=found.identifier,
            action="board",
            arguments=f"card channel={channel_id}",
            how=How.COMMAND,
            work=self.bot.boards.post_card(
                guild_id=guild_id, channel_id=channel_id, server=found, created_by=interaction.user.id
            ),
            outcome=lambda board: f"posted message {board.message_id}",
        )
        await reply(interaction, f"Posted a live card for {label(found)} in <#{channel_id}>.", ephemeral=True)

    @board.command(name="remove", description="Remove the status board and cards from a channel")
    @app_commands.describe(
        channel="The channel (default: this one)", server="Only this game server's card (default: all)"
    )
    @app_commands.autocomplete(server=server_autocomplete)
    async def remove(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread | None = None,
        server: str | None = None,
    ) -> None:
        guild_id = _guild(interaction)
        channel_id = _channel_id(interaction, channel)
        await defer(interaction, ephemeral=True)
        found = (
            await resolve(self.bot.catalog, server, priority=Priority.ACTION) if server is not None else None
        )
        removed = await audited(
            interaction,
            server=found.identifier if found else None,
            action="board",
            arguments=f"remove channel={channel_id}",
            how=How.COMMAND,
            work=self.bot.boards.remove(
                guild_id=guild_id, channel_id=channel_id, server=found.identifier if found else None
            ),
            outcome=lambda boards: f"removed {len(boards)}",
        )
        if not removed:
            what = f"card for {label(found)}" if found else "status board or card"
            await reply(interaction, f"There is no {what} in <#{channel_id}>.", ephemeral=True)
            return
        boards = sum(b.server_identifier is None for b in removed)
        cards = len(removed) - boards
        parts = [
            f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((boards, "board"), (cards, "card")) if n
        ]
        await reply(interaction, f"Removed {' and '.join(parts)} from <#{channel_id}>.", ephemeral=True)


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(BoardsCog(bot))
