"""The one root of every error a user may see.

    WingbeatError                 str() is one sentence for the user, never a traceback or a secret
    ├── PanelError                the panel's Client API (bot.panel.errors: unreachable, key, 404, 409, 429…)
    ├── WingsError                a console action (bot.wings: refused before sending, no usable socket)
    ├── ServerLookupError         the `server` option names no server, or several (bot.lookup)
    └── Refusal                   a request declined for a reason the user can act on (bot.tree)

The command tree turns any of these into a private reply; anything else is a bug, logged with its
traceback, and the user sees a fixed sentence.
"""

from __future__ import annotations


class WingbeatError(Exception):
    """An error whose `str()` is one sentence a user can read and act on."""
