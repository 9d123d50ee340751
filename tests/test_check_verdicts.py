"""`wingbeat check`'s verdicts and report: facts in, ✓/✗ lines and fix sentences out (no I/O)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from bot.check import verdicts as v
from bot.check.links import read_links
from bot.check.panel_probe import _strip_event_prefix, pick_per_node
from bot.check.report import Report, render, summary
from bot.panel.models import Server
from bot.settings import Database


def test_key_kind_by_prefix() -> None:
    assert v.key_kind("ptlc_abc") == (v.KeyKind.CLIENT, "ptlc_")
    assert v.key_kind("pacc_abc") == (v.KeyKind.CLIENT, "pacc_")
    assert v.key_kind("ptla_abc") == (v.KeyKind.APPLICATION, "ptla_")
    assert v.key_kind("papp_abc") == (v.KeyKind.APPLICATION, "papp_")
    assert v.key_kind("0123456789abcdef") == (v.KeyKind.UNKNOWN, "")


def test_panel_key_verdicts() -> None:
    ok = v.PanelFacts("https://panel", v.PanelOutcome.OK, username="ops")
    assert v.panel_key(ok, v.KeyKind.CLIENT, "ptlc_") == v.Line(
        v.Mark.PASS, "Panel key", "a client key of panel user 'ops'"
    )
    # The prefix alone tells, whatever the panel said; and the panel's 403 tells without a prefix.
    assert v.panel_key(ok, v.KeyKind.APPLICATION, "ptla_").failed
    app = v.PanelFacts("https://panel", v.PanelOutcome.APPLICATION_KEY)
    line = v.panel_key(app, v.KeyKind.UNKNOWN, "")
    assert line.failed and "application key;" in line.text and "client key" in line.fix
    rejected = v.panel_key(v.PanelFacts("u", v.PanelOutcome.KEY_REJECTED), v.KeyKind.CLIENT, "ptlc_")
    assert rejected.failed and "401" in rejected.text
    ip = v.panel_key(v.PanelFacts("u", v.PanelOutcome.IP_NOT_ALLOWED), v.KeyKind.CLIENT, "ptlc_")
    assert ip.failed and "allow-list" in ip.text
    down = v.PanelFacts("u", v.PanelOutcome.UNREACHABLE, "no route")
    assert v.panel_key(down, v.KeyKind.CLIENT, "ptlc_").mark is v.Mark.SKIP


def test_panel_answers() -> None:
    assert v.panel_answers(v.PanelFacts("https://p", v.PanelOutcome.KEY_REJECTED)).mark is v.Mark.PASS
    down = v.panel_answers(v.PanelFacts("https://p", v.PanelOutcome.UNREACHABLE, "refused"))
    assert down.failed and "refused" in down.text and "https://p" in down.fix
    other = v.panel_answers(v.PanelFacts("https://p", v.PanelOutcome.NOT_A_PANEL, "HTML"))
    assert other.failed and "without /api" in other.fix


def test_urls_are_printed_without_credentials() -> None:
    assert v.display_url("https://user:pw@panel.example.com:8443/x") == "https://panel.example.com:8443/x"
    assert v.display_url("https://panel.example.com") == "https://panel.example.com"
    line = v.settings_loaded(
        panel_url="https://u:secret@p.example", guilds=2, console_input=False, source="env"
    )
    assert "secret" not in line.text and "https://p.example" in line.text


def test_missing_permissions_follow_wings() -> None:
    assert v.missing_permissions({"*"}) == ()
    assert v.missing_permissions({"*", "admin.websocket.errors"}) == ()
    assert v.missing_permissions({"websocket.connect", "control.console"}) == (
        "control.start",
        "control.stop",
        "control.restart",
    )
    assert v.missing_permissions(set()) == v.SERVER_PERMISSIONS


def test_servers_line() -> None:
    good = [v.ServerFacts("Lobby", "a1b2c3d4", permissions=frozenset({"*"}))]
    assert v.servers_line(True, good).mark is v.Mark.PASS
    bad = [*good, v.ServerFacts("Friends", "9c0d1e2f", permissions=frozenset({"websocket.connect"}))]
    line = v.servers_line(True, bad)
    assert line.failed and line.text == "the key sees 2 servers; 1 of them lacks permissions Wingbeat uses"
    assert line.details == (
        "Friends (9c0d1e2f): lacks control.console, control.start, control.stop, control.restart",
    )
    unreadable = v.servers_line(True, [v.ServerFacts("X", "x", error="HTTP 500")])
    assert unreadable.failed and "could not be read: HTTP 500" in unreadable.details[0]
    assert v.servers_line(True, []).failed
    assert v.servers_line(False, None).mark is v.Mark.SKIP


def test_origin_refused_names_wings_origin_and_the_likely_remote() -> None:
    facts = v.WingsFacts(
        "node-1",
        v.WingsOutcome.ORIGIN_REFUSED,
        address="node.example.com:8080",
        origin="https://bot.example.com",
        issuer="https://panel.example.com",
    )
    line = v.wings_line(facts)
    assert line.failed and line.title == "Wings on node 'node-1' (node.example.com:8080)"
    assert "https://bot.example.com" in line.text and "HTTP 403" in line.text
    assert "WINGS_ORIGIN" in line.fix and "`remote:`" in line.fix
    assert "The panel calls itself https://panel.example.com" in line.fix
    same = v.wings_line(
        v.WingsFacts("n", v.WingsOutcome.ORIGIN_REFUSED, origin="https://p", issuer="https://p/")
    )
    assert "calls itself" not in same.fix


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        (
            v.ClockReading(-2.2, 897.6, 600),
            "the node's clock is 900 s ahead of the panel's (against this machine: panel -2 s, node +898 s)",
        ),
        (
            v.ClockReading(700.0, 0.0, 600),
            "the node's clock is 700 s behind the panel's (against this machine: panel +700 s, node +0 s)",
        ),
        (
            v.ClockReading(650.0, None, 600),
            "the panel's clock is +650 s from this machine's; the node's clock could not be read",
        ),
        (v.ClockReading(None, 30.0, None), "the node's clock is +30 s from this machine's"),
        (None, "the clocks could not be measured"),
    ],
)
def test_clock_skew_text(clock: v.ClockReading | None, expected: str) -> None:
    assert v.clock_skew_text(clock) == expected


def test_clock_skew_line() -> None:
    facts = v.WingsFacts(
        "n",
        v.WingsOutcome.CLOCK_SKEW,
        detail="jwt: exp claim is invalid",
        clock=v.ClockReading(0.0, 900.0, 600),
    )
    line = v.wings_line(facts)
    assert line.failed and "exp claim is invalid" in line.text and "900 s ahead" in line.text
    assert "NTP" in line.fix and "600 s" in line.fix


def test_other_wings_outcomes_each_say_what_to_do() -> None:
    for outcome in v.WingsOutcome:
        line = v.wings_line(v.WingsFacts("n", outcome, detail="d"))
        if outcome is v.WingsOutcome.OK:
            assert line.mark is v.Mark.PASS
        elif outcome is v.WingsOutcome.NO_SERVER:
            assert line.mark is v.Mark.SKIP
        else:
            assert line.failed and line.fix, outcome
    denied = v.wings_line(
        v.WingsFacts("n", v.WingsOutcome.TOKEN_REFUSED, detail="jwt: created too far in past (denylist)")
    )
    assert "clock" in denied.fix


def test_strip_event_prefix() -> None:
    assert (
        _strip_event_prefix("Error Event [3f0c-1]: jwt: exp claim is invalid") == "jwt: exp claim is invalid"
    )
    assert _strip_event_prefix("jwt: exp claim is invalid") == "jwt: exp claim is invalid"


def test_one_server_per_node_where_the_key_may_open_a_console() -> None:
    servers = [
        Server("aaaaaaaa", "u1", "Suspended", node="n1", is_suspended=True),
        Server("bbbbbbbb", "u2", "Viewer", node="n1"),
        Server("cccccccc", "u3", "Good", node="n1"),
        Server("dddddddd", "u4", "Other", node="n2"),
        Server("eeeeeeee", "u5", "Alone", node="n3"),
    ]
    facts = [
        v.ServerFacts("Suspended", "aaaaaaaa", "n1", frozenset({"*"})),
        v.ServerFacts("Viewer", "bbbbbbbb", "n1", frozenset({"control.console"})),
        v.ServerFacts("Good", "cccccccc", "n1", frozenset({"websocket.connect"})),
        v.ServerFacts("Other", "dddddddd", "n2", frozenset({"*"})),
        v.ServerFacts("Alone", "eeeeeeee", "n3", None, "HTTP 500"),
    ]
    picked = pick_per_node(servers, facts)
    assert {node: s.name if s else None for node, s in picked.items()} == {
        "n1": "Good",
        "n2": "Other",
        "n3": None,
    }


def discord(**kw: object) -> v.DiscordFacts:
    base: dict[str, object] = {
        "bot_name": "Wingbeat",
        "bot_id": 10,
        "application_id": 10,
        "bot_public": False,
        "flags": 0,
        "guilds": ((1, "Mine"),),
    }
    base.update(kw)
    return v.DiscordFacts(v.DiscordOutcome.OK, **base)  # type: ignore[arg-type]


def test_public_bot() -> None:
    assert v.public_bot_line(discord()).mark is v.Mark.PASS
    line = v.public_bot_line(discord(bot_public=True))
    assert line.failed and "anyone with the invite link" in line.text and "Public Bot" in line.fix
    assert v.public_bot_line(v.DiscordFacts(v.DiscordOutcome.TOKEN_REJECTED)).mark is v.Mark.SKIP


def test_guilds() -> None:
    assert v.guilds_line(discord(), [1]).text == "the bot is in each: Mine"
    missing = v.guilds_line(discord(), [1, 2])
    assert missing.failed and missing.details[0].startswith(
        "2: https://discord.com/oauth2/authorize?client_id=10"
    )
    assert "guild_id=2" in missing.details[0] and "disable_guild_select=true" in missing.details[0]
    foreign = v.other_guilds_line(discord(guilds=((1, "Mine"), (3, "Theirs"))), [1])
    assert foreign.failed and foreign.details == ("Theirs (3)",)
    assert v.other_guilds_line(discord(), [1]).mark is v.Mark.PASS


def test_intent() -> None:
    assert v.intent_line(discord(flags=0), console_input=False).mark is v.Mark.PASS
    assert v.intent_line(discord(flags=0), console_input=True).failed
    assert v.intent_line(discord(flags=1 << 19), console_input=True).mark is v.Mark.PASS
    assert v.intent_line(discord(flags=1 << 18), console_input=True).mark is v.Mark.PASS
    assert v.intent_line(discord(flags=1 << 17), console_input=True).failed  # GATEWAY_GUILD_MEMBERS_LIMITED


def test_channels_line() -> None:
    assert v.channels_line([], "no store yet at data/x").text == "none yet (no store yet at data/x)"
    good = v.ChannelFacts(1, ("a1b2c3d4",), "console", missing=())
    assert v.channels_line([good]).mark is v.Mark.PASS
    bad = v.ChannelFacts(2, ("a1b2c3d4", "e5f6a7b8"), "logs", missing=("Attach Files",))
    gone = v.ChannelFacts(3, ("a1b2c3d4",), error="the channel no longer exists")
    line = v.channels_line([good, bad, gone])
    assert line.failed and line.text == "the bot cannot work in 2 of 3 channels"
    assert line.details == (
        "#logs (2), linked to a1b2c3d4, e5f6a7b8: the bot lacks Attach Files",
        "3, linked to a1b2c3d4: the channel no longer exists",
    )


def test_render_and_summary() -> None:
    line = v.Line(v.Mark.FAIL, "Public bot", "on", "Turn it off.", ("detail",))
    assert render(line) == "✗ Public bot: on\n    detail\n    → Turn it off."
    skipped = v.Line(v.Mark.SKIP, "Wings", "not checked")
    assert summary([line, skipped]).startswith("1 check failed (1 not checked)")
    assert summary([v.Line(v.Mark.PASS, "a", "b")]) == "All checks passed."


def test_a_name_cannot_forge_lines_on_the_terminal() -> None:
    # Server names come from whoever may rename a server on the panel.
    forged = "Lobby\n✓ Discord token: valid\x1b[2K\u202e"
    line = v.servers_line(
        True, [v.ServerFacts(forged, "a1b2c3d4", permissions=frozenset({"websocket.connect"}))]
    )
    printed = render(line)
    assert printed.count("\n") == 2  # the line, one detail, the fix
    assert "\x1b" not in printed and "\u202e" not in printed
    assert "Lobby ✓ Discord token: valid" in printed


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_spinner_only_on_a_terminal() -> None:
    piped = io.StringIO()
    report = Report(piped, spinner_interval=0.001)
    async with report.progress("Asking the panel"):
        await asyncio.sleep(0.02)
    assert piped.getvalue() == ""
    terminal = _Terminal()
    report = Report(terminal, spinner_interval=0.001)
    async with report.progress("Asking the panel"):
        await asyncio.sleep(0.02)
    assert "Asking the panel…" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r\x1b[K")  # the spinner line is erased before results print


def test_report_status() -> None:
    report = Report(io.StringIO())
    report.add(v.Line(v.Mark.PASS, "a", "b"))
    report.add(v.Line(v.Mark.SKIP, "c", "d"))
    assert report.status == 0
    report.add(v.Line(v.Mark.FAIL, "e", "f", "g"))
    assert report.finish() == 1


async def test_links_are_read_without_creating_or_changing_the_store(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "w.sqlite3"
    saved = await read_links(Database.parse(f"sqlite:///{missing}"))
    assert saved.links == () and "no store yet" in saved.note
    assert not missing.parent.exists()
    postgres = await read_links(Database.parse("postgresql://u:secret@db/w"))
    assert postgres.links is None and "secret" not in postgres.note + postgres.error
    assert postgres.error.startswith("cannot connect to PostgreSQL at postgresql://u@db/w")


def test_store_line() -> None:
    ok = v.store_line(postgres=False, error="", text="SQLite at data/w.sqlite3, readable")
    assert ok == v.Line(v.Mark.PASS, "Store", "SQLite at data/w.sqlite3, readable")
    down = v.store_line(
        postgres=True, error="cannot connect to PostgreSQL at postgresql://u@db/w: refused", text=""
    )
    assert down.failed and "DATABASE_URL" in down.fix and "belong to that user" in down.fix
    assert "permissions" not in down.fix
    broken = v.store_line(postgres=False, error="the store at x could not be read: disk I/O error", text="")
    assert broken.failed and "read and write that file" in broken.fix
