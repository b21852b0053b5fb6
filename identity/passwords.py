"""Password hashing (Argon2id) off the event loop, with bounded concurrency.

An Argon2 verification takes tens of milliseconds of CPU on purpose. Run on the event
loop, a flood of wrong passwords stalled every other request of the worker (a list's p99
went from 37 ms to 8.7 s). Here every hash and verification runs in the verifier's own
small thread pool at a lower CPU priority (argon2-cffi releases the GIL while hashing),
at most `slots` at a time; at most `queue` more may wait, and anything beyond answers 429
at once, so a flood can neither take every thread nor grow an unbounded backlog.

Unknown users (and users without a password) are verified against a dummy hash made with
the same parameters, so a login takes the same path and the same work whether or not the
e-mail exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from identity.throttle import TooManyAttempts
from kernel.errors import ApiError

T = TypeVar("T")

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # Argon2 takes any length; a megabyte of "password" is an attack


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ApiError(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters",
            field="password",
            status=422,
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ApiError(
            f"password must have at most {MAX_PASSWORD_LENGTH} characters",
            field="password",
            status=422,
        )


def new_hasher() -> PasswordHasher:
    """Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane): about 30 ms of one
    core here. argon2-cffi's default (RFC 9106 low-memory: 64 MiB, 3 passes, 4 lanes) cost
    210 ms of CPU on four threads per login, so a flood of wrong passwords took both cores
    from the API whatever thread it ran in. Older hashes still verify (their parameters are
    in the hash) and are upgraded at the next successful login."""
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """Blocking: for the CLI and set-up code, never on a serving event loop."""
    check_password_rules(password)
    return (hasher or new_hasher()).hash(password)


def verify_hash(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _lower_priority() -> None:
    """Run hashing threads at nice 10 (Linux niceness is per thread, and Argon2's own
    lane threads inherit it): under a login flood the event loops and the database win
    the CPU, and logins are the ones that slow down."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class PasswordVerifier:
    """Hashes and verifies passwords in its own threads; one per server process."""

    def __init__(
        self,
        *,
        slots: int | None = None,
        queue: int | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        # One hashing thread per process: with a worker per core, logins can never hold
        # more than every core at nice 10, and one login waits at most a few hashes.
        self.slots = slots or 1
        self.queue = 8 if queue is None else queue
        self.hasher = hasher or new_hasher()
        self._pool = ThreadPoolExecutor(
            self.slots, thread_name_prefix="argon2", initializer=_lower_priority
        )
        self._gate = asyncio.Semaphore(self.slots)
        self._pending = 0  # running plus waiting
        self._dummy: str | None = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._pending >= self.slots + self.queue:
            raise TooManyAttempts("too many logins in progress; try again shortly", 1)
        self._pending += 1
        try:
            async with self._gate:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._pool, fn, *args)
        finally:
            self._pending -= 1

    @property
    def in_flight(self) -> int:
        """Verifications and hashes running or waiting for a slot."""
        return self._pending

    async def dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self._run(self.hasher.hash, secrets.token_urlsafe(16))
        return self._dummy

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; an absent hash is checked against the dummy
        hash (and is always False), so both cases cost the same."""
        target = password_hash or await self.dummy_hash()
        ok = await self._run(verify_hash, self.hasher, target, password)
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def rehash(self, password: str) -> str:
        """A verified password hashed anew with today's parameters (no length rules: the
        user's password predates them)."""
        return await self._run(self.hasher.hash, password)

    async def hash(self, password: str) -> str:
        check_password_rules(password)
        return await self._run(self.hasher.hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
