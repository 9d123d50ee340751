"""How long each step of `wingbeat check` may take."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds each step may take; tests shorten them."""

    panel: float = 10.0
    socket_open: float = 10.0
    auth: float = 10.0
    node_clock: float = 5.0
    discord: float = 30.0
