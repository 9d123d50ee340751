"""The incident detector as pure code: Wings' frames, socket state and a fake clock in, alerts out."""

from __future__ import annotations

from bot.alerts.detector import (
    Alert,
    AlertKind,
    CrashReport,
    IncidentDetector,
    Restart,
    daemon_text,
)
from bot.alerts.messages import alert_text
from bot.wings.frames import PowerState

OFF, STARTING, RUNNING, STOPPING = (
    PowerState.OFFLINE,
    PowerState.STARTING,
    PowerState.RUNNING,
    PowerState.STOPPING,
)


def daemon(text: str, app: str = "Pterodactyl") -> str:
    return f"\x1b[33m\x1b[1m[{app} Daemon]:\x1b[39m {text}\x1b[0m"


HEADER = daemon("---------- Detected server process in a crashed state! ----------")


def crash_lines(exit_code: int = 1, oom: bool = False) -> list[str]:
    return [HEADER, daemon(f"Exit code: {exit_code}"), daemon(f"Out of memory: {str(oom).lower()}")]


class Clocked:
    """A detector with a clock the test moves; every call returns the alerts it produced."""

    def __init__(self, **kwargs: float) -> None:
        self.now = 1000.0
        self.det = IncidentDetector("a1b2c3d4", **kwargs)
        self.alerts: list[Alert] = []

    def at(self, t: float) -> Clocked:
        self.now = 1000.0 + t
        return self

    def status(self, state: PowerState) -> list[Alert]:
        out = self.det.status(state, self.now)
        self.alerts += out
        return out

    def line(self, text: str) -> list[Alert]:
        out = self.det.console(text, self.now)
        self.alerts += out
        return out

    def connection(self, up: bool) -> list[Alert]:
        out = self.det.connection(up, self.now)
        self.alerts += out
        return out

    def tick(self) -> list[Alert]:
        out = self.det.tick(self.now)
        self.alerts += out
        return out


def running_server() -> Clocked:
    c = Clocked()
    c.connection(True)
    c.status(RUNNING)  # the baseline after connecting
    return c


# -- daemon lines ---------------------------------------------------------------------------------------------


def test_daemon_lines_are_recognised_on_pterodactyl_and_pelican() -> None:
    assert daemon_text(daemon("Exit code: 1")) == "Exit code: 1"
    assert daemon_text(daemon("Exit code: 1", app="pelican")) == "Exit code: 1"
    assert daemon_text("[12:00:00 INFO]: <Steve> [Pterodactyl Daemon]: Exit code: 1") is None
    assert daemon_text("Exit code: 1") is None
    # Wings' `app_name` is configurable: a host's own brand prefixes the same lines.
    assert daemon_text(daemon("Exit code: 137", app="Acme Hosting")) == "Exit code: 137"
    assert daemon_text("[12:00:00 INFO]: Exit code: 1") is None


# -- crashes ----------------------------------------------------------------------------------------------


def test_a_crash_that_wings_restarts_is_one_alert_then_back_online() -> None:
    c = running_server()
    c.at(10).status(OFF)
    for line in crash_lines(exit_code=137, oom=True):
        assert c.line(line) == []
    [crash] = c.at(10.1).status(STARTING)
    assert crash.kind is AlertKind.CRASH and not crash.ended
    assert crash.crash == CrashReport(137, True, Restart.RESTARTING)
    assert crash.started_at == c.now - 0.1
    c.at(30).tick()
    [back] = c.at(41).status(RUNNING)
    assert back.ended and back.kind is AlertKind.CRASH
    assert back.duration == 31.0
    assert len(c.alerts) == 2


def test_a_crash_too_soon_after_the_last_is_reported_at_once_without_restart() -> None:
    c = running_server()
    c.at(5).status(OFF)
    c.line(HEADER)
    c.line(daemon("Exit code: 1"))
    c.line(daemon("Out of memory: false"))
    [crash] = c.line(daemon("Aborting automatic restart, last crash occurred less than 60 seconds ago."))
    assert crash.crash == CrashReport(1, False, Restart.TOO_SOON, 60)
    assert c.at(100).tick() == []  # no unexpected stop on top of the crash
    assert len(c.alerts) == 1


def test_crash_detection_disabled_is_a_crash_without_exit_code() -> None:
    c = running_server()
    c.at(5).status(OFF)
    [crash] = c.line(daemon("Aborting automatic restart, crash detection is disabled for this instance."))
    assert crash.crash == CrashReport(None, None, Restart.DISABLED)


def test_a_crash_handler_failure_is_a_crash() -> None:
    c = running_server()
    c.at(5).status(OFF)
    c.line(HEADER)
    [crash] = c.line(daemon("Server crash was detected but an error occurred while handling it."))
    assert crash.crash is not None and crash.crash.restart is Restart.FAILED


def test_crash_lines_without_a_decision_are_reported_after_the_window() -> None:
    c = running_server()
    c.at(5).status(OFF)
    for line in crash_lines():
        c.line(line)
    assert c.at(6).tick() == []
    [crash] = c.at(5 + 3).tick()
    assert crash.crash == CrashReport(1, False, Restart.UNKNOWN)
    assert crash.started_at == 1005.0


def test_a_crash_report_in_daemon_messages_counts_too() -> None:
    c = running_server()
    c.at(10).status(OFF)
    for text in ("---------- Detected server process in a crashed state! ----------", "Exit code: 2"):
        c.alerts += c.det.daemon(text, c.now)
    c.alerts += c.det.daemon("Out of memory: true", c.now)
    c.at(10.5).status(STARTING)
    [crash] = c.alerts
    assert crash.kind is AlertKind.CRASH
    assert crash.crash == CrashReport(2, True, Restart.RESTARTING)


def test_a_crash_on_start_counts_too() -> None:
    c = Clocked()
    c.connection(True)
    c.status(OFF)
    c.at(1).status(STARTING)
    c.at(2).status(OFF)
    for line in crash_lines():
        c.line(line)
    [crash] = c.at(2.2).status(STARTING)
    assert crash.kind is AlertKind.CRASH


def test_crashes_before_the_server_runs_again_belong_to_the_first_incident() -> None:
    c = running_server()
    c.at(5).status(OFF)
    for line in crash_lines():
        c.line(line)
    c.at(5.1).status(STARTING)
    c.at(8).status(OFF)
    for line in crash_lines():
        c.line(line)
    assert c.line(daemon("Aborting automatic restart, last crash occurred less than 60 seconds ago.")) == []
    assert c.at(200).tick() == []
    assert [a.kind for a in c.alerts] == [AlertKind.CRASH]
    [back] = c.at(300).status(RUNNING)
    assert back.ended and back.duration == 295.0


def test_a_crash_after_recovery_is_a_new_incident() -> None:
    c = running_server()
    for start in (10.0, 100.0):
        c.at(start).status(OFF)
        for line in crash_lines():
            c.line(line)
        c.at(start + 0.1).status(STARTING)
        c.at(start + 20).status(RUNNING)
    assert [(a.kind, a.ended) for a in c.alerts] == [(AlertKind.CRASH, False), (AlertKind.CRASH, True)] * 2


def test_crash_lines_with_no_offline_seen_still_make_a_crash() -> None:
    c = running_server()  # the `status offline` frame was lost
    for line in crash_lines():
        c.line(line)
    [crash] = c.at(4).tick()
    assert crash.kind is AlertKind.CRASH


# -- unexpected stops ---------------------------------------------------------------------------------------


def test_offline_without_stopping_and_no_crash_lines_is_an_unexpected_stop() -> None:
    c = running_server()
    c.at(10).status(OFF)
    assert c.at(14.9).tick() == []
    [stop] = c.at(15).tick()
    assert (stop.kind, stop.started_at, stop.ended) == (AlertKind.UNEXPECTED_STOP, 1010.0, False)
    assert c.at(100).tick() == []
    c.at(200).status(STARTING)
    [back] = c.at(220).status(RUNNING)
    assert back.ended and back.kind is AlertKind.UNEXPECTED_STOP and back.duration == 210.0


def test_an_unexpected_stop_started_again_within_the_window_is_still_reported() -> None:
    c = running_server()
    c.at(10).status(OFF)
    [stop] = c.at(11).status(STARTING)
    assert stop.kind is AlertKind.UNEXPECTED_STOP
    [back] = c.at(20).status(RUNNING)
    assert back.ended


# -- stops someone asked for --------------------------------------------------------------------------------


def test_a_stop_through_stopping_is_never_an_alert() -> None:
    c = running_server()
    c.at(10).status(STOPPING)
    c.at(12).status(OFF)
    c.at(100).tick()
    c.at(200).status(STARTING)
    c.at(210).status(RUNNING)
    assert c.alerts == []


def test_a_restart_is_never_an_alert() -> None:
    c = running_server()
    for state in (STOPPING, OFF, STARTING, RUNNING):
        c.at(c.now - 1000 + 1).status(state)
    c.at(100).tick()
    assert c.alerts == []


def test_a_stop_wingbeat_asked_for_excuses_a_direct_offline() -> None:
    c = running_server()
    c.det.stop_requested(c.at(10).now)
    c.at(11).status(OFF)
    c.at(100).tick()
    assert c.alerts == []


def test_the_stop_request_is_used_once_and_expires() -> None:
    c = running_server()
    c.det.stop_requested(c.at(10).now)
    c.at(11).status(OFF)
    c.at(12).status(STARTING)
    c.at(13).status(RUNNING)
    c.at(14).status(OFF)  # a second offline is not excused by the same request
    [stop] = c.at(20).tick()
    assert stop.kind is AlertKind.UNEXPECTED_STOP
    late = running_server()
    late.det.stop_requested(late.at(10).now)
    late.at(10 + 61).status(OFF)
    [stop] = late.at(80).tick()
    assert stop.kind is AlertKind.UNEXPECTED_STOP


def test_crash_lines_after_a_requested_stop_still_make_a_crash() -> None:
    c = running_server()
    c.det.stop_requested(c.at(10).now)
    c.at(11).status(OFF)
    for line in crash_lines(exit_code=139):
        c.line(line)
    [crash] = c.at(20).tick()
    assert crash.kind is AlertKind.CRASH and crash.crash is not None and crash.crash.exit_code == 139


def test_an_offline_server_staying_offline_is_no_alert() -> None:
    c = Clocked()
    c.connection(True)
    c.status(OFF)
    c.at(100).tick()
    assert c.alerts == []


# -- unreachable ------------------------------------------------------------------------------------------


def test_a_socket_down_for_two_minutes_is_an_outage_then_reachable_again() -> None:
    c = running_server()
    c.at(10).connection(False)
    c.at(60).connection(False)  # repeats change nothing
    assert c.at(129.9).tick() == []
    [down] = c.at(130).tick()
    assert (down.kind, down.started_at) == (AlertKind.UNREACHABLE, 1010.0)
    assert c.at(300).tick() == []
    [up] = c.at(202).connection(True)
    assert up.ended and up.kind is AlertKind.UNREACHABLE and up.duration == 192.0
    assert c.at(203).connection(True) == []


def test_a_short_drop_is_no_alert() -> None:
    c = running_server()
    c.at(10).connection(False)
    c.at(100).tick()
    c.at(110).connection(True)
    c.at(500).tick()
    assert c.alerts == []


def test_a_connection_stopped_for_good_is_no_outage() -> None:
    c = running_server()
    c.at(10).connection(False)
    c.det.connection_stopped()  # e.g. the panel refused the key access to the console
    c.at(300).tick()
    assert c.alerts == []


def test_a_server_never_reached_is_an_outage_too() -> None:
    c = Clocked()
    c.connection(False)
    [down] = c.at(120).tick()
    assert down.kind is AlertKind.UNREACHABLE


def test_the_first_status_after_a_reconnect_is_only_where_things_stand() -> None:
    c = running_server()
    c.at(10).connection(False)
    c.at(20).connection(True)
    c.at(20.1).status(OFF)  # stopped while we could not see it: we cannot tell why
    c.at(100).tick()
    assert c.alerts == []


def test_a_new_socket_unseen_by_the_health_check_is_still_only_where_things_stand() -> None:
    c = running_server()
    c.det.new_socket()  # the reconnect was quicker than any look at the connections' health
    c.at(20.1).status(OFF)
    c.at(30).status(STARTING)
    c.at(100).tick()
    assert c.alerts == []


def test_an_outage_and_a_crash_are_separate_incidents() -> None:
    c = running_server()
    c.at(10).status(OFF)
    for line in crash_lines():
        c.line(line)
    c.line(daemon("Aborting automatic restart, crash detection is disabled for this instance."))
    c.at(20).connection(False)
    c.at(200).tick()
    c.at(300).connection(True)
    c.at(300.1).status(OFF)
    c.at(400).status(STARTING)
    c.at(410).status(RUNNING)
    assert [(a.kind, a.ended) for a in c.alerts] == [
        (AlertKind.CRASH, False),
        (AlertKind.UNREACHABLE, False),
        (AlertKind.UNREACHABLE, True),
        (AlertKind.CRASH, True),
    ]
    assert c.det.open_incidents == ()


# -- messages -----------------------------------------------------------------------------------------------


def test_alert_messages() -> None:
    crash = Alert("a1b2c3d4", AlertKind.CRASH, 0.0, crash=CrashReport(137, True, Restart.RESTARTING))
    text = alert_text(crash, "Lobby")
    assert text == "💥 **Lobby** (`a1b2c3d4`) crashed (exit code 137, out of memory). Wings is restarting it."
    too_soon = Alert("a1b2c3d4", AlertKind.CRASH, 0.0, crash=CrashReport(1, False, Restart.TOO_SOON, 60))
    assert "within 60 s of the previous crash" in alert_text(too_soon, "Lobby")
    back = Alert("a1b2c3d4", AlertKind.CRASH, 0.0, ended=True, duration=192.4)
    assert alert_text(back, "Lobby") == "✅ **Lobby** (`a1b2c3d4`) is back online after 3 min 12 s."
    reach = Alert("a1b2c3d4", AlertKind.UNREACHABLE, 0.0, ended=True, duration=61)
    assert "reachable again: back online after 1 min 1 s" in alert_text(reach, "Lobby")
    assert "2 min 0 s" in alert_text(Alert("a1b2c3d4", AlertKind.UNREACHABLE, 0.0), "Lobby")
    stop = alert_text(Alert("a1b2c3d4", AlertKind.UNEXPECTED_STOP, 0.0), "@everyone **x**\nline")
    assert "@everyone" not in stop and "\n" not in stop and "\\*\\*x\\*\\*" in stop
