"""Boards and cards as pure code: the rounded snapshot a server's frames build, and the text it renders to."""

from __future__ import annotations

from bot.boards.render import (
    BOARD_LIMIT,
    Kind,
    board_line,
    markdown_name,
    plain_name,
    render_board,
    render_card,
    uptime_text,
)
from bot.boards.snapshot import UNKNOWN_AFTER, ServerSnapshot, ServerTracker, Shown
from bot.wings.frames import PowerState, Stats

GIB = 1024**3
T0 = 1_700_000_000.0  # a wall-clock reading


def stats(cpu: float, memory_gib: float, *, uptime_s: float = 3600, limit_gib: float = 4.0) -> Stats:
    return Stats(
        memory_bytes=int(memory_gib * GIB),
        memory_limit_bytes=int(limit_gib * GIB),
        cpu_absolute=cpu,
        network_rx_bytes=0,
        network_tx_bytes=0,
        uptime_ms=int(uptime_s * 1000),
        state=PowerState.RUNNING,
        disk_bytes=0,
    )


def running(name: str = "Lobby", ident: str = "a1b2c3d4") -> ServerTracker:
    tracker = ServerTracker(ident, name)
    tracker.status(PowerState.RUNNING, T0)
    tracker.stats(stats(35.0, 1.2), T0)
    return tracker


# -- the snapshot ------------------------------------------------------------------------------------------


def test_figures_are_rounded_to_steps() -> None:
    snap = running().snapshot
    assert snap.state is Shown.RUNNING
    assert (snap.cpu, snap.memory_tenths, snap.memory_limit_tenths) == (35, 12, 40)
    assert snap.started_at == int(T0 - 3600)


def test_an_idle_server_wobbling_within_a_step_does_not_change() -> None:
    tracker = running()
    for i, (cpu, mem) in enumerate([(36.9, 1.23), (33.2, 1.17), (37.4, 1.26), (32.6, 1.14), (35.0, 1.2)]):
        # uptime advances with the clock: the start time estimate stays put
        assert not tracker.stats(stats(cpu, mem, uptime_s=3600 + i + 1), T0 + i + 1)
    assert tracker.snapshot.cpu == 35


def test_a_value_wobbling_around_a_step_boundary_does_not_flip() -> None:
    tracker = running()
    tracker.stats(stats(12.4, 1.2), T0)
    shown = tracker.snapshot.cpu
    for cpu in (12.6, 12.4, 12.7, 12.3, 12.6):
        tracker.stats(stats(cpu, 1.2), T0)
        assert tracker.snapshot.cpu == shown


def test_a_real_change_moves_the_figure() -> None:
    tracker = running()
    assert tracker.stats(stats(80.0, 1.2), T0)
    assert tracker.snapshot.cpu == 80
    assert tracker.stats(stats(80.0, 2.5), T0)
    assert tracker.snapshot.memory_tenths == 25


def test_a_new_start_moves_the_start_time_and_jitter_does_not() -> None:
    tracker = running()
    assert not tracker.stats(stats(35.0, 1.2, uptime_s=3600 + 10 - 0.4), T0 + 10)
    assert tracker.stats(stats(35.0, 1.2, uptime_s=5), T0 + 10)
    assert tracker.snapshot.started_at == int(T0 + 5)


def test_a_state_change_is_remembered_with_its_time() -> None:
    tracker = running()
    assert tracker.snapshot.changed_at is None
    assert tracker.snapshot.since == int(T0 - 3600)  # a running server's start time stands in
    assert tracker.status(PowerState.STOPPING, T0 + 50)
    assert tracker.status(PowerState.OFFLINE, T0 + 60)
    snap = tracker.snapshot
    assert (snap.state, snap.changed_at, snap.cpu, snap.memory_tenths, snap.started_at) == (
        Shown.OFFLINE,
        int(T0 + 60),
        None,
        None,
        None,
    )
    # the zeroed stats Wings sends on stop change nothing more
    offline_stats = Stats(0, 4 * GIB, 0.0, 0, 0, 0, PowerState.OFFLINE, 0)
    assert not tracker.stats(offline_stats, T0 + 61)


def test_a_stats_state_that_disagrees_counts_as_a_status() -> None:
    tracker = running()
    offline = Stats(0, 4 * GIB, 0.0, 0, 0, 0, PowerState.OFFLINE, 0)
    assert tracker.stats(offline, T0 + 5)
    assert tracker.snapshot.state is Shown.OFFLINE


def test_a_server_without_its_socket_for_a_while_shows_unknown() -> None:
    tracker = running()
    assert not tracker.connection(False, 100.0)
    assert not tracker.connection(False, 100.0 + UNKNOWN_AFTER - 1)
    assert tracker.connection(False, 100.0 + UNKNOWN_AFTER)
    assert tracker.snapshot.state is Shown.UNKNOWN
    assert tracker.snapshot.cpu is None
    tracker.connection(True, 200.0)
    assert tracker.snapshot.state is Shown.UNKNOWN  # until Wings says again
    tracker.status(PowerState.RUNNING, T0 + 300)
    assert tracker.snapshot.state is Shown.RUNNING


def test_a_short_drop_changes_nothing() -> None:
    tracker = running()
    before = tracker.snapshot
    tracker.connection(False, 10.0)
    tracker.connection(True, 11.0)
    assert tracker.snapshot == before


def test_no_status_yet_is_unknown() -> None:
    assert ServerTracker("a1b2c3d4", "Lobby").snapshot.state is Shown.UNKNOWN


# -- names ----------------------------------------------------------------------------------------------------


def test_names_lose_line_breaks_controls_and_bidi_overrides() -> None:
    assert plain_name("Lobby\nnew line\r\x00here") == "Lobby new line here"
    assert plain_name("abc\u202edef\u2066") == "abcdef"
    assert plain_name("zero\u200bwidth") == "zerowidth"
    assert plain_name("x" * 100, 10) == "x" * 9 + "…"
    assert plain_name("\n\n") == "?"


def test_names_are_markdown_escaped_and_never_mention() -> None:
    text = markdown_name("**bold** `code` @everyone <@&123456789012345678>")
    assert "\\*\\*bold\\*\\*" in text and "\\`code\\`" in text
    assert "@everyone" not in text  # escape_mentions breaks it with a zero-width space
    assert "<@&123456789012345678>" not in text


# -- board ------------------------------------------------------------------------------------------------


def test_board_lines_show_icon_word_and_figures() -> None:
    now = T0 + 10
    line = board_line(running().snapshot, now)
    assert line.startswith("🟢 **Lobby** — running")
    assert "CPU 35 %" in line and "1.2 / 4.0 GiB" in line and "up 1 h" in line
    assert f"since <t:{int(T0 - 3600)}:R>" in line
    offline = ServerTracker("e5f6a7b8", "Survival")
    offline.status(PowerState.OFFLINE, T0)
    assert board_line(offline.snapshot, now) == "🔴 **Survival** — offline"
    starting = ServerTracker("e5f6a7b8", "Survival")
    starting.status(PowerState.STARTING, T0)
    assert board_line(starting.snapshot, now).startswith("🟡 **Survival** — starting · CPU")
    assert board_line(ServerSnapshot("00000000", "X"), now) == "⚪ **X** — unknown"


def test_board_lists_at_most_25_and_counts_the_rest() -> None:
    snaps = [ServerSnapshot(f"{i:08x}", f"srv-{i:03d}") for i in range(30)]
    rendered = render_board(snaps, T0)
    assert rendered.kind is Kind.BOARD
    lines = rendered.description.splitlines()
    assert len(lines) == BOARD_LIMIT + 1
    assert "and 5 more servers" in lines[-1]
    assert [o.value for o in rendered.options] == [f"{i:08x}" for i in range(25)]
    assert rendered.footer.startswith("30 servers")
    assert len(rendered.description) <= 4096


def test_a_board_of_long_names_stays_within_discords_limits() -> None:
    snaps = []
    for i in range(25):
        tracker = running("W" * 200 + str(i), f"{i:08x}")
        snaps.append(tracker.snapshot)
    rendered = render_board(snaps, T0)
    assert len(rendered.description) <= 4096
    assert all(len(o.label) <= 100 for o in rendered.options)


def test_names_full_of_markdown_keep_boards_and_cards_within_discords_limits() -> None:
    snaps = [running("_*" * 100 + str(i), f"{i:08x}").snapshot for i in range(25)]
    board = render_board(snaps, T0 + 86400 * 12, total=40)
    assert len(board.description) <= 4096
    card = render_card(snaps[0], T0)
    assert len(card.title) <= 256  # Discord refuses an embed whose title is longer
    assert all(len(markdown_name("_" * n, 40)) <= 40 for n in range(1, 120))
    assert markdown_name("a_b", 40) == "a\\_b"
    assert not markdown_name("_" * 100, 41).endswith("\\")


def test_an_empty_board_says_so() -> None:
    assert "can't see any servers" in render_board([], T0).description


def test_rendering_is_stable_for_an_idle_server() -> None:
    tracker = running()
    first = render_board([tracker.snapshot], T0 + 1)
    tracker.stats(stats(36.0, 1.21, uptime_s=3602), T0 + 2)
    assert render_board([tracker.snapshot], T0 + 2) == first


def test_uptime_moves_in_steps() -> None:
    assert uptime_text(None, T0) is None
    assert uptime_text(int(T0), T0 + 59) == "< 10 min"
    assert uptime_text(int(T0), T0 + 1500) == "20 min"
    assert uptime_text(int(T0), T0 + 3 * 3600 + 1000) == "3 h"
    assert uptime_text(int(T0), T0 + 50 * 3600) == "2 d 2 h"


# -- card -------------------------------------------------------------------------------------------------


def test_card_shows_figures_and_offers_kill_only_while_stopping() -> None:
    tracker = running()
    card = render_card(tracker.snapshot, T0 + 10)
    assert card.kind is Kind.CARD and card.server == "a1b2c3d4"
    assert card.title == "🟢 Lobby"
    assert dict(card.fields) == {"CPU": "35 %", "Memory": "1.2 / 4.0 GiB", "Uptime": "1 h"}
    assert not card.kill_enabled
    tracker.status(PowerState.STOPPING, T0 + 20)
    stopping = render_card(tracker.snapshot, T0 + 20)
    assert stopping.kill_enabled
    assert stopping.description == f"**stopping** since <t:{int(T0 + 20)}:R>"
    tracker.status(PowerState.OFFLINE, T0 + 30)
    offline = render_card(tracker.snapshot, T0 + 30)
    assert not offline.kill_enabled
    assert dict(offline.fields) == {"CPU": "—", "Memory": "— / 4.0 GiB", "Uptime": "—"}


def test_card_of_a_server_the_panel_no_longer_lists() -> None:
    tracker = running()
    tracker.rename("Lobby", gone=True)
    card = render_card(tracker.snapshot, T0)
    assert "no longer lists" in card.description
    assert card.fields == ()
