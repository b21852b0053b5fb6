"""Speech recognition in a dedicated process, scheduled ahead of the API's other work.

Decoding a 2-4 s command costs pocketsphinx 100-300 ms of CPU, all of it holding the
interpreter. In the API worker it competes with the event loop's other requests (and their
GIL) and, on a busy machine, with every other process at the same priority: measured on a
shared 2-core machine at load 13-25, a spoken command took 4.9 s at the p95 against 0.55 s
idle. So recognition runs in one long-lived process per API worker that

- keeps its decoders warm (voice.recognizer's cache, one per vocabulary, lives there);
- asks the kernel for a higher priority (nice `ASR_NICE`) when it may (root or
  CAP_SYS_NICE; otherwise it keeps the default and logs that once), so a command is
  decoded before batch work such as reports, model training or tests;
- is started with the app (spawned, not forked: the API process has threads) and replaced
  by the next request if it dies.

A request carries the names of the caller's vocabulary and the 16 kHz samples (about
100 kB for 3 s), and answers with the transcript.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from assistant import voice

log = logging.getLogger(__name__)

ASR_NICE = -10
PARENT_CHECK_S = 1.0


def _start(nice: int, parent: int) -> None:
    """In the worker process: take the higher priority when allowed, and end with the
    API worker that started it."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except (PermissionError, OSError) as exc:
        log.info("assistant: speech worker keeps its priority (nice %s refused: %s)", nice, exc)
    threading.Thread(target=_end_with, args=(parent,), name="asr-parent", daemon=True).start()


def _end_with(parent: int) -> None:
    # A SIGKILLed API worker never shuts its pool down, and the pool's queue never reads
    # EOF here (this process holds its writing end too): without this, every crash of an
    # API worker would leave a 175 MB orphan behind.
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _priority() -> tuple[int, int]:
    return os.getpid(), os.getpriority(os.PRIO_PROCESS, 0)


def _transcribe(
    names: tuple[str, ...],
    exclude: tuple[str, ...],
    samples: np.ndarray,
    phrases: tuple[str, ...] | None = None,
) -> str:
    return voice.recognizer(names, exclude, phrases).transcribe(samples)


def _warm(names: tuple[str, ...], exclude: tuple[str, ...]) -> int:
    return len(voice.recognizer(names, exclude).vocabulary)


class RecognitionWorker:
    """The process that recognises speech; thread-safe, started on first use."""

    def __init__(self, nice: int = ASR_NICE) -> None:
        self.nice = nice
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start,
                    initargs=(self.nice, os.getpid()),
                )
            return self._pool

    def _reset(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def transcribe_sync(
        self,
        names: Sequence[str],
        samples: np.ndarray,
        exclude: Sequence[str] = (),
        phrases: Sequence[str] | None = None,
    ) -> str:
        """What was said (blocking: for threads and the benchmark); `phrases`: the workflow
        commands' sentences (default: the built-in ones)."""
        said = None if phrases is None else tuple(phrases)
        for attempt in (1, 2):
            pool = self._executor()
            try:
                return pool.submit(
                    _transcribe, tuple(names), tuple(exclude), samples, said
                ).result()
            except BrokenProcessPool:
                self._reset(pool)
                if attempt == 2:
                    raise
                log.warning("assistant: the speech worker died; starting a new one")
        raise AssertionError("unreachable")  # pragma: no cover

    async def transcribe(
        self,
        names: Sequence[str],
        samples: np.ndarray,
        exclude: Sequence[str] = (),
        phrases: Sequence[str] | None = None,
    ) -> str:
        return await asyncio.to_thread(self.transcribe_sync, names, samples, exclude, phrases)

    def warm(self, names: Sequence[str] = (), exclude: Sequence[str] = ()) -> int:
        """Start the process and build a vocabulary's decoder; its size in words."""
        return int(self._executor().submit(_warm, tuple(names), tuple(exclude)).result())

    def process(self) -> tuple[int, int]:
        """The worker process's pid and nice value (as the kernel has them)."""
        pid, nice = self._executor().submit(_priority).result()
        return int(pid), int(nice)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
