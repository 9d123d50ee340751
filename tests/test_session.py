"""Every rule of the Wings session as a fast unit test: no socket, no emulator, no sleeping (time is an argument)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from bot.panel.errors import (
    ConflictKind,
    PanelConflict,
    PanelNotFound,
    PanelRateLimited,
    PanelServerError,
)
from bot.wings.error_texts import JwtErrorCause
from bot.wings.events import NoticeKind
from bot.wings.frames import Event, Frame, PowerState
from bot.wings.session import (
    CAPTURE_LIMIT,
    Action,
    CaptureDone,
    CapturePurpose,
    Connected,
    Deliver,
    FetchToken,
    FillGap,
    JwtReaction,
    Notify,
    Reconnect,
    RefreshPhase,
    SendFrame,
    Session,
    SessionState,
    Stop,
    Timing,
    backoff_delay,
    is_daemon_line,
    jwt_reaction,
)

URL = "ws://node-a:8080/api/servers/uuid/ws"
OTHER_URL = "ws://node-b:8080/api/servers/uuid/ws"
PREFIX = "Error Event [6b1e2c3d-0000-4000-8000-123456789abc]: "
TIMING = Timing()


def b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def token(lifetime: int = 600, iat: int = 1_700_000_000, perms: list[str] | None = None) -> str:
    claims = {"iat": iat, "exp": iat + lifetime, "permissions": perms or ["*"], "server_uuid": "uuid"}
    return f"{b64({'alg': 'HS256'})}.{b64(claims)}.sig"


def frame(event: str, *args: str) -> str:
    return json.dumps({"event": event, "args": list(args)})


def session(**timing: Any) -> Session:
    return Session("srv", Timing(**timing) if timing else TIMING, rng=lambda: 0.5)


def connected(lifetime: int = 600, now: float = 0.0, s: Session | None = None) -> Session:
    s = s or session()
    s.socket_opened(token(lifetime), URL, now)
    s.receive(frame("auth success"), now)
    return s


def of(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def notices(actions: list[Action]) -> list[NoticeKind]:
    return [a.notice.kind for a in of(actions, Notify)]


def lines(actions: list[Action]) -> list[str]:
    return [a.event.frame.arg for a in of(actions, Deliver) if a.event.frame.event == "console output"]


def fire(s: Session, until: float) -> list[Action]:
    """Fire the session's timer at each deadline up to `until`, as the driver does."""
    out: list[Action] = []
    while (deadline := s.next_deadline()) is not None and deadline <= until:
        out += s.timer_fired(deadline)
    return out


# -- auth handshake ------------------------------------------------------------------------------------------


def test_a_new_socket_sends_auth_and_nothing_else_until_auth_success() -> None:
    s = session()
    actions = s.socket_opened(token(), URL, 0.0)
    assert actions == [SendFrame(Event.AUTH, (token(),))]
    assert s.state is SessionState.AUTHENTICATING
    assert not s.may_send(Event.SEND_COMMAND) and not s.may_send(Event.SEND_LOGS) and s.may_send(Event.AUTH)
    assert s.capture_logs(0.1, CapturePurpose.LOGS) == []  # no `send logs` before auth success
    done = s.receive(frame("auth success"), 0.2)
    assert of(done, Connected) and s.state is SessionState.CONNECTED
    assert not of(done, FillGap)  # the first socket has no gap to fill
    assert s.may_send(Event.SEND_COMMAND)


def test_auth_frame_repr_hides_the_token() -> None:
    assert "sig" not in repr(SendFrame(Event.AUTH, (token(),)))


def test_no_auth_success_within_the_timeout_reconnects_once() -> None:
    s = session()
    s.socket_opened(token(), URL, 0.0)
    assert s.next_deadline() == TIMING.auth_timeout
    assert s.timer_fired(5.0) == []
    actions = s.timer_fired(TIMING.auth_timeout)
    assert of(actions, Reconnect)[0].reason == "no auth success within 10 s"
    assert s.state is SessionState.CLOSING
    assert of(s.socket_closed(1000, 10.5), Reconnect) == []  # one verdict per socket
    assert s.state is SessionState.DISCONNECTED


def test_daemon_error_during_first_auth_stops_with_a_notice() -> None:
    s = session()
    s.socket_opened(token(), URL, 0.0)
    actions = s.receive(
        frame("daemon error", PREFIX + "an unexpected error was encountered while handling this request"), 0.1
    )
    assert notices(actions) == [NoticeKind.DAEMON_ERROR]
    assert "node token" in of(actions, Notify)[0].notice.text
    [stop] = of(actions, Stop)
    assert "node token" in stop.reason
    s.socket_closed(1000, 0.2)
    assert s.state is SessionState.STOPPED and s.stopped_reason == stop.reason


def test_daemon_error_while_connected_is_reported_and_delivered_only() -> None:
    s = connected()
    actions = s.receive(frame("daemon error", PREFIX + "server is running"), 1.0)
    assert notices(actions) == [NoticeKind.DAEMON_ERROR] and of(actions, Deliver)
    assert not of(actions, Stop) and not of(actions, Reconnect)


# -- jwt errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "reaction"),
    [
        (JwtErrorCause.EXPIRED, JwtReaction.REFRESH),
        (JwtErrorCause.DENYLISTED, JwtReaction.REFRESH),
        (JwtErrorCause.NOT_PRESENT, JwtReaction.REFRESH),
        (JwtErrorCause.NO_CONNECT_PERMISSION, JwtReaction.STOP),
        (JwtErrorCause.UUID_MISMATCH, JwtReaction.STOP),
        (JwtErrorCause.CLOCK_SKEW, JwtReaction.REFRESH),
        (JwtErrorCause.BAD_TOKEN, JwtReaction.REPORT),
        (JwtErrorCause.OTHER, JwtReaction.REPORT),
    ],
)
def test_jwt_reaction_table(cause: JwtErrorCause, reaction: JwtReaction) -> None:
    assert jwt_reaction(cause, answers_auth=False) is reaction
    answered = JwtReaction.STOP if reaction is JwtReaction.STOP else JwtReaction.RECONNECT
    assert jwt_reaction(cause, answers_auth=True) is answered


@pytest.mark.parametrize(
    "text",
    ["jwt: missing connect permission", "jwt: server uuid mismatch", PREFIX + "jwt: server uuid mismatch"],
)
def test_terminal_jwt_errors_stop_for_good(text: str) -> None:
    s = connected()
    actions = s.receive(frame("jwt error", text), 1.0)
    assert notices(actions) == [NoticeKind.JWT_ERROR] and len(of(actions, Stop)) == 1
    s.socket_closed(1006, 1.1)
    assert s.state is SessionState.STOPPED
    assert s.next_deadline() is None  # nothing to retry, nothing to report later


def test_classic_uuid_mismatch_after_auth_success_stops() -> None:
    s = connected()
    actions = s.receive(frame("jwt error", "jwt: server uuid mismatch"), 0.1)
    assert "different server" in of(actions, Stop)[0].reason


def test_jwt_error_answering_our_first_auth_reconnects_with_fresh_credentials() -> None:
    s = session()
    s.socket_opened(token(), URL, 0.0)
    actions = s.receive(frame("jwt error", PREFIX + "jwt: created too far in past (denylist)"), 0.1)
    assert of(actions, Reconnect)[0].reason == "Wings refused the token (denylisted)"
    assert not of(actions, FetchToken)


def test_expired_answer_to_a_fresh_token_is_reported_as_clock_skew() -> None:
    s = session()
    s.socket_opened(token(), URL, 0.0)
    actions = s.receive(frame("jwt error", PREFIX + "jwt: exp claim is invalid"), 0.1)
    assert "clocks differ" in of(actions, Notify)[0].notice.text
    assert of(actions, Reconnect)


@pytest.mark.parametrize("text", ["jwt: exp claim is invalid", "jwt: created too far in past (denylist)"])
def test_refreshable_jwt_error_marks_lossy_refreshes_then_fills_the_gap(text: str) -> None:
    s = connected()
    actions = s.receive(frame("jwt error", text), 10.0)
    assert notices(actions) == [NoticeKind.JWT_ERROR] and of(actions, FetchToken)
    assert s.refresh_phase is RefreshPhase.FETCHING
    # the flood goes on while the refresh runs: no second refresh, no gap fill yet
    more = s.receive(frame("jwt error", text), 10.1)
    assert not of(more, FetchToken) and not of(more, FillGap)
    sent = s.credentials_received(token(), URL, 10.2)
    assert sent == [SendFrame(Event.AUTH, (token(),))]
    done = s.receive(frame("auth success"), 10.3)
    assert of(done, FillGap) and s.refreshes == 1 and s.refresh_phase is RefreshPhase.IDLE
    # the gap was filled once; the next refresh is clean
    s.receive(frame("token expiring"), 20.0)
    s.credentials_received(token(), URL, 20.1)
    assert not of(s.receive(frame("auth success"), 20.2), FillGap)


def test_jwt_error_answering_a_refresh_auth_reconnects() -> None:
    s = connected()
    s.receive(frame("token expiring"), 10.0)
    s.credentials_received(token(), URL, 10.1)
    actions = s.receive(frame("jwt error", PREFIX + "jwt: created too far in past (denylist)"), 10.2)
    assert of(actions, Reconnect) and s.state is SessionState.CLOSING


# -- refresh timing and triggers -----------------------------------------------------------------------------


def test_a_600s_token_refreshes_75s_before_expiry_from_the_timer_alone() -> None:
    s = connected(600, now=100.0)
    assert s.next_deadline() == 100.0 + 525
    assert not of(s.timer_fired(600.0), FetchToken)
    assert of(s.timer_fired(625.0), FetchToken)


def test_a_20s_token_refreshes_at_15s_and_a_flood_of_expiring_notices_is_no_storm() -> None:
    s = connected(20, now=0.0)
    assert s.next_deadline() == 15.0
    fetches = 0
    t = 0.0
    while t < 60.0:  # Wings says `token expiring` every 0.1 s for a minute
        t = round(t + 0.1, 1)
        actions = fire(s, t) + s.receive(frame("token expiring"), t)
        if of(actions, FetchToken):
            fetches += 1
            s.credentials_received(token(20), URL, t)
            s.receive(frame("auth success"), t)
    # one refresh per min_refresh_gap at most, however often Wings warns
    assert 10 <= fetches <= 60 / TIMING.min_refresh_gap + 1


def test_a_20s_token_without_any_signal_refreshes_every_15s() -> None:
    s = connected(20, now=0.0)
    at = 0.0
    for _ in range(3):
        assert s.next_deadline() == at + 15.0
        assert not of(fire(s, at + 14.9), FetchToken)
        assert of(fire(s, at + 15.0), FetchToken)
        at += 15.0
        s.credentials_received(token(20), URL, at)
        s.receive(frame("auth success"), at)
    assert s.refreshes == 3


@pytest.mark.parametrize(
    "signal",
    [
        frame("token expiring"),
        frame("token expired"),
        frame("jwt error", "jwt: exp claim is invalid"),
        frame("jwt error", "jwt: created too far in past (denylist)"),
    ],
)
def test_refresh_triggers(signal: str) -> None:
    s = connected()
    assert of(s.receive(signal, 30.0), FetchToken)


def test_one_refresh_at_a_time_and_none_right_after_one() -> None:
    s = connected()
    assert of(s.receive(frame("token expiring"), 30.0), FetchToken)
    assert not of(s.receive(frame("token expired"), 30.1), FetchToken)  # one is running
    s.credentials_received(token(), URL, 30.2)
    assert not of(s.receive(frame("token expiring"), 30.3), FetchToken)  # still running (auth sent)
    s.receive(frame("auth success"), 30.4)
    assert not of(s.receive(frame("token expiring"), 31.0), FetchToken)  # within min_refresh_gap
    assert of(s.receive(frame("token expiring"), 30.4 + TIMING.min_refresh_gap), FetchToken)


def test_a_failed_refresh_backs_off_exponentially_and_signals_do_not_hurry_it() -> None:
    s = connected()
    s.receive(frame("token expiring"), 30.0)
    actions = s.credentials_failed(PanelServerError("The panel failed (HTTP 502)."), 30.5)
    assert notices(actions) == [NoticeKind.REFRESH_FAILED]
    assert s.last_error and "token refresh failed" in s.last_error
    first = (s.next_deadline() or 0) - 30.5
    assert first == backoff_delay(0, TIMING, 0.5)
    assert not of(s.receive(frame("token expiring"), 30.6), FetchToken)  # backing off: no storm
    assert of(fire(s, 30.5 + first), FetchToken)
    s.credentials_failed(KeyError("token"), 31.0)  # the panel answered 200 without a token
    second = (s.next_deadline() or 0) - 31.0
    assert second == backoff_delay(1, TIMING, 0.5) > first
    assert of(fire(s, 31.0 + second), FetchToken)
    s.credentials_received(token(), URL, 40.0)
    s.receive(frame("auth success"), 40.1)
    assert s.refreshes == 1 and s.refresh_phase is RefreshPhase.IDLE


def test_a_refresh_honours_retry_after() -> None:
    s = connected()
    s.receive(frame("token expiring"), 30.0)
    s.credentials_failed(PanelRateLimited("Too many requests.", retry_after=20.0), 30.0)
    assert s.next_deadline() == 50.0


def test_a_refresh_auth_that_gets_no_answer_is_a_failed_refresh() -> None:
    s = connected()
    s.receive(frame("token expiring"), 30.0)
    s.credentials_received(token(), URL, 30.0)
    actions = fire(s, 30.0 + TIMING.auth_timeout)
    assert notices(actions) == [NoticeKind.REFRESH_FAILED] and s.state is SessionState.CONNECTED


def test_refresh_finds_the_server_moved_to_another_node() -> None:
    s = connected()
    s.receive(frame("token expiring"), 30.0)
    actions = s.credentials_received(token(), OTHER_URL, 30.1)
    assert of(actions, Reconnect)[0].reason == "the server moved to another node"
    assert not of(actions, SendFrame)


def test_refresh_credentials_for_a_socket_gone_meanwhile_are_ignored() -> None:
    s = connected()
    s.receive(frame("token expiring"), 30.0)
    s.socket_closed(1006, 30.1)
    assert s.credentials_received(token(), URL, 30.2) == []


def test_a_panel_refusal_during_a_refresh_stops_with_a_notice() -> None:
    s = connected()
    s.receive(frame("token expiring"), 30.0)
    actions = s.credentials_failed(PanelNotFound("The panel does not know this server."), 30.1)
    assert notices(actions) == [NoticeKind.STOPPED] and of(actions, Stop)


# -- deleted, transfers, close codes -------------------------------------------------------------------------


def test_deleted_stops_for_good() -> None:
    s = connected()
    actions = s.receive(frame("deleted", "null"), 1.0)
    assert NoticeKind.DELETED in notices(actions) and of(actions, Stop)[0].reason == "the server was deleted"
    s.socket_closed(1001, 1.1)
    assert s.state is SessionState.STOPPED


def test_deleted_right_after_a_finished_transfer_follows_the_server() -> None:
    s = connected()
    s.receive(frame("transfer status", "completed"), 1.0)
    actions = s.receive(frame("deleted", "null"), 1.1)
    assert not notices(actions) and of(actions, Reconnect)


def test_deleted_after_a_failed_transfer_still_stops() -> None:
    s = connected()
    s.receive(frame("transfer status", "completed"), 1.0)
    s.receive(frame("transfer status", "failed"), 1.1)
    assert of(s.receive(frame("deleted", "null"), 1.2), Stop)


def test_close_4409_stops_with_the_suspension_notice() -> None:
    s = connected()
    actions = s.socket_closed(4409, 1.0)
    assert notices(actions) == [NoticeKind.SUSPENDED] and of(actions, Stop)
    assert s.state is SessionState.STOPPED


@pytest.mark.parametrize("code", [1000, 1001, 1006, 1009, 1011, None])
def test_other_closes_reconnect(code: int | None) -> None:
    s = connected()
    actions = s.socket_closed(code, 1.0)
    assert of(actions, Reconnect) and s.state is SessionState.DISCONNECTED and s.reconnects == 1


def test_panel_and_upgrade_refusals() -> None:
    s = session()
    assert (
        of(s.credentials_failed(PanelRateLimited("slow down", retry_after=7.0), 0.0), Reconnect)[
            0
        ].retry_after
        == 7.0
    )
    conflict = s.credentials_failed(PanelConflict("The server is suspended.", ConflictKind.SUSPENDED), 1.0)
    assert notices(conflict) == [NoticeKind.STOPPED] and of(conflict, Reconnect)  # retried: it may end
    assert of(s.socket_failed("HTTP 502", 2.0, http_status=502), Reconnect)[0].reason.endswith(
        "HTTP 502 to the socket upgrade"
    )
    origin = s.socket_failed("HTTP 403", 3.0, http_status=403)
    assert notices(origin) == [NoticeKind.STOPPED] and "WINGS_ORIGIN" in of(origin, Stop)[0].reason
    assert s.state is SessionState.STOPPED


def test_an_internal_error_that_ends_the_connection_is_told() -> None:
    s = connected()
    actions = s.give_up("internal error (see the bot's log)")
    assert notices(actions) == [NoticeKind.STOPPED] and of(actions, Stop)
    assert s.state is SessionState.STOPPED


def test_restart_after_a_stop_starts_over() -> None:
    s = session()
    s.credentials_failed(PanelNotFound("gone"), 0.0)
    s.restart()
    assert s.state is SessionState.DISCONNECTED and s.stopped_reason is None


# -- lost / restored notices ---------------------------------------------------------------------------------


def test_a_short_outage_is_not_reported() -> None:
    s = connected()
    s.socket_closed(1006, 10.0)
    assert fire(s, 10.0 + TIMING.lost_grace - 0.5) == []
    s.socket_opened(token(), URL, 12.0)
    actions = s.receive(frame("auth success"), 12.1)
    assert not notices(actions) and of(actions, FillGap)


def test_a_long_outage_is_reported_once_after_the_grace_period_and_its_end_too() -> None:
    s = connected()
    s.socket_closed(1006, 10.0)
    s.credentials_failed(PanelServerError("Could not reach the node."), 11.0)
    actions = fire(s, 10.0 + TIMING.lost_grace)
    assert notices(actions) == [NoticeKind.CONNECTION_LOST]
    assert "Could not reach the node" in of(actions, Notify)[0].notice.text
    s.credentials_failed(PanelServerError("Could not reach the node."), 25.0)
    assert fire(s, 100.0) == []  # once
    s.socket_opened(token(), URL, 100.0)
    assert notices(s.receive(frame("auth success"), 100.1)) == [NoticeKind.CONNECTION_RESTORED]


# -- console, captures and gap fills -------------------------------------------------------------------------


def test_gap_fill_delivers_only_what_was_not_delivered() -> None:
    s = connected()
    for line in ("a", "b", "c"):
        s.receive(frame("console output", line), 1.0)
    s.socket_closed(1006, 2.0)
    s.socket_opened(token(), URL, 3.0)
    assert of(s.receive(frame("auth success"), 3.1), FillGap)
    assert s.capture_logs(3.1, CapturePurpose.GAP_FILL) == [SendFrame(Event.SEND_LOGS)]
    replay = [s.receive(frame("console output", line), 3.2) for line in ("a", "b", "c", "d", "e")]
    assert all(r == [] for r in replay)  # held in the capture
    actions = fire(s, 10.0)
    assert lines(actions) == ["d", "e"] and all(a.event.recovered for a in of(actions, Deliver))
    assert of(actions, CaptureDone)[0].lines == ("a", "b", "c", "d", "e")


def test_logs_replay_never_reaches_subscribers_and_a_live_line_in_it_arrives_once() -> None:
    s = connected()
    for line in ("a", "b"):
        s.receive(frame("console output", line), 1.0)
    assert s.capture_logs(2.0, CapturePurpose.LOGS) == [SendFrame(Event.SEND_LOGS)]
    # the live line "c" arrives just before Wings replays the log, which holds it too
    held = [s.receive(frame("console output", line), 2.1) for line in ("c", "a", "b", "c")]
    assert all(h == [] for h in held)
    actions = fire(s, 10.0)
    assert lines(actions) == ["c"]
    assert of(actions, CaptureDone)[0].lines == ("c", "a", "b", "c")
    assert lines(s.receive(frame("console output", "d"), 11.0)) == ["d"]


def test_a_live_line_after_the_replay_arrives_once() -> None:
    s = connected()
    s.receive(frame("console output", "a"), 1.0)
    s.capture_logs(2.0, CapturePurpose.LOGS)
    for line in ("a", "b"):  # "b" came after the replay
        s.receive(frame("console output", line), 2.1)
    assert lines(fire(s, 10.0)) == ["b"]


def test_a_logs_request_joins_a_running_gap_fill() -> None:
    s = connected()
    s.capture_logs(1.0, CapturePurpose.GAP_FILL)
    assert s.capture_logs(1.1, CapturePurpose.LOGS) == []  # no second `send logs`
    s.receive(frame("console output", "x"), 1.2)
    assert len(of(fire(s, 10.0), CaptureDone)) == 1


def test_a_capture_with_no_answer_ends_after_the_first_line_wait() -> None:
    s = connected()
    s.capture_logs(1.0, CapturePurpose.LOGS)
    assert s.next_deadline() == 1.0 + TIMING.gap_first_line
    assert of(fire(s, 5.0), CaptureDone)[0].lines == ()


def test_a_socket_closing_mid_capture_ends_it() -> None:
    s = connected()
    s.receive(frame("console output", "a"), 0.5)
    s.capture_logs(1.0, CapturePurpose.LOGS)
    s.receive(frame("console output", "a"), 1.1)
    s.receive(frame("console output", "new"), 1.1)
    actions = s.socket_closed(1006, 1.2)
    assert lines(actions) == ["new"] and of(actions, CaptureDone)


def test_a_capture_flooded_past_its_bound_ends_at_once_and_later_lines_go_live() -> None:
    s = connected()
    s.receive(frame("console output", "a"), 0.5)
    s.capture_logs(1.0, CapturePurpose.LOGS)
    big = "x" * 65536
    done: list[CaptureDone] = []
    count = 0
    while not done:  # a console printing at full speed while Wings replays
        count += 1
        assert count < 1000, "the capture kept growing"
        done = of(s.receive(frame("console output", f"{count} {big}"), 1.1), CaptureDone)
    assert sum(len(line) for line in done[0].lines) <= CAPTURE_LIMIT + 70000 and s.capture is None
    assert lines(s.receive(frame("console output", "after"), 1.2)) == ["after"]


def test_daemon_lines_pass_a_capture_and_never_break_the_alignment() -> None:
    crash = "\x1b[33m\x1b[1m[Pterodactyl Daemon]:\x1b[39m Exit code: 1\x1b[0m"
    assert is_daemon_line(crash) and is_daemon_line(crash.replace("Pterodactyl", "pelican"))
    assert not is_daemon_line("[Server thread/INFO]: Daemon]: hello")
    s = connected()
    s.receive(frame("console output", "a"), 1.0)
    assert lines(s.receive(frame("console output", crash), 1.1)) == [crash]
    s.capture_logs(2.0, CapturePurpose.GAP_FILL)
    assert lines(s.receive(frame("console output", crash), 2.1)) == [crash]  # live, even mid-capture
    s.receive(frame("console output", "a"), 2.2)
    assert lines(fire(s, 10.0)) == []  # aligned on "a": nothing old posted again


# -- power and stats -----------------------------------------------------------------------------------------


def stats(state: str = "running", uptime: Any = 1000) -> str:
    return json.dumps({"memory_bytes": 1, "cpu_absolute": 2.5, "uptime": uptime, "state": state})


def test_power_is_unknown_until_the_first_status_of_each_socket() -> None:
    s = connected()
    assert s.power is None
    s.receive(frame("status", "running"), 0.1)
    assert s.power is PowerState.RUNNING
    s.socket_closed(1006, 1.0)
    s.socket_opened(token(), URL, 2.0)
    assert s.power is None


def test_status_and_stats_track_power_and_status_makes_stats_stale() -> None:
    s = connected()
    s.receive(frame("stats", stats("starting")), 1.0)
    assert s.power is PowerState.STARTING and s.fresh_stats(2.0, 2.0) is not None
    assert s.fresh_stats(3.5, 2.0) is None  # too old
    s.receive(frame("stats", stats("running")), 4.0)
    s.receive(frame("status", "stopping"), 4.1)
    assert s.power is PowerState.STOPPING and s.fresh_stats(4.2, 2.0) is None
    s.receive(frame("stats", stats("stopping")), 4.2)
    # An unknown value keeps the last known, and is skipped like any malformed frame: nobody is told of it.
    assert s.receive(frame("status", "weird"), 4.3) == [] and s.receive(frame("status"), 4.3) == []
    assert s.power is PowerState.STOPPING and s.skipped_frames == 2 and s.fresh_stats(4.4, 2.0) is not None


@pytest.mark.parametrize("uptime", ["1e400", "-1e400", str(10**30)])
def test_huge_numbers_in_stats_are_skipped_not_fatal(uptime: str) -> None:
    s = connected()
    raw = '{"memory_bytes":1,"uptime":' + uptime + ',"state":"offline"}'
    actions = s.receive(frame("stats", raw), 1.0)
    assert s.skipped_frames == 1 and s.last_stats is None and s.power is None
    assert of(actions, Deliver)  # the frame still happened; only its payload is unusable


def test_unknown_events_and_malformed_frames_are_skipped() -> None:
    s = connected()
    assert s.receive(frame("no such event", "x"), 1.0) == []
    assert s.receive("{not json", 1.0) == [] and s.receive('{"event": 5}', 1.0) == []
    assert s.receive('{"event":"stats","args":[1e400]}', 1.0) == []
    assert s.skipped_frames == 3
    assert lines(s.receive(frame("console output", "fine"), 1.1)) == ["fine"]


def test_token_signals_and_auth_success_are_not_delivered_but_other_events_are() -> None:
    s = connected()
    assert not of(s.receive(frame("token expiring"), 30.0), Deliver)
    for event in ("install started", "backup restore completed", "daemon message", "throttled"):
        assert of(s.receive(Frame(event, ("x",)), 31.0), Deliver)


def test_throttled_is_reported_per_event_name() -> None:
    s = connected()
    [notice] = of(s.receive(frame("throttled", "send logs"), 1.0), Notify)
    assert notice.notice.key == "throttled:send logs"
    assert "`send logs` messages" in notice.notice.text
    for arg in ("global", ""):
        [notice] = of(s.receive(frame("throttled", arg), 1.0), Notify)
        assert "Wingbeat's messages on this console connection" in notice.notice.text


def test_backoff_grows_to_the_cap_with_full_jitter() -> None:
    assert backoff_delay(0, TIMING, 0.99) < 1.0
    assert backoff_delay(3, TIMING, 0.99) == pytest.approx(8 * 0.99)
    assert backoff_delay(20, TIMING, 0.99) == pytest.approx(60 * 0.99)
    assert backoff_delay(20, TIMING, 0.0) == TIMING.backoff_min / 2


def test_a_logs_replay_with_nothing_delivered_before_posts_nothing() -> None:
    s = connected()
    s.capture_logs(1.0, CapturePurpose.LOGS)
    for line in ("old 1", "old 2"):
        s.receive(frame("console output", line), 1.1)
    actions = fire(s, 10.0)
    assert lines(actions) == [] and of(actions, CaptureDone)[0].lines == ("old 1", "old 2")
    assert lines(s.receive(frame("console output", "new"), 11.0)) == ["new"]


def test_a_new_socket_forgets_the_last_one_s_refresh_failures() -> None:
    s = connected()
    s.receive(frame("token expiring"), 30.0)
    s.credentials_failed(PanelServerError("down"), 30.0)
    s.socket_closed(1006, 31.0)
    connected(now=32.0, s=s)
    assert of(s.receive(frame("jwt error", "jwt: created too far in past (denylist)"), 40.0), FetchToken)


def test_too_many_connections_answering_the_first_auth_retries_rather_than_stops() -> None:
    # Newest pterodactyl Wings refuses a 31st authenticated socket with a daemon error and closes it: the
    # slots are held by others (panel tabs) and free up, so the connection comes back on its own.
    s = session()
    s.socket_opened(token(), URL, 0.0)
    actions = s.receive(frame("daemon error", PREFIX + "too many open websocket connections"), 0.1)
    assert notices(actions) == [NoticeKind.DAEMON_ERROR]
    assert not of(actions, Stop) and of(actions, Reconnect)
    s.socket_closed(None, 0.2)
    assert s.state is SessionState.DISCONNECTED


def test_a_status_is_delivered_as_the_state_it_names() -> None:
    s = connected()
    s.receive(frame("status", "offline"), 0.5)
    [deliver] = of(s.receive(frame("status", " Running", "extra"), 1.0), Deliver)
    assert deliver.event.frame.args == ("running",) and s.power is PowerState.RUNNING


def test_a_held_token_called_expired_long_before_its_lifetime_is_clock_skew_and_still_refreshed() -> None:
    # The node's clock runs ahead of the panel's: Wings floods `jwt error` (no prefix) in place of events long
    # before the token's 10 minutes are up. That is named as clock skew, and refreshing keeps events coming.
    s = connected(600, now=100.0)
    actions = s.receive(frame("jwt error", "jwt: exp claim is invalid"), 130.0)
    [notice] = of(actions, Notify)
    assert notice.notice.key == "jwt:clock skew" and "clocks differ" in notice.notice.text
    assert of(actions, FetchToken)
    # one arriving right after a late refresh is about the token it replaced, not a clock
    s.credentials_received(token(), URL, 131.0)
    s.receive(frame("auth success"), 131.5)
    assert of(s.receive(frame("jwt error", "jwt: exp claim is invalid"), 131.6), Notify)[0].notice.key == (
        "jwt:expired"
    )
    # the same error near the end of the lifetime is an ordinary expiry
    late = connected(600, now=100.0)
    assert of(late.receive(frame("jwt error", "jwt: exp claim is invalid"), 690.0), Notify)[0].notice.key == (
        "jwt:expired"
    )


def test_stops_for_different_reasons_are_different_notices() -> None:
    # The repeat filter downstream goes by key: a second stop for a new reason must not look like a repeat.
    s = session()
    first = of(s.credentials_failed(PanelNotFound("The server was not found on the panel."), 0.0), Notify)
    s.restart()
    second = of(s.socket_failed("HTTP 403", 1.0, http_status=403), Notify)
    assert first[0].notice.kind is second[0].notice.kind is NoticeKind.STOPPED
    assert first[0].notice.key != second[0].notice.key


def test_an_unprefixed_jwt_error_before_the_first_auth_success_answers_that_auth() -> None:
    # Real Wings prefixes its answer to `auth`; a Wings (or emulator) that does not still means our token was
    # refused: reconnect at once with the cause named, rather than wait out the auth timeout.
    s = session()
    s.socket_opened(token(), URL, 0.0)
    actions = s.receive(frame("jwt error", "jwt: exp claim is invalid"), 0.1)
    assert of(actions, Notify)[0].notice.key == "jwt:clock skew"
    assert of(actions, Reconnect)
