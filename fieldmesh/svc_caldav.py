"""The embedded CalDAV server (Radicale 3) as a process of its own under the state dir.

Radicale is GPL: it is started as `python -m radicale` from the same virtualenv and never
imported. `fieldmesh up` starts it, `fieldmesh down` stops it, `fieldmesh status` shows
it; with CALDAV_URL set, none of this runs and users sync with that server instead.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

from calendars.server import caldav_dir, write_config
from fieldmesh import procs
from kernel.broker import file_lock
from kernel.settings import Settings

log = logging.getLogger(__name__)


class CalDavServiceError(RuntimeError):
    """The embedded CalDAV server could not be started."""


def _pidfile(settings: Settings) -> Path:
    return caldav_dir(settings.state_dir) / "radicale.pid"


def _conf(settings: Settings) -> Path:
    return caldav_dir(settings.state_dir) / "radicale.conf"


def _pid(settings: Settings) -> int | None:
    """This state dir's Radicale: the pid file's process, if its command line runs this
    state dir's configuration (a port probe is no proof: see fieldmesh/procs.py)."""
    return procs.pid_from_file(_pidfile(settings), str(_conf(settings)))


def running(settings: Settings) -> bool:
    return _pid(settings) is not None


def start(settings: Settings, timeout_s: float = 30.0) -> None:
    """Start the state dir's Radicale unless it runs; one at a time per state dir."""
    with file_lock(caldav_dir(settings.state_dir) / "start.lock"):
        _start_locked(settings, timeout_s)


def _start_locked(settings: Settings, timeout_s: float) -> None:
    if _pid(settings) is not None:
        if not procs.port_open(settings.caldav_port, timeout_s=2.0):
            log.warning(
                "the running Radicale of %s listens elsewhere than FIELDMESH_CALDAV_PORT=%d:"
                " `fieldmesh down` and `fieldmesh up` to apply the setting",
                caldav_dir(settings.state_dir),
                settings.caldav_port,
            )
        return
    # stray servers of this state dir (an older version's overwritten pid file)
    procs.stop_service(_pidfile(settings), str(_conf(settings)), "radicale")
    if procs.port_open(settings.caldav_port):
        raise CalDavServiceError(
            f"port {settings.caldav_port} is taken by another program (FIELDMESH_CALDAV_PORT)"
        )
    conf = write_config(settings.state_dir, settings.caldav_port)
    log_path = caldav_dir(settings.state_dir) / "radicale.log"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the server outlives `fieldmesh up` and its shell
        )
    _pidfile(settings).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _pidfile(settings).unlink(missing_ok=True)
            raise CalDavServiceError(f"radicale exited with code {proc.returncode}: see {log_path}")
        if procs.port_open(settings.caldav_port):
            return
        time.sleep(0.05)
    procs.stop_group(proc.pid)
    _pidfile(settings).unlink(missing_ok=True)
    raise CalDavServiceError(f"radicale did not open port {settings.caldav_port} in {timeout_s} s")


def stop(settings: Settings) -> None:
    """Stop the state dir's Radicale (and any other one running its configuration)."""
    with file_lock(caldav_dir(settings.state_dir) / "start.lock"):
        procs.stop_service(_pidfile(settings), str(_conf(settings)), "radicale")


def detail(settings: Settings) -> str:
    return f"127.0.0.1:{settings.caldav_port}"
