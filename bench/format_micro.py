"""Micro benchmark: CPU cost of cleaning and batching console lines (target ≤ 0.05 s per 1000 lines).

Run: ``.venv/bin/python -m bench.format_micro [--lines N] [--rate LINES_PER_S]``
"""

from __future__ import annotations

import argparse
import random
import time

from bot.relay.batcher import Batcher
from bot.relay.format import clean_line
from bot.settings import ColorMode

ESC = "\x1b"


def sample_lines(n: int, seed: int = 1) -> list[str]:
    """A mix like a modded game server: coloured log prefixes, plain text, cursor codes, long lines."""
    rng = random.Random(seed)
    shapes = [
        lambda i: f"{ESC}[0;36m[12:00:{i % 60:02d} INFO]{ESC}[0m: Player{i} joined the game",
        lambda i: f"[12:00:{i % 60:02d}] [Server thread/WARN]: Can't keep up! Running {i} ms behind",
        lambda i: (
            f"{ESC}[38;5;{i % 256}m{ESC}[1mloading chunk {i}{ESC}[22m {ESC}[38;2;{i % 256};80;200mok{ESC}[0m"
        ),
        lambda i: f"{ESC}[2K\r{ESC}[1A progress {i % 100}% ```",
        lambda i: "x" * rng.choice([10, 80, 300]),
    ]
    return [rng.choice(shapes)(i) for i in range(n)]


def run(mode: ColorMode, lines: list[str], rate: int) -> tuple[float, int, int]:
    """Push lines at ``rate`` per simulated second, send once a second; returns CPU s, messages, files."""
    b = Batcher(mode=mode)
    messages = files = 0
    t = 0.0
    start = time.process_time()
    for i, line in enumerate(lines):
        t = i / rate
        b.push_line(line, t)
        out = b.take(t)
        if out is not None:
            messages += 1
            files += out.attachment is not None
            b.done(True, t)
    while (due := b.due(t)) is not None:
        t = max(t, due)
        out = b.take(t)
        if out is not None:
            messages += 1
            files += out.attachment is not None
            b.done(True, t)
    return time.process_time() - start, messages, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=2000, help="simulated console lines per second")
    args = parser.parse_args()
    lines = sample_lines(args.lines)
    per_k = 1000 / args.lines
    for mode in ColorMode:
        start = time.process_time()
        for line in lines:
            clean_line(line, mode)
        clean_s = time.process_time() - start
        cpu, messages, files = run(mode, lines, args.rate)
        print(
            f"{mode.value:5}  clean_line {clean_s * per_k:.4f} s/1000 lines   "
            f"batcher (push+take) {cpu * per_k:.4f} s/1000 lines   "
            f"{messages} messages, {files} with a file"
        )


if __name__ == "__main__":
    main()
