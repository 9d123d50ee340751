"""What a channel had posted, kept across restarts, and how a restart picks up from it (plain logic, no I/O).

A process that dies loses what it held in memory: lines received but not posted yet, and which lines it had
posted. Wings still has the first (its `send logs` replay holds the last ~150 lines), and the store keeps the
second as a *journal* per channel:

- `tails`: per server, the hashes of the last lines whose fate is settled in that channel (posted, or dropped
  and said so), oldest first;
- `pending`: the message being posted right now, if any: its nonce, and per server how many lines it settles
  and the hashes of the last of them. Written *before* the post; the post carries the nonce with Discord's
  `enforce_nonce`, so sending it again with the same nonce returns the first message instead of a second one.

At the next start each linked server's console is replayed once (a gap fill with nothing delivered before) and
aligned with the journal: the pending message is sent again with its nonce (nothing shows twice whether or not
it went out before the crash), then only what follows it is posted. A link with no journal posts nothing from
before. Lines are compared by a hash of their raw text, as the replay holds them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TAIL_SIZE = 20  # hashes kept per server and channel: enough context to find one's place in a replay


def line_hash(line: str) -> str:
    """A short, stable fingerprint of a raw console line (the same in every process)."""
    return hashlib.blake2b(line.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def new_nonce() -> str:
    """A message nonce: at most 25 characters, as Discord requires."""
    return str(secrets.randbits(63))


@dataclass(frozen=True, slots=True)
class PendingPost:
    """A message that may or may not have reached Discord: resend it with `nonce` to be sure it exists once."""

    nonce: str
    counts: Mapping[str, int]  # server -> console lines of that server the message settles
    tails: Mapping[str, tuple[str, ...]]  # server -> hashes of the last of them (at most TAIL_SIZE)


@dataclass(frozen=True, slots=True)
class Journal:
    """One channel's journal, as stored: settled tails per server and the message in flight."""

    tails: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pending: PendingPost | None = None

    def knows(self, server: str) -> bool:
        """True when a restart must align this server's replay with what the channel had (else: post none)."""
        return bool(self.tails.get(server)) or (self.pending is not None and server in self.pending.counts)

    def anchor(self, server: str) -> tuple[str, ...]:
        """What the channel holds of `server` if the pending message did go out: its tail, then the message's."""
        tail = tuple(self.tails.get(server, ()))
        if self.pending is not None and server in self.pending.counts:
            tail += tuple(self.pending.tails.get(server, ()))
        return tail[-TAIL_SIZE:]

    def to_text(self) -> str:
        data: dict[str, object] = {"v": 1, "tails": {s: list(t) for s, t in self.tails.items() if t}}
        if self.pending is not None:
            data["pending"] = {
                "nonce": self.pending.nonce,
                "counts": dict(self.pending.counts),
                "tails": {s: list(t) for s, t in self.pending.tails.items()},
            }
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> Journal:
        """Read a stored journal; ValueError when it is not one (a newer format, or damaged)."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("v") != 1:
                raise ValueError("unknown journal format")
            tails = {str(s): tuple(str(h) for h in t) for s, t in dict(data.get("tails") or {}).items()}
            pending = None
            if data.get("pending"):
                raw = dict(data["pending"])
                pending = PendingPost(
                    str(raw["nonce"]),
                    {str(s): int(n) for s, n in dict(raw["counts"]).items()},
                    {str(s): tuple(str(h) for h in t) for s, t in dict(raw["tails"]).items()},
                )
        except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"damaged journal: {exc}") from None
        return cls(tails, pending)


def anchor_end(anchor: Sequence[str], replay: Sequence[str]) -> int | None:
    """The index in `replay` (hashes) just after the latest place where `anchor` ends, or None if nowhere.

    Every anchor line the replay can hold before that place must match: the replay may begin inside the anchor
    (Wings keeps only so many lines), but it may not disagree with it.
    """
    if not anchor:
        return None
    last = anchor[-1]
    for end in range(len(replay) - 1, -1, -1):
        if replay[end] != last:
            continue
        need = min(len(anchor), end + 1)
        if list(replay[end - need + 1 : end + 1]) == list(anchor[len(anchor) - need :]):
            return end + 1
    return None


@dataclass(frozen=True, slots=True)
class Resumed:
    """A server's replay for one channel: the pending message's lines to send again, then the new lines."""

    resend: list[str]
    new: list[str]


def resume(journal: Journal, server: str, replay: Sequence[str]) -> Resumed:
    """Split `server`'s replay for a channel with this journal.

    Found: the lines of the pending message (the `count` before the anchor's end, as far as the replay goes)
    and everything after. Not found with something to find: the gap was longer than the replay (or the replay
    disagrees), so all of it is new. Nothing known of the server: the link is newer than these lines; none.
    """
    if not journal.knows(server):
        return Resumed([], [])
    end = anchor_end(journal.anchor(server), [line_hash(line) for line in replay])
    if end is None:
        return Resumed([], list(replay))
    count = journal.pending.counts.get(server, 0) if journal.pending is not None else 0
    return Resumed(list(replay[max(0, end - count) : end]), list(replay[end:]))
