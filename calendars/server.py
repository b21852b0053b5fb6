"""The embedded CalDAV server's files: its configuration and its htpasswd accounts.

Radicale 3 is GPL, so fieldmesh never imports it: `fieldmesh.svc_caldav` runs it as a
separate process (`python -m radicale --config <state>/caldav/radicale.conf`) and this
module only writes the files it reads. Each fieldmesh user who opts in gets an account
`fm-<user id>` with a generated 256-bit password; the password is kept in clear in the
htpasswd file (mode 0600, under the state dir) and in `cal_accounts`, because fieldmesh
itself must present it (HTTP Basic) on every sync. A slow hash would protect nothing more
for a random secret of that size; Radicale re-reads the file when it changes, so a new
account works without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

CALENDAR_NAME = "fieldmesh"  # each account's one calendar: /fm-<id>/fieldmesh/

_CONF = """# fieldmesh embedded CalDAV server (written by fieldmesh; edits are overwritten)
[server]
hosts = 127.0.0.1:{port}
max_connections = 64
max_content_length = 20000000
timeout = 60

[auth]
type = htpasswd
htpasswd_filename = {dir}/htpasswd
htpasswd_encryption = plain
htpasswd_cache = True
cache_logins = True
delay = 1

[rights]
type = owner_only

[storage]
filesystem_folder = {dir}/collections
# validate the per-item cache by mtime and size, not by hashing every file: a sync
# REPORT and the UID check of every new item read the whole collection
use_mtime_and_size_for_item_cache = True
# every write appends a line to the writer's change marker (see change_stamp)
hook = echo %(request)s >> {dir}/changes/%(user)s

[web]
type = none

[logging]
level = warning
"""


def caldav_dir(state_dir: Path) -> Path:
    return state_dir / "caldav"


def write_config(state_dir: Path, port: int) -> Path:
    """The server's configuration file (and an empty htpasswd on first use)."""
    root = caldav_dir(state_dir)
    (root / "collections").mkdir(parents=True, exist_ok=True)
    (root / "changes").mkdir(exist_ok=True)
    conf = root / "radicale.conf"
    conf.write_text(_CONF.format(port=port, dir=root))
    htpasswd = root / "htpasswd"
    if not htpasswd.exists():
        fd = os.open(htpasswd, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    return conf


def change_stamp(state_dir: Path, username: str) -> str:
    """The account's change marker: Radicale's storage hook appends a line to
    `changes/<user>` after every write by that user, under the server's write lock, so
    the marker's size (and time) move with every change of the account's calendars.
    Read before a sync REPORT and kept, it tells the next round whether the server
    changed since, without asking the server: Radicale computes a sync REPORT's answer
    over the whole collection (seconds at 10,000 objects), a stat is microseconds.
    (Each account writes only its own calendars: rights are owner_only.) "none" when
    no write was seen yet: the caller then asks the server."""
    try:
        st = (caldav_dir(state_dir) / "changes" / username).stat()
    except FileNotFoundError:
        return "none"
    return f"{st.st_size}:{st.st_mtime_ns}"


def username_for(user_id: int) -> str:
    return f"fm-{user_id}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_suffix(".lock")
    with lock.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def set_account(state_dir: Path, username: str, password: str | None = None) -> str:
    """Create or replace the account's htpasswd line; returns its password (a new one when
    none is given). The file is rewritten whole and replaced atomically."""
    if ":" in username or "\n" in username:
        raise ValueError(f"bad CalDAV user name {username!r}")
    password = password or secrets.token_urlsafe(32)
    root = caldav_dir(state_dir)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "htpasswd"
    with _locked(path):
        lines = path.read_text().splitlines() if path.exists() else []
        kept = [ln for ln in lines if ln and not ln.startswith(username + ":")]
        kept.append(f"{username}:{password}")
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(kept) + "\n")
        os.replace(tmp, path)
    return password


def remove_account(state_dir: Path, username: str) -> None:
    path = caldav_dir(state_dir) / "htpasswd"
    if not path.exists():
        return
    with _locked(path):
        kept = [ln for ln in path.read_text().splitlines() if not ln.startswith(username + ":")]
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(f"{ln}\n" for ln in kept))
        os.replace(tmp, path)
