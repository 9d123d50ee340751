"""Fixtures shared across test files: a throwaway PostgreSQL cluster (see tests/pg.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pg import REQUIRE_ENV, PostgresCluster, find_bindir


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL server for the whole session; skipped when PostgreSQL is not installed, unless required."""
    bindir = find_bindir()
    if bindir is None:
        reason = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql-15"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1 forbids skipping these tests)")
        pytest.skip(reason)
    cluster = PostgresCluster.start(bindir)
    yield cluster
    cluster.destroy()


@pytest.fixture
def postgres_dsn(postgres_cluster: PostgresCluster) -> str:
    """A DSN (with password) for a new, empty database on the session's cluster."""
    return postgres_cluster.fresh_database()
