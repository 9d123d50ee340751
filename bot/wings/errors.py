"""Errors a console action can raise; each str() is one sentence for the user.

WingbeatError (bot.errors)
└── WingsError          a console action could not be done
    ├── ActionRefused   refused before anything was sent: missing permission, wrong power state, bad command
    └── WingsUnavailable  no usable socket (yet, or at all) for this server
"""

from __future__ import annotations

from bot.errors import WingbeatError


class WingsError(WingbeatError):
    """A console action could not be done; the message is one sentence for the user."""


class ActionRefused(WingsError):
    """Refused before anything was sent (missing permission, wrong power state, bad command)."""


class WingsUnavailable(WingsError):
    """No usable socket (yet, or at all) for this server."""
