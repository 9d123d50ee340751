"""`wingbeat check`: checks the settings, the panel key, Wings and the Discord application, changing nothing.

verdicts             pure: facts in, one ✓/✗ line with what to do out
channel_permissions  pure: the bot's permissions in a channel from REST payloads
panel_probe          I/O: the panel's answers and one console socket per node
discord_probe        I/O: the bot user, application, guilds and linked channels over REST
links                I/O: the saved links, read read-only
report               printing, and a spinner on terminals
runner               the order of the checks and the exit status
"""

from __future__ import annotations

from bot.check.runner import main, run_check

__all__ = ["main", "run_check"]
