"""Writes the Pterodactyl (`PTDL_v2`) and Pelican (`PLCN_v3`) eggs from one description: `python deploy/make_eggs.py`.

Both eggs run Wingbeat the same way: the install script pip-installs it into the server folder's `.local`
(Python's per-user site, since the server runs with HOME=/home/container), the startup line runs
`python -m bot`, every setting is an egg variable (secrets hidden from the server's users), the store and the
heartbeat live in `/home/container/data`, `^C` (SIGINT) stops it, and the panel marks the server running
when the bot prints its ready line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PTERODACTYL = HERE / "egg-wingbeat.json"
PELICAN = HERE / "egg-wingbeat.pelican.json"

NAME = "Wingbeat"
AUTHOR = "wingbeat@example.com"
PELICAN_UUID = "5b0f7d3e-8a54-4c1b-9d0e-2f6c1a7b9e43"
EXPORTED_AT = "2026-09-01T00:00:00+00:00"
DESCRIPTION = (
    "Wingbeat: a Discord bot that starts, stops and restarts game servers on this panel, sends console "
    "commands, and mirrors consoles into Discord channels. Needs a client API key of the panel user whose "
    "servers it controls, and a Discord bot token. To check the settings, start the server once with the "
    "startup command `python -m bot check` (on Pelican: the Check settings startup command) and read its output."
)
IMAGES = {"Python 3.12": "ghcr.io/parkervcp/yolks:python_3.12"}
INSTALL_CONTAINER = "python:3.12-slim"  # the same Python as the runtime image: .local holds 3.12 wheels
READY = "Wingbeat ready:"  # the line the bot prints once it is connected and ready

# Wings hands STARTUP to the image's entrypoint, which turns {{VAR}} into ${VAR} and evals the line.
STARTUP = (
    'if [ "{{AUTO_UPDATE}}" = "1" ]; then pip install --no-cache-dir --upgrade --prefix .local '
    '"{{WINGBEAT_PACKAGE}}"; fi; export PYTHONUNBUFFERED=1; exec python -m bot'
)
# Pelican offers named startup commands: this one prints `wingbeat check`'s report and exits.
CHECK_STARTUP = "export PYTHONUNBUFFERED=1; exec python -m bot check"

INSTALL_SCRIPT = """#!/bin/bash
# Wingbeat installation (runs as root in the install container; the server's files are at /mnt/server).
# Installs the WINGBEAT_PACKAGE pip requirement into /mnt/server/.local, which is Python's per-user
# site-packages when the server runs (HOME=/home/container), and creates the data folder for the store.
set -euo pipefail
cd /mnt/server
if [[ "${WINGBEAT_PACKAGE}" == git+* ]]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends git > /dev/null
fi
export HOME=/mnt/server
echo "Installing ${WINGBEAT_PACKAGE} into /mnt/server/.local"
pip install --no-cache-dir --disable-pip-version-check --upgrade --prefix .local "${WINGBEAT_PACKAGE}"
mkdir -p data
echo "Wingbeat installed. Fill in the variables on the Startup page, then start the server."
"""

_IDS = r"regex:/^\s*[1-9]\d{0,19}(\s*,\s*[1-9]\d{0,19})*\s*$/"
_IDS_OR_EMPTY = r"regex:/^(\s*[1-9]\d{0,19}(\s*,\s*[1-9]\d{0,19})*\s*)?$/"

# (env_variable, name, description, default, rules, secret)
VARIABLES: list[tuple[str, str, str, str, str, bool]] = [
    (
        "DISCORD_TOKEN",
        "Discord bot token",
        "The bot's token (Discord developer portal → your application → Bot → Reset Token). Kept from the "
        "server's users.",
        "",
        "required|string|max:200",
        True,
    ),
    (
        "PANEL_URL",
        "Panel URL",
        "This panel's base URL, e.g. https://panel.example.com (a trailing / is ignored).",
        "",
        "required|url|max:255",
        False,
    ),
    (
        "PANEL_API_KEY",
        "Panel client API key",
        "A client API key (Account → API Credentials: ptlc_… on Pterodactyl, pacc_… on Pelican) of the user "
        "whose servers Wingbeat controls; not an application key. Kept from the server's users.",
        "",
        "required|string|max:200",
        True,
    ),
    (
        "GUILD_IDS",
        "Discord server IDs",
        "Comma-separated IDs of the Discord servers (guilds) allowed to use Wingbeat; commands are synced to "
        "exactly these and any other guild is refused.",
        "",
        f"required|string|{_IDS}",
        False,
    ),
    (
        "ADMIN_ROLE_IDS",
        "Admin role IDs",
        "Comma-separated Discord role IDs whose members are admins (the Administrator permission always counts).",
        "",
        f"nullable|string|{_IDS_OR_EMPTY}",
        False,
    ),
    (
        "DATABASE_URL",
        "Database URL",
        "Where links, boards, alerts, grants and the audit log are kept: SQLite under the server's data folder "
        "by default, or postgresql://user:password@host/db. Hidden: it may hold a password.",
        "sqlite:///data/wingbeat.sqlite3",
        "required|string|max:500",
        True,
    ),
    (
        "WINGS_ORIGIN",
        "Wings Origin",
        "The Origin header sent to Wings; empty means PANEL_URL. Must equal the `remote:` in Wings' config.yml.",
        "",
        "nullable|url|max:255",
        False,
    ),
    (
        "CONSOLE_INPUT",
        "Console input",
        "true lets admins type console commands straight into a linked channel (enable the Message Content "
        "intent too); false by default.",
        "false",
        "required|string|in:true,false",
        False,
    ),
    (
        "CONSOLE_COLOR",
        "Console colours",
        "plain strips escape codes; ansi keeps colours in Discord ansi code blocks.",
        "plain",
        "required|string|in:plain,ansi",
        False,
    ),
    (
        "LOG_LEVEL",
        "Log level",
        "DEBUG, INFO, WARNING, ERROR or CRITICAL.",
        "INFO",
        "required|string|in:DEBUG,INFO,WARNING,ERROR,CRITICAL",
        False,
    ),
    (
        "STATUS_INTERVAL",
        "Status board interval",
        "Seconds between edits of one status board message (at least 5).",
        "15",
        "required|numeric|min:5",
        False,
    ),
    (
        "AUDIT_RETENTION_DAYS",
        "Audit retention (days)",
        "Audit rows older than this many days are pruned once a day (at most 36500); 0 keeps them forever.",
        "365",
        "required|integer|min:0|max:36500",
        False,
    ),
    (
        "DISCORD_API_URL",
        "Discord API URL (advanced)",
        "Usually empty. Discord's REST base for an HTTP proxy in front of Discord such as nirn-proxy, e.g. "
        "http://nirn-proxy:8080/api/v10.",
        "",
        "nullable|url|max:255",
        False,
    ),
    (
        "DISCORD_GATEWAY_URL",
        "Discord gateway URL (advanced)",
        "Usually empty. The Discord gateway's ws(s):// URL.",
        "",
        r"nullable|string|max:255|regex:/^wss?:\/\/\S+$/",
        False,
    ),
    (
        "SHARD_COUNT",
        "Shard count (advanced)",
        "Usually empty. Several processes on one bot token: the number of shards in all of them.",
        "",
        "nullable|integer|min:1",
        False,
    ),
    (
        "SHARD_IDS",
        "Shard IDs (advanced)",
        "Usually empty. The comma-separated shards this server runs (default: all of SHARD_COUNT).",
        "",
        f"nullable|string|{_IDS_OR_EMPTY}",
        False,
    ),
    (
        "WINGBEAT_PACKAGE",
        "Wingbeat package",
        "The pip requirement the install script installs: `wingbeat` (the package index), a git URL such as "
        "git+https://github.com/<owner>/wingbeat.git@v0.1.0, or a wheel's URL. Reinstall the server after "
        "changing it.",
        "wingbeat",
        "required|string|max:500",
        False,
    ),
    (
        "AUTO_UPDATE",
        "Update on start",
        "1 upgrades Wingbeat from the same package at every start; 0 (default) keeps the installed version.",
        "0",
        "required|string|in:0,1",
        False,
    ),
]


def _config() -> dict[str, str]:
    # The panel keeps these four as JSON text (and `stop` as the text Wings sends: ^C is SIGINT).
    return {
        "files": "{}",
        "startup": json.dumps({"done": READY}, indent=4),
        "logs": "{}",
        "stop": "^C",
    }


def _scripts() -> dict[str, Any]:
    return {"installation": {"script": INSTALL_SCRIPT, "container": INSTALL_CONTAINER, "entrypoint": "bash"}}


def pterodactyl() -> dict[str, Any]:
    """The egg in Pterodactyl's `PTDL_v2` export format (Pelican imports it too)."""
    return {
        "_comment": "DO NOT EDIT: FILE GENERATED AUTOMATICALLY BY deploy/make_eggs.py",
        "meta": {"version": "PTDL_v2", "update_url": None},
        "exported_at": EXPORTED_AT,
        "name": NAME,
        "author": AUTHOR,
        "description": DESCRIPTION,
        "features": None,
        "docker_images": IMAGES,
        "file_denylist": [".env"],
        "startup": STARTUP,
        "config": _config(),
        "scripts": _scripts(),
        "variables": [
            {
                "name": name,
                "description": description,
                "env_variable": env,
                "default_value": default,
                "user_viewable": not secret,
                "user_editable": not secret,
                "rules": rules,
                "field_type": "text",
            }
            for env, name, description, default, rules, secret in VARIABLES
        ],
    }


def pelican() -> dict[str, Any]:
    """The egg in Pelican's current export format (`PLCN_v3`: named startup commands, rules as lists)."""
    return {
        "_comment": "DO NOT EDIT: FILE GENERATED AUTOMATICALLY BY deploy/make_eggs.py",
        "meta": {"version": "PLCN_v3", "update_url": None},
        "exported_at": EXPORTED_AT,
        "name": NAME,
        "author": AUTHOR,
        "uuid": PELICAN_UUID,
        "description": DESCRIPTION,
        "image": None,  # an icon as a data: URL; none
        "tags": ["discord", "bot", "python"],
        "features": [],
        "docker_images": IMAGES,
        "file_denylist": [".env"],
        "startup_commands": {"Default": STARTUP, "Check settings": CHECK_STARTUP},
        "config": _config(),
        "scripts": _scripts(),
        "variables": [
            {
                "name": name,
                "description": description,
                "env_variable": env,
                "default_value": default,
                "user_viewable": not secret,
                "user_editable": not secret,
                "rules": _split_rules(rules),
                "sort": index,
            }
            for index, (env, name, description, default, rules, secret) in enumerate(VARIABLES, start=1)
        ],
    }


def _split_rules(rules: str) -> list[str]:
    # Laravel splits rule strings on "|"; none of these regexes contains one.
    return rules.split("|")


def render(egg: dict[str, Any]) -> str:
    return json.dumps(egg, indent=4, ensure_ascii=False) + "\n"


def main() -> None:
    PTERODACTYL.write_text(render(pterodactyl()), encoding="utf-8")
    PELICAN.write_text(render(pelican()), encoding="utf-8")
    print(f"wrote {PTERODACTYL.name} and {PELICAN.name}")


if __name__ == "__main__":
    main()
