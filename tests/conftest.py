"""Shared fixtures: integration tests run against the real embedded services.

The services are started through the same code `fieldmesh up` uses. Each test session
gets its own database (migrated from scratch) and each test its own MQTT tenant prefix,
so concurrent runs do not see each other's data. A service that cannot start is an
error, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from fieldmesh import services
from fieldmesh.migrate import upgrade
from fieldmesh.settings import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


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
