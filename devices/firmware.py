"""Firmware images and release keys: content-addressed storage, signature checks, links.

An image is stored once under its SHA-256 (`state_dir/firmware/<sha256>`), written to a
temporary file and renamed, so a reader never sees half an image. It is accepted only
with a valid Ed25519 signature of a registered, unrevoked release key over
``edge_agent.ota.firmware_message(model, version, sha256)``: what the device checks again
before it installs it. The OTA command a device receives names the image by hash and
carries the signature and a download path signed for that device (devices.tokens).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

from devices.tokens import link_key, sign_link
from edge_agent.ota import verify_signature
from kernel.broker import master_key
from kernel.errors import Conflict, NotFound, Unprocessable
from kernel.settings import Settings
from ledger.verify import b64url_decode

MAX_IMAGE_BYTES = 16 * 1024 * 1024  # the API's request limit as well
LINK_TTL_S = 24 * 3600


def store_dir(settings: Settings) -> Path:
    return settings.state_dir / "firmware"


def image_path(settings: Settings, sha256: str) -> Path:
    return store_dir(settings) / sha256


def write_image(settings: Settings, sha256: str, data: bytes) -> Path:
    path = image_path(settings, sha256)
    if path.exists() and path.stat().st_size == len(data):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{sha256}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


async def trusted_keys(conn: AsyncConnection[Any]) -> dict[str, bytes]:
    cur = await conn.execute("SELECT key_id, public_key FROM release_key WHERE revoked_at IS NULL")
    return {str(k): bytes(v) for k, v in await cur.fetchall()}


async def add_release_key(
    conn: AsyncConnection[Any], key_id: str, public_key: bytes, created_by: int
) -> None:
    cur = await conn.execute(
        "INSERT INTO release_key (key_id, public_key, created_by) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING key_id",
        (key_id, public_key, created_by),
    )
    if await cur.fetchone() is None:
        raise Conflict(
            f"release key {key_id!r} (or that public key) exists already", field="key_id"
        )


@dataclass(frozen=True, slots=True)
class Image:
    sha256: str
    equipment_model: str
    version: str
    size_bytes: int
    key_id: str
    signature: str


async def accept_image(
    conn: AsyncConnection[Any],
    settings: Settings,
    data: bytes,
    *,
    equipment_model: str,
    version: str,
    key_id: str,
    signature: str,
    uploaded_by: int,
) -> Image:
    """Check and store an uploaded image; the same image again is a no-op (its row)."""
    if not data:
        raise Unprocessable("the image is empty", field="body")
    if len(data) > MAX_IMAGE_BYTES:
        raise Unprocessable(f"the image exceeds {MAX_IMAGE_BYTES} bytes", field="body")
    try:
        b64url_decode(signature)
    except ValueError:
        raise Unprocessable("signature: not base64url", field="signature") from None
    sha = hashlib.sha256(data).hexdigest()
    problem = verify_signature(
        await trusted_keys(conn), key_id, signature, equipment_model, version, sha
    )
    if problem is not None:
        field = "key_id" if problem.startswith("unknown") else "signature"
        raise Unprocessable(f"{problem}: the image is refused", field=field)
    write_image(settings, sha, data)
    cur = await conn.execute(
        "INSERT INTO firmware_image (sha256, equipment_model, version, size_bytes, key_id,"
        " signature, uploaded_by) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING sha256",
        (sha, equipment_model, version, len(data), key_id, signature, uploaded_by),
    )
    if await cur.fetchone() is None:
        existing = await get_image(conn, sha) if await _exists(conn, sha) else None
        if existing is None or (existing.equipment_model, existing.version) != (
            equipment_model,
            version,
        ):
            raise Conflict(
                f"{equipment_model} {version} exists already with other content", field="version"
            )
        return existing
    return Image(sha, equipment_model, version, len(data), key_id, signature)


async def _exists(conn: AsyncConnection[Any], sha256: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM firmware_image WHERE sha256 = %s", (sha256,))
    return await cur.fetchone() is not None


async def get_image(conn: AsyncConnection[Any], sha256: str) -> Image:
    cur = await conn.execute(
        "SELECT sha256, equipment_model, version, size_bytes, key_id, signature"
        " FROM firmware_image WHERE sha256 = %s",
        (sha256,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no firmware image {sha256}", field="sha256")
    return Image(*row)


def ota_args(settings: Settings, image: Image, device_id: str) -> dict[str, Any]:
    """The `ota` command's arguments for one device (the download path signed for it)."""
    expires = int(time.time()) + LINK_TTL_S
    mac = sign_link(link_key(master_key(settings)), image.sha256, device_id, expires)
    return {
        "version": image.version,
        "equipment_model": image.equipment_model,
        "sha256": image.sha256,
        "size": image.size_bytes,
        "url": f"/api/v1/firmware/{image.sha256}/download?device={device_id}"
        f"&expires={expires}&mac={mac}",
        "signature": image.signature,
        "key_id": image.key_id,
    }
