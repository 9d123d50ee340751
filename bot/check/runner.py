"""`wingbeat check`: every check in order, printed as it is decided; exit status 0 when none failed.

It changes nothing: no store writes (the store is read read-only), no command sync, no Discord message,
no console command. Secrets never reach its output: facts carry no token, key or JWT.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from bot.check import verdicts as v
from bot.check.discord_probe import discord_http, probe_channels, probe_discord
from bot.check.links import read_links
from bot.check.panel_probe import pick_per_node, probe_node, probe_panel, probe_servers
from bot.check.report import Report
from bot.check.timing import Timing
from bot.panel.client import PanelClient
from bot.panel.errors import PanelError
from bot.settings import DatabaseKind, Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

SETTINGS_ERROR = 2  # the exit status of a missing or malformed setting, the same as the bot's own


def main() -> int:
    """The `check` subcommand: load settings (a failure is one ✗ line and exit 2, as for the bot), then run
    every check."""
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):
        out.reconfigure(errors="replace")  # a terminal that cannot show ✓ gets "?" rather than a crash
    dotenv = Path(".env")
    try:
        settings = load_settings(dotenv=dotenv)
    except SettingsError as exc:
        report = Report(out)
        report.add(v.settings_failed(str(exc)))
        report.finish()
        return SETTINGS_ERROR
    from bot.logs import setup_logging

    # The report says what failed; the warnings behind it (the panel client's, say) would only interleave
    # with it on a terminal. Errors still go to stderr, redacted, and LOG_LEVEL=DEBUG shows everything.
    level = logging.DEBUG if settings.log_level_number <= logging.DEBUG else logging.ERROR
    setup_logging(level, (settings.discord_token, settings.panel_api_key))
    source = f"{dotenv.resolve()} and the environment" if dotenv.is_file() else "the environment"
    try:
        return asyncio.run(run_check(settings, out, source=source))
    except BrokenPipeError:
        # The reader went away (`wingbeat check | head`): stop quietly, and keep Python's own flush at exit
        # from failing on the same pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 1


async def run_check(
    settings: Settings, out: TextIO, *, source: str = "the environment", timing: Timing | None = None
) -> int:
    """Run every check against the real services and print one line each; return the exit status."""
    timing = timing or Timing()
    report = Report(out)
    report.add(
        v.settings_loaded(
            panel_url=settings.panel_url,
            guilds=len(settings.guild_ids),
            console_input=settings.console_input,
            source=source,
        )
    )
    await _panel_checks(settings, report, timing)
    await _discord_checks(settings, report, timing)
    return report.finish()


async def _panel_checks(settings: Settings, report: Report, timing: Timing) -> None:
    kind, prefix = v.key_kind(settings.panel_api_key)
    # One retry at most: a rate-limited check should say so rather than wait a minute.
    async with PanelClient(
        settings.panel_url, settings.panel_api_key, timeout=timing.panel, max_retries=1
    ) as panel:
        async with report.progress("Asking the panel"):
            facts = await probe_panel(panel)
        report.add(v.panel_answers(facts))
        key = v.panel_key(facts, kind, prefix)
        report.add(key)
        if facts.outcome is not v.PanelOutcome.OK or key.failed:
            report.add(v.servers_line(False, None))
            report.add(v.wings_unchecked("the panel key does not work"))
            return
        async with report.progress("Reading each server's permissions"):
            try:
                servers, server_facts = await probe_servers(panel)
            except PanelError as exc:
                report.add(v.servers_line(True, None, str(exc)))
                report.add(v.wings_unchecked("the server list could not be read"))
                return
        report.add(v.servers_line(True, server_facts))
        if not servers:
            report.add(v.wings_unchecked("the key sees no servers"))
            return
        nodes = pick_per_node(servers, server_facts)
        async with report.progress(f"Opening a console socket on each of {len(nodes)} node(s)"):
            results = await asyncio.gather(
                *(
                    probe_node(panel, node, server, origin=settings.wings_origin, timing=timing)
                    for node, server in nodes.items()
                )
            )
        for result in results:
            report.add(v.wings_line(result))


async def _discord_checks(settings: Settings, report: Report, timing: Timing) -> None:
    async with discord_http(settings.discord_api_url) as http:
        async with report.progress("Asking Discord"):
            facts = await probe_discord(http, settings.discord_token, timing)
        report.add(v.discord_token_line(facts))
        report.add(v.public_bot_line(facts))
        report.add(v.guilds_line(facts, settings.guild_ids))
        report.add(v.other_guilds_line(facts, settings.guild_ids))
        report.add(v.intent_line(facts, settings.console_input))
        saved = await read_links(settings.database)
        postgres = settings.database.kind is DatabaseKind.POSTGRESQL
        report.add(v.store_line(postgres=postgres, error=saved.error, text=saved.store))
        if saved.links is None:
            report.add(v.channels_unchecked("the store could not be read"))
        elif saved.links and not facts.ok:
            channels = len({link.channel_id for link in saved.links})
            report.add(v.channels_unchecked(f"{channels} linked channel(s), but no valid Discord token"))
        elif not saved.links:
            report.add(v.channels_line([], saved.note))
        else:
            async with report.progress("Reading the bot's permissions in each linked channel"):
                channels_facts = await probe_channels(http, facts.bot_id, saved.links, timing)
            report.add(v.channels_line(channels_facts, saved.note))
