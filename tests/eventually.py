"""One way for a test to wait for something: `eventually(probe)` instead of sleeps.

The probe is called until it returns a truthy value (which is returned) or the timeout
passes (an AssertionError naming what was awaited and the last value seen). Timeouts are
generous on purpose: a test asserts that something happens, never how fast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout_s: float = 60.0,
    interval_s: float = 0.1,
    what: str = "",
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not reached within {timeout_s:.0f} s: {what or probe!r} (last: {last!r})"
            )
        time.sleep(interval_s)


async def eventually_async(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float = 60.0,
    interval_s: float = 0.1,
    what: str = "",
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not reached within {timeout_s:.0f} s: {what or probe!r} (last: {last!r})"
            )
        await asyncio.sleep(interval_s)
