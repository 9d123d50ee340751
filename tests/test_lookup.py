"""Tests for bot.lookup: resolving typed server text and building autocomplete choices."""

from __future__ import annotations

import unicodedata
import uuid as uuidlib

import pytest

from bot.lookup import ServerLookupError, autocomplete_choices, choice_label, resolve_server
from bot.panel.models import Server


def srv(name: str, identifier: str | None = None, uuid: str | None = None) -> Server:
    full = uuid or str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{name}/{identifier}"))
    return Server(identifier=identifier or full[:8], uuid=full, name=name)


SURVIVAL = Server(identifier="1a2b3c4d", uuid="1a2b3c4d-0000-4000-8000-00000000abcd", name="Survival")
SUPERFLAT = srv("Superflat", "5e6f7a8b")
CREATIVE = srv("Creative", "9c0d1e2f")
SURV_HARD = srv("Survival Hardcore", "abcdef01")
ALL = [SURVIVAL, SUPERFLAT, CREATIVE, SURV_HARD]


# resolve_server


@pytest.mark.parametrize("text", ["1a2b3c4d", "1A2B3C4D", "  1a2b3c4d\n"])
def test_identifier(text: str) -> None:
    assert resolve_server(text, ALL) is SURVIVAL


@pytest.mark.parametrize(
    "text",
    [
        "1a2b3c4d-0000-4000-8000-00000000abcd",
        "1A2B3C4D-0000-4000-8000-00000000ABCD",
        " 1a2b3c4d00004000800000000000abcd ",
    ],
)
def test_full_uuid_any_case(text: str) -> None:
    assert resolve_server(text, ALL) is SURVIVAL


def test_partial_uuid_is_not_a_uuid_match() -> None:
    with pytest.raises(ServerLookupError, match="No server matches"):
        resolve_server("1a2b3c4d-0000", ALL)


@pytest.mark.parametrize("text", ["Survival", "survival", "SURVIVAL", "  survival  "])
def test_exact_name_case_insensitive_beats_prefix(text: str) -> None:
    # "survival" is also a prefix of "Survival Hardcore": the exact match wins
    assert resolve_server(text, ALL) is SURVIVAL


def test_unique_prefix() -> None:
    assert resolve_server("cre", ALL) is CREATIVE
    assert resolve_server("survival h", ALL) is SURV_HARD
    assert resolve_server("SUPE", ALL) is SUPERFLAT


def test_ambiguous_prefix_lists_candidates() -> None:
    with pytest.raises(ServerLookupError) as info:
        resolve_server("su", ALL)
    message = info.value.message
    assert str(info.value) == message
    assert "matches 3 servers" in message
    for server in (SUPERFLAT, SURVIVAL, SURV_HARD):
        assert f"{server.name} ({server.identifier})" in message
    assert "Creative" not in message
    # candidates are listed in name order
    assert message.index("Superflat") < message.index("Survival (") < message.index("Survival Hardcore")


def test_ambiguous_prefix_lists_at_most_five() -> None:
    many = [srv(f"Lobby {i:02}", f"{i:08x}") for i in range(12)]
    with pytest.raises(ServerLookupError) as info:
        resolve_server("lobby", many)
    message = info.value.message
    assert "matches 12 servers" in message
    assert "and 7 more" in message
    assert sum(f"Lobby {i:02}" in message for i in range(12)) == 5
    assert "Lobby 00" in message and "Lobby 05" not in message


def test_unknown_server_is_a_clear_error() -> None:
    with pytest.raises(ServerLookupError, match=r"No server matches “nether”.*/servers"):
        resolve_server("nether", ALL)


def test_substring_that_is_not_a_prefix_does_not_resolve() -> None:
    with pytest.raises(ServerLookupError, match="No server matches"):
        resolve_server("hardcore", ALL)


def test_empty_query_and_no_servers() -> None:
    with pytest.raises(ServerLookupError, match="Choose a server"):
        resolve_server("   ", ALL)
    with pytest.raises(ServerLookupError, match="can't see any servers"):
        resolve_server("Survival", [])


def test_long_query_is_shortened_in_the_message() -> None:
    with pytest.raises(ServerLookupError) as info:
        resolve_server("x" * 5000, ALL)
    assert len(info.value.message) < 300


def test_identifier_wins_over_a_name_that_looks_like_one() -> None:
    impostor = srv("deadbeef", "00000001")
    real = srv("Real", "deadbeef")
    assert resolve_server("deadbeef", [impostor, real]) is real
    assert resolve_server("DEADBEEF", [real, impostor]) is real


def test_uuid_wins_over_name() -> None:
    target = srv("Target", "11111111", "11111111-2222-3333-4444-555555555555")
    impostor = srv("11111111-2222-3333-4444-555555555555", "99999999")
    assert resolve_server("11111111-2222-3333-4444-555555555555", [impostor, target]) is target


def test_duplicate_names_are_ambiguous_but_identifier_resolves() -> None:
    a = srv("Lobby", "aaaaaaaa")
    b = srv("lobby", "bbbbbbbb")
    with pytest.raises(ServerLookupError) as info:
        resolve_server("LOBBY", [a, b])
    message = info.value.message
    assert "Several servers are named" in message
    assert "(aaaaaaaa)" in message and "(bbbbbbbb)" in message
    assert "identifier" in message
    assert resolve_server("bbbbbbbb", [a, b]) is b
    # an exact duplicate does not fall through to prefix matching
    c = srv("Lobby Two", "cccccccc")
    with pytest.raises(ServerLookupError, match="Several servers are named"):
        resolve_server("lobby", [a, b, c])


def test_unicode_names() -> None:
    strasse = srv("Straße", "00000001")
    cafe = srv("Café", "00000002")  # composed é
    emoji = srv("🔥 Fire Realm", "00000003")
    greek = srv("ΣΊΣΥΦΟΣ", "00000004")
    servers = [strasse, cafe, emoji, greek]
    assert resolve_server("STRASSE", servers) is strasse
    assert resolve_server("strasse", servers) is strasse
    assert resolve_server(unicodedata.normalize("NFD", "café"), servers) is cafe  # decomposed é
    assert resolve_server("CAF", servers) is cafe
    assert resolve_server("🔥", servers) is emoji
    assert resolve_server("σίσυφος", servers) is greek
    assert resolve_server("Ｓｔｒａｓｓｅ", servers) is strasse  # full-width letters


def test_internal_whitespace_is_collapsed() -> None:
    spaced = srv("My   Server", "00000001")
    assert resolve_server("my server", [spaced]) is spaced


# choice_label


def test_choice_label_format() -> None:
    assert choice_label(SURVIVAL) == "Survival (1a2b3c4d)"


def test_choice_label_truncates_name_but_keeps_identifier() -> None:
    label = choice_label(srv("N" * 300, "1a2b3c4d"))
    assert len(label) == 100
    assert label.endswith("… (1a2b3c4d)")
    assert label.startswith("NNNN")


def test_choice_label_exactly_at_limit_is_not_truncated() -> None:
    name = "x" * (100 - len(" (1a2b3c4d)"))
    assert choice_label(srv(name, "1a2b3c4d")) == f"{name} (1a2b3c4d)"


def test_choice_label_removes_line_breaks_and_control_characters() -> None:
    assert choice_label(srv("Evil\nName\x07\tHere", "1a2b3c4d")) == "Evil Name Here (1a2b3c4d)"


def test_choice_label_blank_name_shows_identifier() -> None:
    assert choice_label(srv("  ", "1a2b3c4d")) == "1a2b3c4d"


# autocomplete_choices


def test_empty_current_gives_first_25_by_name() -> None:
    servers = [srv(f"Server {i:03}", f"{i:08x}") for i in range(40, 0, -1)]
    choices = autocomplete_choices("", servers)
    assert len(choices) == 25
    assert choices[0] == ("Server 001 (00000001)", "00000001")
    assert [value for _, value in choices] == [f"{i:08x}" for i in range(1, 26)]


def test_empty_current_sorts_case_insensitively() -> None:
    servers = [srv("beta", "00000002"), srv("Alpha", "00000001"), srv("Gamma", "00000003")]
    assert [label for label, _ in autocomplete_choices("  ", servers)] == [
        "Alpha (00000001)",
        "beta (00000002)",
        "Gamma (00000003)",
    ]


def test_value_is_identifier_and_label_is_name() -> None:
    assert autocomplete_choices("creat", ALL) == [("Creative (9c0d1e2f)", "9c0d1e2f")]


def test_prefix_matches_come_before_substring_matches() -> None:
    servers = [srv("Hardcore Survival", "00000001"), srv("Survival", "00000002"), srv("Surf", "00000003")]
    assert [value for _, value in autocomplete_choices("surv", servers)] == ["00000002", "00000001"]


def test_exact_match_comes_first() -> None:
    servers = [srv("Lobby 2", "00000001"), srv("Lobby", "00000002"), srv("a lobby", "00000003")]
    assert [value for _, value in autocomplete_choices("LOBBY", servers)] == [
        "00000002",
        "00000001",
        "00000003",
    ]


def test_matches_identifier_and_uuid_prefix() -> None:
    assert autocomplete_choices("9C0D", ALL) == [("Creative (9c0d1e2f)", "9c0d1e2f")]
    assert autocomplete_choices("d1e2", ALL) == [("Creative (9c0d1e2f)", "9c0d1e2f")]  # inside the id
    assert [v for _, v in autocomplete_choices(SURVIVAL.uuid.upper(), ALL)] == ["1a2b3c4d"]


def test_selected_value_matches_itself() -> None:
    # After a pick Discord sends the chosen value (the identifier) as `current`.
    assert autocomplete_choices("abcdef01", ALL)[0][1] == "abcdef01"


def test_no_match_gives_no_choices() -> None:
    assert autocomplete_choices("nether", ALL) == []
    assert autocomplete_choices("", []) == []


def test_many_matches_capped_at_25_and_limit() -> None:
    servers = [srv(f"Game {i}", f"{i:08x}") for i in range(100)]
    assert len(autocomplete_choices("game", servers)) == 25
    assert len(autocomplete_choices("game", servers, limit=100)) == 25
    assert len(autocomplete_choices("game", servers, limit=3)) == 3
    assert autocomplete_choices("game", servers, limit=0) == []
    assert autocomplete_choices("game", servers, limit=-5) == []


def test_duplicate_names_are_told_apart_by_identifier() -> None:
    servers = [srv("Lobby", "bbbbbbbb"), srv("Lobby", "aaaaaaaa")]
    assert autocomplete_choices("lob", servers) == [
        ("Lobby (aaaaaaaa)", "aaaaaaaa"),
        ("Lobby (bbbbbbbb)", "bbbbbbbb"),
    ]


def test_unicode_autocomplete() -> None:
    servers = [srv("Straße", "00000001"), srv("Café ☕", "00000002"), srv("日本サーバー", "00000003")]
    assert [v for _, v in autocomplete_choices("STRAS", servers)] == ["00000001"]
    assert [v for _, v in autocomplete_choices(unicodedata.normalize("NFD", "café"), servers)] == ["00000002"]
    assert [v for _, v in autocomplete_choices("サーバ", servers)] == ["00000003"]


def test_every_label_fits_discord_limits() -> None:
    servers = [srv("🔥" * 150 + f" {i}", f"{i:08x}") for i in range(30)]
    choices = autocomplete_choices("", servers)
    assert len(choices) == 25
    assert all(1 <= len(label) <= 100 and 1 <= len(value) <= 100 for label, value in choices)


def test_exact_identifier_match_outranks_name_prefix() -> None:
    zed = srv("Zed", "00000002")
    fan = srv("00000002 fan club", "00000001")
    assert [v for _, v in autocomplete_choices("00000002", [fan, zed])] == ["00000002", "00000001"]
