"""The speech worker process: it recognises what piper says, runs at a higher priority
when the system allows it, and a dead worker is replaced by the next request."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from assistant import voice
from assistant.asr_worker import ASR_NICE, RecognitionWorker


@pytest.fixture
def worker() -> Iterator[RecognitionWorker]:
    w = RecognitionWorker()
    yield w
    w.close()


def _may_raise_priority() -> bool:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0))
    except PermissionError:
        return False
    return os.geteuid() == 0


def test_the_worker_recognises_speech_in_its_own_process(worker: RecognitionWorker) -> None:
    samples = voice.read_wav(voice.speak("open the map"))
    assert worker.transcribe_sync(["Anna Weber"], samples) == "open the map"
    pid, nice = worker.process()
    assert pid != os.getpid()
    if _may_raise_priority():
        assert nice == ASR_NICE
    else:
        assert nice >= ASR_NICE


def test_a_dead_worker_is_replaced(worker: RecognitionWorker) -> None:
    samples = voice.read_wav(voice.speak("next stop"))
    pid, _ = worker.process()
    os.kill(pid, signal.SIGKILL)
    assert worker.transcribe_sync([], samples) == "next stop"
    assert worker.process()[0] != pid
