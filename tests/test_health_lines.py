"""How one connection reads in /health: the figures and every kind of trouble, internal failures included."""

from __future__ import annotations

from bot.health_report import ServerReport
from bot.relay.service import LinkHealth
from bot.wings.events import ConnectionState, Health
from bot.wings.frames import PowerState
from cogs.health import server_line


def health(**changes: object) -> Health:
    base: dict[str, object] = dict(
        server="1a2b3c4d",
        state=ConnectionState.CONNECTED,
        power=PowerState.RUNNING,
        connected_since=None,
        token_expires_at=None,
        last_console_at=None,
        last_stats_at=None,
        reconnects=2,
        refreshes=5,
        last_error=None,
        stopped_reason=None,
        events=10,
    )
    base.update(changes)
    return Health(**base)  # type: ignore[arg-type]


def test_a_healthy_connection_shows_its_counters_and_no_trouble() -> None:
    line = server_line(ServerReport(health(), "Survival", ()))
    assert "connected, running" in line and "2 reconnects" in line and "5 token refreshes" in line
    assert "error" not in line and "failure" not in line and "skipped" not in line


def test_internal_failures_and_skipped_frames_are_shown() -> None:
    line = server_line(
        ServerReport(health(loop_error="token refresh: RuntimeError: boom", skipped_frames=3), "Survival", ())
    )
    assert "last internal failure: token refresh: RuntimeError: boom" in line
    assert "3 malformed frames skipped" in line


def test_a_stopped_connection_says_why() -> None:
    line = server_line(
        ServerReport(health(stopped_reason="the server was deleted", last_error="x"), None, ())
    )
    assert "stopped: the server was deleted" in line and "last error" not in line


def test_the_relay_s_last_error_is_shown_with_its_links() -> None:
    def link(channel_id: int, error: str | None) -> LinkHealth:
        return LinkHealth("1a2b3c4d", channel_id, "Survival", 3, 300, 0, 1, None, error, None)

    failing = "internal error (RuntimeError; see the bot's log)"
    line = server_line(ServerReport(health(), "Survival", (link(1, None), link(2, failing))))
    assert "2 links here, backlog 6 lines" in line and f"relay: {failing}" in line
    assert "relay:" not in server_line(ServerReport(health(), "Survival", (link(1, None),)))
