"""A throwaway PostgreSQL cluster for tests: initdb and pg_ctl in a temporary folder, on 127.0.0.1.

The server refuses to run as root, so as root the cluster belongs to the `postgres` user (the folder is
chowned to it and the tools run through `runuser`); as anyone else it runs as that user. TCP logins need
the password (scram), so the DSNs handed out carry one, as a real deployment's would. Start-up takes about
a second; the conftest fixture starts one cluster per test session and gives each test a fresh database.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

REQUIRE_ENV = "WINGBEAT_REQUIRE_POSTGRES"  # "1": missing PostgreSQL fails the tests instead of skipping them
BINDIR_ENV = "WINGBEAT_PG_BINDIR"  # where initdb and pg_ctl are, when not in a usual place
SERVICE_USER = "postgres"

# Speed over durability: the data is thrown away with the folder.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "log_min_messages": "warning",
}


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: $WINGBEAT_PG_BINDIR, Debian's newest, then PATH; None when absent."""
    candidates: list[str] = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(os.environ[BINDIR_ENV])
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(
        debian, key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0
    )[::-1]
    if found := shutil.which("initdb"):
        candidates.append(str(Path(found).parent))
    for candidate in candidates:
        folder = Path(candidate)
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """One running test cluster; `dsn()` for its `postgres` database, `fresh_database()` for a new one."""

    def __init__(self, bindir: Path, folder: Path, password: str) -> None:
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.password = password
        self.port = 0
        self._as_root = os.geteuid() == 0
        self._names = itertools.count(1)

    @classmethod
    def start(cls, bindir: Path) -> PostgresCluster:
        """initdb in a new temporary folder and start the server; RuntimeError with the server's log if it fails."""
        folder = Path(tempfile.mkdtemp(prefix="wingbeat-pg-"))
        cluster = cls(bindir, folder, secrets.token_hex(12))
        try:
            cluster._init()
            cluster._start_on_a_free_port()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def dsn(self, database: str = "postgres", *, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{SERVICE_USER}:{secret}@127.0.0.1:{self.port}/{database}"

    def fresh_database(self) -> str:
        """Create an empty database and return a DSN for it (over the unix socket, where logins are trusted)."""
        name = f"wingbeat_test_{next(self._names)}"
        command = [
            str(self.bindir / "createdb"),
            "-h",
            str(self.folder),
            "-p",
            str(self.port),
            "-U",
            SERVICE_USER,
        ]
        done = subprocess.run([*command, name], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"createdb failed ({done.returncode}): {done.stderr.strip()}")
        return self.dsn(name)

    def terminate_sessions(self, application_name: str) -> int:
        """End every session of that application, server side, and wait until they are gone; how many ended.

        Synchronous on purpose: called from a test, it blocks the event loop, so a client cannot have noticed
        by the time it next uses the connection (as after a failover or an operator's pg_terminate_backend).
        """
        name = application_name.replace("'", "''")
        # In the select list, not the WHERE clause: there the planner may call it before filtering by name.
        query = (
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
            f" WHERE application_name = '{name}'"
        )
        command = [str(self.bindir / "psql"), "-h", str(self.folder), "-p", str(self.port), "-U", SERVICE_USER,
                   "-d", "postgres", "-At", "-c", query]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return int(done.stdout.strip())

    def stop(self) -> None:
        """Stop the server the way an operator would (fast: sessions are ended, data is kept)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def start_again(self) -> None:
        """Start a stopped server on the same port (its data kept)."""
        self._start(self.port)

    def restart(self) -> None:
        """Stop then start again on the same port."""
        self.stop()
        self.start_again()

    def destroy(self) -> None:
        """Stop the server if it runs and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.folder, ignore_errors=True)

    def _init(self) -> None:
        pwfile = self.folder / "password"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._as_root:
            account = pwd.getpwnam(SERVICE_USER)
            for path in (self.folder, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        initdb = ("initdb", "-D", str(self.data), "-U", SERVICE_USER, f"--pwfile={pwfile}", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        try:
            # A language-aware default collation, as most real servers have: ordering that only holds under
            # the "C" collation would pass unnoticed on a "C" cluster.
            self._run(*initdb, "--locale-provider=icu", "--icu-locale=en-US")
        except RuntimeError:  # a PostgreSQL built without ICU
            shutil.rmtree(self.data, ignore_errors=True)
            self._run(*initdb)
        pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"unix_socket_directories = '{self.folder}'\n")
            for key, value in _SETTINGS.items():
                conf.write(f"{key} = {value}\n")

    def _start_on_a_free_port(self) -> None:
        # Another test run on the machine may take the port between the probe and the bind: try a few.
        for attempt in range(3):
            try:
                self._start(_free_port())
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def _start(self, port: int) -> None:
        self.port = port
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", f"-p {port}", "start"
        )

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bindir / tool), *args]
        return ["runuser", "-u", SERVICE_USER, "--", *command] if self._as_root else command

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(self._command(tool, *args), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{log}")
