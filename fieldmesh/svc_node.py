"""A stand-in server from node_modules run as a child process (its own process group, so
stop() takes its children too), ready when `ready()` answers; never left behind when the
start fails. Used by the test stand-ins for services only reachable on the internet or
in production (a browser vendor's push service, an S3 bucket)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Self

from kernel.settings import PROJECT_ROOT


class NodeServiceError(RuntimeError):
    pass


class NodeService:
    name = "node service"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """True once the service answers (a probe that raises OSError means not yet)."""
        raise NotImplementedError

    def start(self, timeout_s: float = 20.0) -> Self:
        cmd = self.command()
        if not Path(cmd[1]).exists():
            raise NodeServiceError(f"{self.name} is missing: npm ci (package.json)")
        log = open(self.log_path, "ab")  # noqa: SIM115 -- the child keeps it
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise NodeServiceError(f"{self.name} exited: see {self.log_path}")
                try:
                    if self.ready():
                        return self
                except OSError:
                    pass
                time.sleep(0.1)
            raise NodeServiceError(f"{self.name} did not answer in {timeout_s:.0f} s")
        except BaseException:
            self.stop()  # never leave the process behind
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
