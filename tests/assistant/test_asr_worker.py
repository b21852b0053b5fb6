"""The speech worker process: it recognises what piper says, runs at a higher priority
when the system allows it, and a dead worker is replaced by the next request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from assistant import voice
from assistant.asr_worker import ASR_NICE, RecognitionWorker
from tests.eventually import eventually


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
    samples = voice.read_wav(voice.speak("open the map", steady=True))
    assert worker.transcribe_sync(["Anna Weber"], samples) == "open the map"
    pid, nice = worker.process()
    assert pid != os.getpid()
    if _may_raise_priority():
        assert nice == ASR_NICE
    else:
        assert nice >= ASR_NICE


def test_a_dead_worker_is_replaced(worker: RecognitionWorker) -> None:
    samples = voice.read_wav(voice.speak("next stop", steady=True))
    pid, _ = worker.process()
    os.kill(pid, signal.SIGKILL)
    assert worker.transcribe_sync([], samples) == "next stop"
    assert worker.process()[0] != pid


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_worker_ends_when_its_api_process_is_killed() -> None:
    """A crashed (SIGKILLed) API worker leaves no speech process behind."""
    code = (
        "import sys, time\n"
        "from assistant.asr_worker import RecognitionWorker\n"
        "w = RecognitionWorker()\n"
        "print(w.process()[0], flush=True)\n"
        "time.sleep(600)\n"
    )
    api = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert api.stdout is not None
        pid = int(api.stdout.readline())
        assert _alive(pid)
    finally:
        api.kill()
        api.wait()
    eventually(lambda: not _alive(pid), timeout_s=30, what="the orphaned speech worker ends")
