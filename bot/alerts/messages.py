"""The text of an alert as posted in a guild's alert channel (no I/O)."""

from __future__ import annotations

from bot.alerts.detector import Alert, AlertKind, CrashReport, Restart
from bot.boards.render import markdown_name
from bot.render import duration


def _restart_text(report: CrashReport) -> str:
    match report.restart:
        case Restart.RESTARTING:
            return " Wings is restarting it."
        case Restart.TOO_SOON:
            within = f"{report.too_soon_seconds} s" if report.too_soon_seconds is not None else "a short time"
            return f" Wings did not restart it: it crashed within {within} of the previous crash."
        case Restart.DISABLED:
            return " Wings did not restart it: crash detection is off for this server."
        case Restart.FAILED:
            return " Wings could not handle the crash; the server stays offline."
    return ""


def _crash_details(report: CrashReport) -> str:
    parts = []
    if report.exit_code is not None:
        parts.append(f"exit code {report.exit_code}")
    if report.out_of_memory:
        parts.append("out of memory")
    return f" ({', '.join(parts)})" if parts else ""


def alert_text(alert: Alert, server_name: str, *, unreachable_after: float = 120.0) -> str:
    """One line for the alert channel; the server name is escaped (no markdown, no mentions)."""
    who = f"**{markdown_name(server_name, 100)}** (`{alert.server}`)"
    if alert.ended:
        took = duration(alert.duration)
        if alert.kind is AlertKind.UNREACHABLE:
            return f"✅ {who} is reachable again: back online after {took}."
        return f"✅ {who} is back online after {took}."
    if alert.kind is AlertKind.CRASH:
        report = alert.crash or CrashReport()
        return f"💥 {who} crashed{_crash_details(report)}.{_restart_text(report)}"
    if alert.kind is AlertKind.UNEXPECTED_STOP:
        return f"🔴 {who} stopped unexpectedly: it went offline without being asked to, and Wings reported no crash."
    return (
        f"⚠️ {who} is unreachable: Wingbeat has had no console connection to it for "
        f"{duration(unreachable_after)} (Wings or its node may be down)."
    )
