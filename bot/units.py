"""How sizes read to people, shared by the relay's notices and the cogs' replies."""

from __future__ import annotations


def human_size(n: float) -> str:
    """Bytes as "512 B", "1.5 KiB", "679.0 MiB" or "2.1 GiB" (GiB is the largest unit)."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
