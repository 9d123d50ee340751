"""Console text made safe for Discord: escape stripping, colour reduction, fence safety, splitting.

Two colour modes. ``plain`` removes every escape sequence. ``ansi`` keeps only what Discord's ``ansi``
code blocks render (SGR 0, 1, 4, 30-37, 40-47), re-emitted in a normalised form ``ESC[<codes>m``.

ANSI state across lines (the choice): consoles leave colours open at a line's end, so the state is
threaded from line to line (:func:`clean_ansi` takes and returns it). Each line's text only holds
*transitions*. A transition that only adds attributes emits just the new codes; one that turns
something off (22, 24, 39, 49, ...) emits ``0;`` followed by everything still active, because Discord
has no "off" codes. A message re-opens the state active at its first line (:func:`sgr_open`) and
closes with ``ESC[0m`` when anything is still open, so every message stands alone.

Fences: nothing in a line can close its code block. Runs of three or more backticks get a zero-width
space between each backtick, checked on the cleaned text (so backticks that were separated only by
removed escapes are caught too), and a line never ends with a backtick.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from bot.names import safe_name
from bot.settings import ColorMode

MESSAGE_LIMIT = 2000
ZWSP = "\u200b"
RESET = "\x1b[0m"


@dataclass(frozen=True, slots=True)
class SgrState:
    """The graphic state Discord can show: bold, underline, one of 8 fore- and background colours."""

    bold: bool = False
    underline: bool = False
    fg: int | None = None  # 30-37
    bg: int | None = None  # 40-47

    @property
    def is_default(self) -> bool:
        return not self.bold and not self.underline and self.fg is None and self.bg is None

    def codes(self) -> list[str]:
        """SGR codes that set this state from a reset."""
        out = []
        if self.bold:
            out.append("1")
        if self.underline:
            out.append("4")
        if self.fg is not None:
            out.append(str(self.fg))
        if self.bg is not None:
            out.append(str(self.bg))
        return out


DEFAULT_STATE = SgrState()

# One pass finds every escape sequence. CSI (7-bit or C1 \x9b) first, with SGR captured separately;
# an unfinished CSI is removed up to where it stops. OSC/DCS/SOS/PM/APC run to BEL or ST, or to the end
# of the line when unterminated (a terminal would swallow that text too). Then any other ESC sequence
# (charset selection, ESC 7, ESC =, ...) and finally a stray ESC.
_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)(?:(?P<sgr>[0-9;:]*)m|[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?)"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|\Z)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?",
    re.DOTALL,
)
# Control characters other than tab. ESC is left out: after _ESCAPE ran, the only ESCs left are ours.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1a\x1c-\x1f\x7f-\x9f]")
# Anything that needs work: a control character (ESC included), a C1 character, or a backtick.
_SUSPECT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f`]")
_BACKTICK_RUN = re.compile(r"`{3,}")
_NORM_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_NEUTRALISED = re.compile("`" + ZWSP)

# xterm's 16 colours; an index maps to its colour family, index % 8.
_PALETTE_16 = (
    (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205),
    (229, 229, 229), (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255),
    (255, 0, 255), (0, 255, 255), (255, 255, 255),
)  # fmt: skip


@lru_cache(maxsize=4096)
def nearest_colour(r: int, g: int, b: int) -> int:
    """Index 0-7 of the basic colour nearest to an RGB value."""
    best = min(
        range(16),
        key=lambda i: (
            (_PALETTE_16[i][0] - r) ** 2 + (_PALETTE_16[i][1] - g) ** 2 + (_PALETTE_16[i][2] - b) ** 2
        ),
    )
    return best % 8


def _xterm_256_rgb(n: int) -> tuple[int, int, int]:
    if n < 16:
        return _PALETTE_16[n]
    if n < 232:
        levels = (0, 95, 135, 175, 215, 255)
        n -= 16
        return levels[n // 36], levels[(n // 6) % 6], levels[n % 6]
    grey = 8 + 10 * (n - 232)
    return grey, grey, grey


_COLOUR_256 = tuple(n % 8 if n < 16 else nearest_colour(*_xterm_256_rgb(n)) for n in range(256))


def _int(text: str) -> int:
    # A hostile console may send thousands of digits: no SGR number that means anything is that long, and
    # int() refuses over 4300 digits anyway.
    if not text:
        return 0
    return int(text) if len(text) <= 6 else 1_000_000


def _extended(mode: int, args: Sequence[str]) -> int | None:
    """Basic colour (0-7) for the arguments after 38/48, or None when unusable."""
    if mode == 5 and args:
        n = _int(args[0])
        return _COLOUR_256[n] if n < 256 else None
    if mode == 2 and len(args) >= 3:
        r, g, b = (min(_int(a), 255) for a in args[:3])
        return nearest_colour(r, g, b)
    return None


def _next_state(state: SgrState, params: str) -> SgrState:
    bold, underline, fg, bg = state.bold, state.underline, state.fg, state.bg
    items = params.split(";")
    i = 0
    while i < len(items):
        item = items[i]
        i += 1
        if ":" in item:  # ITU sub-parameters: 38:5:n, 38:2[:cs]:r:g:b, 4:x (underline styles)
            sub = item.split(":")
            code = _int(sub[0])
            if code in (38, 48):
                rest = sub[2:]
                if _int(sub[1]) == 2 and len(rest) >= 4:
                    rest = rest[1:]  # skip the colour-space id
                colour = _extended(_int(sub[1]), rest) if len(sub) > 1 else None
                if colour is not None and code == 38:
                    fg = 30 + colour
                elif colour is not None:
                    bg = 40 + colour
            elif code == 4:
                underline = len(sub) < 2 or _int(sub[1]) != 0
            continue
        code = _int(item)
        if code == 0:
            bold, underline, fg, bg = False, False, None, None
        elif code == 1:
            bold = True
        elif code == 22:
            bold = False
        elif code == 4:
            underline = True
        elif code == 24:
            underline = False
        elif 30 <= code <= 37:
            fg = code
        elif code == 39:
            fg = None
        elif 40 <= code <= 47:
            bg = code
        elif code == 49:
            bg = None
        elif 90 <= code <= 97:
            fg = code - 60
        elif 100 <= code <= 107:
            bg = code - 60
        elif code in (38, 48):
            mode = _int(items[i]) if i < len(items) else -1
            width = 2 if mode == 5 else 4 if mode == 2 else 0
            if width == 0 or i + width > len(items):
                break  # malformed: the rest of this sequence cannot be read reliably
            colour = _extended(mode, items[i + 1 : i + width])
            i += width
            if colour is not None and code == 38:
                fg = 30 + colour
            elif colour is not None:
                bg = 40 + colour
        # anything else (faint, italic, blink, reverse, fonts, ...) Discord does not render: dropped
    return SgrState(bold, underline, fg, bg)


def _transition(old: SgrState, new: SgrState) -> str:
    if new == old:
        return ""
    if new.is_default:
        return RESET
    turned_off = (
        (old.bold and not new.bold)
        or (old.underline and not new.underline)
        or (old.fg is not None and new.fg is None)
        or (old.bg is not None and new.bg is None)
    )
    if turned_off:  # Discord knows no "off" codes: reset, then re-apply what remains
        return "\x1b[0;" + ";".join(new.codes()) + "m"
    codes = []
    if new.bold and not old.bold:
        codes.append("1")
    if new.underline and not old.underline:
        codes.append("4")
    if new.fg != old.fg:
        codes.append(str(new.fg))
    if new.bg != old.bg:
        codes.append(str(new.bg))
    return "\x1b[" + ";".join(codes) + "m"


SGR_CACHE_PARAMS = 32  # longer parameter strings are worked out each time: a cache key must stay small


def _apply_sgr(state: SgrState, params: str) -> tuple[SgrState, str]:
    if len(params) <= SGR_CACHE_PARAMS:
        return _apply_sgr_cached(state, params)
    return _sgr_step(state, params)


@lru_cache(maxsize=8192)  # at most 8192 keys of at most SGR_CACHE_PARAMS characters
def _apply_sgr_cached(state: SgrState, params: str) -> tuple[SgrState, str]:
    return _sgr_step(state, params)


def _sgr_step(state: SgrState, params: str) -> tuple[SgrState, str]:
    new = _next_state(state, params)
    return new, _transition(state, new)


@lru_cache(maxsize=512)
def sgr_open(state: SgrState) -> str:
    """The sequence that sets ``state`` from a reset ("" for the default state)."""
    return "" if state.is_default else "\x1b[" + ";".join(state.codes()) + "m"


def sgr_state_after(text: str, start: SgrState = DEFAULT_STATE) -> SgrState:
    """The state after ``text`` (cleaned, normalised ANSI) when it starts in ``start``."""
    state = start
    if "\x1b" in text:
        for m in _NORM_SGR.finditer(text):
            state = _apply_sgr(state, m.group(1))[0]
    return state


def _fence_safe(text: str) -> str:
    if "`" not in text:
        return text
    text = _BACKTICK_RUN.sub(lambda m: ZWSP.join(m.group()), text)
    if text.endswith("`"):  # "x`" + "\n```" is safe, but never let a line end join a fence
        text += ZWSP
    return text


def _strip(line: str) -> str:
    return _CONTROL.sub("", _ESCAPE.sub("", line))


def clean_ansi(line: str, state: SgrState = DEFAULT_STATE) -> tuple[str, SgrState]:
    """Clean one console line for an ``ansi`` block; returns the text and the state at its end."""
    if _SUSPECT.search(line) is None:
        return line, state
    out: list[str] = []
    pos = 0
    for m in _ESCAPE.finditer(line):
        if m.start() > pos:
            out.append(line[pos : m.start()])
        pos = m.end()
        params = m.group("sgr")
        if params is not None:
            state, code = _apply_sgr(state, params)
            if code:
                out.append(code)
    out.append(line[pos:])
    return _fence_safe(_CONTROL.sub("", "".join(out))), state


def clean_line(line: str, mode: ColorMode) -> str:
    """Clean one console line for a code block; in ``ansi`` mode the line starts in the default state."""
    if mode is ColorMode.ANSI:
        return clean_ansi(line)[0]
    if _SUSPECT.search(line) is None:
        return line
    return _fence_safe(_strip(line))


def plain_copy(text: str) -> str:
    """Cleaned text back to plain text for a file: our SGR codes and fence guards removed."""
    if "\x1b" in text:
        text = _NORM_SGR.sub("", text)
    if ZWSP in text:
        text = _NEUTRALISED.sub("`", text)
    return text


def is_blank(text: str) -> bool:
    """True when a cleaned line shows nothing (empty, spaces, or only colour codes)."""
    if "\x1b" in text:
        text = _NORM_SGR.sub("", text)
    return not text.strip()


_MD_CHARS = re.compile(r"([\\*_~|`\[\]>])")
_MD_LINE_START = re.compile(r"^(\s*)([#-])")
_MD_LIST_NUMBER = re.compile(r"^(\s*\d+)\.(?=\s)")
# Mentions, and the rest of Discord's markup in angle brackets (commands, timestamps, emoji, guild navigation).
_MENTION = re.compile(r"@(?=everyone|here)|<[@#](?=[!&]?\d)|<(?=/|t:|a?:|id:)")


def clean_notice(text: str, max_chars: int = 400) -> str:
    """One plain-text line for outside a code block: escapes stripped, markdown escaped, no mentions."""
    # One line, and no bidirectional control (the text may come from Wings): as names are shown.
    text = safe_name(_strip(text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")))
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    text = _MD_CHARS.sub(r"\\\1", text)
    text = _MD_LINE_START.sub(r"\1\\\2", text)
    text = _MD_LIST_NUMBER.sub(r"\1\\.", text)
    return _MENTION.sub(lambda m: m.group() + ZWSP, text)


def block_overhead(mode: ColorMode) -> int:
    """Characters of the fence itself (``"```\\n"`` + ``"\\n```"``, with ``ansi`` tag in ANSI mode).

    Not included: the re-open sequence of a starting state and the closing reset (see render_block).
    """
    return 12 if mode is ColorMode.ANSI else 8


def render_block(
    lines: Sequence[str],
    mode: ColorMode,
    *,
    start: SgrState = DEFAULT_STATE,
    end: SgrState | None = None,
) -> str:
    """One code block of cleaned lines.

    In ANSI mode the block re-opens ``start`` and closes with ESC[0m when the state at its end (``end``,
    computed when not given) is not the default. Raises ValueError for a block that would show nothing
    (Discord does not even render a fence around only empty lines).
    """
    if not any(lines):
        raise ValueError("a code block needs at least one non-empty line")
    body = "\n".join(lines)
    if mode is not ColorMode.ANSI:
        return "```\n" + body + "\n```"
    if end is None:
        end = sgr_state_after(body, start)
    return "```ansi\n" + sgr_open(start) + body + ("" if end.is_default else RESET) + "\n```"


# A normalised SGR sequence is at most this long: ESC[0;1;4;37;47m
_MAX_SGR_LEN = 14
_MIN_ROOM = 32


def cut_line(
    line: str, limit: int, mode: ColorMode = ColorMode.PLAIN, start: SgrState = DEFAULT_STATE
) -> tuple[str, str, SgrState]:
    """The first piece of a cleaned line that fits ``limit``, the rest, and the state where the rest starts.

    The piece stands alone: in ANSI mode it re-opens ``start`` and closes what is open at its end.
    It never ends inside an escape sequence or on a backtick, and prefers to end after a space.
    """
    ansi = mode is ColorMode.ANSI
    opener = sgr_open(start) if ansi else ""
    room = limit - len(opener) - (len(RESET) if ansi else 0)
    if room < _MIN_ROOM:
        raise ValueError(f"limit {limit} is too small to split a line")
    if not ansi:
        if len(line) <= limit:
            return line, "", start
    else:
        end = sgr_state_after(line, start)
        whole = opener + line + ("" if end.is_default else RESET)
        if len(whole) <= limit:
            return whole, "", end
    cut = room
    if ansi:
        esc = line.rfind("\x1b", max(0, cut - _MAX_SGR_LEN), cut)
        if esc >= 0 and line.find("m", esc, cut) < 0:
            cut = esc  # the cut fell inside an escape sequence: cut before it
    space = line.rfind(" ", cut - room // 5, cut)
    if space > 0:
        cut = space + 1
    while cut > 1 and line[cut - 1] == "`":
        cut -= 1
    head, rest = line[:cut], line[cut:]
    if not ansi:
        return head, rest, start
    state = sgr_state_after(head, start)
    return opener + head + ("" if state.is_default else RESET), rest, state


def split_line(
    line: str, limit: int, mode: ColorMode = ColorMode.PLAIN, *, start: SgrState = DEFAULT_STATE
) -> list[str]:
    """Split a cleaned line into pieces of at most ``limit`` characters (see cut_line); nothing is lost."""
    pieces = []
    state = start
    while True:
        piece, line, state = cut_line(line, limit, mode, state)
        pieces.append(piece)
        if not line:
            return pieces
