"""The command sync's hash: what makes a start-up push the slash commands again."""

from __future__ import annotations

from typing import Any

from bot.command_sync import commands_hash

PAYLOADS: list[dict[str, Any]] = [{"name": "servers", "description": "List", "type": 1}]


def test_the_hash_covers_the_application_the_guild_set_and_the_payloads() -> None:
    base = commands_hash(1, [10, 20], PAYLOADS)
    assert commands_hash(1, [20, 10, 10], PAYLOADS) == base  # a set: order and repeats do not matter
    assert commands_hash(2, [10, 20], PAYLOADS) != base  # another bot token's application
    assert commands_hash(1, [10], PAYLOADS) != base  # a guild dropped
    assert commands_hash(1, [10, 20, 30], PAYLOADS) != base  # a guild added
    changed = [{**PAYLOADS[0], "description": "List the servers"}]
    assert commands_hash(1, [10, 20], changed) != base
