"""Settings: every variable the README lists, and the exit-2 contract of the entrypoint."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import ColorMode, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.Gabcde.secret-discord-token-value"
KEY = "ptlc_abcdefghijkSECRETSECRETSECRETSECRET12345"
GUILD = "333333333333333333"
BASE = {
    "DISCORD_TOKEN": TOKEN,
    "PANEL_URL": "https://panel.example.com/",
    "PANEL_API_KEY": KEY,
    "GUILD_IDS": GUILD,
}


def test_minimal_environment_gets_defaults() -> None:
    s = load_settings(BASE)
    assert s.panel_url == "https://panel.example.com"
    assert s.wings_origin == "https://panel.example.com"
    assert s.admin_role_ids == frozenset() and s.guild_ids == (int(GUILD),)
    assert s.database_url == "sqlite:///data/wingbeat.sqlite3"
    assert s.status_interval == 15.0 and s.audit_retention_days == 365
    assert s.shard_count is None and s.shard_ids is None
    assert s.console_input is False and s.console_color is ColorMode.PLAIN and s.log_level == "INFO"
    assert s.discord_api_url is None and s.discord_gateway_url is None


def test_every_optional_setting_is_read() -> None:
    env = dict(
        BASE,
        ADMIN_ROLE_IDS="111111111111111111, 222222222222222222",
        GUILD_IDS="333333333333333333, 444444444444444444",
        DATABASE_URL="sqlite:////tmp/w.sqlite3",
        WINGS_ORIGIN="https://panel.example.com:8443",
        CONSOLE_INPUT="TRUE",
        CONSOLE_COLOR="ansi",
        LOG_LEVEL="debug",
        DISCORD_API_URL="http://nirn-proxy:8080/api/v10/",
        DISCORD_GATEWAY_URL="wss://gateway.example.net/",
    )
    s = load_settings(env)
    assert s.admin_role_ids == {111111111111111111, 222222222222222222}
    assert s.guild_ids == (333333333333333333, 444444444444444444)
    assert s.database_url == "sqlite:////tmp/w.sqlite3"
    assert s.wings_origin == "https://panel.example.com:8443"
    assert s.console_input is True and s.console_color is ColorMode.ANSI and s.log_level == "DEBUG"
    assert s.discord_api_url == "http://nirn-proxy:8080/api/v10"  # paths are appended after it
    assert s.discord_gateway_url == "wss://gateway.example.net/"


def test_board_audit_and_shard_settings_are_read() -> None:
    s = load_settings(
        dict(BASE, STATUS_INTERVAL="7.5", AUDIT_RETENTION_DAYS="0", SHARD_COUNT="4", SHARD_IDS="2,3")
    )
    assert s.status_interval == 7.5 and s.audit_retention_days == 0
    assert s.shard_count == 4 and s.shard_ids == (2, 3)
    assert load_settings(dict(BASE, SHARD_COUNT="2")).shard_ids == (0, 1)  # all shards when none are named
    with pytest.raises(SettingsError, match="SHARD_IDS must be shard numbers from 0 to 3"):
        load_settings(dict(BASE, SHARD_COUNT="4", SHARD_IDS="4"))


def test_database_url_kinds() -> None:
    from bot.settings import DatabaseKind

    assert load_settings(BASE).database.kind is DatabaseKind.SQLITE
    pg = load_settings(dict(BASE, DATABASE_URL="postgresql://wb:s3cret-pw@db.lan/wingbeat")).database
    assert pg.kind is DatabaseKind.POSTGRESQL and "s3cret-pw" not in repr(pg)


def test_settings_are_frozen() -> None:
    s = load_settings(BASE)
    with pytest.raises(AttributeError):
        s.discord_api_url = "http://elsewhere"  # type: ignore[misc]


def test_secrets_are_not_in_repr() -> None:
    text = repr(load_settings(BASE))
    assert TOKEN not in text and KEY not in text


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PANEL_URL", "my-panel.lan", r"PANEL_URL must be an http\(s\) URL"),
        ("PANEL_URL", "ftp://panel", r"PANEL_URL must be an http\(s\) URL"),
        ("ADMIN_ROLE_IDS", "12,abc", "ADMIN_ROLE_IDS must be"),
        ("GUILD_IDS", "1;2", "GUILD_IDS must be"),
        ("CONSOLE_INPUT", "maybe", "CONSOLE_INPUT must be true or false"),
        ("CONSOLE_COLOR", "rainbow", "CONSOLE_COLOR must be plain or ansi"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL is not usable: expected a URL like sqlite:///"),
        ("DATABASE_URL", "postgresql:///nohost", "DATABASE_URL is not usable: .*names no host"),
        ("GUILD_IDS", "", "GUILD_IDS is required"),
        ("GUILD_IDS", " , ", "GUILD_IDS is required"),
        ("STATUS_INTERVAL", "2", "STATUS_INTERVAL must be at least 5"),
        ("STATUS_INTERVAL", "soon", "STATUS_INTERVAL must be a number"),
        ("STATUS_INTERVAL", "nan", "STATUS_INTERVAL must be at least 5"),
        ("AUDIT_RETENTION_DAYS", "-1", "AUDIT_RETENTION_DAYS must be at least 0"),
        ("AUDIT_RETENTION_DAYS", "1.5", "AUDIT_RETENTION_DAYS must be a whole number"),
        ("SHARD_COUNT", "0", "SHARD_COUNT must be a whole number of at least 1"),
        ("SHARD_IDS", "0", "SHARD_IDS needs SHARD_COUNT"),
        ("DATABASE_URL", "sqlite:///data/", "DATABASE_URL is not usable: .*folder"),
        ("DATABASE_URL", "sqlite:///x.db?mode=ro", "DATABASE_URL is not usable: query options"),
        ("WINGS_ORIGIN", "nope", r"WINGS_ORIGIN must be an http\(s\) URL"),
        ("DISCORD_API_URL", "my-proxy.lan/api/v10", r"DISCORD_API_URL must be an http\(s\) URL"),
        ("DISCORD_API_URL", "wss://gateway.example.net", r"DISCORD_API_URL must be an http\(s\) URL"),
        ("DISCORD_API_URL", "http://proxy:port/api/v10", r"DISCORD_API_URL must be an http\(s\) URL"),
        ("DISCORD_API_URL", "http://proxy/api?v=10", r"DISCORD_API_URL must be an http\(s\) URL"),
        ("DISCORD_GATEWAY_URL", "https://gateway.example.net", r"DISCORD_GATEWAY_URL must be a ws\(s\) URL"),
        ("DISCORD_GATEWAY_URL", "ws://", r"DISCORD_GATEWAY_URL must be a ws\(s\) URL"),
        ("DISCORD_GATEWAY_URL", "ws://gw/?v=10", r"DISCORD_GATEWAY_URL must be a ws\(s\) URL"),
        ("DISCORD_TOKEN", "", "DISCORD_TOKEN is required"),
        ("PANEL_API_KEY", "  ", "PANEL_API_KEY is required"),
        # Characters str.isdigit() accepts but int() does not (superscripts) must not become a traceback.
        ("GUILD_IDS", "\u00b2", "GUILD_IDS must be"),
        ("ADMIN_ROLE_IDS", "1,\u00b3", "ADMIN_ROLE_IDS must be"),
        ("SHARD_COUNT", "\u00b2", "SHARD_COUNT must be a whole number"),
        ("SHARD_IDS", "\u00b9", "SHARD_IDS must be a comma-separated list of shard numbers"),
        ("GUILD_IDS", "0", "GUILD_IDS must be"),
        ("PANEL_URL", "https://panel.example.com:port", r"PANEL_URL must be an http\(s\) URL"),
        ("WINGS_ORIGIN", "https://panel.example.com:99999", r"WINGS_ORIGIN must be an http\(s\) URL"),
        ("PANEL_URL", "https://user:pass@panel.example.com", r"PANEL_URL must be an http\(s\) URL"),
        # A day count past what a date can go back to would crash the daily prune (or start-up).
        ("AUDIT_RETENTION_DAYS", "1000000", "AUDIT_RETENTION_DAYS must be at most 36500"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError, match=expected) as info:
        load_settings(dict(BASE, **{name: value}))
    assert value.strip() == "" or value not in str(info.value)


def _run_entrypoint(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in BASE and k not in ("ADMIN_ROLE_IDS", "GUILD_IDS")
    }
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        env={**clean, **env},
        cwd=tmp_path,  # no .env there
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_empty_environment_exits_2_naming_discord_token(tmp_path: Path) -> None:
    proc = _run_entrypoint({}, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "DISCORD_TOKEN" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_malformed_panel_url_exits_2_without_secrets(tmp_path: Path) -> None:
    proc = _run_entrypoint(dict(BASE, PANEL_URL="not a url"), tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "PANEL_URL" in lines[0]
    assert TOKEN not in proc.stderr and KEY not in proc.stderr and "Traceback" not in proc.stderr


def test_missing_guild_ids_exits_2_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in BASE.items() if k != "GUILD_IDS"}
    proc = _run_entrypoint(env, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "GUILD_IDS is required" in lines[0]
    assert TOKEN not in proc.stderr and "Traceback" not in proc.stderr


def test_malformed_gateway_url_exits_2_naming_it(tmp_path: Path) -> None:
    proc = _run_entrypoint(dict(BASE, DISCORD_GATEWAY_URL="my-gateway.lan:8080"), tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "DISCORD_GATEWAY_URL" in lines[0]
    assert "my-gateway.lan" not in proc.stderr and "Traceback" not in proc.stderr


def test_dotenv_file_is_loaded_without_overriding_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"DISCORD_TOKEN={TOKEN}\nPANEL_URL=https://from-dotenv.example\nPANEL_API_KEY=x\nGUILD_IDS={GUILD}\n"
    )
    # PANEL_URL from the environment wins and is malformed, proving .env did not override it
    proc = _run_entrypoint({"PANEL_URL": "bad"}, tmp_path)
    assert proc.returncode == 2 and "PANEL_URL" in proc.stderr
    proc = _run_entrypoint({"PANEL_API_KEY": ""}, tmp_path)
    # an empty variable in the environment still counts as set (python-dotenv does not override it)
    assert proc.returncode == 2 and "PANEL_API_KEY" in proc.stderr


def test_help_says_where_settings_come_from_and_version_is_printed(tmp_path: Path) -> None:
    clean = dict(os.environ, PYTHONPATH=str(ROOT))
    run = [sys.executable, "-m", "bot"]
    helped = subprocess.run(
        [*run, "--help"], env=clean, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0
    text = " ".join(helped.stdout.split())
    assert ".env" in text and "status 2" in text and "wingbeat check" in text
    version = subprocess.run(
        [*run, "--version"], env=clean, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0 and version.stdout.startswith("wingbeat ")


def test_env_example_and_readme_list_every_setting_the_bot_reads() -> None:
    source = (ROOT / "bot" / "settings.py").read_text()
    read = set(re.findall(r'\(\s*env,\s*"([A-Z][A-Z0-9_]+)"', source))
    read |= set(re.findall(r'env\.get\(\s*"([A-Z][A-Z0-9_]+)"', source))
    assert len(read) >= 16, read
    example = (ROOT / ".env.example").read_text().splitlines()
    listed = [line.split("=", 1)[0] for line in example if re.match(r"^[A-Z][A-Z0-9_]*=", line)]
    assert sorted(listed) == sorted(read)
    for index, line in enumerate(example):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):  # each setting comes after a comment saying what it is
            assert example[index - 1].startswith("#") or re.match(r"^[A-Z]", example[index - 1]), line
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    for name in read:
        assert f"`{name}`" in table, name
