"""Firmware updates on the device: download, verify, switch, boot, report, roll back.

An `ota` command names an image by its SHA-256 and carries the release key's Ed25519
signature over ``firmware_message(model, version, sha256)`` (so neither the bytes nor what
they claim to be can be swapped), its size and a download URL. The updater:

1. downloads over HTTP into a partial file, resuming with a Range request when a partial
   download is there, never reading past the announced size (and refusing anything above
   `max_image_bytes`);
2. checks the size, the SHA-256 and the signature against the release keys the device
   was given at enrolment; a mismatch deletes the download and fails the command;
3. writes the image into the inactive slot (A/B), marks it on trial and boots it (the
   device's `boot` callable: a real device reboots; the simulator parses its image);
4. a boot that fails rolls back to the previous slot and fails the command; a good boot
   commits the slot, and the agent acks with the new version and reports it in its status.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.verify import b64url_decode

log = logging.getLogger(__name__)

DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# The device boots an image: (ok, version it reports or the reason it failed)
Boot = Callable[[bytes], tuple[bool, str]]


class OtaError(Exception):
    """An update failed; the message says at which step and why."""


def firmware_message(equipment_model: str, version: str, sha256_hex: str) -> bytes:
    """What the release key signs (the server checks it on upload, the device before use)."""
    return f"fieldmesh-firmware-v1\x00{equipment_model}\x00{version}\x00{sha256_hex}".encode()


def verify_signature(
    trusted: dict[str, bytes],
    key_id: str,
    signature: str,
    equipment_model: str,
    version: str,
    sha256_hex: str,
) -> str | None:
    """None when the signature is a trusted key's over this image; else the reason."""
    public = trusted.get(key_id)
    if public is None:
        return f"unknown release key {key_id!r}"
    try:
        sig = b64url_decode(signature)
        Ed25519PublicKey.from_public_bytes(public).verify(
            sig, firmware_message(equipment_model, version, sha256_hex)
        )
    except (ValueError, InvalidSignature):
        return "bad signature"
    return None


class OtaArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: str
    equipment_model: str
    sha256: str
    size: int
    url: str
    signature: str
    key_id: str


def parse_args(args: dict[str, Any], max_image_bytes: int, base_url: str = "") -> OtaArgs:
    try:
        a = msgspec.convert(args, OtaArgs)
    except msgspec.ValidationError as exc:
        raise OtaError(f"bad ota command: {exc}") from None
    if not _SHA256_RE.match(a.sha256):
        raise OtaError("bad ota command: sha256 must be 64 lowercase hex digits")
    if not 0 < a.size <= max_image_bytes:
        raise OtaError(f"bad ota command: size {a.size} outside 1..{max_image_bytes}")
    if a.url.startswith("/") and base_url.startswith(("http://", "https://")):
        # the platform sends a path: the device fetches it from the API it enrolled with
        a = msgspec.structs.replace(a, url=base_url.rstrip("/") + a.url)
    if not a.url.startswith(("http://", "https://")):
        raise OtaError("bad ota command: url must be http(s)")
    return a


def download(url: str, dest: Path, size: int, *, timeout_s: float = 60.0) -> Path:
    """Fetch `size` bytes into `dest`, resuming a partial file; never more than `size`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = dest.stat().st_size if dest.exists() else 0
    if have > size:
        dest.unlink()
        have = 0
    if have < size:
        req = urllib.request.Request(url)
        if have:
            req.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                if have and resp.status != 206:  # the server ignored the range: start over
                    have = 0
                length = resp.headers.get("Content-Length")
                if length is not None and have + int(length) > size:
                    raise OtaError(
                        f"download: the server sends more than the {size} bytes announced"
                    )
                with dest.open("r+b" if have else "wb") as fh:
                    fh.seek(have)
                    fh.truncate()
                    while have < size:
                        chunk = resp.read(min(_CHUNK, size - have))
                        if not chunk:
                            break
                        fh.write(chunk)
                        have += len(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
        except urllib.error.HTTPError as exc:
            raise OtaError(f"download: HTTP {exc.code}") from exc
        except OSError as exc:  # a partial file is kept: the next attempt resumes
            raise OtaError(f"download interrupted after {have} bytes: {exc}") from exc
    if have != size:
        raise OtaError(f"download: got {have} bytes, expected {size}")
    return dest


@dataclass(frozen=True, slots=True)
class SlotState:
    active: str  # "a" or "b"
    version: str
    sha256: str | None = None


class SlotStore:
    """Two firmware slots and a pointer to the active one, switched atomically."""

    def __init__(self, directory: Path, factory_version: str) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._pointer = self.dir / "active.json"
        if not self._pointer.exists():
            self._write(SlotState("a", factory_version))

    def state(self) -> SlotState:
        d = json.loads(self._pointer.read_text())
        return SlotState(d["active"], d["version"], d.get("sha256"))

    def _write(self, st: SlotState) -> None:
        tmp = self._pointer.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"active": st.active, "version": st.version, "sha256": st.sha256})
        )
        os.replace(tmp, self._pointer)

    def inactive(self) -> str:
        return "b" if self.state().active == "a" else "a"

    def slot_path(self, slot: str) -> Path:
        return self.dir / f"slot-{slot}.bin"

    def stage(self, image: bytes) -> str:
        slot = self.inactive()
        path = self.slot_path(slot)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(image)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return slot

    def switch(self, slot: str, version: str, sha256: str) -> SlotState:
        previous = self.state()
        self._write(SlotState(slot, version, sha256))
        return previous

    def restore(self, previous: SlotState) -> None:
        self._write(previous)


def accept_any(_image: bytes) -> tuple[bool, str]:
    """The boot of a device without a boot check: every verified image boots."""
    return True, ""


class Updater:
    """Applies `ota` commands for one device (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        equipment_model: str,
        trusted_keys: dict[str, bytes],
        factory_version: str,
        boot: Boot = accept_any,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        base_url: str = "",
    ) -> None:
        self.dir = directory
        self.base_url = base_url  # the API the device enrolled with: relative URLs resolve here
        self.equipment_model = equipment_model
        self.trusted_keys = dict(trusted_keys)
        self.boot = boot
        self.max_image_bytes = max_image_bytes
        self.slots = SlotStore(directory / "slots", factory_version)

    @property
    def version(self) -> str:
        return self.slots.state().version

    def apply(self, raw_args: dict[str, Any]) -> str:
        """Update to the image the command names; returns the new version or raises OtaError."""
        a = parse_args(raw_args, self.max_image_bytes, self.base_url)
        if a.equipment_model != self.equipment_model:
            raise OtaError(
                f"image for {a.equipment_model!r}, this device is a {self.equipment_model!r}"
            )
        if self.slots.state().sha256 == a.sha256:
            return a.version  # already running it (a redelivered command)
        problem = verify_signature(
            self.trusted_keys, a.key_id, a.signature, a.equipment_model, a.version, a.sha256
        )
        if problem is not None:  # refused before a byte is downloaded
            raise OtaError(f"refused: {problem}")
        partial = self.dir / "download" / f"{a.sha256}.part"
        download(a.url, partial, a.size)
        image = partial.read_bytes()
        partial.unlink()
        digest = hashlib.sha256(image).hexdigest()
        if digest != a.sha256:
            raise OtaError(f"refused: SHA-256 mismatch (got {digest[:16]}...)")
        slot = self.slots.stage(image)
        previous = self.slots.switch(slot, a.version, a.sha256)
        ok, detail = self.boot(image)
        if not ok:
            self.slots.restore(previous)
            log.warning(
                "ota: %s failed to boot (%s); rolled back to %s",
                a.version,
                detail,
                previous.version,
            )
            raise OtaError(
                f"boot of {a.version} failed ({detail}); rolled back to {previous.version}"
            )
        log.info("ota: now running %s (slot %s)", a.version, slot)
        return a.version
