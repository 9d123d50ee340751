"""Entrypoint: `python -m bot` and the `wingbeat` console script."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from bot.settings import Settings, SettingsError, load_settings

log = logging.getLogger("bot")


def main() -> None:
    """Load settings (exit 2 with one line when they are wrong), set up logging, run the bot."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"wingbeat: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from bot.logs import setup_logging

    setup_logging(settings.log_level_number, secrets=(settings.discord_token, settings.panel_api_key))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings))


async def run(settings: Settings) -> None:
    """Start the bot and keep it running until it is closed or the process is signalled."""
    from bot.app import run_bot

    await run_bot(settings)


if __name__ == "__main__":
    main()
