"""`fieldmesh crm seed` refuses a database that already has accounts, saying why (exit 2)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from fieldmesh import services
from fieldmesh.migrate import upgrade
from kernel.settings import PROJECT_ROOT, Settings


@pytest.fixture
def own_dsn(services_up: Settings) -> Iterator[str]:
    name = f"fm_seed_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    upgrade(dsn)
    yield dsn
    services.drop_database(services_up, name)


def test_seed_on_a_database_with_accounts_explains_itself(own_dsn: str) -> None:
    with psycopg.connect(own_dsn) as conn:
        conn.execute("INSERT INTO accounts (name) VALUES ('Already here')")
    result = subprocess.run(
        [sys.executable, "-m", "fieldmesh", "crm", "seed", "--dsn", own_dsn, "--accounts", "5"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "already holds 1 account;" in result.stderr
    assert "Traceback" not in result.stderr
    with psycopg.connect(own_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (1,)
