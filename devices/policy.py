"""Staged rollout policy, pure: who gets an image first, how many, and when to halt.

Devices are ranked by SHA-256 of (rollout id, device id): a stable pseudo-random order,
so "10 %" is a fair sample of the group, and raising the percentage later only adds the
next devices in the same order. A rollout sends the image in waves of `wave_size`
devices at a time; the next device starts only when one of the wave has finished. Once at
least `min_results` devices have answered, a failure rate above `failure_threshold`
(failed / answered, timed-out commands counted as failures) halts the rollout: nothing
more is sent, and the devices already updated keep their new image.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass


def rank(rollout_id: int, device_id: str) -> str:
    return hashlib.sha256(f"{rollout_id}\x00{device_id}".encode()).hexdigest()


def target_count(population: int, percent: float) -> int:
    """How many of `population` devices `percent` means (at least one of a non-empty group)."""
    if population <= 0:
        return 0
    return min(population, max(1, math.ceil(population * percent / 100.0 - 1e-9)))


def choose(rollout_id: int, device_ids: Iterable[str], percent: float) -> list[str]:
    """The first `percent` of the devices in the rollout's stable order."""
    ordered = sorted(device_ids, key=lambda d: rank(rollout_id, d))
    return ordered[: target_count(len(ordered), percent)]


@dataclass(frozen=True, slots=True)
class Progress:
    pending: int
    sent: int
    succeeded: int
    failed: int

    @property
    def answered(self) -> int:
        return self.succeeded + self.failed

    @property
    def failure_rate(self) -> float:
        return self.failed / self.answered if self.answered else 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    send: int  # how many pending devices to send the image to now
    state: str  # running | halted | completed
    reason: str = ""


def decide(p: Progress, wave_size: int, failure_threshold: float, min_results: int) -> Decision:
    if p.answered >= min_results and p.failure_rate > failure_threshold:
        return Decision(
            0,
            "halted",
            f"failure rate {p.failure_rate:.0%} ({p.failed} of {p.answered}) "
            f"above the threshold {failure_threshold:.0%}",
        )
    if p.pending == 0 and p.sent == 0:
        return Decision(0, "completed")
    return Decision(max(0, min(p.pending, wave_size - p.sent)), "running")
