"""Filling a console gap from `send logs` without repeating lines (plain logic, no I/O).

Wings' `send logs` replays the last ~150 container lines as ordinary `console output` frames, with no marker,
so lines already delivered before the gap must be recognised by content: the replay is aligned with the tail
of what was delivered, and only what follows the alignment is new.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence


class RecentLines:
    """The last `size` console lines delivered for one server."""

    __slots__ = ("_lines",)

    def __init__(self, size: int = 300) -> None:
        self._lines: deque[str] = deque(maxlen=size)

    def add(self, line: str) -> None:
        self._lines.append(line)

    def snapshot(self) -> list[str]:
        return list(self._lines)


def new_lines(delivered: Sequence[str], replay: Sequence[str]) -> list[str]:
    """The part of `replay` that comes after what was already `delivered`.

    Finds the latest position in `replay` where the tail of `delivered` ends (every line before it in the replay
    matching the delivered lines before it) and returns what follows. With no such position the gap was longer
    than the replay, so all of it is new.
    """
    if not delivered:
        return list(replay)
    last = delivered[-1]
    best = -1
    for end in range(len(replay) - 1, -1, -1):
        if replay[end] != last:
            continue
        need = min(len(delivered), end + 1)
        if list(replay[end - need + 1 : end + 1]) == list(delivered[len(delivered) - need :]):
            best = end
            break
    return list(replay[best + 1 :])
