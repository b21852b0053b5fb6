"""Shared fixtures: integration tests run against the real embedded services.

The services are started through the same code `fieldmesh up` uses, but never the
user's: each test session gets its own state directory and free ports (so `make test`
neither collides with nor leaves behind a running `fieldmesh up`), its own database
(migrated from scratch), and each test its own MQTT tenant prefix. Every service the
session started is stopped at its end. A service that cannot start is an error, never a
skip. FIELDMESH_TEST_SERVICES=env runs the suite against the settings of the environment
instead (external DATABASE_URL / MQTT_URL).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fieldmesh import services
from fieldmesh.migrate import upgrade
from kernel.settings import Settings, load_settings
from tests.appserver import serve_app
from tests.ports import free_port, service_ports
from tests.world import People, make_people

__all__ = ["free_port"]  # re-exported: tests import it from here


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    base = load_settings()
    if os.environ.get("FIELDMESH_TEST_SERVICES") == "env":
        yield base
        return
    state = Path(tempfile.mkdtemp(prefix="fm-test-"))
    state.chmod(0o755)  # the embedded PostgreSQL runs as `postgres` when we are root
    # reserved together, so that no two services of this session or of a parallel one
    # (xdist) get the same port
    own = base.with_overrides(state_dir=state, **service_ports())
    try:
        yield own
    finally:
        services.down(own)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def services_up(settings: Settings) -> Settings:
    services.ensure_up(settings, migrate=False)
    return settings


@pytest.fixture(scope="session")
def db_dsn(services_up: Settings) -> Iterator[str]:
    name = f"fm_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dsn = services.create_database(services_up, name)
    upgrade(dsn)
    yield dsn
    services.drop_database(services_up, name)


@pytest.fixture(scope="session")
def test_settings(services_up: Settings, db_dsn: str) -> Settings:
    """Settings pointing at this session's database (and the embedded broker)."""
    return services_up.with_overrides(database_url=db_dsn)


@pytest.fixture
def db(db_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_dsn) as conn:
        yield conn


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def people(db_dsn: str) -> People:
    """Two territories and a user with a token for every role (see tests/world.py)."""
    return asyncio.run(make_people(db_dsn, uuid.uuid4().hex[:8]))


@pytest.fixture(scope="session")
def app_url(test_settings: Settings) -> Iterator[str]:
    """The whole product's HTTP app (every route module) on a free loopback port."""
    with serve_app(test_settings) as url:
        yield url
