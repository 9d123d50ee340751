"""The custom IDs of boards' and cards' components: what a click carries across restarts.

A component's custom ID is all Discord sends back on a click, so it names the action and the server (its
8-character identifier); the handlers match these templates whatever message the component is on, which
keeps buttons working after a restart without any state. IDs stay far below Discord's 100 characters.
"""

from __future__ import annotations

from enum import StrEnum

SERVER = r"(?P<server>[0-9a-f]{8})"


class Power(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    KILL = "kill"


POWER_TEMPLATE = rf"wingbeat:power:{SERVER}:(?P<action>start|stop|restart|kill)"
CONFIRM_TEMPLATE = rf"wingbeat:confirm:{SERVER}:(?P<action>stop|kill)"
LOGS_TEMPLATE = rf"wingbeat:logs:{SERVER}"
COMMAND_TEMPLATE = rf"wingbeat:cmd:{SERVER}"
COMMAND_FORM_TEMPLATE = rf"wingbeat:cmdform:{SERVER}"  # the modal the Command button opens
COMMAND_FIELD = "command"  # its one text input
BOARD_SELECT = "wingbeat:board:select"
BOARD_SELECT_TEMPLATE = BOARD_SELECT


def power_id(server: str, action: Power) -> str:
    return f"wingbeat:power:{server}:{action.value}"


def confirm_id(server: str, action: Power) -> str:
    return f"wingbeat:confirm:{server}:{action.value}"


def logs_id(server: str) -> str:
    return f"wingbeat:logs:{server}"


def command_id(server: str) -> str:
    return f"wingbeat:cmd:{server}"


def command_form_id(server: str) -> str:
    return f"wingbeat:cmdform:{server}"
