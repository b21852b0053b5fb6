"""A local S3-compatible server for tests and benchmarks: npm `s3rver` (the S3 REST API
with SigV4 checks over files in a directory). Production points S3_URL at a real bucket
(AWS, MinIO, Ceph, R2); the product's default is local disk, so this is never part of
`fieldmesh up` -- it exists to exercise the S3 path against a real HTTP S3 server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kernel.settings import PROJECT_ROOT

S3RVER_JS = PROJECT_ROOT / "node_modules" / "s3rver" / "bin" / "s3rver.js"
# s3rver accepts exactly these credentials (its documented defaults)
ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"


class S3ServerError(RuntimeError):
    pass


@dataclass
class LocalS3Server:
    port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(self, bucket: str, prefix: str = "") -> str:
        """The S3_URL of a bucket on this server."""
        tail = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
        return f"http://{ACCESS_KEY}:{SECRET_KEY}@127.0.0.1:{self.port}/{bucket}{tail}"

    def start(self, timeout_s: float = 20.0) -> LocalS3Server:
        if not S3RVER_JS.exists():
            raise S3ServerError("s3rver is missing: npm ci (package.json)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 -- the child keeps it
        self.proc = subprocess.Popen(
            [
                "node",
                str(S3RVER_JS),
                "-d",
                str(self.data_dir),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--no-vhost-buckets",
            ],
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
                    raise S3ServerError(f"s3rver exited: see {self.log_path}")
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                    return self
                except OSError:
                    time.sleep(0.1)
            raise S3ServerError("s3rver did not listen")
        except BaseException:
            self.stop()  # never leave the process behind
            raise

    def __enter__(self) -> LocalS3Server:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
