"""Audit entries as text: one Discord line each (for /audit show and the audit channel), or plain for a file."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import discord

from bot.names import safe_name
from bot.render import name_label
from bot.store import STARTED, AuditEntry, How

ARGUMENTS_SHOWN = 200  # characters of an entry's arguments in a Discord line (the file has them whole)
OUTCOME_SHOWN = 300
WINGBEAT_USER = 0  # the user ID of actions Wingbeat took by itself

_HOW = {
    How.COMMAND: "by command",
    How.BUTTON: "by button",
    How.CONSOLE_INPUT: "by console input",
    How.WINGBEAT: "by Wingbeat",
}


def _inline(text: str, limit: int) -> str:
    """Text for single backticks: one line, no backtick that could end the span, at most `limit` characters."""
    text = " ".join(text.split()).replace("`", "ˋ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def outcome_text(entry: AuditEntry, *, since: datetime | None = None) -> str:
    """The outcome in words; a row never completed is "in progress", or "interrupted" when older than `since`.

    `since` is when this process started: a row started before it and never completed was cut short.
    """
    if entry.completed_at is None and entry.outcome == STARTED:
        if since is not None and entry.at < since:
            return "interrupted: Wingbeat stopped before the outcome was known"
        return "in progress"
    return entry.outcome


def _icon(outcome: str) -> str:
    if outcome.startswith("interrupted"):
        return "⚠️"
    if outcome == "in progress":
        return "⏳"
    if outcome.startswith("refused"):
        return "⛔"
    if outcome.startswith(("failed", "error")):
        return "⚠️"
    return "✅"


def _server(identifier: str | None, names: Mapping[str, str], *, markdown: bool) -> str:
    if identifier is None:
        return "—" if markdown else "-"
    name = names.get(identifier)
    if not markdown:
        return f"{safe_name(name)} ({identifier})" if name else identifier
    return name_label(name, identifier)


def audit_line(entry: AuditEntry, *, server_names: Mapping[str, str], since: datetime | None = None) -> str:
    """One Discord line: time, who (a mention; sent with mentions disabled), server, action, how, outcome."""
    who = "Wingbeat" if entry.user_id == WINGBEAT_USER else f"<@{entry.user_id}>"
    what = entry.action + (
        f" `{_inline(entry.arguments, ARGUMENTS_SHOWN)}`" if entry.arguments.strip() else ""
    )
    outcome = outcome_text(entry, since=since)
    return " · ".join(
        [
            discord.utils.format_dt(entry.at, "f"),
            who,
            _server(entry.server_identifier, server_names, markdown=True),
            what,
            _HOW.get(entry.how, entry.how.value),
            f"{_icon(outcome)} {_cut(outcome, OUTCOME_SHOWN)}",
        ]
    )


def audit_plain(entry: AuditEntry, *, server_names: Mapping[str, str], since: datetime | None = None) -> str:
    """One line for a text file: UTC time, user ID, server, action, arguments whole, how, outcome."""
    who = "Wingbeat" if entry.user_id == WINGBEAT_USER else f"user {entry.user_id}"
    at = entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    arguments = " ".join(entry.arguments.split())
    what = f"{entry.action} {arguments}" if arguments else entry.action
    return " | ".join(
        [
            at,
            who,
            _server(entry.server_identifier, server_names, markdown=False),
            what,
            entry.how.value,
            " ".join(outcome_text(entry, since=since).split()),
        ]
    )
