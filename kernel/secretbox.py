"""Encryption at rest for credentials the product must replay (external CalDAV/IMAP
passwords, OAuth tokens): they cannot be hashed, so they are sealed with Fernet
(AES-128-CBC + HMAC-SHA256) under a key kept outside the database.

Sealed values carry a version prefix so a column can hold legacy plain text during a
migration: `open_()` returns unprefixed text unchanged, and `is_sealed()` tells a
migration which rows still need sealing.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from kernel.errors import Unavailable
from kernel.settings import Settings

PREFIX = "fm1:"


def _key_file(state_dir: Path) -> Path:
    return state_dir / "secret.key"


def _state_key(state_dir: Path) -> str:
    """The state dir's key, created once with 0600 (O_EXCL: two processes agree)."""
    path = _key_file(state_dir)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


@lru_cache(maxsize=8)
def _box(keys: tuple[str, ...], state_dir: Path) -> MultiFernet:
    chosen = keys or (_state_key(state_dir),)
    return MultiFernet([Fernet(k.encode()) for k in chosen])


def box(settings: Settings) -> MultiFernet:
    return _box(settings.secret_keys, settings.state_dir)


def seal(settings: Settings, plain: str) -> str:
    """Plain text -> `fm1:<fernet token>` (a new random IV each time)."""
    return PREFIX + box(settings).encrypt(plain.encode()).decode()


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def open_(settings: Settings, value: str) -> str:
    """A sealed value's plain text; legacy unsealed text is returned as is.

    A value sealed under a key no longer configured is a deployment fault (the key was
    lost or not rotated in), not bad input: it is reported as such, never as the text.
    """
    if not is_sealed(value):
        return value
    try:
        return box(settings).decrypt(value[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise Unavailable(
            "a stored credential cannot be decrypted: FIELDMESH_SECRET_KEYS (or"
            " state_dir/secret.key) no longer holds the key it was sealed with"
        ) from None


def rotate(settings: Settings, value: str) -> str:
    """Re-seal under the first key (after adding a new key in front)."""
    if not is_sealed(value):
        return seal(settings, value)
    return PREFIX + box(settings).rotate(value[len(PREFIX) :].encode()).decode()
