"""/health: the state of every Wings connection and of the console relay, for admins."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import WingbeatBot
from bot.health_report import ServerReport
from bot.render import name_label, plural, relative
from bot.replies import reply


def server_line(report: ServerReport) -> str:
    """One connection of `/health`: state, token, freshness, counters, links, and what went wrong."""
    health = report.health
    state = health.state.value + (f", {health.power.value}" if health.power else "")
    token = (
        "token —" if health.token_expires_at is None else f"token expires {relative(health.token_expires_at)}"
    )
    parts = [
        f"{name_label(report.name, health.server)}: {state}",
        token,
        f"console {relative(health.last_console_at)}",
        f"stats {relative(health.last_stats_at)}",
        f"{health.reconnects} reconnects",
        f"{health.refreshes} token refreshes",
    ]
    if report.links:
        pending = sum(h.pending_lines for h in report.links)
        dropped = sum(h.dropped for h in report.links)
        parts.append(f"{plural(len(report.links), 'link')} here, backlog {pending} lines")
        if dropped:
            parts.append(f"{dropped} lines dropped")
        relay_errors = sorted({h.last_error for h in report.links if h.last_error})
        if relay_errors:
            parts.append(f"relay: {'; '.join(relay_errors)}")
    if health.skipped_frames:
        parts.append(f"{plural(health.skipped_frames, 'malformed frame')} skipped")
    if health.stopped_reason:
        parts.append(f"stopped: {health.stopped_reason}")
    elif health.last_error:
        parts.append(f"last error: {health.last_error}")
    if health.loop_error:
        parts.append(f"last internal failure: {health.loop_error} (see the log)")
    return " · ".join(parts)


def audit_problems(bot: WingbeatBot, guild_id: int) -> list[str]:
    """The audit log's background work, when it went wrong: pruning, and this guild's audit channel."""
    problems = [
        ("Audit pruning", bot.audit_pruner.last_error),
        ("Audit channel", bot.audit_feed.error(guild_id) or bot.audit_feed.last_error),
    ]
    return [f"{what}: ⚠️ {error}" for what, error in problems if error]


class HealthCog(commands.Cog):
    """Connection and relay health."""

    def __init__(self, bot: WingbeatBot) -> None:
        self.bot = bot

    @app_commands.command(name="health", description="Wings connection and console relay health per server")
    @app_commands.guild_only()
    async def health(self, interaction: discord.Interaction[WingbeatBot]) -> None:
        assert interaction.guild_id is not None  # the guard refuses DMs
        snapshot = await self.bot.reports.snapshot(interaction.guild_id)
        header = f"Panel: {'⚠️ ' + snapshot.panel_error if snapshot.panel_error else 'reachable'}"
        header += f"\n{self.bot.boards.summary(interaction.guild_id)}\n{self.bot.alerts.summary(interaction.guild_id)}"
        lines = [header, *audit_problems(self.bot, interaction.guild_id)]
        journal = self.bot.relay.journal
        if journal is not None and journal.last_error:
            lines.append(f"Relay journal: ⚠️ {journal.last_error}")
        lines.extend("• " + server_line(r) for r in snapshot.servers)
        if not snapshot.servers:
            lines.append("No Wings connections are open.")
        lines.extend(
            f"• ⛔ {name_label(link.server_name, link.server_identifier)} → <#{link.channel_id}> stopped: "
            f"{link.stopped_reason} (link it again to retry)"
            for link in snapshot.stopped_links
        )
        text = "\n".join(lines)
        await reply(
            interaction,
            text,
            ephemeral=True,
            filename="health.txt",
            summary=f"{header}\nThe details are attached.",
        )


async def setup(bot: WingbeatBot) -> None:
    await bot.add_cog(HealthCog(bot))
