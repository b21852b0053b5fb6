"""The embedded services' processes: which one is ours, and stopping it with its children.

A service of a state dir is identified by its pid file *and* its command line (which
names a file of that state dir), never by a port probe: a probe that times out on a
loaded machine, or a caller with other port settings, made `up` start a second server
that overwrote the pid file, and `down` then stopped that one and left the first running.
Stopping a service also stops any process whose command line names the state dir's file
(one orphaned by an earlier version's overwritten pid file), with its process group.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """The process exists and is no zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def cmdline(pid: int) -> str:
    """The process's arguments joined by spaces ('' when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def pid_from_file(path: Path, marker: str) -> int | None:
    """The pid the file names when that process is alive and its command line contains
    `marker`; None otherwise (no file, a dead process, a pid reused by another program)."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid <= 0 or not alive(pid) or marker not in cmdline(pid):
        return None
    return pid


def pids_mentioning(marker: str) -> list[int]:
    """Live processes (other than this one) whose command line contains `marker`."""
    me = os.getpid()
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        if marker in cmdline(pid) and alive(pid):
            out.append(pid)
    return out


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:  # a session or group leader: its children go with it
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_group(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM the process (its group when it leads one), SIGKILL after `timeout_s`."""
    if not alive(pid):
        return
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our own child: reap it, or it stays a zombie
        time.sleep(0.05)
    if alive(pid):
        _signal(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def stop_service(pidfile: Path, marker: str, program: str, timeout_s: float = 20.0) -> None:
    """Stop the process the pid file names and every other `program` process whose command
    line contains `marker` (a file of this state dir), then remove the pid file."""
    pids = {p for p in pids_mentioning(marker) if program in cmdline(p)}
    own = pid_from_file(pidfile, marker)
    if own is not None:
        pids.add(own)
    for pid in sorted(pids):
        stop_group(pid, timeout_s)
    with contextlib.suppress(OSError):
        pidfile.unlink()


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.3) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


def reachable_dir(state_dir: Path, sub: str, user: str) -> Path:
    """Where the state dir's `sub` lives for a service that runs as `user` (when we are
    root: PostgreSQL as `postgres`, Dovecot as `dovecot`).

    A state dir under a private home (a clone in /root, mode 700) cannot be reached by
    that user, so `sub` then lives under /var/lib/fieldmesh, keyed by the state dir, and
    `state_dir/sub` is a symlink to it (what a failed earlier start left there is moved
    over). Give the service the path this answers, never one through the symlink.
    """
    local = state_dir / sub
    if os.geteuid() != 0:
        return local
    if local.is_symlink():
        return local.resolve()
    if _reaches(user, str(state_dir)):
        return local
    key = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    target = Path("/var/lib/fieldmesh") / key / sub
    target.mkdir(parents=True, exist_ok=True)
    if local.is_dir():
        for entry in local.iterdir():
            shutil.move(str(entry), str(target / entry.name))
        local.rmdir()
    local.parent.mkdir(parents=True, exist_ok=True)
    local.symlink_to(target)
    return target


@functools.lru_cache(maxsize=64)
def _reaches(user: str, path: str) -> bool:
    """`user` may enter `path` (every directory on the way lets it through)."""
    probe = subprocess.run(["runuser", "-u", user, "--", "test", "-x", path], check=False)
    return probe.returncode == 0
