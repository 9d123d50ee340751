"""Polling for a condition in tests that drive real sockets, with a deadline instead of a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_until(pred: Callable[[], Any], timeout: float = 10.0, *, every: float = 0.02) -> None:
    """Return as soon as `pred()` is true; fail the test if it is not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)
