"""Server names as Wingbeat shows them: one line, and no character that reorders the text around it.

A name comes from whoever may rename a server on the panel. A line break in it would forge extra lines in a
message, and bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E/U+200F, U+061C) would make the
text after it read backwards, e.g. to fake another server's identifier.
"""

from __future__ import annotations

import re
import unicodedata

_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe_name(name: str) -> str:
    """`name` on one line, bidirectional controls removed and other control characters turned into spaces."""
    text = _BIDI.sub("", name)
    if not text.isprintable():
        text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)
    return " ".join(text.split())
