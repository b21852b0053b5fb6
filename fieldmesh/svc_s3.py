"""A local S3-compatible server for tests and benchmarks: npm `s3rver` (the S3 REST API
with SigV4 checks over files in a directory). Production points S3_URL at a real bucket
(AWS, MinIO, Ceph, R2); the product's default is local disk, so this is never part of
`fieldmesh up` -- it exists to exercise the S3 path against a real HTTP S3 server.
"""

from __future__ import annotations

import socket
from pathlib import Path

from fieldmesh.svc_node import NodeService
from kernel.settings import PROJECT_ROOT

S3RVER_JS = PROJECT_ROOT / "node_modules" / "s3rver" / "bin" / "s3rver.js"
# s3rver accepts exactly these credentials (its documented defaults)
ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"


class LocalS3Server(NodeService):
    name = "s3rver"

    def __init__(self, port: int, data_dir: Path, log_path: Path) -> None:
        super().__init__(log_path)
        self.port = port
        self.data_dir = data_dir

    def url(self, bucket: str, prefix: str = "") -> str:
        """The S3_URL of a bucket on this server."""
        tail = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
        return f"http://{ACCESS_KEY}:{SECRET_KEY}@127.0.0.1:{self.port}/{bucket}{tail}"

    def command(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            "node",
            str(S3RVER_JS),
            "-d",
            str(self.data_dir),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--no-vhost-buckets",
        ]

    def ready(self) -> bool:
        socket.create_connection(("127.0.0.1", self.port), 0.5).close()
        return True
