"""What users do through a console socket: power actions, commands, stats and the console backlog.

The rules are plain functions (is this command sendable, which `status` milestones does an action pass, what
does a sequence of them mean); the awaiting part watches the connection's events. Wings drops `set state` and
`send command` silently when a permission is missing or the server is offline, so everything is checked first
and a silent drop is never reported as success.

An unknown power state is not "offline": right after `auth success` Wings has not sent its first `status` yet,
so the checks wait up to `Timing.first_status_wait` for it. If it is still unknown, a command is sent anyway
(the result says the state was unknown) and `send logs` is asked for anyway (no answer means no lines); only a
server Wings says is offline is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import unicodedata
from collections.abc import Sequence

from bot.wings.connection import WingsConnection
from bot.wings.error_texts import explain_daemon_error
from bot.wings.errors import ActionRefused, WingsError, WingsUnavailable
from bot.wings.events import CommandResult, PowerOutcome, PowerResult
from bot.wings.frames import MAX_OUTBOUND_FRAME, Event, PowerAction, PowerState, Stats, encode_frame
from bot.wings.tokens import permission_for

# Bytes a `send command` frame costs around the command itself.
_COMMAND_OVERHEAD = len(encode_frame(Event.SEND_COMMAND, "").encode("utf-8"))
# Python's own idea of a line break beyond \r and \n; a game console may split on these too.
_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_CONTROL_NAMES = {"\t": "a tab", "\x1b": "an escape character (ESC)", "\x00": "a NUL character"}


# Hardened Wings drops a frame over its buckets and says `throttled` with the event's name, or "global" for the
# connection's overall bucket; either one, seen right after we sent, means our frame may not have been acted on.
_THROTTLES = {
    Event.SET_STATE: frozenset({"set state", "global"}),
    Event.SEND_COMMAND: frozenset({"send command", "global"}),
}
# Wings names the event, not the frame it dropped: ours, most likely, but it may have run; say both.
_THROTTLED_TEXT = (
    "Wings throttled the console connection as it went out (too many messages), so it most likely did not run; "
    "check the console, and try again in a few seconds."
)


def check_command(command: str, *, max_frame: int = MAX_OUTBOUND_FRAME) -> str | None:
    """None if `command` can go out as one `send command`, else one sentence saying why not.

    Refused: empty or blank (the panel refuses those too), a line break (Wings would run a second
    command), any other control character including tab, and a frame of `max_frame` bytes or more
    (hardened Wings closes the socket with 1009 on it).
    """
    if not command.strip():
        return "The command is empty."
    for ch in command:
        if ch in _LINE_BREAKS:
            return "The command holds a line break; send one command at a time."
        category = unicodedata.category(ch)
        if category == "Cc":
            name = _CONTROL_NAMES.get(ch, f"a control character (U+{ord(ch):04X})")
            return f"The command holds {name}; remove it and try again."
        if category == "Cs":
            return "The command holds an invalid character (a lone UTF-16 surrogate)."
    size = len(encode_frame(Event.SEND_COMMAND, command).encode("utf-8"))
    if size >= max_frame:
        room = max_frame - 1 - _COMMAND_OVERHEAD
        used = size - _COMMAND_OVERHEAD
        return f"The command is too long for Wings: it takes {used} bytes, the most is about {room}."
    return None


def expected_states(action: PowerAction, current: PowerState | None) -> tuple[PowerState, ...]:
    """The `status` milestones, in order, after which `action` counts as done; the last is the goal.

    Empty when nothing will change: stop or kill while offline, start while running or starting (Wings
    answers that start with a daemon error, whose text only panel admins get). Restart passes through offline unless the server already is
    offline or its state is unknown, where only `running` can be counted on.
    """
    match action:
        case PowerAction.START:
            return () if current in (PowerState.RUNNING, PowerState.STARTING) else (PowerState.RUNNING,)
        case PowerAction.STOP | PowerAction.KILL:
            return () if current is PowerState.OFFLINE else (PowerState.OFFLINE,)
        case PowerAction.RESTART:
            if current is None or current is PowerState.OFFLINE:
                return (PowerState.RUNNING,)
            return (PowerState.OFFLINE, PowerState.RUNNING)
    raise ValueError(f"unknown power action {action!r}")


def judge_power(
    action: PowerAction, goals: Sequence[PowerState], statuses: Sequence[PowerState]
) -> PowerOutcome | None:
    """What the `status` frames seen since `set state` mean: DONE once every goal was passed in order, FAILED
    when a start (or the start half of a restart) fell back to offline without `stopping` (a crash), None
    while it is still under way. Repeated statuses count once.
    """
    remaining = list(goals)
    seen: list[PowerState] = []
    for state in statuses:
        if seen and seen[-1] is state:
            continue
        seen.append(state)
        if remaining and state is remaining[0]:
            remaining.pop(0)
        elif _crashed(action, seen):
            return PowerOutcome.FAILED
        if not remaining:
            return PowerOutcome.DONE
    return None


def _crashed(action: PowerAction, seen: list[PowerState]) -> bool:
    """A start (or the start half of a restart) that fell back to offline after starting."""
    if action not in (PowerAction.START, PowerAction.RESTART) or seen[-1] is not PowerState.OFFLINE:
        return False
    return PowerState.STARTING in seen[:-1]


def dedupe(statuses: Sequence[PowerState]) -> tuple[PowerState, ...]:
    """The statuses with immediate repeats removed, as a power result shows them."""
    out: list[PowerState] = []
    for state in statuses:
        if not out or out[-1] is not state:
            out.append(state)
    return tuple(out)


async def known_power(conn: WingsConnection, wait: float) -> PowerState | None:
    """The server's power state, waiting up to `wait` s for the socket's first `status`; None if still unknown."""
    if conn.power is not None:
        return conn.power
    async with conn.watch() as queue:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while conn.power is None:
                    await queue.get()
    return conn.power


def _connect_wait(conn: WingsConnection) -> float:
    return conn.timing.auth_timeout + conn.timing.open_timeout


async def set_state(
    conn: WingsConnection, action: PowerAction, *, timeout: float | None = None
) -> PowerResult:
    """Send `set state` and report the `status` transitions (or the `daemon error`) seen within `timeout`."""
    timeout = conn.timing.power_timeout if timeout is None else timeout
    await conn.wait_ready(_connect_wait(conn))
    conn.require(permission_for(action), f"the {action.value} action")
    initial = await known_power(conn, conn.timing.first_status_wait)
    if action is PowerAction.START and initial is PowerState.STOPPING:
        # Wings refuses to start a server that is not offline yet (its text reaches panel admins only).
        raise ActionRefused("The server is still stopping; start it once it is offline, or use restart.")
    goals = expected_states(action, initial)
    if not goals:
        raise ActionRefused(
            f"The server is already {initial.value if initial else 'in that state'}; nothing to {action.value}."
        )
    statuses: list[PowerState] = []
    started = conn.clock()
    outcome: PowerOutcome | None = None
    async with conn.watch() as queue:
        await conn.send(Event.SET_STATE, action.value)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while outcome is None:
                    event = await conn.next_event(queue)
                    if event is None:  # stopped for good (deleted, suspended...): no status will come now
                        reason = conn.stopped_reason or "it was closed"
                        return PowerResult(
                            action, initial, dedupe(statuses), PowerOutcome.ENDED,
                            conn.clock() - started, f"the console connection stopped: {reason}",
                        )  # fmt: skip
                    kind = event.frame.known
                    if kind is Event.DAEMON_ERROR:
                        return PowerResult(
                            action, initial, dedupe(statuses), PowerOutcome.DAEMON_ERROR,
                            conn.clock() - started, explain_daemon_error(event.frame.arg),
                        )  # fmt: skip
                    if kind is Event.THROTTLED and event.frame.arg in _THROTTLES[Event.SET_STATE]:
                        return PowerResult(
                            action, initial, dedupe(statuses), PowerOutcome.THROTTLED,
                            conn.clock() - started, _THROTTLED_TEXT,
                        )  # fmt: skip
                    if kind is Event.STATUS and (state := PowerState.parse(event.frame.arg)) is not None:
                        statuses.append(state)
                        outcome = judge_power(action, goals, statuses)
    return PowerResult(
        action, initial, dedupe(statuses), outcome or PowerOutcome.TIMEOUT, conn.clock() - started
    )


async def send_command(conn: WingsConnection, command: str, *, window: float | None = None) -> CommandResult:
    """Send a console command and collect the live console lines that follow it for `window` seconds."""
    window = conn.timing.command_window if window is None else window
    problem = check_command(command)
    if problem:
        raise ActionRefused(problem)
    await conn.wait_ready(_connect_wait(conn))
    conn.require(permission_for("command"), "the command")
    power = await known_power(conn, conn.timing.first_status_wait)
    if power is PowerState.OFFLINE:
        raise ActionRefused("The server is offline, so Wings would drop the command; start it first.")
    lines: list[str] = []
    async with conn.watch() as queue:
        await conn.send(Event.SEND_COMMAND, command)
        deadline = conn.clock() + window
        while (left := deadline - conn.clock()) > 0:
            try:
                async with asyncio.timeout(left):
                    event = await queue.get()
            except TimeoutError:
                break
            # Lines released from a `send logs` capture may be older than the command: they never count.
            if event.frame.known is Event.CONSOLE_OUTPUT and not event.recovered:
                lines.append(event.frame.arg)
            elif event.frame.known is Event.THROTTLED and event.frame.arg in _THROTTLES[Event.SEND_COMMAND]:
                raise WingsError(f"The command was sent, but {_THROTTLED_TEXT}")
    return CommandResult(command, tuple(lines), window, state_unknown=power is None)


async def fetch_stats(conn: WingsConnection, *, max_age: float = 2.0, wait: float | None = None) -> Stats:
    """The server's current `stats`: the last ones if fresher than `max_age` s, else asked for (`send stats`).

    `wait` bounds how long to wait for a socket (default: a whole connect and auth).
    """
    await conn.wait_ready(_connect_wait(conn) if wait is None else wait)
    stats = conn.fresh_stats(max_age)
    if stats is not None:
        return stats
    async with conn.watch() as queue:
        await conn.send(Event.SEND_STATS)
        try:
            async with asyncio.timeout(conn.timing.logs_max):
                while True:
                    event = await queue.get()
                    if event.frame.known is Event.STATS and conn.session.last_stats is not None:
                        return conn.session.last_stats
        except TimeoutError:
            raise WingsUnavailable("Wings did not answer with the server's stats in time.") from None


async def fetch_logs(conn: WingsConnection) -> list[str]:
    """Wings' console backlog (`send logs`), for the asker only: the replay never reaches the subscribers."""
    await conn.wait_ready(_connect_wait(conn))
    power = await known_power(conn, conn.timing.first_status_wait)
    if power is PowerState.OFFLINE:
        raise ActionRefused("The server is offline; Wings only replays the console of a running server.")
    return await conn.capture_logs()
