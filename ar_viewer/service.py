"""Scenes cached by content hash: the same input data gives the same key and the same files.

The key is a hash of the scene input (every field, so any change in the data changes it)
and of SCENE_VERSION (bumped when the scene building changes). Artefacts (GLB, USDZ, PNG)
are produced lazily, once per key, and kept in a small LRU cache. Thread-safe: exports run
in worker threads, off the event loop.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from typing import Literal

from ar_viewer.model import AssetInput, Scene, TerritoryInput

SCENE_VERSION = "ar-scene-1"
Format = Literal["glb", "usdz", "png"]
FORMATS: dict[str, str] = {
    "glb": "model/gltf-binary",
    "usdz": "model/vnd.usdz+zip",
    "png": "image/png",
}
# What a scene.{fmt} path may answer (the JSON form included), as the API documents it.
SCENE_MEDIA_TYPES = ", ".join([*FORMATS.values(), "application/json"])


def content_hash(data: TerritoryInput | AssetInput, *, extra: str = "") -> str:
    """Stable hash of a scene input (and of the scene code's version)."""
    payload = json.dumps(asdict(data), sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(f"{SCENE_VERSION}|{extra}|{payload}".encode()).hexdigest()[:24]


def export(scene: Scene, fmt: str) -> bytes:
    """One artefact of a scene, as bytes (imports the heavy exporters on first use)."""
    import tempfile
    from pathlib import Path

    if fmt == "glb":
        from ar_viewer.export import glb_bytes

        return glb_bytes(scene)
    if fmt == "usdz":
        from ar_viewer.usdz import usdz_bytes

        return usdz_bytes(scene)
    if fmt == "png":
        from ar_viewer.export import render_png

        with tempfile.TemporaryDirectory(prefix="ar_png_") as tmp:
            p = Path(tmp) / "scene.png"
            render_png(scene, p)
            return p.read_bytes()
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


class CachedScene:
    def __init__(self, key: str, scene: Scene) -> None:
        self.key = key
        self.scene = scene
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def artefact(self, fmt: str) -> bytes:
        with self._lock:
            if fmt not in self._files:
                self._files[fmt] = export(self.scene, fmt)
            return self._files[fmt]


class SceneCache:
    """LRU of built scenes by content key."""

    def __init__(self, max_entries: int = 32) -> None:
        self._entries: OrderedDict[str, CachedScene] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, key: str, build: Callable[[], Scene]) -> CachedScene:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        scene = build()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = CachedScene(key, scene)
                self._entries[key] = entry
                self.builds += 1
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
            return entry
