"""The embedded CalDAV server (Radicale 3) as a process of its own under the state dir.

Radicale is GPL: it is started as `python -m radicale` from the same virtualenv and never
imported. `fieldmesh up` starts it, `fieldmesh down` stops it, `fieldmesh status` shows
it; with CALDAV_URL set, none of this runs and users sync with that server instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from calendars.server import caldav_dir, write_config
from kernel.settings import Settings


class CalDavServiceError(RuntimeError):
    """The embedded CalDAV server could not be started."""


def _pidfile(settings: Settings) -> Path:
    return caldav_dir(settings.state_dir) / "radicale.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _pid(settings: Settings) -> int | None:
    try:
        pid = int(_pidfile(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _port_open(port: int) -> bool:
    import socket

    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=0.3),
    ):
        return True
    return False


def running(settings: Settings) -> bool:
    return _pid(settings) is not None and _port_open(settings.caldav_port)


def start(settings: Settings, timeout_s: float = 30.0) -> None:
    conf = write_config(settings.state_dir, settings.caldav_port)
    if running(settings):
        return
    if _port_open(settings.caldav_port):
        raise CalDavServiceError(
            f"port {settings.caldav_port} is taken by another program (FIELDMESH_CALDAV_PORT)"
        )
    log = (caldav_dir(settings.state_dir) / "radicale.log").open("ab")
    with log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the server outlives `fieldmesh up` and its shell
        )
    _pidfile(settings).write_text(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CalDavServiceError(f"radicale exited with code {proc.returncode}: see {log.name}")
        if _port_open(settings.caldav_port):
            return
        time.sleep(0.05)
    raise CalDavServiceError(f"radicale did not open port {settings.caldav_port} in {timeout_s} s")


def stop(settings: Settings) -> None:
    pid = _pid(settings)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        _pidfile(settings).unlink()


def detail(settings: Settings) -> str:
    return f"127.0.0.1:{settings.caldav_port}"
