"""One test per rule of the sans-I/O Wings protocol core (docs/wings-and-panel.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from bot.wings.actions import check_command, expected_states, judge_power
from bot.wings.error_texts import (
    DaemonErrorKind,
    JwtErrorCause,
    classify_daemon_error,
    classify_jwt_error,
    explain_daemon_error,
    explain_jwt_error,
    strip_error_prefix,
)
from bot.wings.events import PowerOutcome, PowerResult
from bot.wings.frames import (
    MAX_INBOUND_FRAME,
    MAX_OUTBOUND_FRAME,
    ConnectionCloseKind,
    Event,
    Frame,
    FrameError,
    PowerAction,
    PowerState,
    classify_close,
    decode_frame,
    encode_frame,
    parse_backup_completed,
    parse_stats,
)
from bot.wings.tokens import TokenClaims, TokenError, has_permission, permission_for, read_claims, refresh_at

SERVER_UUID = "3f0c8a4e-9b7d-4c61-a1d2-5e6f7a8b9c0d"
PREFIX = "Error Event [6b1e2c3d-0000-4000-8000-123456789abc]: "


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], key: str = "node-daemon-token") -> str:
    """An HS256 token laid out as the panel signs it (header carries the jti too)."""
    header = {"typ": "JWT", "alg": "HS256", "jti": claims.get("jti", "")}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    sig = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def panel_claims(iat: int = 1_700_000_000, lifetime: int = 600, **extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "https://panel.example.com",
        "aud": ["https://node.example.com:8080"],
        "jti": hashlib.md5(f"1{SERVER_UUID}".encode()).hexdigest(),
        "iat": iat,
        "nbf": iat - 300,
        "exp": iat + lifetime,
        "server_uuid": SERVER_UUID,
        "permissions": ["*"],
        "user_uuid": "9d8c7b6a-0000-4000-8000-000000000001",
        "user_id": 1,
        "unique_id": "abcdefghijklmnop",
    }
    claims.update(extra)
    return claims


def claims_of(lifetime: int | None, exp: int = 1_700_000_600) -> TokenClaims:
    iat = None if lifetime is None else exp - lifetime
    return TokenClaims(exp=exp, iat=iat, permissions=frozenset(), server_uuid=None, scope=None)


# --- events ------------------------------------------------------------------------------------


def test_event_names_match_reference_exactly() -> None:
    names = {e.value for e in Event}
    assert names == {
        "auth", "set state", "send command", "send logs", "send stats",
        "auth success", "status", "stats", "console output", "install output", "install started",
        "install completed", "daemon message", "daemon error", "jwt error", "token expiring",
        "token expired", "backup completed", "backup restore completed", "transfer logs",
        "transfer status", "deleted", "throttled", "feature match",
    }  # fmt: skip


# --- frames ------------------------------------------------------------------------------------


def test_encode_is_compact_and_always_has_args() -> None:
    assert encode_frame(Event.SEND_LOGS) == '{"event":"send logs","args":[]}'
    assert encode_frame(Event.AUTH, "tok") == '{"event":"auth","args":["tok"]}'
    assert encode_frame("custom", "a", "b") == '{"event":"custom","args":["a","b"]}'


def test_encode_rejects_non_string_args() -> None:
    with pytest.raises(TypeError):
        encode_frame(Event.SEND_COMMAND, 5)  # type: ignore[arg-type]


def test_round_trip_with_quotes_unicode_and_angle_brackets() -> None:
    text = 'say "héllo" <b> & \\ ✓'
    frame = decode_frame(encode_frame(Event.SEND_COMMAND, text))
    assert frame == Frame("send command", (text,))
    assert frame.known is Event.SEND_COMMAND


def test_decode_wings_frame_with_trailing_newline_and_go_escapes() -> None:
    # Go's json.Encoder escapes <, > and & and ends each frame with "\n".
    raw = '{"event":"console output","args":["\\u003cPlayer\\u003e hi \\u0026 bye"]}\n'
    frame = decode_frame(raw)
    assert frame.known is Event.CONSOLE_OUTPUT
    assert frame.arg == "<Player> hi & bye"


def test_decode_bytes() -> None:
    assert decode_frame(b'{"event":"status","args":["running"]}').arg == "running"


def test_decode_missing_and_null_args_mean_none() -> None:
    assert decode_frame('{"event":"auth success"}\n') == Frame("auth success", ())
    assert decode_frame('{"event":"auth success","args":null}').args == ()
    assert decode_frame('{"event":"auth success"}').arg == ""


def test_decode_null_elements_read_as_empty_string() -> None:
    # Pelican's console sends `send logs` with args [null].
    assert decode_frame('{"event":"send logs","args":[null, "x"]}').args == ("", "x")


def test_unknown_event_decodes_but_is_not_known() -> None:
    frame = decode_frame('{"event":"backup completed:abc","args":[]}')
    assert frame.known is None and frame.event == "backup completed:abc"


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"event":"status"',  # truncated
        '["status"]',  # not an object
        '"status"',
        '{"args":["x"]}',  # no event
        '{"event":null}',
        '{"event":5,"args":[]}',
        '{"event":"status","args":"running"}',  # args not a list
        '{"event":"status","args":{"0":"x"}}',
        '{"event":"status","args":[1]}',  # element not a string
        '{"event":"status","args":[["x"]]}',
        '{"event":"stats","args":[NaN]}',
        b'{"event":"status","args":["\xff"]}',  # not UTF-8
    ],
)
def test_bad_frames_raise_frame_error(raw: str | bytes) -> None:
    with pytest.raises(FrameError):
        decode_frame(raw)


def test_frame_error_is_a_value_error() -> None:
    assert issubclass(FrameError, ValueError)


def test_oversize_frame_is_rejected_in_bytes() -> None:
    overhead = len('{"event":"console output","args":[""]}')
    at_limit = encode_frame(Event.CONSOLE_OUTPUT, "x" * (MAX_INBOUND_FRAME - overhead))
    assert len(at_limit) == MAX_INBOUND_FRAME
    assert decode_frame(at_limit).known is Event.CONSOLE_OUTPUT
    with pytest.raises(FrameError, match="limit"):
        decode_frame(at_limit.replace('"]}', 'x"]}'))
    with pytest.raises(FrameError, match="limit"):
        decode_frame(at_limit.encode() + b" ")
    # A str under the limit in characters but over it in UTF-8 bytes is still too big.
    wide = encode_frame(Event.CONSOLE_OUTPUT, "é" * (MAX_INBOUND_FRAME // 2))
    assert len(wide) < MAX_INBOUND_FRAME
    with pytest.raises(FrameError, match="limit"):
        decode_frame(wide)


def test_a_64_kib_console_line_is_accepted() -> None:
    line = "y" * (64 * 1024)
    assert decode_frame(encode_frame(Event.CONSOLE_OUTPUT, line)).arg == line


# --- stats -------------------------------------------------------------------------------------

STRUCT_ORDER = (
    '{"memory_bytes":524288000,"memory_limit_bytes":1610612736,"cpu_absolute":123.456,'
    '"network":{"rx_bytes":1000,"tx_bytes":2000},"uptime":65000,"state":"running","disk_bytes":4096}'
)
ALPHABETICAL = (
    '{"cpu_absolute":123.456,"disk_bytes":4096,"memory_bytes":524288000,"memory_limit_bytes":1610612736,'
    '"network":{"rx_bytes":1000,"tx_bytes":2000},"state":"running","uptime":65000}'
)


def test_stats_parse_same_from_both_key_orders() -> None:
    a, b = parse_stats(STRUCT_ORDER), parse_stats(ALPHABETICAL)
    assert a == b
    assert a.memory_bytes == 524288000 and a.memory_limit_bytes == 1610612736
    assert a.cpu_absolute == pytest.approx(123.456)  # over 100: several cores
    assert (a.network_rx_bytes, a.network_tx_bytes) == (1000, 2000)
    assert a.uptime_ms == 65000 and a.state is PowerState.RUNNING and a.disk_bytes == 4096
    assert a.disk_read_bytes is None and a.disk_write_bytes is None


def test_stats_pelican_disk_io() -> None:
    payload = json.loads(STRUCT_ORDER) | {"disk_io": {"read_bytes": 7, "write_bytes": 9}}
    stats = parse_stats(json.dumps(payload))
    assert (stats.disk_read_bytes, stats.disk_write_bytes) == (7, 9)
    assert stats.memory_bytes == 524288000


def test_stats_from_a_real_frame_arg_is_parsed_twice() -> None:
    frame = decode_frame(encode_frame(Event.STATS, STRUCT_ORDER) + "\n")
    assert parse_stats(frame.arg).state is PowerState.RUNNING


def test_stats_missing_keys_are_zero_and_unknown_state_is_none() -> None:
    stats = parse_stats('{"state":"exploding"}')
    assert stats.memory_bytes == 0 and stats.cpu_absolute == 0.0 and stats.uptime_ms == 0
    assert stats.network_rx_bytes == 0 and stats.state is None
    assert parse_stats("{}").state is None


def test_stats_offline_zeroed_payload() -> None:
    zeroed = (
        '{"memory_bytes":0,"memory_limit_bytes":1610612736,"cpu_absolute":0,'
        '"network":{"rx_bytes":0,"tx_bytes":0},"uptime":0,"state":"offline","disk_bytes":4096}'
    )
    stats = parse_stats(zeroed)
    assert stats.state is PowerState.OFFLINE and stats.memory_limit_bytes == 1610612736


@pytest.mark.parametrize(
    "arg",
    ["", "junk", "[1,2]", "null", '{"memory_bytes":"lots"}', '{"memory_bytes":true}', '{"network":[1]}'],
)
def test_stats_junk_raises_frame_error(arg: str) -> None:
    with pytest.raises(FrameError):
        parse_stats(arg)


def test_backup_completed_payload() -> None:
    arg = (
        '{"checksum":"abc","checksum_type":"sha1","file_size":1234,"is_successful":false,'
        '"uuid":"11111111-2222-3333-4444-555555555555"}'
    )
    result = parse_backup_completed(arg)
    assert result.is_successful is False and result.file_size == 1234
    assert result.uuid == "11111111-2222-3333-4444-555555555555" and result.checksum_type == "sha1"
    with pytest.raises(FrameError):
        parse_backup_completed('{"uuid":"x"}')


def test_power_state_parse() -> None:
    assert PowerState.parse("stopping") is PowerState.STOPPING
    assert PowerState.parse("stopped") is None  # the panel's API default, never a Wings status
    assert PowerState.parse(None) is None


# --- token claims ------------------------------------------------------------------------------


def test_claims_from_a_real_hs256_token() -> None:
    token = make_jwt(panel_claims(permissions=["control.console", "websocket.connect"]))
    claims = read_claims(token)
    assert claims.exp == 1_700_000_600 and claims.iat == 1_700_000_000 and claims.lifetime == 600
    assert claims.permissions == frozenset({"control.console", "websocket.connect"})
    assert claims.server_uuid == SERVER_UUID
    assert claims.scope is None


def test_claims_are_read_whatever_the_signing_key() -> None:
    # No signature check: only Wings holds the node token.
    assert read_claims(make_jwt(panel_claims(), key="other")).exp == 1_700_000_600


def test_claims_hardened_scope_and_missing_iat() -> None:
    claims = panel_claims(scope="websocket")
    del claims["iat"]
    read = read_claims(make_jwt(claims))
    assert read.scope == "websocket" and read.iat is None and read.lifetime is None


def test_claims_missing_permissions_is_empty() -> None:
    claims = panel_claims()
    del claims["permissions"]
    assert read_claims(make_jwt(claims)).permissions == frozenset()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.@@@.sig",
        b64url(b'{"alg":"HS256"}') + "." + b64url(b"not json") + ".sig",
        b64url(b'{"alg":"HS256"}') + "." + b64url(b"[1]") + ".sig",
        b64url(b"nope") + "." + b64url(b'{"exp":1}') + ".sig",
        make_jwt({"iat": 1}),  # no exp
        make_jwt({"exp": "soon"}),
        make_jwt({"exp": 10, "permissions": "*"}),
        make_jwt({"exp": 10, "server_uuid": 7}),
    ],
)
def test_malformed_tokens_raise_token_error(token: str) -> None:
    with pytest.raises(TokenError):
        read_claims(token)


def test_claims_repr_has_no_signature() -> None:
    token = make_jwt(panel_claims())
    assert token.rsplit(".", 1)[1] not in repr(read_claims(token))


# --- permissions -------------------------------------------------------------------------------


def test_star_covers_everything_but_admin() -> None:
    assert has_permission(["*"], "control.console")
    assert has_permission(["*"], "websocket.connect")
    assert not has_permission(["*"], "admin.websocket.errors")
    assert not has_permission(["*"], "administrator")  # Wings checks the bare "admin" prefix
    assert has_permission(["*", "admin.websocket.errors"], "admin.websocket.errors")


def test_exact_permission_only() -> None:
    perms = frozenset({"websocket.connect", "control.start"})
    assert has_permission(perms, "control.start")
    assert not has_permission(perms, "control.stop")
    assert not has_permission(perms, "control")
    assert not has_permission([], "control.start")


def test_permission_for_each_action() -> None:
    assert permission_for(PowerAction.START) == "control.start"
    assert permission_for(PowerAction.STOP) == "control.stop"
    assert permission_for(PowerAction.KILL) == "control.stop"  # kill needs stop, not a kill permission
    assert permission_for(PowerAction.RESTART) == "control.restart"
    assert permission_for("command") == "control.console"


def test_claims_permissions_decide_with_has_permission() -> None:
    claims = read_claims(make_jwt(panel_claims(permissions=["websocket.connect", "control.stop"])))
    assert has_permission(claims.permissions, permission_for(PowerAction.KILL))
    assert not has_permission(claims.permissions, permission_for(PowerAction.START))


# --- refresh timing ----------------------------------------------------------------------------


def test_refresh_600s_token_75s_before_expiry() -> None:
    at = refresh_at(claims_of(600), received_at=1000.0)
    assert at == pytest.approx(1525.0)
    assert 60 <= 1600.0 - at <= 90


def test_refresh_20s_token_at_three_quarters() -> None:
    assert refresh_at(claims_of(20), received_at=50.0) == pytest.approx(65.0)


def test_refresh_3s_token_at_three_quarters_but_not_before_one_second() -> None:
    assert refresh_at(claims_of(3), received_at=0.0) == pytest.approx(2.25)
    assert refresh_at(claims_of(1), received_at=0.0) == pytest.approx(1.0)
    assert refresh_at(claims_of(0), received_at=0.0) == pytest.approx(1.0)  # no storm on dead tokens
    assert refresh_at(claims_of(-30), received_at=0.0) == pytest.approx(1.0)


def test_refresh_missing_iat_assumes_600s() -> None:
    assert refresh_at(claims_of(None), received_at=10.0) == pytest.approx(535.0)


def test_refresh_ignores_exp_against_local_clock() -> None:
    # Same lifetime, wildly different exp (panel clock off): same schedule on our clock.
    a = refresh_at(claims_of(600, exp=1_700_000_600), received_at=5.0)
    b = refresh_at(claims_of(600, exp=2_000_000_000), received_at=5.0)
    assert a == b


def test_refresh_is_monotonic_in_lifetime() -> None:
    times = [refresh_at(claims_of(life), 0.0) for life in range(1, 3600)]
    assert times == sorted(times)


# --- jwt errors --------------------------------------------------------------------------------

JWT_TEXTS = [
    ("jwt: exp claim is invalid", JwtErrorCause.EXPIRED),
    ("jwt: created too far in past (denylist)", JwtErrorCause.DENYLISTED),
    ("jwt: missing connect permission", JwtErrorCause.NO_CONNECT_PERMISSION),
    ("jwt: server uuid mismatch", JwtErrorCause.UUID_MISMATCH),
    ("jwt: no jwt present", JwtErrorCause.NOT_PRESENT),
    ("jwt: HMAC verification failed", JwtErrorCause.BAD_TOKEN),
    ("jwt: malformed token", JwtErrorCause.BAD_TOKEN),
    ("invalid signature", JwtErrorCause.BAD_TOKEN),
    # texts of other JWT libraries a newer Wings may use (golang-jwt v5 checks iat and nbf too)
    ("token has invalid claims: token is expired", JwtErrorCause.EXPIRED),
    ("token has invalid claims: token used before issued", JwtErrorCause.CLOCK_SKEW),
    ("token has invalid claims: token is not valid yet", JwtErrorCause.CLOCK_SKEW),
    ("jwt: nbf claim is invalid", JwtErrorCause.CLOCK_SKEW),
    ("jwt: iat claim is invalid", JwtErrorCause.CLOCK_SKEW),
    ("token signature is invalid: signature is invalid", JwtErrorCause.BAD_TOKEN),
    ("jwt: something new", JwtErrorCause.OTHER),
    ("", JwtErrorCause.OTHER),
]


@pytest.mark.parametrize(("text", "cause"), JWT_TEXTS)
def test_jwt_text_classification_raw(text: str, cause: JwtErrorCause) -> None:
    assert classify_jwt_error(text) is cause


@pytest.mark.parametrize(("text", "cause"), JWT_TEXTS)
def test_jwt_text_classification_prefixed_and_any_case(text: str, cause: JwtErrorCause) -> None:
    assert classify_jwt_error(PREFIX + text) is cause
    assert classify_jwt_error((PREFIX + text).upper()) is cause


def test_jwt_expired_on_fresh_token_is_clock_skew() -> None:
    assert classify_jwt_error("jwt: exp claim is invalid", fresh_token=True) is JwtErrorCause.CLOCK_SKEW
    assert (
        classify_jwt_error(PREFIX + "jwt: exp claim is invalid", fresh_token=True) is JwtErrorCause.CLOCK_SKEW
    )
    # Only expiry can be skew: other causes stay what they are.
    assert classify_jwt_error("jwt: server uuid mismatch", fresh_token=True) is JwtErrorCause.UUID_MISMATCH


def test_jwt_explanations_are_one_distinct_sentence_each() -> None:
    texts = [explain_jwt_error(c) for c in JwtErrorCause]
    assert len(set(texts)) == len(texts)
    for text in texts:
        assert text.endswith(".") and text.count(". ") == 0 and "\n" not in text
    assert "restart" in explain_jwt_error(JwtErrorCause.DENYLISTED)
    assert "websocket.connect" in explain_jwt_error(JwtErrorCause.NO_CONNECT_PERMISSION)
    assert "clock" in explain_jwt_error(JwtErrorCause.CLOCK_SKEW)


# --- daemon errors -----------------------------------------------------------------------------

DAEMON_TEXTS = [
    (
        "another power action is currently being processed for this server, please try again later",
        DaemonErrorKind.POWER_LOCK_BUSY,
    ),
    ("server is running", DaemonErrorKind.ALREADY_RUNNING),
    ("server is currently in a suspended state", DaemonErrorKind.SUSPENDED),
    ("server is currently installing", DaemonErrorKind.INSTALLING),
    ("server is currently being transferred", DaemonErrorKind.TRANSFERRING),
    ("server is currently being restored", DaemonErrorKind.RESTORING),
    ("attempting to handle unknown power action", DaemonErrorKind.UNKNOWN_ACTION),
    ("too many open websocket connections", DaemonErrorKind.TOO_MANY_CONNECTIONS),
    ("an unexpected error was encountered while handling this request", DaemonErrorKind.GENERIC),
    ("disk quota exceeded", DaemonErrorKind.OTHER),
]


@pytest.mark.parametrize(("text", "kind"), DAEMON_TEXTS)
def test_daemon_text_classification(text: str, kind: DaemonErrorKind) -> None:
    assert classify_daemon_error(text) is kind
    assert classify_daemon_error(PREFIX + text) is kind


def test_strip_error_prefix() -> None:
    assert strip_error_prefix(PREFIX + "server is running") == "server is running"
    assert strip_error_prefix("Error Event []: x") == "x"
    assert strip_error_prefix("server is running") == "server is running"
    # Only a leading prefix is removed.
    assert strip_error_prefix("see Error Event [a]: x") == "see Error Event [a]: x"


def test_explain_daemon_error_known_kinds() -> None:
    busy = explain_daemon_error(PREFIX + DAEMON_TEXTS[0][0])
    assert "Another power action" in busy and "Error Event" not in busy
    assert "suspended" in explain_daemon_error(PREFIX + "server is currently in a suspended state")
    generic = PREFIX + "an unexpected error was encountered while handling this request"
    assert "admin" in explain_daemon_error(generic)
    assert "node token" in explain_daemon_error(generic, during_auth=True)


def test_explain_daemon_error_quotes_unknown_text_on_one_line() -> None:
    assert (
        explain_daemon_error(PREFIX + "disk quota exceeded")
        == "Wings reported an error: disk quota exceeded."
    )
    assert explain_daemon_error(PREFIX + "it broke!\nbadly") == "Wings reported an error: it broke! badly."
    assert explain_daemon_error(PREFIX) == "Wings reported an error without a message."
    long = explain_daemon_error("x" * 5000)
    assert len(long) < 400 and long.endswith("…")


# --- commands ----------------------------------------------------------------------------------


def test_plain_commands_pass() -> None:
    assert check_command("say hello") is None
    assert check_command('tellraw @a {"text":"<hi> & ✓"}') is None


@pytest.mark.parametrize("command", ["", "   "])
def test_empty_command_refused(command: str) -> None:
    reason = check_command(command)
    assert reason is not None and "empty" in reason


@pytest.mark.parametrize("command", ["say a\nstop", "say a\r", "a\u2028b", "a\x85b"])
def test_line_breaks_refused(command: str) -> None:
    reason = check_command(command)
    assert reason is not None and "line break" in reason


@pytest.mark.parametrize(
    ("command", "name"), [("a\tb", "tab"), ("\x1b[31m", "ESC"), ("a\x00", "NUL"), ("\x7f", "007F")]
)
def test_control_characters_refused(command: str, name: str) -> None:
    reason = check_command(command)
    assert reason is not None and name in reason


def test_lone_surrogate_refused() -> None:
    assert check_command("a\ud800") is not None


def test_command_length_limit_is_on_the_encoded_frame() -> None:
    overhead = len(encode_frame(Event.SEND_COMMAND, "").encode())
    fits = "x" * (MAX_OUTBOUND_FRAME - 1 - overhead)
    assert len(encode_frame(Event.SEND_COMMAND, fits).encode()) == MAX_OUTBOUND_FRAME - 1
    assert check_command(fits) is None
    too_long = check_command(fits + "x")
    assert too_long is not None and "too long" in too_long
    # Quotes double in JSON and "é" is two UTF-8 bytes: the limit counts what goes on the wire.
    assert check_command('"' * (len(fits) // 2 + 1)) is not None
    assert check_command("é" * (len(fits) // 2 + 1)) is not None
    assert check_command("é" * (len(fits) // 2)) is None


def test_command_limit_is_a_parameter() -> None:
    assert check_command("x" * 100, max_frame=200) is None
    assert check_command("x" * 200, max_frame=200) is not None


# --- power -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "current", "expected"),
    [
        (PowerAction.START, PowerState.OFFLINE, (PowerState.RUNNING,)),
        (PowerAction.START, PowerState.STARTING, ()),
        (PowerAction.START, PowerState.RUNNING, ()),
        (PowerAction.START, None, (PowerState.RUNNING,)),
        (PowerAction.STOP, PowerState.RUNNING, (PowerState.OFFLINE,)),
        (PowerAction.STOP, PowerState.OFFLINE, ()),
        (PowerAction.KILL, PowerState.STOPPING, (PowerState.OFFLINE,)),
        (PowerAction.KILL, PowerState.OFFLINE, ()),
        (PowerAction.KILL, None, (PowerState.OFFLINE,)),
        (PowerAction.RESTART, PowerState.RUNNING, (PowerState.OFFLINE, PowerState.RUNNING)),
        (PowerAction.RESTART, PowerState.STARTING, (PowerState.OFFLINE, PowerState.RUNNING)),
        (PowerAction.RESTART, PowerState.OFFLINE, (PowerState.RUNNING,)),
        (PowerAction.RESTART, None, (PowerState.RUNNING,)),
    ],
)
def test_expected_states(
    action: PowerAction, current: PowerState | None, expected: tuple[PowerState, ...]
) -> None:
    assert expected_states(action, current) == expected


# --- close codes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (1000, ConnectionCloseKind.NORMAL),
        (1001, ConnectionCloseKind.NORMAL),
        (1005, ConnectionCloseKind.NORMAL),
        (1006, ConnectionCloseKind.ABNORMAL),
        (None, ConnectionCloseKind.ABNORMAL),
        (1009, ConnectionCloseKind.TOO_BIG),
        (4409, ConnectionCloseKind.SUSPENDED),
        (4400, ConnectionCloseKind.OTHER),
        (1011, ConnectionCloseKind.OTHER),
    ],
)
def test_close_codes(code: int | None, kind: ConnectionCloseKind) -> None:
    assert classify_close(code) is kind


# --- judging a power action by its statuses ------------------------------------------------------


_R, _S, _P, _O = PowerState.RUNNING, PowerState.STARTING, PowerState.STOPPING, PowerState.OFFLINE


@pytest.mark.parametrize(
    ("action", "initial", "statuses", "outcome"),
    [
        # Wings' Terminate sets `stopping` before `offline` so its crash detection stays quiet: a kill, not a crash
        (PowerAction.KILL, _R, [_P, _O], PowerOutcome.DONE),
        (PowerAction.KILL, _R, [_O], PowerOutcome.DONE),
        (PowerAction.STOP, _R, [_P, _P, _O], PowerOutcome.DONE),
        (PowerAction.START, _O, [_S, _S, _R], PowerOutcome.DONE),
        (PowerAction.START, _O, [_S, _O], PowerOutcome.FAILED),  # crashed while starting
        (PowerAction.START, _O, [_S], None),
        (PowerAction.RESTART, _R, [_P, _O, _S, _R], PowerOutcome.DONE),
        (PowerAction.RESTART, _R, [_P, _O, _S, _O], PowerOutcome.FAILED),
        (PowerAction.RESTART, _R, [_P, _O], None),  # half way: stopped, not started yet
        (PowerAction.RESTART, _O, [_S, _R], PowerOutcome.DONE),  # restart of an offline server just starts it
    ],
)
def test_judge_power(
    action: PowerAction, initial: PowerState, statuses: list[PowerState], outcome: PowerOutcome | None
) -> None:
    assert judge_power(action, expected_states(action, initial), statuses) is outcome


def test_a_power_result_path_never_repeats_a_state() -> None:
    # A Wings (or emulator) that sends `status` again on a re-auth repeats the state the action started from.
    result = PowerResult(PowerAction.STOP, _R, (_R, _P, _O), PowerOutcome.DONE, 3.0)
    assert result.describe() == "stopped: running → stopping → offline in 3 s"
