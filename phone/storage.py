"""Where attachment bytes live, content-addressed by their SHA-256: one seam, `BlobStore`.

`LocalStore` (the default) keeps `<root>/<aa>/<bb>/<sha256>[.thumb]` under the state
directory (FIELDMESH_ATTACHMENTS_DIR), written to a temporary file and renamed, so a
reader never sees half a file and the same content is stored once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

_SHA = re.compile(r"^[0-9a-f]{64}$")


class BlobStore(Protocol):
    def put(self, sha256: str, data: bytes, *, thumb: bool = False) -> None: ...

    def get(self, sha256: str, *, thumb: bool = False) -> bytes | None: ...


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str, thumb: bool) -> Path:
        if not _SHA.match(sha256):
            raise ValueError("not a sha256 hex digest")
        name = f"{sha256}.thumb" if thumb else sha256
        return self.root / sha256[:2] / sha256[2:4] / name

    def put(self, sha256: str, data: bytes, *, thumb: bool = False) -> None:
        path = self._path(sha256, thumb)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def get(self, sha256: str, *, thumb: bool = False) -> bytes | None:
        path = self._path(sha256, thumb)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
