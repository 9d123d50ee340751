"""The container image and the compose example, read as Docker would read them (no Docker engine here)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from bot.__main__ import _parser
from bot.heartbeat import configured_path
from bot.settings import Database, load_settings

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions, with comments dropped and `\\` continuations joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "a continuation runs off the end of the Dockerfile"
    return out


def dockerfile() -> list[Instruction]:
    return instructions((ROOT / "Dockerfile").read_text())


def last(keyword: str) -> str:
    return [i.args for i in dockerfile() if i.keyword == keyword][-1]


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for i in dockerfile():
        if i.keyword == "ENV":
            for pair in shlex.split(i.args):
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def test_slim_python_base() -> None:
    [base] = [i.args for i in dockerfile() if i.keyword == "FROM"]
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base), base


def test_runs_as_uid_1000_with_home_container_like_wings() -> None:
    [useradd] = [i.args for i in dockerfile() if i.keyword == "RUN" and "useradd" in i.args]
    words = shlex.split(useradd)
    user = words[-1]
    assert words[words.index("--uid") + 1] == "1000"
    assert words[words.index("--home-dir") + 1] == "/home/container"
    assert last("USER") in (user, "1000", "1000:1000")
    assert last("WORKDIR") == "/home/container"
    assert env()["HOME"] == "/home/container"
    assert env()["PYTHONUNBUFFERED"] == "1"


def test_the_store_and_heartbeat_live_in_the_data_volume() -> None:
    workdir = PurePosixPath(last("WORKDIR"))
    assert "DATABASE_URL" not in env()  # the bot's own default, resolved against WORKDIR
    defaults = load_settings(
        {"DISCORD_TOKEN": "t", "PANEL_URL": "https://p", "PANEL_API_KEY": "k", "GUILD_IDS": "1"}
    )
    assert workdir / Database.parse(defaults.database_url).target == PurePosixPath(
        "/home/container/data/wingbeat.sqlite3"
    )
    assert workdir / configured_path({}) == PurePosixPath("/home/container/data/heartbeat")
    assert json.loads(last("VOLUME")) == ["/home/container/data"]


def test_entrypoint_and_healthcheck_are_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = json.loads(last("ENTRYPOINT"))
    assert entrypoint == ["wingbeat"] and scripts["wingbeat"] == "bot.__main__:main"
    health = last("HEALTHCHECK")
    options, _, command = health.partition("CMD ")
    assert json.loads(command) == ["wingbeat", "healthcheck"]
    assert "--start-period=" in options  # logging in and syncing takes a while before the first heartbeat
    assert _parser().parse_args(["healthcheck"]).command == "healthcheck"
    assert _parser().parse_args(["check"]).command == "check"


def test_the_package_sources_reach_the_image_and_secrets_do_not() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(name, p.removeprefix("**/")) for p in patterns)

    copied = [
        word
        for i in dockerfile()
        if i.keyword == "COPY"
        for word in i.args.split()[:-1]
        if not word.startswith("--")
    ]
    assert set(copied) >= {"pyproject.toml", "README.md", "bot", "cogs"}
    assert not [name for name in copied if ignored(name)]
    for secret in (".env", "data", "wingbeat.sqlite3", "sandbox.env"):
        assert ignored(secret), secret
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in copied  # pip needs it to build the package


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_example() -> None:
    data = compose()
    [service] = data["services"].values()
    assert (ROOT / "deploy" / service["build"]["context"] / "Dockerfile").is_file()
    assert service["env_file"] == ".env"
    assert service["restart"] in ("unless-stopped", "always")
    [volume] = service["volumes"]
    name, target = volume.split(":")
    assert target == "/home/container/data" and name in data["volumes"]
