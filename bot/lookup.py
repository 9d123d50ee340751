"""Resolving the `server` option: typed text or an autocomplete value to a `Server`. Pure."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from bot.errors import WingbeatError
from bot.names import safe_name
from bot.panel.models import Server

MAX_CHOICES = 25  # Discord's limit on autocomplete choices
MAX_CHOICE_NAME = 100  # Discord's limit on a choice's name
MAX_CANDIDATES_SHOWN = 5


class ServerLookupError(WingbeatError):
    """The text names no server, or more than one; the message is meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _fold(text: str) -> str:
    """Caseless, normalisation-insensitive form: `STRASSE` ~ `straße`, `Café` (any encoding) ~ `cafe\u0301`."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def _uuid_key(text: str) -> str:
    return text.strip().lower().replace("-", "")


def _sort_key(server: Server) -> tuple[str, str]:
    return (_fold(server.name), server.identifier.lower())


def _quoted(text: str, limit: int = 60) -> str:
    clean = safe_name(text)
    return f"“{clean if len(clean) <= limit else clean[: limit - 1] + '…'}”"


def choice_label(server: Server, limit: int = MAX_CHOICE_NAME) -> str:
    """`Name (identifier)` on one line within `limit` characters, shortening the name, never the id."""
    name = safe_name(server.name)
    if not name or name == server.identifier:
        return server.identifier[:limit]
    suffix = f" ({server.identifier})"
    if len(name) + len(suffix) <= limit:
        return name + suffix
    room = limit - len(suffix) - 1
    if room < 1:  # only an absurdly long identifier gets here
        return (name + suffix)[: limit - 1] + "…"
    return name[:room].rstrip() + "…" + suffix


def _listing(servers: Sequence[Server]) -> str:
    shown = ", ".join(choice_label(s) for s in servers[:MAX_CANDIDATES_SHOWN])
    more = len(servers) - MAX_CANDIDATES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def resolve_server(query: str, servers: Sequence[Server]) -> Server:
    """The server the text names: identifier or UUID first, then an exact name, then a unique prefix.

    Raises ServerLookupError with a sentence for the user when nothing or several servers match.
    """
    text = query.strip()
    if not text:
        raise ServerLookupError("Choose a server: pick one from the list or type its name or identifier.")
    if not servers:
        raise ServerLookupError("The panel key can't see any servers.")

    lowered = text.lower()
    for server in servers:
        if server.identifier.lower() == lowered:
            return server
    key = _uuid_key(text)
    if len(key) == 32:  # a full UUID, with or without dashes
        for server in servers:
            if _uuid_key(server.uuid) == key:
                return server

    folded = _fold(text)
    exact = sorted((s for s in servers if _fold(s.name) == folded), key=_sort_key)
    if len(exact) == 1:
        return exact[0]
    if exact:
        raise ServerLookupError(
            f"Several servers are named {_quoted(text)}: {_listing(exact)}. "
            "Pick one from the list or type its identifier."
        )

    prefixed = sorted((s for s in servers if _fold(s.name).startswith(folded)), key=_sort_key)
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        raise ServerLookupError(
            f"{_quoted(text)} matches {len(prefixed)} servers: {_listing(prefixed)}. "
            "Type more of the name, or pick one from the list."
        )
    raise ServerLookupError(
        f"No server matches {_quoted(text)}. Pick one from the list, or use /servers to see them all."
    )


def _rank(key: str, server: Server) -> int | None:
    """0 exact, 1 prefix, 2 substring of name or identifier (prefix of the UUID counts too); None: no match."""
    name = _fold(server.name)
    ident = server.identifier.lower()
    uuid = server.uuid.lower()
    if key in (name, ident, uuid):
        return 0
    if name.startswith(key) or ident.startswith(key) or (uuid and uuid.startswith(key)):
        return 1
    if key in name or key in ident:
        return 2
    return None


def autocomplete_choices(
    current: str, servers: Sequence[Server], limit: int = MAX_CHOICES
) -> list[tuple[str, str]]:
    """Up to `limit` (at most 25) `(label, identifier)` pairs for what the user has typed so far."""
    limit = max(0, min(limit, MAX_CHOICES))
    key = _fold(current)
    if not key:
        ranked = sorted(servers, key=_sort_key)
    else:
        scored = [(rank, s) for s in servers if (rank := _rank(key, s)) is not None]
        scored.sort(key=lambda pair: (pair[0], *_sort_key(pair[1])))
        ranked = [s for _, s in scored]
    return [(choice_label(s), s.identifier) for s in ranked[:limit]]
