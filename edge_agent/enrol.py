"""A real device's way in: enrol over HTTP with a one-time token, keep what it is given.

The device generates its Ed25519 key (``edge_agent.signing``) once and never sends the
private half. Enrolment proves possession: the device signs ``enrolment_message(device_id,
token)`` (the token and its own id, so a proof cannot be replayed for another device or
another token) and posts it with its public key and the token to
``POST /api/v1/device-enrolments``. It gets back its broker credentials (bound to its id),
the tenant, and the release keys OTA images must be signed with; they are stored in
``credentials.json`` (mode 0600) beside the key, and ``agent_config`` turns them into an
``AgentConfig`` for ``EdgeAgent``.

Files in the device's directory: ``device.key`` (32 raw bytes), ``credentials.json``,
``outbox.sqlite``, and the OTA slots (``edge_agent.ota``).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from edge_agent.agent import AgentConfig
from edge_agent.signing import DeviceKey
from ledger.verify import b64url_decode, b64url_encode

ENROLMENT_PATH = "/api/v1/device-enrolments"
KEY_FILE = "device.key"
CREDENTIALS_FILE = "credentials.json"
MAX_RESPONSE_BYTES = 64 * 1024


class EnrolmentError(Exception):
    """Enrolment was refused or could not be completed; `status` is the HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def enrolment_message(device_id: str, token: str) -> bytes:
    """What the device signs to prove it holds its key (the server checks the same bytes)."""
    return b"fieldmesh-enrol-v1\x00" + device_id.encode() + b"\x00" + token.encode()


class ReleaseKey(msgspec.Struct, frozen=True):
    key_id: str
    public_key: str  # base64url, 32 raw bytes


class Enrolment(msgspec.Struct, frozen=True):
    """What the platform hands an enrolled device (and the device keeps)."""

    device_id: str
    tenant: str
    mqtt_host: str
    mqtt_port: int
    mqtt_username: str
    mqtt_password: str
    mqtt_tls: bool
    release_keys: list[ReleaseKey]
    api_url: str = ""
    ca_pem: str | None = None  # the project CA, when the broker listens with TLS
    equipment_model: str | None = None
    seq_start: int = 1  # the first seq to use: above any the platform holds for this id

    def trusted_keys(self) -> dict[str, bytes]:
        return {k.key_id: b64url_decode(k.public_key) for k in self.release_keys}


@dataclass(frozen=True, slots=True)
class DeviceDir:
    """The directory an enrolled device keeps its state in."""

    path: Path

    @property
    def key_path(self) -> Path:
        return self.path / KEY_FILE

    @property
    def credentials_path(self) -> Path:
        return self.path / CREDENTIALS_FILE

    def key(self, device_id: str) -> DeviceKey:
        return DeviceKey.load_or_create(device_id, self.key_path)

    def load(self) -> Enrolment:
        try:
            return msgspec.json.decode(self.credentials_path.read_bytes(), type=Enrolment)
        except (OSError, msgspec.MsgspecError) as exc:
            raise EnrolmentError(f"no usable enrolment in {self.path}: {exc}") from exc

    def save(self, enrolment: Enrolment) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.credentials_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(msgspec.json.encode(enrolment))
        os.replace(tmp, self.credentials_path)
        if enrolment.ca_pem:
            (self.path / "ca.pem").write_text(enrolment.ca_pem)


def enrolment_request(
    key: DeviceKey, token: str, *, equipment_model: str | None = None, firmware: str | None = None
) -> dict[str, Any]:
    """The body of the enrolment request: the token, the public key and the proof."""
    return {
        "device_id": key.device_id,
        "token": token,
        "public_key": b64url_encode(key.public_key_bytes),
        "proof": b64url_encode(key.private_key.sign(enrolment_message(key.device_id, token))),
        "equipment_model": equipment_model,
        "firmware": firmware,
    }


def enrol(
    api_url: str,
    token: str,
    device_id: str,
    directory: Path,
    *,
    equipment_model: str | None = None,
    firmware: str | None = None,
    timeout_s: float = 30.0,
) -> Enrolment:
    """Generate (or reuse) the device's key, enrol with `token`, store the credentials."""
    ddir = DeviceDir(directory)
    key = ddir.key(device_id)
    body = json.dumps(
        enrolment_request(key, token, equipment_model=equipment_model, firmware=firmware)
    ).encode()
    req = urllib.request.Request(
        api_url.rstrip("/") + ENROLMENT_PATH,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            raw = resp.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        detail = exc.read(4096).decode("utf-8", "replace")
        raise EnrolmentError(f"enrolment refused ({exc.code}): {detail}", exc.code) from exc
    except OSError as exc:
        raise EnrolmentError(f"cannot reach {api_url}: {exc}") from exc
    if len(raw) > MAX_RESPONSE_BYTES:
        raise EnrolmentError("enrolment answer too large")
    try:
        enrolment = msgspec.json.decode(raw, type=Enrolment)
    except msgspec.MsgspecError as exc:
        raise EnrolmentError(f"unexpected enrolment answer: {exc}") from exc
    if enrolment.device_id != device_id:
        raise EnrolmentError(f"enrolled as {enrolment.device_id!r}, not {device_id!r}")
    enrolment = msgspec.structs.replace(enrolment, api_url=api_url.rstrip("/"))
    ddir.save(enrolment)
    return enrolment


def agent_config(directory: Path, *, firmware: str, **overrides: Any) -> AgentConfig:
    """An `AgentConfig` from a stored enrolment (credentials, broker, TLS CA)."""
    ddir = DeviceDir(directory)
    e = ddir.load()
    return AgentConfig(
        device_id=e.device_id,
        tenant=e.tenant,
        username=e.mqtt_username,
        password=e.mqtt_password,
        outbox_path=directory / "outbox.sqlite",
        host=e.mqtt_host,
        port=e.mqtt_port,
        tls_ca_file=(directory / "ca.pem") if e.mqtt_tls and e.ca_pem else None,
        firmware=firmware,
        **overrides,
    )
