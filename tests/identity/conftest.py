"""Identity served by the real app (sign-in and the CRM routes) against this session's
database, with the throttling policy and password verifier each test chooses."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

import psycopg
import pytest
import requests
from aiohttp import web
from argon2 import PasswordHasher
from psycopg import AsyncConnection

from identity import auth
from identity.passwords import PasswordVerifier
from identity.routes import THROTTLE, VERIFIER
from identity.throttle import ThrottlePolicy
from kernel.settings import Settings
from tests.appserver import serve_app

PASSWORD = "right-pass-1"
ROUTES = ("identity.routes", "crm.routes")


class RecordingHasher(PasswordHasher):
    """A real Argon2 hasher that remembers which hashes it verified, and can hold every
    verification until released (to keep logins in flight)."""

    def __init__(self) -> None:
        super().__init__(time_cost=2, memory_cost=19 * 1024, parallelism=1)  # as new_hasher
        self.verified: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Semaphore(0)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        self.entered.release()
        assert self.release.wait(60), "the test never released the held verifications"
        return super().verify(hash, password)


@dataclass
class Users:
    suffix: str
    ids: dict[str, int]

    def email(self, who: str) -> str:
        return f"{who}-{self.suffix}@id.test"


async def _make_users(dsn: str, suffix: str) -> dict[str, int]:
    async with await AsyncConnection.connect(dsn) as conn:
        ids = {
            who: await auth.create_user(
                conn, email=f"{who}-{suffix}@id.test", name=who, role=role, password=PASSWORD
            )
            for who, role in (("admin", "admin"), ("rep", "rep"), ("other", "rep"))
        }
        await conn.commit()
    return ids


@pytest.fixture
def users(db_dsn: str) -> Users:
    suffix = uuid.uuid4().hex[:8]
    return Users(suffix, asyncio.run(_make_users(db_dsn, suffix)))


@pytest.fixture(autouse=True)
def _fresh_throttle(db: psycopg.Connection) -> Iterator[None]:
    # Every request here comes from 127.0.0.1: one test's failures must not lock the next.
    db.execute("DELETE FROM login_throttle")
    db.commit()
    yield
    db.execute("DELETE FROM login_throttle")
    db.commit()


Serve = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def serve(test_settings: Settings) -> Serve:
    def start(
        policy: ThrottlePolicy | None = None,
        verifier: PasswordVerifier | None = None,
        settings: Settings | None = None,
    ) -> AbstractContextManager[str]:
        def configure(app: web.Application) -> None:
            if policy is not None:
                app[THROTTLE] = policy
            if verifier is not None:
                app[VERIFIER] = verifier

        return serve_app(settings or test_settings, ROUTES, configure=configure)

    return start


def sign_in(base: str, email: str, password: str = PASSWORD, **more: bool) -> requests.Response:
    return requests.post(
        base + "/api/v1/auth/token",
        json={"email": email, "password": password, **more},
        timeout=60,
    )
