"""A `Rendered` board or card as discord.py objects: the embed and the components (with their custom IDs).

The components carry no callbacks here; the cog's persistent handlers match their custom IDs.
"""

from __future__ import annotations

import discord

from bot.boards.custom_ids import BOARD_SELECT, Power, command_id, logs_id, power_id
from bot.boards.render import Kind, Rendered


def embed(rendered: Rendered) -> discord.Embed:
    out = discord.Embed(title=rendered.title, description=rendered.description, color=rendered.color)
    for name, value in rendered.fields:
        out.add_field(name=name, value=value, inline=True)
    if rendered.footer:
        out.set_footer(text=rendered.footer)
    return out


class Components(discord.ui.View):
    """Components only: clicks are handled by the persistent handlers that match their custom IDs.

    Not dispatchable, so discord.py does not keep a copy of every sent or edited view in its view store.
    """

    def is_dispatchable(self) -> bool:
        return False


def view(rendered: Rendered) -> discord.ui.View:
    """The board's *Manage a server…* menu, or the card's buttons."""
    out = Components(timeout=None)
    if rendered.kind is Kind.BOARD:
        if rendered.options:
            out.add_item(
                discord.ui.Select(
                    custom_id=BOARD_SELECT,
                    placeholder="Manage a server…",
                    options=[
                        discord.SelectOption(
                            label=o.label, value=o.value, description=o.description, emoji=o.emoji
                        )
                        for o in rendered.options
                    ],
                )
            )
        return out
    server = rendered.server
    assert server is not None, "a card names its server"
    for action, style in (
        (Power.START, discord.ButtonStyle.success),
        (Power.STOP, discord.ButtonStyle.danger),
        (Power.RESTART, discord.ButtonStyle.primary),
        (Power.KILL, discord.ButtonStyle.danger),
    ):
        out.add_item(
            discord.ui.Button(
                label=action.value.capitalize(),
                style=style,
                custom_id=power_id(server, action),
                disabled=action is Power.KILL and not rendered.kill_enabled,
                row=0,
            )
        )
    out.add_item(
        discord.ui.Button(label="Logs", style=discord.ButtonStyle.secondary, custom_id=logs_id(server), row=1)
    )
    out.add_item(
        discord.ui.Button(
            label="Command…", style=discord.ButtonStyle.secondary, custom_id=command_id(server), row=1
        )
    )
    return out
