"""The real app on a loopback port, seeded users, and a headless-Chromium scenario runner."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kernel.settings import PROJECT_ROOT, Settings
from tests.appserver import serve_app

ARTEFACTS = PROJECT_ROOT / "bench" / "out" / "console"  # git-ignored: screenshots of the screens
DRIVER = Path(__file__).with_name("e2e.cjs")
PASSWORD = "correct-horse-9"


@pytest.fixture(scope="session")
def console_url(test_settings: Settings) -> Iterator[str]:
    """The whole app (every route module) served from a thread with its own event loop."""
    with serve_app(test_settings) as url:
        yield url


def make_user(dsn: str, role: str, *, territory_id: int | None = None) -> dict[str, Any]:
    """A user with a known password (hashed by the auth module's own function)."""
    from identity.auth import hash_password

    email = f"{role}-{uuid.uuid4().hex[:8]}@example.test"
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users (email, name, role, password_hash, territory_id) VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (email, f"{role.title()} {email[:6]}", role, hash_password(PASSWORD), territory_id),
        ).fetchone()
    assert row is not None
    return {"id": int(row[0]), "email": email, "password": PASSWORD, "role": role}


@pytest.fixture
def admin(test_settings: Settings) -> dict[str, Any]:
    return make_user(test_settings.dsn, "admin")


@pytest.fixture
def run_scenario(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run one scenario of e2e.cjs in headless Chromium; returns its JSON result."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)

    def run(
        name: str, base_url: str, params: dict[str, Any], timeout_s: float = 180
    ) -> dict[str, Any]:
        env = dict(
            os.environ, FM_PROFILE=str(tmp_path / f"profile-{name}"), FM_SHOTS=str(ARTEFACTS)
        )
        proc = subprocess.run(
            ["node", str(DRIVER), name, base_url, json.dumps(params)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            cwd=PROJECT_ROOT,
            check=False,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        assert proc.returncode == 0 and lines, (
            f"scenario {name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    return run
