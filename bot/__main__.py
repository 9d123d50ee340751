"""Entrypoint: `python -m bot` and the `wingbeat` console script.

wingbeat               run the bot
wingbeat check         check the settings, the panel, Wings and Discord; change nothing
wingbeat healthcheck   exit 0 while the running bot's heartbeat file is fresh (container health checks)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from bot.settings import Settings, SettingsError, load_settings

log = logging.getLogger("bot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wingbeat",
        description="A Discord bot that drives Pterodactyl and Pelican game servers. With no command, runs the bot.",
        epilog=(
            "Settings come from the environment, after a .env file in the current folder (it never overrides "
            "a variable already set); .env.example lists every one. A missing or malformed setting exits "
            "with status 2. Start with `wingbeat check`."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="{check,healthcheck}")
    commands.add_parser(
        "check",
        help="check settings, panel key, Wings sockets and the Discord application; "
        "exit 1 if anything fails, 2 for a bad setting",
        description="Checks every setting and connection Wingbeat needs and says what to fix. Changes nothing.",
    )
    health = commands.add_parser(
        "healthcheck",
        help="exit 0 while the running bot's heartbeat file is fresh, 1 otherwise",
        description="For container health checks: reads the age of the heartbeat file the running bot touches.",
    )
    health.add_argument(
        "--file",
        type=Path,
        help="the heartbeat file (default: `heartbeat` next to the SQLite store, e.g. data/heartbeat)",
    )
    health.add_argument(
        "--max-age", type=float, default=None, help="seconds after which the heartbeat is stale (default 60)"
    )
    return parser


def _version() -> str:
    try:
        return metadata.version("wingbeat")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the bot, `check` or `healthcheck`; exits with their status."""
    args = _parser().parse_args(argv)
    if args.command == "check":
        from bot.check import main as check_main

        raise SystemExit(check_main())
    if args.command == "healthcheck":
        raise SystemExit(healthcheck(args.file, args.max_age))
    run_from_settings()


def run_from_settings() -> None:
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


def healthcheck(path: Path | None, max_age: float | None) -> int:
    """Print one line about the heartbeat file's age; 0 when fresh, 1 otherwise."""
    from bot.heartbeat import DEFAULT_MAX_AGE, configured_path, file_age, judge

    if path is None:
        path = configured_path()
    verdict = judge(file_age(path), DEFAULT_MAX_AGE if max_age is None else max_age)
    print(verdict.reason)
    return 0 if verdict.healthy else 1


if __name__ == "__main__":
    main()
