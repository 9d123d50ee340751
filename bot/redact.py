"""Internal addresses out of what Discord sees: the panel URL and Wings nodes' host:port stay in the logs.

Errors from the network libraries name the address they failed on ("Cannot connect to host 10.0.0.5:8080",
"Connect call failed ('10.0.0.5', 8080)"). Sentences that reach members or linked channels pass through
`hide_addresses` first; only admins' /health shows them as they are.
"""

from __future__ import annotations

import re

HIDDEN = "(address hidden)"

_URL = re.compile(r"\b(?:https?|wss?)://[^\s'\"<>()\[\]]+", re.IGNORECASE)
# ('10.0.0.5', 8080) and ('::1', 8080, 0, 0): how Python's socket errors name an address.
_SOCKET_TUPLE = re.compile(r"\s*\(\s*'[^']*'\s*,\s*\d+(?:\s*,\s*\d+)*\s*\)")
_HOST = r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+)"
_HOST_PORT = re.compile(rf"\b{_HOST}:\d{{1,5}}\b")
_IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def hide_addresses(text: str) -> str:
    """`text` with URLs, host:port pairs, socket address tuples and IPv4 addresses replaced."""
    text = _URL.sub(HIDDEN, text)
    text = _SOCKET_TUPLE.sub("", text)
    text = _HOST_PORT.sub(HIDDEN, text)
    return _IP.sub(HIDDEN, text)
