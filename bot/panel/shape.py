"""Reading the panel's JSON defensively: each helper returns a typed value or raises `PanelBadAnswer`.

`where` names the place in the answer ("server list item 3") so the log says what was wrong; the user only
sees that the answer could not be understood. Absent or null optional fields take their default; a field
that is present with the wrong type (a number as a string, a list for an object, NaN) is garbage, because
the Client API never sends it that way and an answer that does was not written by the panel.
"""

from __future__ import annotations

import re
from typing import Any

from bot.panel.errors import PanelBadAnswer

_IDENT = re.compile(r"[A-Za-z0-9-]{1,64}")
_WORD = re.compile(r"[A-Za-z_]{1,32}")
# Byte counts and ids beyond this are not real figures, and a float conversion of a huge int would overflow.
MAX_NUMBER = 2**63


def bad(where: str, problem: str) -> PanelBadAnswer:
    """The error for a wrong shape at `where`."""
    return PanelBadAnswer(f"{where}: {problem}")


def obj(value: Any, where: str) -> dict[str, Any]:
    """`value` as a JSON object."""
    if not isinstance(value, dict):
        raise bad(where, f"expected an object, got {_kind(value)}")
    return value


def seq(value: Any, where: str) -> list[Any]:
    """`value` as a JSON array."""
    if not isinstance(value, list):
        raise bad(where, f"expected an array, got {_kind(value)}")
    return value


def member(data: dict[str, Any], key: str, where: str) -> Any:
    """A field that must be there (and not null)."""
    value = data.get(key)
    if value is None:
        raise bad(where, f"`{key}` is missing")
    return value


def text(data: dict[str, Any], key: str, where: str) -> str:
    """A required, non-empty string field."""
    value = member(data, key, where)
    if not isinstance(value, str) or not value.strip():
        raise bad(where, f"`{key}` should be a non-empty string, got {_kind(value)}")
    return value


def ident(data: dict[str, Any], key: str, where: str) -> str:
    """A required identifier (letters, digits, dashes): it goes into URLs, component IDs and logs."""
    value = text(data, key, where)
    if not _IDENT.fullmatch(value):
        raise bad(where, f"`{key}` is not an identifier: {_kind(value)}")
    return value


def opt_text(data: dict[str, Any], key: str, where: str, default: str = "") -> str:
    """An optional string field."""
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad(where, f"`{key}` should be a string, got {_kind(value)}")
    return value


def opt_word(data: dict[str, Any], key: str, where: str) -> str | None:
    """An optional state word such as `running` or `install_failed` (None when absent or empty)."""
    value = opt_text(data, key, where).strip()
    if value and not _WORD.fullmatch(value):
        raise bad(where, f"`{key}` is not a state word: {_kind(value)}")
    return value or None


def opt_flag(data: dict[str, Any], key: str, where: str, default: bool = False) -> bool:
    """An optional boolean field."""
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(where, f"`{key}` should be true or false, got {_kind(value)}")
    return value


def opt_count(data: dict[str, Any], key: str, where: str) -> int:
    """An optional whole number at least 0 (0 when absent); an integral float such as `3.0` counts."""
    number = _number(data, key, where)
    if number != int(number):
        raise bad(where, f"`{key}` should be a whole number, got {number!r}")
    return int(number)


def opt_amount(data: dict[str, Any], key: str, where: str) -> float:
    """An optional finite number at least 0 (0.0 when absent)."""
    return float(_number(data, key, where))


def count(data: dict[str, Any], key: str, where: str) -> int:
    """A required whole number at least 0."""
    member(data, key, where)
    return opt_count(data, key, where)


def _number(data: dict[str, Any], key: str, where: str) -> int | float:
    value = data.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(where, f"`{key}` should be a number, got {_kind(value)}")
    if not 0 <= value < MAX_NUMBER:  # also false for NaN and the infinities
        raise bad(where, f"`{key}` is out of range: {value!r}")
    return value


def _kind(value: Any) -> str:
    """A short description of a JSON value for the log, without quoting a long one."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
