"""The Pterodactyl and Pelican eggs: their structure, and their install and startup run the way Wings runs them.

A temporary folder stands in for the server's files (`/mnt/server` during install, `/home/container` when it
runs). The install script runs as the egg's own text with that folder substituted and the local checkout as
the package; the startup line goes through the same {{VAR}} expansion and `eval` as the runtime image's
entrypoint. To stay fast the install skips dependencies and the bot runs on this checkout's virtualenv,
which already holds them (inside a virtualenv Python ignores the per-user site the egg installs into).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from bot.settings import load_settings
from deploy import make_eggs
from tests.e2e_helpers import GUILD, build_world
from tests.fakes.emulator import Emulator
from tests.fakes.fake_discord import FakeDiscord

ROOT = Path(__file__).resolve().parents[1]
PTERODACTYL = ROOT / "deploy" / "egg-wingbeat.json"
PELICAN = ROOT / "deploy" / "egg-wingbeat.pelican.json"
SECRETS = {"DISCORD_TOKEN", "PANEL_API_KEY", "DATABASE_URL"}
# Names Pelican reserves for itself; an egg variable with one of them is renamed on import.
PELICAN_RESERVED = {
    "P_SERVER_UUID",
    "P_SERVER_ALLOCATION_LIMIT",
    "SERVER_MEMORY",
    "SERVER_IP",
    "SERVER_PORT",
    "ENV",
    "HOME",
    "USER",
    "STARTUP",
    "MODIFIED_STARTUP",
    "SERVER_UUID",
    "UUID",
    "INTERNAL_IP",
    "HOSTNAME",
    "TERM",
    "LANG",
    "PWD",
    "TZ",
    "TIMEZONE",
}
# The runtime image's entrypoint (the egg's docker_images), minus its network lookup: {{VAR}} becomes
# ${VAR}, and the line is eval'd by bash in the server folder.
ENTRYPOINT = r"""
cd "$SERVER_HOME" || exit 1
python --version
MODIFIED_STARTUP=$(echo -e $(echo -e ${STARTUP} | sed -e 's/{{/${/g' -e 's/}}/}/g'))
echo -e ":/home/container$ ${MODIFIED_STARTUP}"
eval ${MODIFIED_STARTUP}
"""


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def settings_read_by_the_bot() -> set[str]:
    """Every variable bot/settings.py reads, found in its source."""
    source = (ROOT / "bot" / "settings.py").read_text()
    names = set(re.findall(r'\(\s*env,\s*"([A-Z][A-Z0-9_]+)"', source))
    names |= set(re.findall(r'env\.get\(\s*"([A-Z][A-Z0-9_]+)"', source))
    assert len(names) >= 16, names
    return names


def test_the_files_are_what_the_generator_writes() -> None:
    assert PTERODACTYL.read_text(encoding="utf-8") == make_eggs.render(make_eggs.pterodactyl())
    assert PELICAN.read_text(encoding="utf-8") == make_eggs.render(make_eggs.pelican())


def test_pterodactyl_egg_structure() -> None:
    egg = load(PTERODACTYL)
    assert egg["meta"] == {"version": "PTDL_v2", "update_url": None}
    for key in (
        "name",
        "author",
        "description",
        "docker_images",
        "startup",
        "config",
        "scripts",
        "variables",
    ):
        assert egg[key], key
    assert isinstance(egg["startup"], str)
    check_common(egg)
    for variable in egg["variables"]:
        assert set(variable) == {
            "name",
            "description",
            "env_variable",
            "default_value",
            "user_viewable",
            "user_editable",
            "rules",
            "field_type",
        }
        assert isinstance(variable["rules"], str) and variable["field_type"] == "text"


def test_pterodactyl_egg_has_the_types_its_importer_demands() -> None:
    # Newer Pterodactyl panels type-check an imported egg field by field and refuse the whole file on the
    # first mismatch ("The egg field ... is missing or invalid"): strings, nullable strings and booleans.
    egg = load(PTERODACTYL)

    def nullable_string(value: object) -> bool:
        return value is None or isinstance(value, str)

    assert isinstance(egg["name"], str) and isinstance(egg["author"], str)
    assert nullable_string(egg["description"]) and nullable_string(egg["meta"]["update_url"])
    assert egg["features"] is None or all(isinstance(f, str) for f in egg["features"])
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in egg["docker_images"].items())
    assert isinstance(egg["file_denylist"], list) and all(isinstance(f, str) for f in egg["file_denylist"])
    assert all(nullable_string(egg["config"][key]) for key in ("files", "startup", "logs", "stop"))
    assert nullable_string(egg["startup"])
    install = egg["scripts"]["installation"]
    assert nullable_string(install["script"])
    assert isinstance(install["entrypoint"], str) and isinstance(install["container"], str)
    for variable in egg["variables"]:
        for key in ("name", "description", "env_variable", "default_value", "rules"):
            assert isinstance(variable[key], str), (variable["env_variable"], key)
        for key in ("user_viewable", "user_editable"):
            assert isinstance(variable[key], bool), (variable["env_variable"], key)


def test_pelican_egg_uses_only_what_its_importer_stores() -> None:
    # Pelican writes each variable's keys straight into its egg_variables table (field_type aside): any
    # other key would fail the import. Its export names the icon `image` (a data: URL or null).
    egg = load(PELICAN)
    columns = {"name", "description", "env_variable", "default_value", "user_viewable", "user_editable"}
    for variable in egg["variables"]:
        assert set(variable) <= columns | {"rules", "sort"}, variable["env_variable"]
        assert all(isinstance(rule, str) and "|" not in rule for rule in variable["rules"])
    assert egg["image"] is None and "icon" not in egg


def test_pelican_egg_structure() -> None:
    egg = load(PELICAN)
    ptero = load(PTERODACTYL)
    assert egg["meta"] == {"version": "PLCN_v3", "update_url": None}
    assert uuid.UUID(egg["uuid"]).version == 4
    assert egg["startup_commands"]["Default"] == ptero["startup"]
    assert egg["startup_commands"]["Check settings"].endswith("exec python -m bot check")
    assert "startup" not in egg and isinstance(egg["tags"], list)
    check_common(egg)
    assert [v["env_variable"] for v in egg["variables"]] == [v["env_variable"] for v in ptero["variables"]]
    for pelican_var, ptero_var in zip(egg["variables"], ptero["variables"], strict=True):
        assert pelican_var["rules"] == ptero_var["rules"].split("|")
        assert {k: pelican_var[k] for k in ("name", "default_value", "user_viewable", "user_editable")} == {
            k: ptero_var[k] for k in ("name", "default_value", "user_viewable", "user_editable")
        }
    assert egg["scripts"] == ptero["scripts"] and egg["config"] == ptero["config"]


def check_common(egg: dict[str, Any]) -> None:
    config = egg["config"]
    for key in ("files", "startup", "logs"):
        assert isinstance(config[key], str)
        json.loads(config[key])  # the panel stores them as JSON text
    assert json.loads(config["startup"]) == {"done": "Wingbeat ready:"}
    assert config["stop"] == "^C"  # SIGINT
    assert ".env" in egg["file_denylist"]
    install = egg["scripts"]["installation"]
    assert install["entrypoint"] == "bash" and "/mnt/server" in install["script"]
    assert re.fullmatch(r"python:3\.12-slim.*", install["container"])
    assert list(egg["docker_images"].values()) == ["ghcr.io/parkervcp/yolks:python_3.12"]  # same Python
    names = [v["env_variable"] for v in egg["variables"]]
    assert len(names) == len(set(names))
    assert settings_read_by_the_bot() <= set(names)
    assert not set(names) & PELICAN_RESERVED
    for variable in egg["variables"]:
        secret = variable["env_variable"] in SECRETS
        assert variable["user_viewable"] is not secret, variable["env_variable"]
        assert variable["user_editable"] is not secret or not variable["user_viewable"]
        assert variable["description"]
    defaults = {v["env_variable"]: v["default_value"] for v in egg["variables"]}
    # The defaults, with the required values filled in, are valid settings; the store is in the data folder.
    settings = load_settings(
        {
            **defaults,
            "DISCORD_TOKEN": "t",
            "PANEL_URL": "https://panel.example.com",
            "PANEL_API_KEY": "ptlc_x",
            "GUILD_IDS": "1",
        }
    )
    assert settings.database_url == "sqlite:///data/wingbeat.sqlite3"  # relative to /home/container


def variables_env(egg: dict[str, Any], **values: str) -> dict[str, str]:
    """The environment Wings gives the containers: every variable, empty ones as empty strings."""
    env = {v["env_variable"]: str(v["default_value"]) for v in egg["variables"]}
    env.update(values)
    return env


def base_env() -> dict[str, str]:
    names = {v["env_variable"] for v in load(PTERODACTYL)["variables"]}
    env = {k: v for k, v in os.environ.items() if k not in names}
    # `python` and `pip` are this checkout's virtualenv's, as the images' are on their PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


async def install(egg: dict[str, Any], server: Path) -> str:
    script = egg["scripts"]["installation"]["script"].replace("/mnt/server", str(server))
    env = {
        **base_env(),
        **variables_env(egg, WINGBEAT_PACKAGE=str(ROOT)),
        # Keep the test fast and this virtualenv intact: no dependencies, nothing uninstalled from it.
        "PIP_NO_DEPS": "1",
        "PIP_IGNORE_INSTALLED": "1",
    }
    (server.parent / "install.sh").write_text(script)
    proc = await asyncio.create_subprocess_exec(
        egg["scripts"]["installation"]["entrypoint"],
        str(server.parent / "install.sh"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_install_then_start_until_ready_then_sigint(tmp_path: Path) -> None:
    egg = load(PTERODACTYL)
    server = tmp_path / "server"
    server.mkdir()
    log = await install(egg, server)
    assert "Wingbeat installed" in log
    [site] = list(server.glob(".local/lib/python3*/site-packages"))
    assert (site / "bot" / "__main__.py").is_file() and (site / "cogs").is_dir()
    assert (server / ".local" / "bin" / "wingbeat").is_file()
    assert (server / "data").is_dir()

    done = json.loads(egg["config"]["startup"])["done"]
    async with Emulator() as emu, FakeDiscord() as fake:
        emu.add_server("Lobby", state="running")
        build_world(fake)
        env = {
            **base_env(),
            **variables_env(
                egg,
                DISCORD_TOKEN=fake.token,
                PANEL_URL=emu.panel_url,
                PANEL_API_KEY=emu.api_key,
                GUILD_IDS=str(GUILD),
                DISCORD_API_URL=fake.base_url,
                DISCORD_GATEWAY_URL=fake.gateway_url,
            ),
            "HOME": str(server),
            "SERVER_HOME": str(server),
            "STARTUP": egg["startup"],
        }
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            ENTRYPOINT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, which a `tini -g` entrypoint signals as a whole
        )
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(60):
                while not any(line.startswith(done) for line in lines):
                    raw = await proc.stdout.readline()
                    if not raw:
                        pytest.fail("the bot exited before it was ready:\n" + "\n".join(lines))
                    lines.append(raw.decode(errors="replace").rstrip())
            assert fake.connected
            assert (server / "data" / "wingbeat.sqlite3").is_file()  # the store, in the server's data folder
            # The panel's stop: ^C, i.e. SIGINT to the server's processes.
            os.killpg(proc.pid, signal.SIGINT)
            rest, _ = await asyncio.wait_for(proc.communicate(), 30)
            lines.extend(rest.decode(errors="replace").splitlines())
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        assert proc.returncode == 0, "\n".join(lines)
        assert [line for line in lines if line.startswith(done)] == [
            "Wingbeat ready: Wingbeat in 1 guild(s), 0 console link(s)"
        ]
        output = "\n".join(lines)
        assert fake.token not in output and emu.api_key not in output
