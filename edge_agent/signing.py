"""Device event signing: one Ed25519 key per device, generated once and kept on the device.

The private key is stored as 32 raw bytes in a file readable only by its owner (mode 0600);
the public key (32 raw bytes) is registered with the platform at provisioning
(``device.public_key``). What is signed is defined once, in ``ledger.canonical.signed_message``:
the RFC 8785 canonical JSON of ``{"device_id", "id", "t", "type", "data"}``. The signature
travels as base64url without padding in the event's ``sig`` field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.canonical import signed_message
from ledger.verify import b64url_encode

PRIVATE_KEY_BYTES = 32


class SigningKeyError(Exception):
    """A device key file is missing, unreadable or not an Ed25519 key."""


@dataclass(frozen=True)
class DeviceKey:
    """A device's Ed25519 key pair."""

    device_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, device_id: str) -> DeviceKey:
        return cls(device_id, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, device_id: str, raw: bytes) -> DeviceKey:
        if len(raw) != PRIVATE_KEY_BYTES:
            raise SigningKeyError(f"private key has {len(raw)} bytes, expected {PRIVATE_KEY_BYTES}")
        return cls(device_id, Ed25519PrivateKey.from_private_bytes(raw))

    @property
    def public_key_bytes(self) -> bytes:
        """The 32 raw bytes to register as ``device.public_key``."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def private_bytes(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, event_id: str, t_ms: int, type: str, data: Mapping[str, Any]) -> str:
        """The base64url signature of one event of this device."""
        message = signed_message(self.device_id, event_id, t_ms, type, data)
        return b64url_encode(self.private_key.sign(message))

    def signed_event(
        self, event_id: str, t_ms: int, type: str, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The wire form of one event: ``{"id", "t", "type", "data", "sig"}``."""
        return {
            "id": event_id,
            "t": t_ms,
            "type": type,
            "data": dict(data),
            "sig": self.sign(event_id, t_ms, type, data),
        }

    def save(self, path: Path) -> None:
        """Write the private key (raw 32 bytes, mode 0600) atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, self.private_bytes())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    @classmethod
    def load(cls, device_id: str, path: Path) -> DeviceKey:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise SigningKeyError(f"cannot read device key {path}: {exc}") from exc
        return cls.from_private_bytes(device_id, raw)

    @classmethod
    def load_or_create(cls, device_id: str, path: Path) -> DeviceKey:
        """The device's key from ``path``, generating and saving one on first start."""
        if path.exists():
            return cls.load(device_id, path)
        key = cls.generate(device_id)
        key.save(path)
        return key
