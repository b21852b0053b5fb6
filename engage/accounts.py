"""Mailbox accounts of the embedded Dovecot: its passwd-file under `state_dir/mail/users`.

Dovecot re-reads the file (at most once a second) when it changed, so a new mailbox works
without a reload; writing returns once it is visible (within a second). Passwords are stored as Dovecot's {SSHA256} (salted SHA-256). The
embedded server's processes are `fieldmesh.svc_mail`'s; this module only knows the file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
import time
from pathlib import Path

from kernel.settings import Settings


class AccountError(ValueError):
    """A mailbox address the passwd-file cannot hold."""


def mail_dir(settings: Settings) -> Path:
    return settings.state_dir / "mail"


def maildir_of(settings: Settings, address: str) -> Path:
    """An embedded mailbox's Maildir (Dovecot's mail_location names the same path)."""
    local, _, domain = address.strip().lower().partition("@")
    return mail_dir(settings) / "mail" / domain / local / "Maildir"


def users_file(settings: Settings) -> Path:
    return mail_dir(settings) / "users"


def password_hash(password: str) -> str:
    """Dovecot's {SSHA256}: base64(sha256(password + salt) + salt)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha256(password.encode() + salt).digest()
    return "{SSHA256}" + base64.b64encode(digest + salt).decode()


def _check(address: str) -> str:
    addr = address.strip().lower()
    if not addr or any(c in addr for c in ":\n\r \t/") or addr.count("@") != 1:
        raise AccountError(f"not a mailbox address: {address!r}")
    return addr


def file_owner() -> pwd.struct_passwd:
    """Who the embedded Dovecot runs as: Debian's `dovecot` user as root, else us."""
    if os.geteuid() == 0:
        return pwd.getpwnam("dovecot")
    return pwd.getpwuid(os.geteuid())


def add_mailboxes(settings: Settings, boxes: dict[str, str]) -> None:
    """Create or re-key embedded mailboxes (address -> password) in one write."""
    want = {_check(a): p for a, p in boxes.items()}
    path = users_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text().splitlines() if path.exists() else []
    old_mtime = int(path.stat().st_mtime) if path.exists() else 0
    lines = [ln for ln in old if ln and ln.split(":", 1)[0] not in want]
    lines += [f"{a}:{password_hash(p)}::::::" for a, p in want.items()]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    if os.geteuid() == 0:
        owner = file_owner()
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    # Dovecot re-reads the file when its mtime (whole seconds) or size changed, and looks
    # at most once per second: the mtime always moves, and we return only once the clock
    # has reached the next second, so the next login is sure to see the new file.
    now = int(time.time())
    stamp = now if now > old_mtime else old_mtime + 1
    os.utime(tmp, (stamp, stamp))
    os.replace(tmp, path)
    time.sleep(max(0.0, now + 1.01 - time.time()))


def add_mailbox(settings: Settings, address: str, password: str) -> None:
    add_mailboxes(settings, {address: password})
