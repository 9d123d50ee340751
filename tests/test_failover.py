"""Failover without loss: what a channel posted survives a crash, and a restart neither loses nor repeats a line.

Plain logic first (the journal and the alignment of a replay with it, bot.relay.resume; the Wings session's
resume request), then the real bot as a child process killed with SIGKILL at the worst moment: after Discord
created a message and before the bot heard back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest

from bot.relay.budget import RequestBudget
from bot.relay.journal import JournalWriter
from bot.relay.resume import TAIL_SIZE, Journal, PendingPost, anchor_end, line_hash, resume
from bot.relay.sender import ChannelSender, PostFailed
from bot.settings import ColorMode
from bot.store import open_store
from bot.wings.frames import Event
from bot.wings.session import CaptureDone, CapturePurpose, Deliver, FillGap, SendFrame, Session
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord
from tests.shard_helpers import GUILDS, BotChild, bot_env, build_shard_world, console_lines, tally
from tests.waiting import wait_until

# -- the journal and the alignment ---------------------------------------------------------------------------


def hashes(lines: list[str]) -> tuple[str, ...]:
    return tuple(line_hash(line) for line in lines)


def lines(a: int, b: int) -> list[str]:
    return [f"line {i}" for i in range(a, b)]


def test_a_journal_survives_its_text_and_damage_is_refused() -> None:
    journal = Journal(
        {"a": hashes(lines(0, 3))}, PendingPost("123", {"a": 2, "b": 1}, {"a": hashes(lines(3, 5))})
    )
    assert Journal.from_text(journal.to_text()) == journal
    assert Journal.from_text(Journal().to_text()) == Journal()
    for bad in ("", "[]", '{"v": 2}', '{"v": 1, "pending": {"nonce": 1}}', "{not json"):
        with pytest.raises(ValueError):
            Journal.from_text(bad)
    assert line_hash("é\ud800") == line_hash("é\ud800") != line_hash("e")  # lone surrogates too


def test_the_anchor_is_found_where_it_last_ends_and_only_where_everything_agrees() -> None:
    replay = hashes(["x", "a", "b", "c", "a", "b", "y"])
    assert anchor_end(hashes(["a", "b"]), replay) == 6
    assert anchor_end(hashes(["c", "a", "b"]), replay) == 6
    assert anchor_end(hashes(["z", "a", "b"]), replay) is None
    assert anchor_end(hashes(["q", "x", "a"]), replay) == 2  # the replay begins inside the anchor: fine
    assert anchor_end(hashes(["q", "c", "a", "b"]), replay) is None  # the replay disagrees with it
    assert anchor_end((), replay) is None


def test_a_restart_posts_what_follows_the_tail() -> None:
    journal = Journal({"a": hashes(lines(0, 50))[-TAIL_SIZE:]})
    picked = resume(journal, "a", lines(30, 80))
    assert picked.resend == [] and picked.new == lines(50, 80)


def test_the_message_in_flight_is_sent_again_then_what_follows() -> None:
    pending = PendingPost("99", {"a": 5}, {"a": hashes(lines(50, 55))})
    journal = Journal({"a": hashes(lines(30, 50))}, pending)
    picked = resume(journal, "a", lines(20, 70))
    assert picked.resend == lines(50, 55) and picked.new == lines(55, 70)
    # A message longer than the replay: as much of it as the replay still has.
    long = Journal(
        {"a": hashes(lines(0, 20))}, PendingPost("7", {"a": 500}, {"a": hashes(lines(480, 520))[-TAIL_SIZE:]})
    )
    picked = resume(long, "a", lines(400, 530))
    assert picked.resend == lines(400, 520) and picked.new == lines(520, 530)


def test_a_gap_longer_than_the_replay_posts_all_of_it_and_a_new_link_none() -> None:
    journal = Journal({"a": hashes(lines(0, 20))})
    assert resume(journal, "a", lines(200, 350)).new == lines(200, 350)
    assert resume(journal, "b", lines(0, 10)) == resume(Journal(), "b", lines(0, 10))
    assert resume(journal, "b", lines(0, 10)).new == []
    # A server only the pending message knows is aligned with it.
    only = Journal({}, PendingPost("1", {"b": 2}, {"b": hashes(["p", "q"])}))
    picked = resume(only, "b", ["o", "p", "q", "r"])
    assert picked.resend == ["p", "q"] and picked.new == ["r"]


def test_a_resume_request_makes_the_first_socket_fill_a_gap() -> None:
    plain = Session("srv", rng=lambda: 0.5)
    plain.socket_opened("tok", "wss://node/ws", 0.0)
    assert not any(isinstance(a, FillGap) for a in plain.receive('{"event":"auth success"}', 0.1))

    session = Session("srv", rng=lambda: 0.5)
    session.resume_requested = True
    session.socket_opened("tok", "wss://node/ws", 0.0)
    actions = session.receive('{"event":"auth success"}', 0.1)
    assert any(isinstance(a, FillGap) for a in actions)
    assert session.capture_logs(0.1, CapturePurpose.GAP_FILL) == [SendFrame(Event.SEND_LOGS)]
    for i in range(3):  # nothing was delivered before: all of the replay comes, as recovered lines
        assert session.receive(f'{{"event":"console output","args":["old {i}"]}}', 0.2) == []
    done = session.timer_fired(10.0)
    recovered = [a.event.frame.arg for a in done if isinstance(a, Deliver) and a.event.recovered]
    assert recovered == ["old 0", "old 1", "old 2"]
    assert [a.purposes for a in done if isinstance(a, CaptureDone)] == [frozenset({CapturePurpose.GAP_FILL})]
    assert not session.resume_requested  # once


# -- the journal writer ------------------------------------------------------------------------------------


async def test_the_journal_writer_gathers_writes_and_a_waiting_one_goes_at_once() -> None:
    async with await open_store("sqlite:///:memory:") as store:
        writer = JournalWriter(store, later=5.0)
        for channel in range(1, 101):
            writer.write_later(channel, f"later {channel}")
        assert await asyncio.wait_for(writer.write_now(7, "now 7"), 2.0)  # does not wait the 5 s
        assert writer.writes == 1  # everything waiting went in the same statement
        saved = await store.relay_journals(range(1, 101))
        assert saved[7] == "now 7" and saved[100] == "later 100" and len(saved) == 100
        writer.forget(7)
        writer.write_later(8, "eight")
        await writer.close()  # what is left goes before the store closes
        saved = await store.relay_journals([7, 8])
        assert saved == {8: "eight"}
        assert not await writer.write_now(9, "too late")


# -- one channel's sender and its journal, against a recording poster --------------------------------------


class MemoryJournal:
    """The store's journal table, in memory."""

    def __init__(self) -> None:
        self.rows: dict[int, str] = {}
        self.saves = 0

    async def relay_journals(self, channel_ids: Collection[int]) -> dict[int, str]:
        return {c: self.rows[c] for c in channel_ids if c in self.rows}

    async def save_relay_journals(self, journals: Sequence[tuple[int, str]]) -> None:
        self.saves += 1
        self.rows.update(journals)

    async def delete_relay_journal(self, channel_id: int) -> None:
        self.rows.pop(channel_id, None)


class Recorder:
    """A poster that records each attempt (content, nonce, what the journal said at that moment)."""

    def __init__(self, journal: MemoryJournal, failures: int = 0) -> None:
        self.journal = journal
        self.failures = failures
        self.attempts: list[tuple[str, str | None, str]] = []
        self.posted: list[tuple[str, str | None]] = []

    async def post(
        self, channel_id: int, content: str, attachment: tuple[str, bytes] | None, nonce: str | None = None
    ) -> None:
        self.attempts.append((content, nonce, self.journal.rows.get(channel_id, "")))
        if self.failures:
            self.failures -= 1
            raise PostFailed("no answer")
        self.posted.append((content, nonce))


def shown(content: str) -> list[str]:
    body = content[content.index("```") + 4 : content.rindex("```")]
    return body.strip("\n").split("\n")


def make_sender(
    journal: MemoryJournal, poster: Recorder, resume_from: Journal | None = None
) -> ChannelSender:
    async def gone(channel_id: int, reason: str) -> None:
        raise AssertionError(reason)

    return ChannelSender(
        7,
        poster,
        RequestBudget(1000, 100),
        mode=ColorMode.PLAIN,
        min_interval=0.01,
        max_pending_bytes=64 * 1024,
        on_gone=gone,
        journal=JournalWriter(journal, later=0.01),
        resume_from=resume_from,
        resume_timeout=2.0,
    )


async def test_the_journal_names_each_message_before_it_goes_and_a_failed_post_goes_again_the_same() -> None:
    journal = MemoryJournal()
    poster = Recorder(journal, failures=2)
    sender = make_sender(journal, poster)
    sender.start()
    try:
        for line in lines(0, 5):
            sender.push_line(line, ("srv", line))
        await wait_until(lambda: len(poster.posted) == 1)
        # Three tries of one message: the same text, the same nonce, and the journal named it before the first.
        assert len({(content, nonce) for content, nonce, _ in poster.attempts}) == 1
        content, nonce, before = poster.attempts[0]
        written = Journal.from_text(before)
        assert written.pending is not None and written.pending.nonce == nonce
        assert written.pending.counts == {"srv": 5} and written.pending.tails["srv"] == hashes(lines(0, 5))
        assert shown(content) == lines(0, 5)
        # Posted: the lines join the tail, and the journal soon says so.
        await wait_until(
            lambda: (
                Journal.from_text(journal.rows.get(7, "{}")).pending is None if 7 in journal.rows else False
            )
        )
        assert Journal.from_text(journal.rows[7]).tails == {"srv": hashes(lines(0, 5))}
    finally:
        await sender.close()


async def test_what_is_followed_stays_bounded_while_a_message_is_stuck_and_a_console_floods() -> None:
    journal = MemoryJournal()
    poster = Recorder(journal, failures=10**9)
    sender = make_sender(journal, poster)
    sender.start()
    try:
        sender.push_line("first", ("srv", "first"))
        await wait_until(lambda: len(poster.attempts) >= 1)
        for i in range(50_000):
            sender.push_line(f"flood {i:06d} " + "y" * 40, ("srv", f"flood {i:06d} " + "y" * 40))
        assert sender.batcher.dropped_total > 40_000  # the backlog bound dropped most of it
        assert len(sender._unsettled) < sender.batcher.pending_lines + 1 + 2100
    finally:
        await sender.close()


async def test_a_restarted_sender_sends_the_message_in_flight_again_with_its_nonce_then_the_rest() -> None:
    journal = MemoryJournal()
    poster = Recorder(journal)
    before = Journal(
        {"srv": hashes(lines(0, 10))}, PendingPost("4242", {"srv": 3}, {"srv": hashes(lines(10, 13))})
    )
    sender = make_sender(journal, poster, resume_from=before)
    sender.start()
    try:
        assert sender.knows("srv") and not sender.knows("other")
        await asyncio.sleep(0.05)
        assert poster.attempts == []  # nothing goes before the replay says what was in flight
        sender.replayed("srv", lines(0, 20), "")
        await wait_until(lambda: len(poster.posted) == 2)
        (first, nonce), (second, _) = poster.posted
        assert nonce == "4242" and shown(first) == lines(10, 13)
        assert shown(second) == lines(13, 20)
        assert not sender.knows("srv") and not sender.busy
        await wait_until(
            lambda: (
                Journal.from_text(journal.rows.get(7, '{"v":1}')).tails.get("srv")
                == hashes(lines(0, 20))[-TAIL_SIZE:]
            )
        )
    finally:
        await sender.close()


# -- a crash at the worst moment, with the real bot ---------------------------------------------------------

SERVER = "1a2b3c4d"


async def test_a_message_discord_created_just_before_the_crash_is_not_posted_again(tmp_path: Path) -> None:
    """SIGKILL while Discord holds the answer to a post it already made: the restart sends the same message again
    with its nonce, which Discord answers with the first one; lines printed while the bot was down follow."""
    guild = GUILDS[1]
    async with Emulator() as emu, FakeDiscord() as fake:
        srv = emu.add_server("Lobby", identifier=SERVER, state="running")
        build_shard_world(fake)
        env = bot_env(fake, emu.panel_url, emu.api_key, f"sqlite:///{tmp_path / 'wingbeat.sqlite3'}", None)
        bot = await BotChild.start("bot", tmp_path / "run1", env)
        restarted: BotChild | None = None
        try:
            await bot.wait_logged(fake, "Wingbeat ready", 30)
            link = await fake.invoke(
                guild.id, guild.console, guild.admin, "console", {"server": SERVER}, subcommand="link"
            )
            await link.wait_done(15)
            assert "Mirroring" in link.text, link.text
            await fake.wait_for(
                lambda: any(s.authenticated for s in emu.sockets(srv)), 15, "the console socket"
            )
            emitted = [f"before {i}" for i in range(5)]
            for line in emitted:
                srv.emit_console(line)
            await fake.wait_for(
                lambda: set(emitted) <= set(console_lines(fake.messages(guild.console))),
                15,
                "the first lines",
            )

            fake.stall_creates.clear()  # the next message is created, but its answer never leaves
            stalled = [f"stalled {i}" for i in range(3)]
            for line in stalled:
                srv.emit_console(line)
            emitted += stalled
            await fake.wait_for(lambda: fake.stalled > 0, 15, "a stalled create")
            await bot.kill()
            down = [f"while down {i}" for i in range(4)]
            for line in down:
                srv.emit_console(line)
            emitted += down
            fake.stall_creates.set()

            restarted = await BotChild.start("restarted", tmp_path / "run2", env)
            await restarted.wait_logged(fake, f"resumes {SERVER}", 30)
            after = [f"after {i}" for i in range(3)]
            for line in after:
                srv.emit_console(line)
            emitted += after
            await fake.wait_for(
                lambda: set(emitted) <= set(console_lines(fake.messages(guild.console))), 20, "every line"
            )
            posted = console_lines(fake.messages(guild.console))
            assert tally(posted, emitted) == ([], [])
            assert posted == emitted  # and in order
            assert fake.nonce_hits == 1  # the message made before the crash was asked for again, and returned
            assert restarted.logged("3 line(s) to send again, 4 new")
        finally:
            await bot.kill()
            if restarted is not None:
                await restarted.kill()
