"""Console text formatting: escapes, colours, fence safety, mentions, splitting."""

from __future__ import annotations

import random
import re

import pytest

from bot.relay.format import (
    DEFAULT_STATE,
    MESSAGE_LIMIT,
    RESET,
    ZWSP,
    SgrState,
    block_overhead,
    clean_ansi,
    clean_line,
    clean_notice,
    cut_line,
    plain_copy,
    render_block,
    sgr_state_after,
    split_line,
)
from bot.settings import ColorMode

PLAIN, ANSI = ColorMode.PLAIN, ColorMode.ANSI
ESC = "\x1b"

# Discord's code-block rule (simple-markdown): the block ends at the first ``` after its content.
DISCORD_CODE_BLOCK = re.compile(r"```(?:([a-z0-9_+\-.#]+?)\n)?\n*([^\n][\s\S]*?)\n*```", re.IGNORECASE)


def block_closes_at_end(block: str) -> bool:
    """True when Discord would read the whole text as one code block ending at its last character."""
    m = DISCORD_CODE_BLOCK.match(block)
    return m is not None and m.end() == len(block)


# -- plain: every escape family goes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"{ESC}[31mred{ESC}[0m", "red"),  # SGR
        (f"{ESC}[1;38;5;208mx{ESC}[m", "x"),  # SGR 256 colour, empty reset
        (f"a{ESC}[2Ab{ESC}[10;5Hc{ESC}[3Cd", "abcd"),  # cursor moves
        (f"a{ESC}[2Kb{ESC}[Jc{ESC}[1K", "abc"),  # erase
        (f"{ESC}]0;window title\x07text", "text"),  # OSC ended by BEL
        (f"{ESC}]8;;https://x.y/{ESC}\\link{ESC}]8;;{ESC}\\!", "link!"),  # OSC ended by ST
        (f"{ESC}[?25lhidden{ESC}[?25h{ESC}[?1049h", "hidden"),  # private CSI
        (f"{ESC}[>4;2mx", "x"),  # private SGR-like sequence
        (f"a{ESC}", "a"),  # stray ESC at the end
        (f"a{ESC}\x00b", "ab"),  # stray ESC before a control char
        (f"{ESC}(B{ESC}7x{ESC}8{ESC}=", "x"),  # two-byte / charset sequences
        ("\x9b31mC1 csi\x9b2K", "C1 csi"),  # 8-bit CSI
        ("\x9d0;title\x07x", "x"),  # 8-bit OSC
        ("a\rb\x00c\x7fd\x85e\x9cf\x1fg", "abcdefg"),  # C0, DEL, C1 controls
        ("tab\tkept\r\n", "tab\tkept"),
        (f"{ESC}]0;never ends", ""),  # unterminated OSC swallows the rest, like a terminal
        (f"x{ESC}[12", "x"),  # unfinished CSI
        ("héllo 世界 🎮", "héllo 世界 🎮"),
    ],
)
def test_plain_strips_every_escape(raw: str, expected: str) -> None:
    assert clean_line(raw, PLAIN) == expected


def test_plain_output_has_no_control_characters_for_random_input() -> None:
    rng = random.Random(7)
    alphabet = [
        ESC,
        "[",
        "]",
        "m",
        "?",
        ";",
        "1",
        "3",
        "\x07",
        "\\",
        "\x9b",
        "\x9d",
        "\x85",
        "\r",
        "a",
        "`",
        "\x00",
    ]
    for _ in range(2000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        out = clean_line(raw, PLAIN)
        assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]", out), repr(raw)
        assert "```" not in out
        assert not out.endswith("`")


# -- ansi: only what Discord renders survives ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"{ESC}[31mred{ESC}[0m", f"{ESC}[31mred{RESET}"),
        (f"{ESC}[1;4;32;45mx{ESC}[0m", f"{ESC}[1;4;32;45mx{RESET}"),
        (f"{ESC}[91mbright{ESC}[0m", f"{ESC}[31mbright{RESET}"),  # 90-97 -> 30-37
        (f"{ESC}[97;104mx", f"{ESC}[37;44mx"),  # 100-107 -> 40-47
        (f"{ESC}[3;5;7mx", "x"),  # italic, blink, reverse: not rendered, dropped
        (f"{ESC}[2Kx{ESC}[?25l{ESC}]0;t\x07", "x"),  # other escapes removed
        (f"{ESC}[31m{ESC}[31mx", f"{ESC}[31mx"),  # no-op repeat dropped
        (f"{ESC}[0mx", "x"),  # reset in the default state: nothing to do
        ("\x9b1mx", f"{ESC}[1mx"),  # 8-bit CSI normalised
        (f"{ESC}[31;1mx{ESC}[39my", f"{ESC}[1;31mx{ESC}[0;1my"),  # 39: reset, then re-apply bold
        (f"{ESC}[1;31mx{ESC}[22my", f"{ESC}[1;31mx{ESC}[0;31my"),  # 22: bold off
        (f"{ESC}[4;41mx{ESC}[24my{ESC}[49mz", f"{ESC}[4;41mx{ESC}[0;41my{RESET}z"),
        (f"{ESC}[33m{ESC}[1m[Pterodactyl Daemon]:{ESC}[39m text{ESC}[0m", None),
    ],
)
def test_ansi_keeps_and_normalises_sgr(raw: str, expected: str | None) -> None:
    out = clean_line(raw, ANSI)
    if expected is None:  # the Wings daemon line: yellow bold, then bold only
        expected = f"{ESC}[33m{ESC}[1m[Pterodactyl Daemon]:{ESC}[0;1m text{RESET}"
    assert out == expected


@pytest.mark.parametrize(
    ("params", "fg"),
    [
        ("38;5;196", 31),  # red
        ("38;5;46", 32),  # green
        ("38;5;21", 34),  # blue
        ("38;5;226", 33),  # yellow
        ("38;5;201", 35),  # magenta
        ("38;5;51", 36),  # cyan
        ("38;5;231", 37),  # white
        ("38;5;16", 30),  # black
        ("38;5;9", 31),  # bright red (system colour 9)
        ("38;5;208", 33),  # orange -> yellow
        ("38;5;244", 30),  # mid grey -> grey (30 renders grey in Discord)
        ("38;5;252", 37),  # light grey -> white
        ("38;2;255;0;0", 31),
        ("38;2;250;250;250", 37),
        ("38;2;10;20;200", 34),
        ("38;2;255;165;0", 33),
        ("38:2::0:200:0", 32),  # ITU colon form with colour-space id
        ("38:2:0:200:200", 36),  # colon form without it
        ("38:5:196", 31),
    ],
)
def test_ansi_maps_256_and_truecolour_to_8(params: str, fg: int) -> None:
    out, state = clean_ansi(f"{ESC}[{params}mx")
    assert state == SgrState(fg=fg)
    assert out == f"{ESC}[{fg}mx"


def test_ansi_background_extended_colours_and_malformed() -> None:
    assert clean_ansi(f"{ESC}[48;5;196mx")[1] == SgrState(bg=41)
    assert clean_ansi(f"{ESC}[48;2;0;0;255mx")[1] == SgrState(bg=44)
    # a malformed 38 stops reading the sequence but keeps what came before
    assert clean_ansi(f"{ESC}[1;38;9mx")[1] == SgrState(bold=True)
    assert clean_ansi(f"{ESC}[38;5mx")[1] == DEFAULT_STATE


def test_ansi_state_is_threaded_across_lines() -> None:
    first, state = clean_ansi(f"{ESC}[1;32mstarted")
    assert state == SgrState(bold=True, fg=32)
    # 39 on the next line is relative to the carried state: bold stays
    second, state = clean_ansi(f"still{ESC}[39m plain bold", state)
    assert second == f"still{ESC}[0;1m plain bold"
    assert state == SgrState(bold=True)
    assert sgr_state_after(first + second) == state


# -- fences ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [PLAIN, ANSI])
@pytest.mark.parametrize(
    "raw",
    [
        "```",
        "x```y",
        "````",
        "`````close```",
        "``\x1b[2K`",  # backticks joined once the erase code is removed
        "`\x1b]0;t\x07``",
        "`\x1b[?25l`\x1b[H`",
        "ends with``",
        "`",
        "```\n```",
    ],
)
def test_nothing_breaks_out_of_the_block(raw: str, mode: ColorMode) -> None:
    line = clean_line(raw, mode)
    assert "```" not in line
    assert not line.endswith("`")
    block = render_block([line, line], mode)
    assert block_closes_at_end(block)
    assert block.count("```") == 2
    # the neutralising characters do not change what the text says
    assert ZWSP not in plain_copy(line)
    if "\x1b" not in raw:
        assert plain_copy(line) == raw.replace("\n", "")


def test_backticks_kept_apart_by_colour_codes_are_not_a_fence() -> None:
    line = clean_line(f"``{ESC}[31m`", ANSI)
    assert line == f"``{ESC}[31m`{ZWSP}"
    assert "```" not in line


def test_plain_copy_restores_backticks_and_drops_colour() -> None:
    line = clean_line(f"{ESC}[31mcode: ```py``", ANSI)
    assert plain_copy(line) == "code: ```py``"


def test_mentions_survive_as_text_in_blocks() -> None:
    text = "@everyone <@123456789012345678> <@&42> <#99> @here"
    assert clean_line(text, PLAIN) == text
    assert clean_line(text, ANSI) == text


def test_notice_neutralises_mentions_and_markdown() -> None:
    out = clean_notice(
        f"{ESC}[31m@everyone @here <@123456789012345678> <@!1> <@&42> <#99> **b** _i_ ||s||\r\n"
    )
    for mention in ("@everyone", "@here", "<@1", "<@!", "<@&", "<#9"):
        assert mention not in out
    assert f"@{ZWSP}everyone" in out
    assert "\\*\\*b\\*\\*" in out and "\\_i\\_" in out and "\\|\\|s\\|\\|" in out
    assert "\x1b" not in out and "\n" not in out and "\r" not in out
    assert clean_notice("# Title").startswith("\\#")
    assert clean_notice("- item").startswith("\\-")
    assert clean_notice("1. item").startswith("1\\.")
    assert clean_notice("```x```").count("`") == clean_notice("```x```").count("\\`") == 6
    assert len(clean_notice("x" * 1000, max_chars=100)) == 100


def test_a_notice_shows_discord_markup_as_text() -> None:
    # A Wings daemon message or a server's name in a shared channel: no clickable command, timestamp or emoji.
    out = clean_notice("</stop:1> <t:0:R> <:e:1> <a:e:1> <id:customize> <3 a<b")
    for markup in ("</", "<t:", "<:", "<a:", "<id:"):
        assert markup not in out
    assert (
        out.replace(ZWSP, "").replace("\\>", ">") == "</stop:1> <t:0:R> <:e:1> <a:e:1> <id:customize> <3 a<b"
    )


def test_a_notice_carries_no_bidirectional_or_control_character() -> None:
    # Text from Wings (a transfer status, a daemon message) cannot make the rest of the line read backwards.
    out = clean_notice("Transfer status: \u202eevil\u2066 line\u200f\x00 end")
    assert out == "Transfer status: evil line end"


# -- rendering and lengths ---------------------------------------------------------------------


def test_render_block_shapes() -> None:
    assert render_block(["a", "b"], PLAIN) == "```\na\nb\n```"
    assert render_block(["a"], ANSI) == "```ansi\na\n```"
    assert render_block([f"{ESC}[31ma"], ANSI) == f"```ansi\n{ESC}[31ma{RESET}\n```"
    red = SgrState(fg=31)
    assert render_block(["a"], ANSI, start=red) == f"```ansi\n{ESC}[31ma{RESET}\n```"
    assert render_block([f"a{RESET}"], ANSI, start=red) == f"```ansi\n{ESC}[31ma{RESET}\n```"
    assert render_block(["", "x", ""], PLAIN) == "```\n\nx\n\n```"
    with pytest.raises(ValueError):
        render_block([], PLAIN)
    with pytest.raises(ValueError):
        render_block(["", ""], ANSI)  # Discord would not render this as a block at all
    assert block_overhead(PLAIN) == len(render_block(["x"], PLAIN)) - 1
    assert block_overhead(ANSI) == len(render_block(["x"], ANSI)) - 1


def test_exactly_2000_characters_plain_and_colour() -> None:
    line = "x" * (MESSAGE_LIMIT - block_overhead(PLAIN))
    assert len(render_block([line], PLAIN)) == MESSAGE_LIMIT
    assert split_line(line, MESSAGE_LIMIT - block_overhead(PLAIN)) == [line]
    assert len(split_line(line + "y", MESSAGE_LIMIT - block_overhead(PLAIN))) == 2

    room = MESSAGE_LIMIT - block_overhead(ANSI)
    coloured, _ = clean_ansi(f"{ESC}[31m" + "y" * (room - len(f"{ESC}[31m") - len(RESET)))
    block = render_block([coloured], ANSI)
    assert len(block) == MESSAGE_LIMIT and block.endswith(f"{RESET}\n```")
    assert split_line(coloured, room, ANSI) == [coloured + RESET]
    assert len(split_line(coloured + "z", room, ANSI)) == 2


def test_ten_thousand_character_line_splits_without_loss() -> None:
    rng = random.Random(3)
    words = ["alpha", "beta", "`", "``", "世界", "🎮", "x" * 40]
    line = clean_line(" ".join(rng.choice(words) for _ in range(3000))[:10_000], PLAIN)
    assert len(line) >= 9_900
    pieces = split_line(line, 1992)
    assert len(pieces) >= 5
    assert all(len(p) <= 1992 for p in pieces)
    assert "".join(pieces) == line
    for p in pieces:
        assert block_closes_at_end(render_block([p], PLAIN))


def test_ansi_split_reopens_and_closes_each_piece() -> None:
    rng = random.Random(5)
    raw = "".join(
        rng.choice(["word ", f"{ESC}[31m", f"{ESC}[1m", f"{ESC}[0m", f"{ESC}[44m", "世界", "x" * 30])
        for _ in range(2500)
    )
    line, end = clean_ansi(raw)
    pieces = split_line(line, 500, ANSI)
    assert all(len(p) <= 500 for p in pieces)
    assert plain_copy("".join(pieces)) == plain_copy(line) == clean_line(raw, PLAIN)
    state = DEFAULT_STATE
    rest = line
    for piece in pieces:
        # every piece starts from a reset and ends closed, yet shows the same colours
        assert sgr_state_after(piece) == DEFAULT_STATE
        _, rest, state = cut_line(rest, 500, ANSI, state)
    assert rest == "" and state == end
    for piece in pieces:
        assert not re.search(r"\x1b(?!\[[0-9;]*m)", piece)  # no escape cut in half


def test_split_does_not_cut_escape_sequences() -> None:
    line = ("ab" + f"{ESC}[1;31m" + f"{ESC}[0m") * 200
    for limit in range(64, 90):
        for piece in split_line(line, limit, ANSI):
            assert len(piece) <= limit
            assert re.fullmatch(r"(?:[ab]|\x1b\[[0-9;]*m)*", piece)


def test_split_rejects_a_tiny_limit() -> None:
    with pytest.raises(ValueError):
        split_line("x" * 100, 10)


def test_unicode_is_counted_in_characters() -> None:
    line = "世界🎮é" * 1000  # 4000 characters, many more bytes
    pieces = split_line(line, 1992)
    assert [len(p) for p in pieces] == [1992, 1992, 16]
    assert "".join(pieces) == line
    assert len(render_block([pieces[0]], PLAIN)) == MESSAGE_LIMIT


def test_enormous_sgr_parameters_are_neither_fatal_nor_cached() -> None:
    from bot.relay import format as fmt

    before = fmt._apply_sgr_cached.cache_info().currsize
    for i in range(50):  # each different, each over ten thousand characters
        huge = "\x1b[" + ";".join([f"{i}" + "9" * 5000, "38", "2", "9" * 5000, "1", "1"]) + "mred\x1b[0m"
        text, _ = clean_ansi(huge)
        assert text == "\x1b[31mred\x1b[0m"
    assert fmt._apply_sgr_cached.cache_info().currsize - before <= 2  # only the short "0" (and similar)
    assert plain_copy(clean_line(huge, ColorMode.PLAIN)) == "red"
