"""Printing `wingbeat check`'s lines, and a spinner on slow steps when (and only when) stdout is a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import TextIO

from bot.check.verdicts import Line, Mark
from bot.names import safe_name
from bot.tasks import cancel_and_wait

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_CLEAR_LINE = "\r\x1b[K"


def render(line: Line) -> str:
    """A line as printed: `✓ Title: text`, then indented details and, for a failure, `→ fix`.

    Each part is put on one line without control characters: server, guild and channel names come from whoever
    may rename them, and a line break or an escape sequence in one would forge lines on the operator's terminal.
    """
    lines = [f"{line.mark} {line.title}: {safe_name(line.text)}"]
    lines.extend(f"    {safe_name(detail)}" for detail in line.details)
    if line.fix:
        lines.append(f"    → {safe_name(line.fix)}")
    return "\n".join(lines)


def summary(lines: list[Line]) -> str:
    failed = sum(1 for line in lines if line.mark is Mark.FAIL)
    skipped = sum(1 for line in lines if line.mark is Mark.SKIP)
    unchecked = f" ({skipped} not checked)" if skipped else ""
    if not failed:
        return f"All checks passed{unchecked}."
    noun = "check" if failed == 1 else "checks"
    return f"{failed} {noun} failed{unchecked}: fix what the → lines say, then run `wingbeat check` again."


class Report:
    """Collects and prints lines as they come; `status` is 0 when no check failed, 1 otherwise."""

    def __init__(self, out: TextIO, *, spinner_interval: float = 0.1) -> None:
        self.out = out
        self.lines: list[Line] = []
        self._interval = spinner_interval
        try:
            self._tty = out.isatty()
        except (AttributeError, ValueError):
            self._tty = False

    def add(self, line: Line) -> None:
        self.lines.append(line)
        self.out.write(render(line) + "\n")
        self.out.flush()

    def finish(self) -> int:
        self.out.write(summary(self.lines) + "\n")
        self.out.flush()
        return self.status

    @property
    def status(self) -> int:
        return 1 if any(line.failed for line in self.lines) else 0

    @contextlib.asynccontextmanager
    async def progress(self, what: str) -> AsyncIterator[None]:
        """Shows `⠋ what…` while the block runs, on a terminal only (no escape codes when piped)."""
        if not self._tty:
            yield
            return
        spinner = asyncio.create_task(self._spin(what))
        try:
            yield
        finally:
            await cancel_and_wait(spinner)
            self.out.write(_CLEAR_LINE)
            self.out.flush()

    async def _spin(self, what: str) -> None:
        for frame in itertools.cycle(_SPINNER):
            self.out.write(f"{_CLEAR_LINE}{frame} {what}…")
            self.out.flush()
            await asyncio.sleep(self._interval)
